"""A true-peak limiter: look-ahead gain that keeps the 4× oversampled peak at or below a ceiling.

Hand-written because no kept library offers a streaming true-peak limiter with a
known delay.  How it works, per sample n of the input:

- peak:   p[n], the largest magnitude among x[n] and the 3 interpolated points on
          each side of it (4× oversampling with a Kaiser-windowed sinc, 32 taps per
          phase, as ITU-R BS.1770 measures true peak, with a longer filter);
- need:   r[n] = min(1, target / p[n]);
- attack: the minimum of r over the next A samples, then averaged over A+1
          samples: the gain falls smoothly and has reached r[n] when sample n
          plays, because every value averaged there is ≤ r[n];
- release: the gain returns towards 1 exponentially (1 − g decays by the release
          time constant) and never rises above the attack curve.

Where the signal never exceeds the target, every step gives exactly 1.0, so a
normal-level signal passes bit for bit (only delayed).  The output lags the input by
`delay` samples (look-ahead plus the interpolator's half length); `limit` removes
that lag for whole files.  Samples that are NaN or infinite make their whole block
silence, counted in `LimiterState.silenced_blocks`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import minimum_filter1d

from ..errors import UsageError

OVERSAMPLE = 4
_HALF_TAPS = 16  # interpolator taps on each side of a point, per phase
# The gain aims a little under the ceiling: the interpolator and the gain's own slope
# leave the true peak measured by other 4× interpolators up to ~0.2 dB above this estimate
# on full-band noise (far less on voices).
_MARGIN_DB = 0.3


@dataclass(frozen=True)
class LimiterConfig:
    ceiling_db: float = -1.0  # dBTP: the highest true peak the output may reach
    lookahead_ms: float = 2.0
    release_ms: float = 80.0

    def __post_init__(self):
        if not -60.0 <= self.ceiling_db <= 0.0:
            raise UsageError(f"ceiling {self.ceiling_db:g} dBTP: must be from -60 to 0 dB")
        if not (0 < self.lookahead_ms <= 50 and 0 < self.release_ms <= 5000):
            raise UsageError("limiter look-ahead must be 0–50 ms and release 0–5000 ms")

    @property
    def ceiling(self) -> float:
        return 10.0 ** (self.ceiling_db / 20.0)


def _interpolator() -> np.ndarray:
    """[OVERSAMPLE-1, 2·_HALF_TAPS] taps: phase k/4 between x[j] and x[j+1] from x[j-15 … j+16]."""
    m = np.arange(-_HALF_TAPS + 1, _HALF_TAPS + 1)
    window = np.kaiser(2 * _HALF_TAPS + 1, 8.0)
    phases = []
    for k in range(1, OVERSAMPLE):
        t = m - k / OVERSAMPLE  # distance of tap x[j+m] from the point j + k/4
        w = np.interp(t, np.arange(-_HALF_TAPS, _HALF_TAPS + 1), window)
        phases.append(np.sinc(t) * w)
    taps = np.array(phases)
    return taps / taps.sum(axis=1, keepdims=True)  # unity gain at DC for every phase


def true_peak(x: np.ndarray) -> np.ndarray:
    """Per sample, the largest magnitude among it and the interpolated points on each side.

    `x` must carry _HALF_TAPS samples of context at each end; returns len(x) − 2·_HALF_TAPS values."""
    taps = _interpolator()
    n = len(x) - 2 * _HALF_TAPS
    peak = np.abs(x[_HALF_TAPS : _HALF_TAPS + n]).astype(np.float64)
    for phase in taps:
        # between[i] = interpolated point after x[i + _HALF_TAPS - 1], for i in 0 … n
        between = np.abs(np.convolve(x, phase[::-1], mode="valid"))[: n + 1]
        np.maximum(peak, between[1:], out=peak)  # the points after each sample
        np.maximum(peak, between[:-1], out=peak)  # and before it
    return peak


@dataclass
class LimiterState:
    """What a running limiter has done: blocks silenced (non-finite input) and gain reduction."""

    silenced_blocks: int = 0
    gain_reduction_db: float = 0.0  # the deepest reduction in the last block (≥ 0)
    max_gain_reduction_db: float = 0.0  # the deepest since the start


class Limiter:
    """Streaming true-peak limiter for one mono signal; output lags input by `delay` samples."""

    def __init__(self, sr: int, config: LimiterConfig = LimiterConfig()) -> None:
        self.config = config
        self.sr = sr
        self.lookahead = max(1, round(sr * config.lookahead_ms / 1000))
        self.delay = self.lookahead + _HALF_TAPS
        self._decay = math.exp(-1.0 / (sr * config.release_ms / 1000))
        self._target = config.ceiling * 10.0 ** (-_MARGIN_DB / 20.0)
        # Input history: the samples still to be output plus the context the steps need
        # (zeros stand for the silence before the start).
        self._hist = np.zeros(self._context(), dtype=np.float32)
        self._release = 0.0  # 1 − gain of the last output sample
        self.state = LimiterState()
        # The most an interpolated point can exceed the largest sample around it: below
        # target / this, no true peak can reach the target and a block passes untouched
        # (the live engine's usual case, at a fraction of the full cost).
        self._overshoot = float(np.abs(_interpolator()).sum(axis=1).max())

    def set_ceiling(self, ceiling_db: float) -> None:
        """A new ceiling from the next block on (a live setting); the delay and history stay."""
        self.config = LimiterConfig(ceiling_db, self.config.lookahead_ms, self.config.release_ms)
        self._target = self.config.ceiling * 10.0 ** (-_MARGIN_DB / 20.0)

    def _context(self) -> int:
        # Output sample i needs need-values i-A … i+A, and each needs x ±_HALF_TAPS.
        return 2 * self.lookahead + 2 * _HALF_TAPS

    def process(self, block: np.ndarray) -> np.ndarray:
        """Feed a block of samples; returns as many limited samples (delayed by `delay`)."""
        block = np.asarray(block, dtype=np.float32)
        if not np.isfinite(block).all():
            block = np.zeros_like(block)
            self.state.silenced_blocks += 1
        if len(block) == 0:
            return block
        x = np.concatenate([self._hist, block])
        self._hist = x[len(block):]
        a = self.lookahead
        if self._release < 1e-9 and float(np.abs(x).max()) * self._overshoot <= self._target:
            self._release = 0.0  # (a gain within 1e-9 of 1 is 1)
            self.state.gain_reduction_db = 0.0
            return x[a + _HALF_TAPS : a + _HALF_TAPS + len(block)].astype(np.float32)
        # need-values for x positions _HALF_TAPS … len(x)-_HALF_TAPS; output i = x index i + a + _HALF_TAPS
        need = np.minimum(1.0, self._target / np.maximum(true_peak(x), 1e-30))
        # attack: min over the next A, then the mean over the A+1 before (in "1 − gain" so
        # that an all-ones stretch stays exactly 1)
        size = a + 1
        held = minimum_filter1d(need, size, mode="nearest")[size // 2 : len(need) - size + 1 + size // 2]
        cut = np.cumsum(np.concatenate([[0.0], 1.0 - held]))
        depth = (cut[a + 1 :] - cut[: -(a + 1)]) / (a + 1)  # depth[i] from held[i … i+a]
        depth = depth[: len(block)]
        gain_cut = self._release_curve(depth)
        out = x[a + _HALF_TAPS : a + _HALF_TAPS + len(block)] * (1.0 - gain_cut)
        ceiling = self.config.ceiling
        np.clip(out, -ceiling, ceiling, out=out)  # never reached by design; a last guard on sample peaks
        deepest = float(gain_cut.max(initial=0.0))
        self.state.gain_reduction_db = -20.0 * math.log10(1.0 - deepest) if deepest > 0 else 0.0
        self.state.max_gain_reduction_db = max(self.state.max_gain_reduction_db, self.state.gain_reduction_db)
        return out.astype(np.float32)

    def _release_curve(self, depth: np.ndarray) -> np.ndarray:
        """u[n] = max(depth[n], decay·u[n-1]) in closed form per chunk: decay^n · cummax(depth[j]/decay^j)."""
        out = np.empty_like(depth)
        chunk = max(1, int(40.0 / max(-math.log(self._decay), 1e-12)))  # decay^-chunk stays below e^40
        u = self._release
        for s in range(0, len(depth), chunk):
            d = depth[s : s + chunk]
            powers = self._decay ** np.arange(1, len(d) + 1, dtype=np.float64)
            v = np.maximum(np.maximum.accumulate(d / powers), u)
            out[s : s + len(d)] = v * powers
            u = float(out[s + len(d) - 1])
        self._release = u
        return out

    def flush(self) -> np.ndarray:
        """The last `delay` samples, pushed out with silence."""
        return self.process(np.zeros(self.delay, dtype=np.float32))


def limit(audio: np.ndarray, sr: int, config: LimiterConfig = LimiterConfig()) -> tuple[np.ndarray, LimiterState]:
    """A whole mono signal through the limiter, aligned with its input (same length)."""
    limiter = Limiter(sr, config)
    out = np.concatenate([limiter.process(audio), limiter.flush()])
    return out[limiter.delay : limiter.delay + len(audio)], limiter.state


def check_ceiling_option(ceiling_db: float) -> None:
    """The `--ceiling-db` of a command, refused in one line before any work."""
    if not -60.0 <= ceiling_db <= 0.0:
        raise UsageError(f"--ceiling-db {ceiling_db:g}: must be from -60 to 0 dBTP")


def limiter_note(state: LimiterState) -> str:
    """`; limiter: up to 3.2 dB gain reduction` for a command's closing line, or "" when it did not act."""
    gr = state.max_gain_reduction_db
    return f"; limiter: up to {gr:.1f} dB gain reduction" if gr >= 0.05 else ""
