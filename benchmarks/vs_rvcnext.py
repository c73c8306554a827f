"""Per-block compute of rvclora's live chain vs rvc-next's streaming engine, same weights, same settings.

rvc-next (PyPI `rvc-next`, GPL) is never imported here: it runs in its own virtual
environment, in a child process this script drives over stdin/stdout (one JSON line
per request). Both load the same files, written in the official formats by the test
fixtures' writers: a full-size v2 40k voice `.pth`, a HuBERT-base folder
(config.json + model.safetensors, with final_proj) and an `rmvpe.pt`, all with random
weights (the real ones cannot be downloaded here; cost is the same).

Both run on the same 48 kHz device-rate signal, one block per call, including their
input and output resampling: rvc-next's `StreamEngine.process` does both; rvclora's
blocks go through the engine's `StreamResampler`s around `BlockProcessor.process`.
Pitch: rmvpe in both; no index; loudness matching off in both (rms_mix_rate 1);
gate off. rvc-next's SOLA search is fixed at 10 ms and its crossfade at most 40 ms
(min(crossfade, 4 frames)), so rvclora runs crossfade 40 where rvc-next is asked 50.
Rounds alternate between the two, so machine load hits both alike; medians and the
ratio are from this one run.

    python -m venv /tmp/rvcnext-venv
    /tmp/rvcnext-venv/bin/pip install torch==2.13.0 /tmp/rvcnext/rvc_next-0.2.16-py3-none-any.whl
    .venv/bin/python benchmarks/vs_rvcnext.py [--rvcnext-python /tmp/rvcnext-venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import _repo  # noqa: F401 — puts the repository root on sys.path for `tests`
import numpy as np
import soxr
import torch
from transformers import HubertConfig, HubertModel

from rvclora.realtime.bench import speechlike
from rvclora.realtime.block_converter import load_rvc_source
from rvclora.realtime.block_processor import BlockProcessor
from rvclora.realtime.resample import StreamResampler
from rvclora.realtime.settings import EngineSettings
from rvclora.synth.configs import official_config
from rvclora.synth.rmvpe_net import RMVPE
from tests.rvc_fixtures import make_voice_file

DEVICE_SR = 48000

# The child: drives rvc-next's public engine API (Runtime, StreamEngine, StreamParams, VoiceParams).
DRIVER = r"""
import json, sys, time
import numpy as np, torch
from rvc_next.engine.convert.params import VoiceParams
from rvc_next.engine.runtime import Runtime
from rvc_next.engine.stream.engine import StreamEngine
from rvc_next.engine.stream.params import StreamParams

assets, voice_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(threads)
runtime = Runtime(assets, device="cpu", precision="fp32")
voice = runtime.voice(voice_path)
params = VoiceParams(f0_method="rmvpe", rms_mix_rate=1.0, index_rate=0.0)
engines = {}
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    key = (req["block_ms"], req["crossfade_ms"], req["context_ms"])
    if key not in engines:
        stream = StreamParams(block_ms=key[0], crossfade_ms=key[1], context_ms=key[2])
        engines[key] = StreamEngine(runtime, voice, params, stream, 48000)
    eng = engines[key]
    signal = np.load(req["signal"])
    n = eng.block_size
    times = []
    for k in range(req["warmup"] + req["blocks"]):
        t0 = time.perf_counter()
        eng.process(signal[k * n:(k + 1) * n])
        if k >= req["warmup"]:
            times.append(1000.0 * (time.perf_counter() - t0))
    print(json.dumps({"ms": times, "block_size": n}), flush=True)
"""


def write_hubert_folder(folder: Path, seed: int = 0) -> Path:
    """HuBERT-base (+ final_proj) with random weights in the Hugging Face folder format both tools read."""
    torch.manual_seed(seed)
    config = HubertConfig(classifier_proj_size=256)
    model = HubertModel(config)
    model.final_proj = torch.nn.Linear(config.hidden_size, config.classifier_proj_size)
    model.save_pretrained(folder)
    return folder


def write_assets(root: Path) -> tuple[Path, Path, Path]:
    """The voice, the content encoder and rmvpe.pt, in the layout rvc-next's assets folder expects."""
    voice = make_voice_file(root, version="v2", sr=40000, f0=True, config=official_config("v2", 40000))
    hubert = write_hubert_folder(root / "assets" / "hubert_base")
    rmvpe = root / "assets" / "rmvpe" / "rmvpe.pt"
    rmvpe.parent.mkdir(parents=True)
    torch.manual_seed(1)
    torch.save(RMVPE().state_dict(), rmvpe)
    return voice, hubert, rmvpe


