"""Noise gate: silence the input between words so the model does not voice noise.

RVC's "response threshold" (gui_v1.py `audio_callback`): RMS over windows
of 4·frame samples hopping by ``frame`` (10 ms), in dB re full scale; every
``frame``-sample segment whose level is under the threshold is zeroed.

The window of a segment ends at the segment's end and reaches 3 frames back, into
the previous block when needed (kept as history). That makes the gate causal: it
adds no latency, and a block's first segments are judged with the context a
continuous signal would give them rather than with zeros.
"""

from __future__ import annotations

import numpy as np

from ..synth.levels import amplitude_db

OFF_DB = -60.0  # RVC's slider bottom: at or below this the gate is disabled.


class NoiseGate:
    def __init__(self, threshold_db: float, frame: int):
        if frame <= 0:
            raise ValueError("frame must be positive")
        self.frame = int(frame)
        self.threshold_db = float(threshold_db)
        self._hist = np.zeros(3 * self.frame, np.float64)  # last 3 frames of input
        self._ext = np.zeros(0, np.float64)    # [history | block], grown on demand
        self._csum = np.zeros(1, np.float64)   # running sum of squares of _ext
        self.last_open = np.zeros(0, bool)     # per-segment result of the last block

    @property
    def enabled(self) -> bool:
        return self.threshold_db > OFF_DB

    def reset(self) -> None:
        self._hist[:] = 0.0

    def _grow(self, n: int) -> None:
        if len(self._ext) < len(self._hist) + n:
            self._ext = np.zeros(len(self._hist) + n, np.float64)
            self._csum = np.zeros(len(self._ext) + 1, np.float64)

    def apply(self, block: np.ndarray) -> np.ndarray:
        """Gate ``block`` (1-D) in place and return it."""
        n = len(block)
        f, h = self.frame, len(self._hist)
        self._grow(n)
        ext = self._ext[: h + n]
        ext[:h] = self._hist
        ext[h:] = block
        # History is updated even when disabled, so enabling it live has context.
        self._hist[:] = ext[n: n + h]  # the last 3 frames seen, for the next block
        if not self.enabled or n == 0:
            return block

        csum = self._csum[: h + n + 1]
        np.square(ext, out=ext)
        np.cumsum(ext, out=csum[1:])
        # Segment ends in block coordinates: f, 2f, …, and n for a partial last segment.
        ends = np.minimum(np.arange(f, n + f, f), n)
        win = 4 * f
        energy = csum[ends + h] - csum[ends + h - win]
        rms = np.sqrt(np.maximum(energy, 0.0) / win)
        db = amplitude_db(rms, 1e-5)
        self.last_open = db >= self.threshold_db
        for i in np.flatnonzero(~self.last_open):
            block[i * f: (i + 1) * f] = 0.0
        return block
