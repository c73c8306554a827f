"""ONNX Runtime vs PyTorch: per-block synthesizer time of a full-size v2 40k f0 model.

Random weights (no real voice can be downloaded here); the timing does not depend
on the values.  One block = the synthesizer on 1 s of frames (T=100, 40 000
samples out).  The model goes through the real path: written as an official
voice file, exported by ``export_onnx`` (fresh process, verified), loaded by
``make_session``; torch runs the same file with weight norm folded, as a live
engine would.  Runs alternate ORT / torch so machine noise hits both alike; the
medians and their ratio are printed as JSON.

    python benchmarks/onnx_vs_torch.py [--frames 100] [--runs 20] [--threads N] [--device cpu|cuda]
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
import torch

from rvclora.export.example_inputs import synth_inputs
from rvclora.export.onnx_export import export_onnx
from rvclora.synth.configs import official_config
from rvclora.synth.onnx_backend import make_session
from rvclora.synth.synthesizer import Synthesizer
from rvclora.synth.voice_file import load_voice, save_voice
from tests.rvc_fixtures import randomize_


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=100, help="frames per block (100 = 1 s)")
    p.add_argument("--runs", type=int, default=20, help="timed runs per backend (after 3 warm-up runs)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="intra-op threads for both backends")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cuda: CUDA provider vs torch CUDA")
    args = p.parse_args(argv)


    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = official_config("v2", 40000)
        model = randomize_(Synthesizer(cfg, version="v2", f0=True, posterior=False)).eval()
        voice_path = save_voice(Path(tmp) / "v2_40k.pth", model, config=cfg, version="v2", f0=True, info="bench")
        t0 = time.perf_counter()
        result = export_onnx(voice_path, Path(tmp) / "v2_40k.onnx")
        export_s = time.perf_counter() - t0
        session, providers = make_session(result.path, device=args.device, threads=args.threads)
        torch_model = load_voice(voice_path, device=args.device, remove_weight_norm=True).model

    x = synth_inputs(torch_model.cpu(), args.frames, seed=0, dec_noise=1.0)  # dec_noise 1: RVC's random source
    torch_model.to(args.device)
    feed = {k: v.numpy() for k, v in x.items()}
    tx = {k: v.to(args.device) for k, v in x.items()}
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)

    def run_torch() -> None:
        with torch.inference_mode():
            torch_model.infer(tx["phone"], tx["phone_lengths"], tx["pitch"], tx["pitchf"], tx["ds"],
                              noise=tx["rnd"], noise_scale=1.0)
        sync()

    def run_ort() -> None:
        session.run(None, feed)

    for _ in range(3):
        run_ort()
        run_torch()
    times: dict[str, list[float]] = {"onnxruntime": [], "torch": []}
    for _ in range(args.runs):
        for name, fn in (("onnxruntime", run_ort), ("torch", run_torch)):
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) * 1000)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({
        "model": "v2 40k f0, full size (official config), random weights",
        "frames": args.frames, "samples_out": args.frames * cfg.hop, "device": args.device,
        "threads": args.threads, "providers_in_use": providers, "runs": args.runs,
        "export_seconds": round(export_s, 1), "export_verify_max_abs_diff": result.max_abs_diff,
        "median_ms": {k: round(v, 2) for k, v in med.items()},
        "min_ms": {k: round(min(v), 2) for k, v in times.items()},
        "ratio_torch_over_onnxruntime": round(med["torch"] / med["onnxruntime"], 3),
        "torch": torch.__version__, "onnxruntime": __import__("onnxruntime").__version__,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