def time_rvclora(source, settings: EngineSettings, sig48: np.ndarray, sig16: np.ndarray,
                 blocks: int, warmup: int) -> list[float]:
    """Milliseconds per block: device-rate input resampled, the block chain, the output resampled."""
    proc = BlockProcessor(source, settings)
    to_conv = StreamResampler(DEVICE_SR, proc.input_sr)
    to_device = StreamResampler(proc.output_sr, DEVICE_SR)
    n48, n16 = settings.block_ms * DEVICE_SR // 1000, proc.block_in
    times = []
    with torch.inference_mode():
        for k in range(warmup + blocks):
            t0 = time.perf_counter()
            to_conv.process(sig48[k * n48 : (k + 1) * n48])
            out = proc.process(sig16[k * n16 : (k + 1) * n16])
            to_device.process(out)
            if k >= warmup:
                times.append(1000.0 * (time.perf_counter() - t0))
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rvcnext-python", default="/tmp/rvcnext-venv/bin/python")
    ap.add_argument("--blocks", type=int, default=8, help="timed blocks per round (default 8)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per tool (default 3)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads in both (default 1)")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cases = {  # name: (block, crossfade asked of rvc-next, crossfade rvclora runs, search, context)
        "rvc-next defaults": (250, 50, 40, 10, 2500),
        "rvclora defaults": (60, 30, 30, 10, 1000),
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        voice, hubert, rmvpe = write_assets(root)
        source = load_rvc_source(voice, hubert=hubert, rmvpe=rmvpe, device="cpu", precision="fp32")
        child = subprocess.Popen([args.rvcnext_python, "-c", DRIVER, str(root / "assets"), str(voice), str(args.threads)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert child.stdin is not None and child.stdout is not None
        if not json.loads(child.stdout.readline()).get("ready"):
            raise SystemExit("rvc-next's engine did not start")
        results = {}
        try:
            for name, (block, cf_next, cf_ours, search, context) in cases.items():
                n = args.warmup + args.blocks
                sig48 = speechlike(n * block / 1000 + 1, DEVICE_SR, seed=3)
                sig16 = soxr.resample(sig48, DEVICE_SR, 16000).astype(np.float32)
                np.save(root / "signal.npy", sig48)
                settings = EngineSettings(block_ms=block, crossfade_ms=cf_ours, search_ms=search, context_ms=context,
                                          f0_method="rmvpe")
                ours: list[float] = []
                theirs: list[float] = []
                for _ in range(args.rounds):
                    ours += time_rvclora(source, settings, sig48, sig16, args.blocks, args.warmup)
                    req = dict(block_ms=block, crossfade_ms=cf_next, context_ms=context, blocks=args.blocks,
                               warmup=args.warmup, signal=str(root / "signal.npy"))
                    child.stdin.write(json.dumps(req) + "\n")
                    child.stdin.flush()
                    theirs += json.loads(child.stdout.readline())["ms"]
                row = {
                    "block_ms": block, "crossfade_ms": {"rvclora": cf_ours, "rvc-next": cf_next}, "search_ms": search,
                    "context_ms": context, "blocks_each": len(ours),
                    "rvclora_ms": {"p50": round(float(np.median(ours)), 1), "p95": round(float(np.percentile(ours, 95)), 1)},
                    "rvcnext_ms": {"p50": round(float(np.median(theirs)), 1), "p95": round(float(np.percentile(theirs, 95)), 1)},
                }
                row["rvcnext_over_rvclora"] = round(row["rvcnext_ms"]["p50"] / row["rvclora_ms"]["p50"], 2)
                results[name] = row
                print(f"{name:<18} block {block} ms: rvclora p50 {row['rvclora_ms']['p50']} ms "
                      f"(p95 {row['rvclora_ms']['p95']}), rvc-next p50 {row['rvcnext_ms']['p50']} ms "
                      f"(p95 {row['rvcnext_ms']['p95']}); rvc-next / rvclora = {row['rvcnext_over_rvclora']}",
                      flush=True)
        finally:
            child.stdin.close()
            child.wait(timeout=60)
    out = {"threads": args.threads, "f0_method": "rmvpe", "cases": results}
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
