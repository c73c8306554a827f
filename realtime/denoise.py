"""A neural denoiser on a block stream at any rate, with a fixed, known delay.

The models run at 48 kHz on 10 ms frames; the engine's blocks are at 16 kHz (input,
before conversion) or at the voice's rate (output). Each block is resampled up,
denoised frame by frame, resampled back, and queued. soxr's streams are time-aligned
but release samples in bursts, so the queue starts with `prime` samples of silence:
the worst shortfall for this block size, found once by running the same resamplers on
silence. The delay is then exactly `prime` plus the model's own delay, whatever the
audio, and `delay_s` is what the engine's delay estimate adds.

Strength s ∈ [0, 1]: noise is lowered at most to (1 − s) of its level (an attenuation
limit of −20·log10(1 − s) dB; s = 1 is unlimited), so 0.9 keeps a faint room tone.
"""

from __future__ import annotations

import math

import numpy as np

from .denoise_models import FRAME, SR, FrameDenoiser, make_frame_denoiser
from .resample import StreamResampler

UNLIMITED_DB = 100.0


def strength_to_limit_db(strength: float) -> float:
    """Attenuation limit (dB) that lowers noise at most to (1 − strength) of its level."""
    if strength >= 1.0:
        return UNLIMITED_DB
    return min(UNLIMITED_DB, -20.0 * math.log10(max(1.0 - strength, 1e-5)))


def _shortfall(sr: int, block: int) -> int:
    """Most samples the up/frame/down chain owes its caller after any block (silence in)."""
    up, down = StreamResampler(sr, SR), StreamResampler(SR, sr)
    pending = owed = worst = 0
    z = np.zeros(block, np.float32)
    for _ in range(math.ceil(30 * sr / block)):  # the burst pattern can take seconds to show its worst
        pending += len(up.process(z))
        whole = pending // FRAME * FRAME
        pending -= whole
        owed += block - len(down.process(np.zeros(whole, np.float32)))
        worst = max(worst, owed)
    return worst


class StreamDenoiser:
    """Denoise blocks of `block` samples at `sr`; output = input delayed by `delay` samples, minus noise."""

    def __init__(self, sr: int, block: int, model: FrameDenoiser | None = None, strength: float = 1.0) -> None:
        self.sr, self.block = int(sr), int(block)
        self.model = model if model is not None else make_frame_denoiser()
        self.prime = _shortfall(self.sr, self.block) if self.sr != SR else (-self.block) % FRAME
        self.delay = self.prime + int(round(self.model.delay * self.sr / SR))
        self.strength = -1.0
        self.set_strength(strength)
        self.reset()

    @property
    def delay_s(self) -> float:
        return self.delay / self.sr

    def set_strength(self, strength: float) -> None:
        if strength != self.strength:
            self.model.set_limit(strength_to_limit_db(strength))
            self.strength = strength

    def reset(self) -> None:
        """Empty the queues (the model keeps its learned noise estimate)."""
        self._up, self._down = StreamResampler(self.sr, SR), StreamResampler(SR, self.sr)
        self._frames = np.zeros(0, np.float32)  # 48 kHz samples short of a whole frame
        self._queue = np.zeros(self.prime, np.float32)
        self.underruns = 0

    def process(self, block: np.ndarray) -> np.ndarray:
        """Denoise one block (1-D float32); returns as many samples, `delay` samples late."""
        x = np.asarray(block, dtype=np.float32)
        hi = np.concatenate([self._frames, self._up.process(x) if self.sr != SR else x])
        whole = len(hi) // FRAME * FRAME
        for i in range(0, whole, FRAME):
            self.model.process(hi[i : i + FRAME])
        self._frames = hi[whole:].copy()
        done = hi[:whole] if self.sr == SR else self._down.process(hi[:whole])
        queue = np.concatenate([self._queue, done])
        n = len(x)
        if len(queue) < n:  # cannot happen with the measured prime; never return short
            self.underruns += 1
            queue = np.concatenate([queue, np.zeros(n - len(queue), np.float32)])
        out, self._queue = queue[:n], queue[n:]
        return out
