"""Live reshaping of f0 before the synthesizer: autotune and automatic pitch.

- `autotune`: pulls each voiced frame towards the nearest equal-tempered semitone
  (A4 = 440 Hz); strength 1 lands exactly on it, 0.5 halves the distance.
- `AutoPitch`: the user's median f0 over the last voiced seconds, and the shift in
  whole semitones that moves it to the voice's typical f0. Whole semitones keep the
  shift steady (it changes only when the median moves by half a semitone) and keep
  autotuned notes on the grid. The median needs `MIN_VOICED` frames before it acts.

Unvoiced frames (f0 = 0) stay 0 everywhere.
"""

from __future__ import annotations

import numpy as np

A4 = 440.0
HISTORY = 1000  # voiced frames the median looks at (10 s of voicing at 100 frames/s)
MIN_VOICED = 50  # half a second of voicing before the automatic shift acts


def autotune(f0: np.ndarray, strength: float) -> np.ndarray:
    """f0 (Hz, 0 = unvoiced) pulled `strength` (0–1) of the way to the nearest semitone."""
    f0 = np.asarray(f0, dtype=np.float64)
    if strength <= 0.0:
        return f0
    out = f0.copy()
    voiced = f0 > 0
    semis = 12.0 * np.log2(f0[voiced] / A4)
    semis += strength * (np.round(semis) - semis)
    out[voiced] = A4 * 2.0 ** (semis / 12.0)
    return out


def semitones_between(f0_from: float, f0_to: float) -> float:
    return float(12.0 * np.log2(f0_to / f0_from))


def typical_f0(f0: np.ndarray) -> float:
    """The median of the voiced frames (Hz); 0 when nothing is voiced."""
    f0 = np.asarray(f0, dtype=np.float64)
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if len(voiced) else 0.0


class AutoPitch:
    """Running median of the user's voiced f0 → whole-semitone shift towards `voice_f0`."""

    def __init__(self) -> None:
        self._ring = np.zeros(HISTORY, np.float64)
        self._n = 0

    def reset(self) -> None:
        self._n = 0

    def observe(self, f0: np.ndarray) -> None:
        """Add the raw (unshifted) f0 of new frames."""
        voiced = np.asarray(f0, dtype=np.float64)
        voiced = voiced[voiced > 0]
        for v in voiced[-HISTORY:]:
            self._ring[self._n % HISTORY] = v
            self._n += 1

    @property
    def user_f0(self) -> float:
        """The user's median f0 (Hz), or 0 before `MIN_VOICED` voiced frames."""
        if self._n < MIN_VOICED:
            return 0.0
        return float(np.median(self._ring[: min(self._n, HISTORY)]))

    def shift(self, voice_f0: float) -> float:
        """Semitones (whole) from the user's median to `voice_f0`; 0 while unknown."""
        user = self.user_f0
        if user <= 0 or voice_f0 <= 0:
            return 0.0
        return float(np.round(semitones_between(user, voice_f0)))
