"""Measure true round-trip latency: play a marker, record it coming back, find it.

``find_delay`` is the pure part (cross-correlation with sub-sample peak
interpolation); ``measure_latency`` plays short chirps through one duplex stream
and reports the median of ``tries`` in a row that no device xrun interrupted. A chirp rather than a click: its
correlation peak stays sharp and unique through resamplers, gain changes and the
voice conversion itself, where a single click can be smeared or gated away.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sounddevice as sd
from scipy.signal import correlate

from .devices import AudioDevice, DeviceError, find_device, pulse_device_env, temporary_env

CHIRP_S = 0.03      # marker length
SPACING_S = 0.5     # one marker every SPACING_S: bounds the measurable latency
LEAD_S = 0.1        # silence before the first marker, while the streams settle


@dataclass(frozen=True)
class LatencyResult:
    ms: float                       # median over tries
    tries: list[float] = field(default_factory=list)


def chirp(sr: int, seconds: float = CHIRP_S, f0: float = 500.0, f1: float = 4000.0) -> np.ndarray:
    """A Hann-windowed linear chirp at amplitude 0.5."""
    t = np.arange(int(sr * seconds)) / sr
    phase = 2 * np.pi * (f0 * t + 0.5 * (f1 - f0) / seconds * t * t)
    return (0.5 * np.sin(phase) * np.hanning(len(t))).astype(np.float32)


def find_delay(reference: np.ndarray, recording: np.ndarray, sr: int) -> float:
    """Seconds by which ``recording`` lags ``reference`` (≥ 0), to a fraction of a sample.

    Raises ValueError when nothing resembling the reference is in the recording.
    """
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    rec = np.asarray(recording, dtype=np.float64).reshape(-1)
    if len(rec) < len(ref) or not np.any(ref):
        raise ValueError("recording shorter than the reference, or an empty reference")
    corr = correlate(rec, ref, mode="valid", method="fft")  # corr[k] ↔ lag k
    k = int(np.argmax(corr))
    # Normalised peak: 1 for an exact (scaled) copy; noise or silence stays far below.
    seg = rec[k: k + len(ref)]
    norm = np.sqrt(np.dot(ref, ref) * np.dot(seg, seg)) + 1e-12
    if corr[k] / norm < 0.5:
        raise ValueError("the reference signal was not found in the recording")
    frac = 0.0
    if 0 < k < len(corr) - 1:  # parabola through the peak and its neighbours
        a, b, c = corr[k - 1], corr[k], corr[k + 1]
        den = a - 2 * b + c
        if den < 0:
            frac = 0.5 * (a - c) / den
    return (k + frac) / sr


def _resolve(dev: str | int | None | AudioDevice, kind: str) -> AudioDevice:
    return dev if isinstance(dev, AudioDevice) else find_device(dev, kind)


def measure_latency(input_device: str | int | None | AudioDevice,
                    output_device: str | int | None | AudioDevice,
                    sr: int = 48000, *, tries: int = 3, max_seconds: float = 12.0) -> LatencyResult:
    """Round trip output → input in milliseconds: median of ``tries`` chirps in a row.

    The output must reach the input (a loopback cable, a virtual mic, or the engine
    itself in between). Input and output run as one duplex stream so they share a
    clock. A device xrun (a starved machine) re-buffers the loop and moves its delay,
    so chirps count only in a run of ``tries`` with no xrun from the first one's start
    to the last one's window; after an xrun the run starts again, for up to
    ``max_seconds``. Raises DeviceError when the streams fail, no marker comes back, or
    no clean run fits in that time.
    """
    if tries < 1:
        raise ValueError("tries must be ≥ 1")
    din, dout = _resolve(input_device, "input"), _resolve(output_device, "output")
    marker = chirp(sr)
    spacing, lead = int(SPACING_S * sr), int(LEAD_S * sr)
    total = int(max_seconds * sr)
    play = np.zeros(total + spacing, np.float32)
    starts = list(range(lead, total - spacing, spacing))
    for st in starts:
        play[st: st + len(marker)] = marker
    rec = np.zeros(total + spacing, np.float32)
    xruns: list[int] = []  # stream positions of callbacks that reported an xrun
    pos = [0]
    done = threading.Event()

    def callback(indata: np.ndarray, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        p = pos[0]
        n = max(0, min(frames, total - p))
        outdata[:n, 0] = play[p: p + n]
        outdata[n:] = 0.0
        rec[p: p + n] = indata[:n, 0]
        if status:
            xruns.append(p)
        pos[0] = p + frames
        if pos[0] >= total or _clean_run(starts, xruns, spacing, tries, pos[0]) is not None:
            done.set()

    env = pulse_device_env(sink=dout.pulse, source=din.pulse)
    try:
        with temporary_env(env):
            stream = sd.Stream(samplerate=sr, channels=1, dtype="float32", device=(din.index, dout.index),
                               latency="high", callback=callback)
        with stream:
            done.wait(max_seconds + 5.0)
    except (sd.PortAudioError, ValueError) as e:
        raise DeviceError(f"cannot open {din.name!r} → {dout.name!r} as one duplex stream: {e}") from None
    first = _clean_run(starts, xruns, spacing, tries, pos[0])
    if first is None:
        raise DeviceError(f"no {tries} test signals in a row without a device xrun within {max_seconds:g} s "
                          f"({len(xruns)} xruns): the machine is too busy to measure; try again")
    found = []
    for st in starts[first: first + tries]:
        try:
            found.append(1e3 * find_delay(marker, rec[st: st + spacing], sr))
        except ValueError:
            continue
    if not found:
        raise DeviceError(f"no test signal came back from {dout.name!r} to {din.name!r}: "
                          "is the output routed to the input?")
    return LatencyResult(ms=float(np.median(found)), tries=found)


def _clean_run(starts: list[int], xruns: list[int], spacing: int, tries: int, recorded: int) -> int | None:
    """Index of the first chirp of `tries` in a row whose span (first start to last window end) is fully
    recorded and has no xrun; None if there is none yet."""
    for i in range(len(starts) - tries + 1):
        a, b = starts[i], starts[i + tries - 1] + spacing
        if b > recorded:
            return None
        if not any(a - spacing <= x < b for x in xruns):  # from a period before: a late-reported xrun
            return i
    return None
