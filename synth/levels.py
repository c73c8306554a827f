"""Signal levels: RMS over frames and in dB re full scale, for every package.

Framed RMS is RVC's recipe for its loudness envelope and its slicer: windows of
`frame` samples centred on multiples of `hop`, the signal zero-padded by half a
window at both ends. Running sums make it one pass over the signal, whatever
the window.
"""

from __future__ import annotations

import numpy as np

SILENCE_DB = -120.0  # what an empty or silent block reads


def framed_rms(x: np.ndarray, frame: int, hop: int) -> np.ndarray:
    """Centred RMS: window `frame` samples, every `hop` samples; 1 + len(x)//hop values."""
    x = np.asarray(x, dtype=np.float64)
    pad = frame // 2
    xp = np.concatenate((np.zeros(pad), x, np.zeros(pad)))
    csum = np.concatenate(([0.0], np.cumsum(xp * xp)))
    starts = np.arange(0, len(x) // hop + 1) * hop
    energy = csum[starts + frame] - csum[starts]
    return np.sqrt(np.maximum(energy, 0.0) / frame)


def amplitude_db(rms: np.ndarray | float, floor: float) -> np.ndarray:
    """20·log10 of an amplitude (RMS), clamped below at `floor` (an amplitude, not dB)."""
    return 20.0 * np.log10(np.maximum(rms, floor))


def rms_db(x: np.ndarray) -> float:
    """The RMS level of a whole block in dB (SILENCE_DB for silence or nothing)."""
    if x.size == 0:
        return SILENCE_DB
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return max(20.0 * float(np.log10(rms + 1e-12)), SILENCE_DB)
