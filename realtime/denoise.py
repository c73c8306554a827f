"""A neural denoiser on a block stream at any rate, with a fixed, known delay.

The models run at 48 kHz on 10 ms frames; the engine's blocks are at 16 kHz (input,
before conversion) or at the voice's rate (output). Each block is resampled up,
denoised frame by frame and resampled back. The resampling is a short polyphase FIR
(scipy's `upfirdn`) over the block plus a little kept history, not the engine's soxr
streams: soxr releases samples in bursts, and covering its worst burst at 16 kHz cost
37 ms of queueing, while this filter adds under 1 ms each way and returns exactly one
block per block (a whole number of 10 ms frames at 48 kHz). So the delay is fixed,
`delay` samples, whatever the audio, and `delay_s` is what the engine's delay estimate
adds. (The filters pass 90 % of the lower Nyquist rate, then fall to −63 dB or below.)

Strength s ∈ [0, 1]: noise is lowered at most to (1 − s) of its level (an attenuation
limit of −20·log10(1 − s) dB; s = 1 is unlimited), so 0.9 keeps a faint room tone.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

from .denoise_models import FRAME, SR, FrameDenoiser, make_frame_denoiser

UNLIMITED_DB = 100.0


def strength_to_limit_db(strength: float) -> float:
    """Attenuation limit (dB) that lowers noise at most to (1 − strength) of its level."""
    if strength >= 1.0:
        return UNLIMITED_DB
    return min(UNLIMITED_DB, -20.0 * math.log10(max(1.0 - strength, 1e-5)))


class BlockResampler:
    """Rational resampling of whole blocks with a causal linear-phase FIR: fixed delay, exact lengths."""

    def __init__(self, sr_in: int, sr_out: int) -> None:
        g = math.gcd(int(sr_in), int(sr_out))
        self.up, self.down = int(sr_out) // g, int(sr_in) // g
        # Half the filter, at the upsampled rate: a multiple of up·down so the delay is a whole number
        # of samples at both rates; at least 24 taps per polyphase branch.
        unit = self.up * self.down
        half = math.ceil(max(36, 12 * max(self.up, self.down)) / unit) * unit
        cutoff = 0.9 / max(self.up, self.down)
        self._h = (signal.firwin(2 * half + 1, cutoff, window=("kaiser", 8.0)) * self.up).astype(np.float64)
        self.delay_out = half // self.down  # output samples
        self._hist = np.zeros(math.ceil(2 * half / unit) * self.down, np.float32)  # input samples

    def reset(self) -> None:
        self._hist[:] = 0.0

    def process(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        if (n * self.up) % self.down:
            raise ValueError(f"block of {n} samples does not resample to a whole number of samples")
        ext = np.concatenate([self._hist, x])
        y = signal.upfirdn(self._h, ext, self.up, self.down)
        start = len(self._hist) * self.up // self.down
        self._hist[:] = ext[n:]
        return y[start : start + n * self.up // self.down].astype(np.float32)


class StreamDenoiser:
    """Denoise blocks of `block` samples at `sr`; output = input delayed by `delay` samples, minus noise."""

    def __init__(self, sr: int, block: int, model: FrameDenoiser | None = None, strength: float = 1.0) -> None:
        self.sr, self.block = int(sr), int(block)
        if (self.block * SR) % (self.sr * FRAME):
            raise ValueError(f"denoiser blocks must be whole 10 ms frames; {block} samples at {sr} Hz are not")
        self.model = model if model is not None else make_frame_denoiser()
        self._up = BlockResampler(self.sr, SR) if self.sr != SR else None
        self._down = BlockResampler(SR, self.sr) if self.sr != SR else None
        model_delay = self.model.delay * self.sr / SR
        resample_delay = 0.0
        if self._up is not None and self._down is not None:
            resample_delay = self._up.delay_out * self.sr / SR + self._down.delay_out
        self.delay = int(round(model_delay + resample_delay))
        self.strength = -1.0
        self.set_strength(strength)

    @property
    def delay_s(self) -> float:
        return self.delay / self.sr

    def set_strength(self, strength: float) -> None:
        if strength != self.strength:
            self.model.set_limit(strength_to_limit_db(strength))
            self.strength = strength

    def reset(self) -> None:
        """Forget the filters' history (the model keeps its learned noise estimate)."""
        for r in (self._up, self._down):
            if r is not None:
                r.reset()

    def process(self, block: np.ndarray) -> np.ndarray:
        """Denoise one block (1-D float32); returns as many samples, `delay` samples late."""
        x = np.asarray(block, dtype=np.float32)
        hi = self._up.process(x) if self._up is not None else x.copy()
        for i in range(0, len(hi), FRAME):
            self.model.process(hi[i : i + FRAME])
        return self._down.process(hi) if self._down is not None else hi
