"""`rvclora bench --stages`: where each block's compute goes, stage by stage.

The live chain is timed as it runs, without changing its code: forward hooks on the
models (content encoder; the synthesizer's text encoder, flow and decoder), and timed
wrappers on the per-block steps that are not modules (pitch, index search, SOLA).
Around it the bench adds what the engine's pipeline does per block: the device-rate
input resampled to the converter's rate, and its output back to the device's rate.
Whatever the hooks do not name (gate, window shift, frame upsampling, copies) is
"other". On a GPU each stage boundary synchronises, so the stages add up to the
block; that costs a little, so the total is a touch above `rvclora bench`'s figure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .block_processor import BlockProcessor
from .resample import StreamResampler
from .settings import EngineSettings

DEVICE_SR = 48000  # the usual device rate: the input and output resamplers run at it
STAGES = ("input resample", "content encoder", "pitch", "index", "text encoder", "flow", "decoder",
          "SOLA", "output resample", "other")


class StageClock:
    """Seconds spent per stage in the current block."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.block: dict[str, float] = {}
        self._started: dict[str, float] = {}

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def start(self, name: str) -> None:
        self._started[name] = self._now()

    def stop(self, name: str) -> None:
        self.block[name] = self.block.get(name, 0.0) + self._now() - self._started.pop(name)

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.start(name)
            try:
                return fn(*args, **kwargs)
            finally:
                self.stop(name)

        return timed

    def hook(self, name: str, module: Any) -> None:
        module.register_forward_pre_hook(lambda *_: self.start(name))
        module.register_forward_hook(lambda *_: self.stop(name))

    def take(self) -> dict[str, float]:
        block, self.block = self.block, {}
        return block


def instrument(proc: BlockProcessor, clock: StageClock) -> None:
    """Time the stages of `proc`'s converter (an RVC voice; a built-in voice has only SOLA/other)."""
    conv: Any = proc.converter  # an RVCBlockConverter's steps, by name
    source = getattr(conv, "source", None)
    if source is not None:
        if isinstance(source.encoder, torch.nn.Module):
            clock.hook("content encoder", source.encoder)
        if source.f0:
            conv._pitch = clock.wrap("pitch", conv._pitch)
        if source.index is not None:
            source.index.search_blend = clock.wrap("index", source.index.search_blend)
        synth: Any = source.synth
        if isinstance(synth, torch.nn.Module):
            for name, part in (("text encoder", synth.enc_p), ("flow", synth.flow), ("decoder", synth.dec)):
                clock.hook(name, part)
        else:  # the ONNX backend runs the synthesizer as one graph
            synth.infer = clock.wrap("decoder", synth.infer)
    if proc._sola is not None:
        proc._sola.process = clock.wrap("SOLA", proc._sola.process)  # type: ignore[method-assign]


def summarize(ms: np.ndarray) -> dict[str, float]:
    return {"p50": round(float(np.percentile(ms, 50)), 2), "p95": round(float(np.percentile(ms, 95)), 2),
            "mean": round(float(ms.mean()), 3)}


def run_stages(
    source: Any,
    settings: EngineSettings,
    signal: np.ndarray,
    *,
    blocks: int = 30,
    warmup: int = 3,
    device_sr: int = DEVICE_SR,
) -> dict[str, Any]:
    """Per-stage milliseconds per block (p50/p95 over `blocks`) and each stage's share of the median block.

    `signal` is at the converter's input rate; its device-rate copy feeds the input resampler."""
    proc = BlockProcessor(source, settings)
    device = getattr(source, "device", torch.device("cpu"))
    clock = StageClock(device)
    instrument(proc, clock)
    to_conv = StreamResampler(device_sr, proc.input_sr)
    to_device = StreamResampler(proc.output_sr, device_sr)
    n = proc.block_in
    need = (blocks + warmup) * n
    signal = np.resize(signal, need) if len(signal) < need else signal
    at_device = StreamResampler(proc.input_sr, device_sr).process(signal[:need])
    n_dev = settings.block_ms * device_sr // 1000
    rows: dict[str, list[float]] = {name: [] for name in (*STAGES, "total")}
    with torch.inference_mode():
        for k in range(blocks + warmup):
            t0 = clock._now()
            clock.start("input resample")
            to_conv.process(at_device[k * n_dev : (k + 1) * n_dev])
            clock.stop("input resample")
            t1 = clock._now()
            out = proc.process(signal[k * n : (k + 1) * n])
            t2 = clock._now()
            clock.start("output resample")
            to_device.process(out)
            clock.stop("output resample")
            t3 = clock._now()
            block = clock.take()
            inside = sum(v for name, v in block.items() if name not in ("input resample", "output resample"))
            block["other"] = max(0.0, (t2 - t1) - inside)
            if k < warmup:
                continue
            for name in STAGES:
                rows[name].append(1000.0 * block.get(name, 0.0))
            rows["total"].append(1000.0 * (t3 - t0))
    total_p50 = float(np.median(rows["total"]))
    stages = {}
    for name in STAGES:
        ms = np.asarray(rows[name])
        if not ms.any():
            continue  # a stage this voice and these settings do not run (no index, no pitch…)
        stages[name] = {**summarize(ms), "share": round(float(np.median(ms)) / total_p50, 3)}
    return {"stages": stages, "total": summarize(np.asarray(rows["total"])), "device_sr": device_sr,
            "stage_blocks": blocks}


def stage_table(result: dict[str, Any], block_ms: float) -> str:
    """The stages as a readable table (milliseconds per block)."""
    lines = [f"{'stage':<16} {'p50 ms':>8} {'p95 ms':>8} {'share':>6}"]
    for name, row in result["stages"].items():
        lines.append(f"{name:<16} {row['p50']:>8.2f} {row['p95']:>8.2f} {100 * row['share']:>5.0f}%")
    tot = result["total"]
    lines.append(f"{'total':<16} {tot['p50']:>8.2f} {tot['p95']:>8.2f}   (block {block_ms:g} ms, "
                 f"real-time factor {tot['p50'] / block_ms:.2f})")
    return "\n".join(lines)
