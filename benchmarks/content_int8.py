"""int8 content encoder: per-block time, feature error on real speech, and the effect on converted audio.

A full-size HuBERT-base (random weights: no real encoder can be downloaded here) is
written as a fairseq file, exported by ``export_onnx`` (fresh process) and quantised by
``export.live_set.quantize_content`` (int8 linear layers), as ``rvclora export --live
--int8`` does. Then, in one run:

- per-block time of the content encoder on the live window at rvclora's default
  settings (context 1000 + crossfade 30 + search 10 + block 60 ms = 17 600 samples):
  torch fp32 (today's live path), ORT fp32 and ORT int8, alternating so machine noise
  hits all alike; medians and ratios;
- feature error: per-frame cosine similarity int8 vs fp32 on the speech samples of
  pytest-audioeval (mean, 1st percentile, min), plain and centred on the fp32 frames'
  mean (random weights make frames that differ little from their mean, so the plain
  cosine is near 1 whatever int8 does; the centred one measures the part that carries
  the speech);
- effect on converted audio: a full-size v2 40k voice (random weights) converts each
  sample from fp32 and from int8 features (same pitch, all random draws zero); the
  log-mel distance between the two outputs (mean |Δ ln mel|) and their log-mel
  correlation, next to the distance between the fp32 output and silence for scale.

    python benchmarks/content_int8.py [--runs 15] [--threads N]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import _repo  # noqa: F401 — puts the repository root on sys.path for `tests`
import numpy as np
import soundfile as sf
import torch

from rvclora.export.live_set import quantize_content
from rvclora.export.onnx_export import export_onnx
from rvclora.synth.configs import official_config
from rvclora.synth.content_encoder import load_content_encoder
from rvclora.synth.features import to_synth_frames
from rvclora.synth.hubert import HubertConfig
from rvclora.synth.onnx_stages import OnnxContentEncoder
from rvclora.synth.pitch import PMPitch, f0_to_coarse_torch
from rvclora.synth.spectrogram import mel_filterbank
from rvclora.synth.synthesizer import Synthesizer
from tests.hubert_fixtures import write_hubert_file
from tests.rvc_fixtures import randomize_

WINDOW = 17600  # default live window at 16 kHz


def _speech() -> list[tuple[str, np.ndarray]]:
    folder = resources.files("pytest_audioeval") / "samples" / "audio" / "en"
    out = []
    for name in ("quick_brown_fox.wav", "hello_world.wav", "counting.wav"):
        audio, sr = sf.read(str(folder / name), dtype="float32")
        assert sr == 16000, sr
        out.append((name, audio))
    return out


def _log_mel(audio: np.ndarray, sr: int) -> np.ndarray:
    x = torch.from_numpy(audio).float()
    spec = torch.stft(x, 2048, 512, window=torch.hann_window(2048), return_complex=True).abs()
    fb = torch.from_numpy(mel_filterbank(sr, 2048, 80, 0.0, sr / 2, htk=False)).float()
    return torch.log(torch.clamp(fb @ spec, min=1e-5)).numpy()


def _convert(synth: Synthesizer, feats: torch.Tensor, f0: np.ndarray) -> np.ndarray:
    phone = to_synth_frames(feats)
    n = min(phone.shape[1], len(f0))
    phone, pitchf = phone[:, :n], torch.from_numpy(f0[:n]).float()[None]
    with torch.inference_mode():
        out = synth.infer(phone, torch.tensor([n]), f0_to_coarse_torch(pitchf), pitchf, torch.tensor([0]),
                          noise_scale=0.0, dec_noise=0.0)
    return out[0, 0].numpy()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=15, help="timed runs per variant (after 2 warm-up runs)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="intra-op threads for torch and ORT")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        hubert = write_hubert_file(Path(tmp) / "hubert_base.pt", HubertConfig())
        t0 = time.perf_counter()
        export_onnx(hubert, Path(tmp) / "content.onnx", component="content", version="v2", verify=False)
        export_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        quantize_content(Path(tmp) / "content.onnx", Path(tmp) / "content_int8.onnx")
        quantize_s = time.perf_counter() - t0
        sizes = {k: (Path(tmp) / f"{k}.onnx").stat().st_size / 2**20 for k in ("content", "content_int8")}
        fp32 = OnnxContentEncoder(Path(tmp) / "content.onnx", device="cpu", threads=args.threads)
        int8 = OnnxContentEncoder(Path(tmp) / "content_int8.onnx", device="cpu", threads=args.threads)
        native = load_content_encoder(hubert, version="v2")

    window = torch.from_numpy(np.resize(_speech()[0][1], WINDOW)).unsqueeze(0)

    def run_torch() -> None:
        with torch.inference_mode():
            native(window)

    variants = {"torch_fp32": run_torch, "ort_fp32": lambda: fp32(window), "ort_int8": lambda: int8(window)}
    for fn in variants.values():
        for _ in range(2):
            fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.runs):
        for name, fn in variants.items():
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) * 1000)
    med = {k: statistics.median(v) for k, v in times.items()}

    cfg = official_config("v2", 40000)
    synth = randomize_(Synthesizer(cfg, version="v2", f0=True, posterior=False)).eval().remove_weight_norm()
    pm = PMPitch()
    per_file = {}
    for name, audio in _speech():
        wav = torch.from_numpy(audio).unsqueeze(0)
        a, b = fp32(wav), int8(wav)
        cos = torch.nn.functional.cosine_similarity(a[0], b[0], dim=-1).numpy()
        f0 = pm(audio)
        ya, yb = _convert(synth, a, f0), _convert(synth, b, f0)
        ma, mb = _log_mel(ya, 40000), _log_mel(yb, 40000)
        # For scale: how much the fp32 frames differ from their own mean (random weights make
        # features that vary little with the input; a trained encoder's vary far more).
        mean = a[0].mean(0, keepdim=True)
        spread = torch.nn.functional.cosine_similarity(a[0], mean, dim=-1).numpy()
        centred = torch.nn.functional.cosine_similarity(a[0] - mean, b[0] - mean, dim=-1).numpy()
        per_file[name] = {
            "fp32_cosine_frame_to_mean_frame": round(float(spread.mean()), 5),
            "centred_cosine_mean": round(float(centred.mean()), 5),
            "centred_cosine_min": round(float(centred.min()), 5),
            "cosine_mean": round(float(cos.mean()), 5), "cosine_p1": round(float(np.percentile(cos, 1)), 5),
            "cosine_min": round(float(cos.min()), 5),
            "logmel_l1_int8_vs_fp32": round(float(np.abs(ma - mb).mean()), 4),
            "logmel_corr_int8_vs_fp32": round(float(np.corrcoef(ma.ravel(), mb.ravel())[0, 1]), 5),
            "logmel_l1_fp32_vs_silence": round(float(np.abs(ma - np.log(1e-5)).mean()), 4),
        }
    print(json.dumps({
        "encoder": "HuBERT-base full size (95 M parameters), random weights, v2 features (layer 12, 768-d)",
        "window_samples": WINDOW, "threads": args.threads, "runs": args.runs,
        "export_seconds": round(export_s, 1), "quantize_seconds": round(quantize_s, 1),
        "file_mib": {k: round(v, 1) for k, v in sizes.items()},
        "median_ms": {k: round(v, 1) for k, v in med.items()},
        "min_ms": {k: round(min(v), 1) for k, v in times.items()},
        "ratio_ort_fp32_over_int8": round(med["ort_fp32"] / med["ort_int8"], 3),
        "ratio_torch_fp32_over_ort_int8": round(med["torch_fp32"] / med["ort_int8"], 3),
        "speech": per_file,
        "torch": torch.__version__, "onnxruntime": __import__("onnxruntime").__version__,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
