"""`rvclora bench`: per-block compute of the live chain, and what a naive full-window pass costs.

Runs the engine's own `BlockProcessor` (gate → convert → SOLA → …) on a steady
input, block after block, without devices: what it measures is compute only, the
figure that must stay under the block length. The naive processor runs the same
voice with every stage over the whole window (content encoder, pitch, text encoder,
flow and decoder), as RVC's loop did before `skip_head`; the ratio of the two
medians is the saving. Medians and ratios from one run, never single timings:
these machines are shared.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import numpy as np
import torch

from ..lora import BaseInfo, model_fingerprint
from ..synth.configs import official_config
from ..synth.content_encoder import ContentEncoder
from ..synth.device import runs_on
from ..synth.hubert import Hubert, HubertConfig
from ..synth.pitch import RMVPEPitch
from ..synth.rmvpe_net import RMVPE
from ..synth.synthesizer import Synthesizer
from .block_converter import BlockShape, RVCSource
from .block_processor import BlockProcessor
from .settings import EngineSettings


def speechlike(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """A voiced, gliding, syllable-rate modulated harmonic signal with noise bursts.

    Keeps the pitch estimator and the gate busy the way speech does, with no file needed."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 150 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = 0.5 * (1 + np.sin(2 * np.pi * 4 * t)) ** 2
    noise = rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 1.3 * t) > 0.7)
    return (0.15 * voiced * syllables + 0.02 * noise).astype(np.float32)


def make_random_source(
    version: str = "v2",
    sr: int = 40000,
    *,
    f0: bool = True,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    f0_method: str = "pm",
    seed: int = 0,
) -> RVCSource:
    """A full-size RVC voice, HuBERT-base content encoder (and RMVPE) with random weights.

    Same architecture and therefore the same cost as the real files, which cannot be
    downloaded here; the audio it makes is meaningless."""
    dev = torch.device(device)
    torch.manual_seed(seed)
    synth = Synthesizer(official_config(version, sr), version=version, f0=f0, posterior=False).eval()
    with torch.no_grad():  # the flow's zero-initialised `post` convs would make it an identity
        for name, p in synth.named_parameters():
            if name.endswith("post.weight") or name.endswith("post.bias"):
                p.normal_(std=0.01)
    base = BaseInfo(version, sr, f0, model_fingerprint(synth))
    synth.remove_weight_norm()
    synth = synth.to(device=dev, dtype=dtype).requires_grad_(False)
    encoder = ContentEncoder(Hubert(HubertConfig()), version).to(device=dev, dtype=dtype).eval().requires_grad_(False)
    source = RVCSource(
        synth=synth, encoder=encoder, version=version, f0=f0, sr=sr, device=dev, dtype=dtype,
        name=f"random-{version}-{sr // 1000}k", base_info=base,
    )
    if f0 and f0_method == "rmvpe":

        source._estimators["rmvpe"] = RMVPEPitch(RMVPE().to(device=dev, dtype=dtype).eval())
    return source


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_blocks(processor: Any, signal: np.ndarray, blocks: int, warmup: int, device: torch.device) -> np.ndarray:
    """Milliseconds per block of `processor.process`, after `warmup` untimed blocks."""
    n = processor.block_in
    need = (blocks + warmup) * n
    if len(signal) < need:
        signal = np.resize(signal, need)
    times = []
    for k in range(blocks + warmup):
        block = signal[k * n : (k + 1) * n]
        _sync(device)
        t0 = time.perf_counter()
        processor.process(block)
        _sync(device)
        if k >= warmup:
            times.append(1000.0 * (time.perf_counter() - t0))
    return np.asarray(times)


def _summary(ms: np.ndarray, block_ms: float) -> dict[str, float]:
    return {
        "p50": round(float(np.percentile(ms, 50)), 2),
        "p95": round(float(np.percentile(ms, 95)), 2),
        "p99": round(float(np.percentile(ms, 99)), 2),
        "mean": round(float(ms.mean()), 2),
        "max": round(float(ms.max()), 2),
        "real_time_factor": round(float(np.percentile(ms, 50)) / block_ms, 3),
        "overruns": int((ms > block_ms).sum()),
    }


def run_bench(
    source: Any,
    settings: EngineSettings,
    *,
    blocks: int = 30,
    warmup: int = 3,
    naive_blocks: int = 8,
    signal: np.ndarray | None = None,
) -> dict[str, Any]:
    """Per-block compute of the live chain (and of the naive full-window pass) as a JSON-able dict."""
    proc = BlockProcessor(source, settings)
    device = getattr(source, "device", torch.device("cpu"))
    if signal is None:
        signal = speechlike(max(10.0, (blocks + warmup) * settings.block_ms / 1000 + 1), proc.input_sr)
    with torch.inference_mode():
        opt = time_blocks(proc, signal, blocks, warmup, device)
    result: dict[str, Any] = {
        "voice": getattr(source, "name", "?"),
        "backend": getattr(source, "backend", "dsp"),
        "device": str(device),
        "dtype": str(getattr(source, "dtype", "float32")).removeprefix("torch."),
        "runs_on": runs_on(source),
        "model_sr": proc.output_sr,
        "block_ms": settings.block_ms,
        "crossfade_ms": settings.crossfade_ms,
        "search_ms": settings.search_ms,
        "context_ms": settings.context_ms,
        "f0_method": source.resolve_f0_method(settings.f0_method) if isinstance(source, RVCSource) else None,
        "algorithmic_latency_ms": proc.algorithmic_latency_ms,
        "blocks": blocks,
        "compute_ms": _summary(opt, settings.block_ms),
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    if isinstance(source, RVCSource):
        shape = BlockShape.from_settings(settings)
        result["window_frames"] = shape.frames
        result["decoded_frames"] = shape.return_length
        if naive_blocks > 0:
            naive = BlockProcessor(source, settings, naive=True)
            with torch.inference_mode():
                ms = time_blocks(naive, signal, naive_blocks, min(warmup, 2), device)
            result["naive_compute_ms"] = _summary(ms, settings.block_ms)
            result["naive_blocks"] = naive_blocks
            result["speedup_vs_naive"] = round(float(np.median(ms) / np.median(opt)), 2)
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
    return result
