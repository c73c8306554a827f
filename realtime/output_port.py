"""One output of the engine (the main output or the monitor): ring, resamplers, margin,
drift corrector and the primed/starved state, behind two calls.

- The worker calls `emit(audio)` with converted audio at the model's rate (or
  `emit_input(audio)` with input-rate audio in passthrough); the port resamples to
  its device's rate and appends to its ring. After a starvation it first writes the
  safety margin of silence again, so one late block costs one gap, not a crackle.
- The device callback calls `read(out)`: silent until the first block and its
  margin are in; then it plays the ring through the drift corrector (single samples
  dropped or repeated at the flattest point of the period); a ring that runs dry
  fades out over a few milliseconds and fades back in when it is primed again; a
  backlog far above the target level (the device stalled), or any excess when the
  stream has just settled, is cut back with a short crossfade, never a hard cut.
- Everything written passes the true-peak limiter (`synth.limiter`, on by default at
  the settings' ceiling): no peak above the ceiling reaches the device, and a block
  with NaN/inf becomes silence (counted in `limiter.state.silenced_blocks`). It
  delays the port's audio by `limiter.delay` samples (112 at 48 kHz).

The worker touches only the writing side and the `starved` flag the callback sets;
the callback never allocates more than a period's scratch and never waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..synth.limiter import Limiter, LimiterConfig
from .clock_books import ClockBooks, InputCount
from .drift import DriftConfig, DriftCorrector
from .resample import StreamResampler
from .ring_buffer import RingBuffer
from .sola import fade_windows

FADE = 64  # samples of fade on underflow, re-priming and trims
_TRIM_AFTER = 3  # periods in a row above the trim level before cutting
_STAYS_OVER_S = 1.0  # a smaller excess is cut when it stays this long


def _ramp(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)


def flattest(x: np.ndarray, count: int, drop: bool) -> np.ndarray:
    """`count` indices, one per equal share of `x`, where dropping (or repeating) a sample changes least.

    Dropping x[i] makes the step x[i+1] − x[i−1]; repeating x[i] makes x[i+1] − x[i] twice
    no larger than before: pick where that step is smallest, ties to the quietest sample."""
    n = len(x)
    count = min(count, (n - 2) // 2)
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    step = np.abs(x[2:] - x[:-2]) if drop else np.abs(x[2:] - x[1:-1])
    cost = step + 1e-3 * np.abs(x[1:-1])
    edges = np.linspace(0, len(cost), count + 1).astype(np.int64)
    return np.array([1 + a + int(np.argmin(cost[a:b])) for a, b in zip(edges[:-1], edges[1:]) if b > a], dtype=np.int64)


class OutputPort:
    """Ring → drift corrector → device, for one output device at `sr` (see module docstring)."""

    def __init__(self, sr: int, *, model_sr: int, input_sr: int, margin: int, block: int,
                 drift: DriftConfig = DriftConfig(), name: str = "output",
                 clock: Callable[[], float] = time.monotonic, ceiling_db: float = -1.0,
                 input_count: InputCount, upstream: Callable[[], float]) -> None:
        self.sr = int(sr)
        self.upstream = upstream  # seconds of input not yet in the ring (the pipeline's queue)
        self.limiter = Limiter(self.sr, LimiterConfig(ceiling_db=ceiling_db))
        self._reduction = (0.0, -1e9)  # (deepest gain reduction in dB, when) over the last second
        self.clock = clock
        self._write_t = clock()
        self.name = name
        self.ring = RingBuffer(4 * self.sr)
        self.margin = int(margin)
        self.block = int(block)
        self.drift = DriftCorrector(self.sr, self.block, self.margin, drift)
        self.books = ClockBooks(self.sr, input_count)
        self.from_model = StreamResampler(model_sr, self.sr)
        self.from_input = StreamResampler(input_sr, self.sr)
        self.primed = False
        self.starved = True  # the worker owes the margin before its next write
        self.underflows = 0
        self.trimmed = 0  # samples cut from backlogs
        self.played = 0
        self.xruns = 0  # device-reported output underflows
        self.gap = 0  # samples played as silence in place of audio: from an underflow until audio is back
        self.gap_margin = 0  # (worker side) the margin of silence written when audio came back after one
        self._in_gap = False
        self._fade_in = False
        self._above = 0
        self._over = 0  # samples played in a row with the smoothed level above the trim level
        self._pending_trim = 0
        self._ramp = _ramp(FADE)
        self._buf = np.zeros(self.sr, dtype=np.float32)
        self.period = 0  # largest device period seen
        self.backlog = 0.0  # smoothed fill just before each write (samples): the queue a new block joins
        self.wait_s = 0.0  # smoothed time from a write to the next device period (part of the delay)
        self._wrote = False

    # -- worker side -----------------------------------------------------------------------

    def emit(self, audio: np.ndarray) -> None:
        out = self.from_model.process(audio)
        if len(self._fade_from):
            out = self._fade_in_over(out)
        self._write(out)

    def change_model_rate(self, model_sr: int, future: np.ndarray) -> None:
        """Worker side, between blocks: the voice's rate changes (another voice). The old resampler
        plays out what it holds, then `future` (the old voice's next samples, at its rate) is
        crossfaded into the new voice's first samples, as SOLA does at a same-rate switch."""
        old = self.from_model
        self.from_model = StreamResampler(model_sr, self.sr)
        if not len(future):
            return
        tail = np.concatenate([old.process(future), old.flush()])
        n = min(len(tail), int(round(len(future) * self.sr / old.sr_in)))
        self._write(tail[: len(tail) - n])  # the old voice up to the switch
        self._fade_from = tail[len(tail) - n :].astype(np.float32)
        self._fade_at = 0

    _fade_from = np.zeros(0, np.float32)
    _fade_at = 0

    def _fade_in_over(self, audio: np.ndarray) -> np.ndarray:
        """The new voice fades in over the old one's future (across writes, if the first is short)."""
        fade, at = self._fade_from, self._fade_at
        fade_in, fade_out = fade_windows(len(fade))
        k = min(len(audio), len(fade) - at)
        out = np.array(audio, dtype=np.float32)
        out[:k] = out[:k] * fade_in[at : at + k] + fade[at : at + k] * fade_out[at : at + k]
        self._fade_at = at + k
        if self._fade_at >= len(fade):
            self._fade_from = np.zeros(0, np.float32)
        return out

    def emit_input(self, audio: np.ndarray) -> None:
        self._write(self.from_input.process(audio))

    def _write(self, audio: np.ndarray) -> None:
        if len(audio):
            self.drift.watch_write(self.sr * self.upstream())  # the room the ring needs (see drift.py)
        if self.starved:
            self.starved = False
            # At least one device period: else, as the clocks' phases slide, some period
            # finds the ring a few samples short just before a block arrives.
            margin = max(self.margin, self.period)
            if self._in_gap:
                self.gap_margin += margin  # heard as part of the gap
            self.ring.write(self.limiter.process(np.zeros(margin, dtype=np.float32)))
        elif self.primed:
            self.backlog += 0.1 * (self.ring.available - self.backlog)
        audio = self.limiter.process(audio)
        gr, now = self.limiter.state.gain_reduction_db, self.clock()
        if gr >= self._reduction[0] or now - self._reduction[1] > 1.0:
            self._reduction = (gr, now)
        self.ring.write(audio)
        if len(audio):
            self._write_t = self.clock()
            self._wrote = True

    def level(self) -> tuple[float, float]:
        """(The level the drift corrector follows, its upstream part), samples.

        The level is the whole delay: the ring plus the input waiting upstream of it (captured,
        queued or being converted; see drift.py). A slow block moves samples from one to the
        other and leaves the sum alone, so the corrector follows the delay, not the worker's
        compute time; and the sum does not jump by whole blocks or bursts, so the corrector does
        not chase where the device's periods fall."""
        up = self.sr * self.upstream()
        return self.available + up, up

    def set_margin(self, margin: int) -> None:
        """A new safety margin (worker side): the difference is inserted as faded silence or trimmed."""
        diff = int(margin) - self.margin
        self.margin = int(margin)
        self.drift.margin = max(self.margin, self.period)
        if diff > 0 and self.primed:
            self._insert_silence = diff
        elif diff < 0:
            self._pending_trim += -diff
        if self.drift.target is not None:
            self.drift.target += diff

    _insert_silence = 0

    @property
    def gain_reduction_db(self) -> float:
        """The limiter's deepest gain reduction over about the last second (0 = it did not act)."""
        gr, when = self._reduction
        return gr if self.clock() - when <= 1.0 else self.limiter.state.gain_reduction_db

    def restart(self) -> None:
        """Worker side, streams closed: the next read starts afresh (margin, fade-in), nothing counted."""
        self.ring.clear()
        self.starved = True
        self.primed = False
        self._in_gap = False

    @property
    def gap_ms(self) -> float:
        """Silence heard in place of audio after underflows (the re-priming margin included)."""
        return 1000.0 * (self.gap + self.gap_margin) / self.sr

    @property
    def limiter_ms(self) -> float:
        return 1000.0 * self.limiter.delay / self.sr

    @property
    def holdback_s(self) -> float:
        """Seconds the resamplers hold back now (the model-rate one; the other is idle)."""
        return self.from_model.holdback_s

    # -- callback side ---------------------------------------------------------------------

    def books_lost(self) -> None:
        """A device reported an xrun: its clock count jumped, which is not drift."""
        self.books.lost()

    _front = np.zeros(0, np.float32)  # a trim's crossfade, played before the ring

    @property
    def available(self) -> int:
        return self.ring.available + len(self._front)

    def _take(self, out: np.ndarray) -> int:
        """Read from the trim's crossfade first, then the ring; zero-fill what is missing."""
        f = len(self._front)
        if f == 0:
            return self.ring.read_into(out)
        k = min(f, len(out))
        out[:k] = self._front[:k]
        self._front = self._front[k:]
        return k + (self.ring.read_into(out[k:]) if k < len(out) else 0)

    def read(self, out: np.ndarray) -> None:
        """Fill `out` (1-D, one device period) for the device."""
        n = len(out)
        ring = self.ring
        self.books.note(n)
        fill, upstream = self.level()
        self.drift.watch(upstream, n)
        if self._wrote and self.primed:
            self.wait_s += 0.1 * (self.clock() - self._write_t - self.wait_s)
        self._wrote = False
        if n > self.period:
            self.period = n
            self.drift.margin = max(self.margin, n)
        if not self.primed:
            if ring.available < n or self.starved:
                out.fill(0.0)
                if self._in_gap:
                    self.gap += n
                return
            self.primed = True
            self._in_gap = False
            self._fade_in = True
            self.drift.restart()
        if self._insert_silence:
            self._play_gap(out)
            return
        self._check_backlog(n)
        settling = not self.drift.settled
        k = self.drift.plan(fill, n)
        if settling and self.drift.settled and self.drift.excess > self.drift.start_band():
            # What the first seconds left above the target (see drift.py): cut at the next period.
            self._pending_trim += int(self.drift.excess)
        if n < FADE:  # a tiny period (some drivers' odd callbacks): no edit in it
            k = 0
        take = n + k
        if self.available < take:
            self._underflow(out)
            return
        buf = self._buf[:take] if take <= len(self._buf) else np.zeros(take, np.float32)
        self._take(buf)
        if k > 0:
            out[:] = np.delete(buf, flattest(buf, k, drop=True))
        elif k < 0:
            idx = flattest(buf, -k, drop=False)
            out[:] = np.insert(buf, idx + 1, buf[idx])
        else:
            out[:] = buf
        self.drift.done(take, -k)
        self._finish(out)

    def _finish(self, out: np.ndarray) -> None:
        if self._fade_in:
            m = min(FADE, len(out))
            out[:m] *= self._ramp[:m]
            self._fade_in = False
        self.played += len(out)

    def _underflow(self, out: np.ndarray) -> None:
        """The ring ran dry: play what is left fading out, then silence until primed again."""
        got = self._take(out)
        m = min(FADE, got)
        if m:
            out[got - m : got] *= self._ramp[::-1][FADE - m :]
        out[got:] = 0.0
        self.underflows += 1
        self.gap += len(out) - got
        self._in_gap = True
        self.drift.done(got, 0)
        self.primed = False
        self.starved = True

    def _play_gap(self, out: np.ndarray) -> None:
        """A larger margin: fade out, exactly the owed silence, fade back in (perhaps next period)."""
        n = len(out)
        m = min(FADE, n)
        got = self._take(out[:m])
        out[:got] *= self._ramp[::-1][FADE - m : FADE - m + got]
        out[got:m] = 0.0
        z = min(self._insert_silence, n - m)
        out[m : m + z] = 0.0
        self._insert_silence -= z
        self.drift.shift(z)  # the ring keeps z more samples than it would have: margin, not drift
        rest = out[m + z :]
        if len(rest):
            k = self._take(rest)
            r = min(FADE, k)
            rest[:r] *= self._ramp[FADE - r :] if r < FADE else self._ramp
            rest[k:] = 0.0
        else:
            self._fade_in = True
        self.played += n

    def _check_backlog(self, n: int) -> None:
        """Cut a backlog back to the target level, crossfading across the cut: at once when it is far
        above (a device stall), and when the smoothed level is above it by more than twice the drift
        corrector's start distance or a period for a second (a shorter stall, which the corrector's single
        samples would take seconds to undo; drift alone never gets there, the corrector acts at half of it)."""
        target = self.drift.target
        if target is None or not self.drift.settled:
            self._above = 0
        elif self.available > target + 1.5 * self.block + n:
            self._above += 1
        else:
            self._above = 0
        excess = self._pending_trim
        if self._above >= _TRIM_AFTER:
            excess += int(self.available - target - self.block // 2)
            self._above = 0
        elif self.drift.excess > max(2.0 * self.drift.start_band(), self.period):
            self._over += n
            if self._over >= _STAYS_OVER_S * self.sr:  # a backlog that stays, not a burst of input passing
                excess += int(self.drift.excess)
                self._over = 0
        else:
            self._over = 0
        if excess <= 0:
            return
        excess = min(excess, self.ring.available - 2 * FADE - n)
        self._pending_trim = 0
        if excess <= 0:
            return
        head = np.zeros(FADE, np.float32)
        tail = np.zeros(FADE, np.float32)
        # Read FADE samples, skip `excess`, and fold the next FADE in over them: no step at the cut.
        self._take(head)
        skip = self._buf[: min(excess, len(self._buf))]
        left = excess
        while left > 0:
            got = self.ring.read_into(skip[: min(left, len(skip))])
            left -= got
            if got == 0:
                break
        self.ring.read_into(tail)
        # The crossfaded piece plays before the ring's content (only the worker writes the ring).
        self._front = head * self._ramp[::-1] + tail * self._ramp
        self.trimmed += excess
        self.drift.shift(-excess)
