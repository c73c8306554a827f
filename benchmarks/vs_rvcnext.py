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
Blocks alternate between the two, so machine load hits both alike; medians, the
ratio and each tool's per-stage medians (forward hooks on the same modules in both)
are from this one run.

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
from rvclora.realtime.stage_profile import StageClock, instrument
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
stages, started = {}, {}

def start(name):
    started[name] = time.perf_counter()

def stop(name):
    stages[name] = stages.get(name, 0.0) + time.perf_counter() - started.pop(name)

def hook(name, module):
    module.register_forward_pre_hook(lambda *_: start(name))
    module.register_forward_hook(lambda *_: stop(name))

hook("content encoder", runtime.hubert(voice.embedder))
for name, part in (("text encoder", voice.net_g.enc_p), ("flow", voice.net_g.flow), ("decoder", voice.net_g.dec)):
    hook(name, part)
rmvpe = runtime.f0("rmvpe").model
infer = rmvpe.infer_from_audio
def timed_pitch(*a, **k):
    start("pitch")
    try:
        return infer(*a, **k)
    finally:
        stop("pitch")
rmvpe.infer_from_audio = timed_pitch
engines, signals = {}, {}
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    key = (req["block_ms"], req["crossfade_ms"], req["context_ms"])
    if key not in engines:
        stream = StreamParams(block_ms=key[0], crossfade_ms=key[1], context_ms=key[2])
        engines[key] = StreamEngine(runtime, voice, params, stream, 48000)
        signals[key] = np.load(req["signal"])
    eng, k, n = engines[key], req["k"], engines[key].block_size
    stages.clear()
    t0 = time.perf_counter()
    eng.process(signals[key][k * n:(k + 1) * n])
    print(json.dumps({"ms": 1000.0 * (time.perf_counter() - t0),
                      "stages": {s: 1000.0 * v for s, v in stages.items()}}), flush=True)
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


class Rvclora:
    """rvclora's chain for one setting, one block per call: device-rate input resampled, the block
    chain, the output resampled (as the engine's pipeline does); stages timed by `stage_profile`."""

    def __init__(self, source, settings: EngineSettings, sig48: np.ndarray, sig16: np.ndarray) -> None:
        self.proc = BlockProcessor(source, settings)
        self.clock = StageClock(torch.device("cpu"))
        instrument(self.proc, self.clock)
        self.to_conv = StreamResampler(DEVICE_SR, self.proc.input_sr)
        self.to_device = StreamResampler(self.proc.output_sr, DEVICE_SR)
        self.n48, self.n16 = settings.block_ms * DEVICE_SR // 1000, self.proc.block_in
        self.sig48, self.sig16 = sig48, sig16

    def block(self, k: int) -> tuple[float, dict[str, float]]:
        with torch.inference_mode():
            t0 = time.perf_counter()
            self.to_conv.process(self.sig48[k * self.n48 : (k + 1) * self.n48])
            out = self.proc.process(self.sig16[k * self.n16 : (k + 1) * self.n16])
            self.to_device.process(out)
            ms = 1000.0 * (time.perf_counter() - t0)
        return ms, {name: 1000.0 * v for name, v in self.clock.take().items()}


def _p50(values: list[float]) -> float:
    return round(float(np.median(values)), 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rvcnext-python", default="/tmp/rvcnext-venv/bin/python")
    ap.add_argument("--blocks", type=int, default=20, help="timed blocks per tool and setting (default 20)")
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
                ours = Rvclora(source, settings, sig48, sig16)
                times: dict[str, list[float]] = {"rvclora": [], "rvc-next": []}
                stage_ms: dict[str, dict[str, list[float]]] = {"rvclora": {}, "rvc-next": {}}
                for k in range(n):  # block by block, alternating: load on the machine hits both alike
                    ms, st = ours.block(k)
                    req = dict(block_ms=block, crossfade_ms=cf_next, context_ms=context, k=k,
                               signal=str(root / "signal.npy"))
                    child.stdin.write(json.dumps(req) + "\n")
                    child.stdin.flush()
                    reply = json.loads(child.stdout.readline())
                    if k < args.warmup:
                        continue
                    for tool, total, stages in (("rvclora", ms, st), ("rvc-next", reply["ms"], reply["stages"])):
                        times[tool].append(total)
                        for stage, v in stages.items():
                            stage_ms[tool].setdefault(stage, []).append(v)
                ours_ms, theirs = times["rvclora"], times["rvc-next"]
                row = {
                    "block_ms": block, "crossfade_ms": {"rvclora": cf_ours, "rvc-next": cf_next}, "search_ms": search,
                    "context_ms": context, "blocks_each": len(ours_ms),
                    "rvclora_ms": {"p50": _p50(ours_ms), "p95": round(float(np.percentile(ours_ms, 95)), 1)},
                    "rvcnext_ms": {"p50": round(float(np.median(theirs)), 1), "p95": round(float(np.percentile(theirs, 95)), 1)},
                }
                row["rvcnext_over_rvclora"] = round(row["rvcnext_ms"]["p50"] / row["rvclora_ms"]["p50"], 2)
                row["stages_p50_ms"] = {tool: {stage: _p50(v) for stage, v in st.items()} for tool, st in stage_ms.items()}
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
