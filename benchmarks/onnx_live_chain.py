"""The whole live chain per block: torch vs the ONNX live set (fp32 and int8 content encoder).

Full-size random-weight files (no real ones can be downloaded here): a v2 40k f0 voice,
HuBERT-base and RMVPE, written in their official formats, exported by ``export_live_set``
(as ``rvclora export --live --int8``). The engine's own block converter then runs speech
block by block at rvclora's default settings with rmvpe, for each source in turn per
block, so machine noise hits all alike; per-block medians and p95 and their ratios are
printed as JSON. (The numeric match is tests/test_onnx_live.py's job.)

    python benchmarks/onnx_live_chain.py [--blocks 20] [--threads N]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _repo  # noqa: F401 — puts the repository root on sys.path for `tests`
import numpy as np
import soundfile as sf
import torch

from rvclora.export.live_set import export_live_set
from rvclora.realtime.block_converter import load_rvc_source
from rvclora.realtime.settings import EngineSettings
from rvclora.synth.configs import official_config
from rvclora.synth.hubert import HubertConfig
from rvclora.synth.rmvpe_net import RMVPE
from rvclora.synth.synthesizer import Synthesizer
from rvclora.synth.voice_file import save_voice
from tests.conftest import speech_path
from tests.hubert_fixtures import write_hubert_file
from tests.rvc_fixtures import randomize_


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--blocks", type=int, default=20, help="timed blocks per source (after 3 warm-up blocks)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="intra-op threads (torch and ORT)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)  # ORT sessions keep their default (all cores), as the engine does

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(_run(Path(tmp), args), indent=2))
    return 0


def _run(d: Path, args: argparse.Namespace) -> dict:
    """Everything loads lazily from the files in ``d`` (the pitch model at the first block)."""
    cfg = official_config("v2", 40000)
    model = randomize_(Synthesizer(cfg, version="v2", f0=True, posterior=False)).eval()
    voice = save_voice(d / "v2_40k.pth", model, config=cfg, version="v2", f0=True, info="bench")
    hubert = write_hubert_file(d / "hubert_base.pt", HubertConfig())
    torch.manual_seed(0)
    torch.save(RMVPE().state_dict(), d / "rmvpe.pt")
    t0 = time.perf_counter()
    export_live_set(voice, d / "live", hubert=hubert, rmvpe=d / "rmvpe.pt", int8=True, verify=False)
    export_s = time.perf_counter() - t0
    sources = {
        "torch": load_rvc_source(voice, hubert=hubert, rmvpe=d / "rmvpe.pt", device="cpu", precision="fp32"),
        "onnx_fp32": load_rvc_source(d / "live", device="cpu"),
        "onnx_int8": load_rvc_source(d / "live", device="cpu", backend="onnx-int8"),
    }
    settings = EngineSettings(f0_method="rmvpe", noise_scale=0.0)
    converters = {k: s.make_converter(settings) for k, s in sources.items()}
    audio, sr = sf.read(str(speech_path()), dtype="float32")
    block = converters["torch"].shape.block
    audio = np.resize(audio, block * (args.blocks + 3))
    times: dict[str, list[float]] = {k: [] for k in converters}
    for i in range(args.blocks + 3):
        x = audio[i * block : (i + 1) * block]
        for k, conv in converters.items():
            t = time.perf_counter()
            conv.convert(x, settings)
            if i >= 3:
                times[k].append((time.perf_counter() - t) * 1000)
    med = {k: statistics.median(v) for k, v in times.items()}
    p95 = {k: float(np.percentile(v, 95)) for k, v in times.items()}
    return {
        "voice": "v2 40k f0 full size, HuBERT-base, RMVPE (random weights)", "settings": "defaults, f0 rmvpe",
        "torch": torch.__version__, "onnxruntime": __import__("onnxruntime").__version__,
        "block_ms": settings.block_ms, "context_ms": settings.context_ms, "threads": args.threads,
        "blocks": args.blocks, "export_live_seconds": round(export_s, 1),
        "median_ms": {k: round(v, 1) for k, v in med.items()}, "p95_ms": {k: round(v, 1) for k, v in p95.items()},
        "ratio_torch_over_onnx_fp32": round(med["torch"] / med["onnx_fp32"], 3),
        "ratio_torch_over_onnx_int8": round(med["torch"] / med["onnx_int8"], 3),
    }


if __name__ == "__main__":
    sys.exit(main())
