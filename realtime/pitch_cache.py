"""Rolling pitch cache: pitch is estimated on each block's tail only.

Estimating f0 over the whole context window every block would cost as much as the
window is long. RVC instead analyses only the newest audio (block + 50 ms) and keeps
a rolling cache of 1024 frames (10.24 s at 100 frames/s): shift left by the block's
frame count, then write the fresh estimate minus its edge frames — the first 3 and
the last 1, whose analysis windows ran off the analysed audio
(RVC's realtime pitch cache).

Alongside f0 it keeps a voiced mask (f0 ≥ 1 Hz, RVC's test for `protect`), shifted and
written with the same frames, so `protect` knows which frames are voiceless even where
f0 itself is later reshaped (autotune, pitch shift).
"""

from __future__ import annotations

import numpy as np


class PitchCache:
    def __init__(self, size: int = 1024):
        if size <= 0:
            raise ValueError("size must be positive")
        self.size = int(size)
        self._f0 = np.zeros(self.size, np.float32)
        self._voiced = np.zeros(self.size, bool)

    def reset(self) -> None:
        self._f0[:] = 0.0
        self._voiced[:] = False

    def push(self, f0_tail: np.ndarray, shift: int) -> None:
        """Shift left by ``shift`` frames, then write ``f0_tail[3:-1]`` at the end."""
        if shift < 0:
            raise ValueError("shift must be ≥ 0")
        shift = min(int(shift), self.size)
        if shift:
            # Overlapping move; copyto on a shifted view is a memmove.
            for a in (self._f0, self._voiced):
                np.copyto(a[:-shift] if shift < self.size else a[:0], a[shift:])
        fresh = np.asarray(f0_tail, dtype=np.float32)[3:-1]
        if len(fresh) > self.size:
            fresh = fresh[-self.size:]
        if len(fresh):
            self._f0[-len(fresh):] = fresh
            self._voiced[-len(fresh):] = fresh >= 1.0

    def latest(self, n: int) -> np.ndarray:
        """The last ``n`` frames (Hz, float32, a copy)."""
        if not 0 <= n <= self.size:
            raise ValueError(f"n must be in 0..{self.size}")
        return self._f0[self.size - n:].copy()

    def voiced(self, n: int) -> np.ndarray:
        """Voiced mask of the last ``n`` frames (bool, a copy)."""
        if not 0 <= n <= self.size:
            raise ValueError(f"n must be in 0..{self.size}")
        return self._voiced[self.size - n:].copy()
