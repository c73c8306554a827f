"""How fast an output device's clock runs against the input device's, from the devices' own counts.

Every input callback adds its frames to an `InputCount`; every output callback notes, in
its port's `ClockBooks`, how many frames the output device has asked for so far against
how many the input device has delivered by then. Both counts tick with their device's
clock and with nothing else: a worker that falls behind, skipped input, trimmed backlogs,
underflow gaps and drift edits move samples between rings, never these counts. So the
phase `x = played/sr_out − captured/sr_in` (seconds) grows by the clock difference and by
nothing the engine does; its slope against the input's time is the clock ratio − 1.

Capture arrives in bursts (a sound server's fragments): the input count is taken as if it
were continuous (the last burst spread over the time until the next is due). A burst that
PortAudio hands over in pieces (measured through a Pulse monitor: 417 frames, then 63 a
tenth of a millisecond later, every 10 ms) is one burst: a piece that comes within a
quarter of the previous piece's duration joins it. What is left
is jitter, averaged by 1-second bins and a least-squares slope. A device that loses time
(an xrun, a stalled stream, a reopened device) shifts the phase for good: a bin that jumps
from the line (by more than 4 times the segment's scatter about it, at most `STEP_S`:
a sound server that drops a few milliseconds of a late stream without a word does
that too) starts a new segment, and the slope is pooled over the
segments (each its own offset), so a jump never tilts the estimate; so does an xrun the
device reports (`lost`).

Hand-written because the arithmetic is a few running sums a callback can afford; no
library estimates a clock ratio from two live sample counters.
"""

from __future__ import annotations

import time
from collections.abc import Callable

BIN_S = 1.0  # phase averaged over this much input time before it enters the fit
STEP_S = 0.005  # a bin this far off the line: a device lost time (an xrun); start a new segment
MIN_STEP_S = 0.001  # … or, once the segment's own scatter is known, 4 times that scatter, down to this
MIN_SPAN_S = 20.0  # fitted time needed before the estimate is shown (before that jitter outweighs drift)
SKIP_S = 10.0  # input time left out at the start: a sound server sizes its buffers in the first seconds
JOIN_SHARE = 0.25  # a callback this soon after the last (a share of its duration) is the same burst


class InputCount:
    """Frames the input device has delivered, as the input callback notes them (one writer)."""

    def __init__(self, sr: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.sr = int(sr)
        self.clock = clock
        self.state = (0, 0.0, 0)  # (frames so far, when the last burst came, its size): one atomic store

    def note(self, frames: int) -> None:
        total, t, n = self.state
        now = self.clock()
        joined = n > 0 and now - t < JOIN_SHARE * n / self.sr  # the rest of the same burst (module docstring)
        self.state = (total + int(frames), now, n + int(frames) if joined else int(frames))

    @property
    def total(self) -> int:
        return self.state[0]

    def pending(self) -> float:
        """Frames the device has captured since its last burst and not delivered yet (at most that burst's size)."""
        _, t, n = self.state
        return self._since(t, n)

    def now(self) -> float:
        """Frames captured by now, as if capture were continuous."""
        total, t, n = self.state  # one read: the three belong to the same burst
        return total + self._since(t, n)

    def _since(self, t: float, n: int) -> float:
        return min(max(self.clock() - t, 0.0) * self.sr, float(n))


class _Fit:
    """Running sums of one segment's (u, x) points, relative to its first point."""

    def __init__(self, u0: float, x0: float) -> None:
        self.u0, self.x0 = u0, x0
        self.n = 0
        self.su = self.sx = self.suu = self.sux = self.sxx = 0.0
        self.last_u = self.prev_u = u0

    def add(self, u: float, x: float, sign: int = 1) -> None:
        du, dx = u - self.u0, x - self.x0
        self.n += sign
        self.su += sign * du
        self.sx += sign * dx
        self.suu += sign * du * du
        self.sux += sign * du * dx
        self.sxx += sign * dx * dx
        if sign > 0:
            self.prev_u, self.last_u = self.last_u, u

    def drop_last(self, u: float, x: float) -> None:
        """Take back the last point added, (u, x)."""
        self.add(u, x, -1)
        self.last_u = self.prev_u

    def moments(self) -> tuple[float, float]:
        """(Σ(u−ū)(x−x̄), Σ(u−ū)²) of this segment."""
        if self.n < 3:
            return 0.0, 0.0
        return self.sux - self.su * self.sx / self.n, self.suu - self.su * self.su / self.n

    @property
    def span(self) -> float:
        return self.last_u - self.u0 if self.n >= 3 else 0.0

    def step(self, young: float = STEP_S) -> float:
        """How far off its line a new point must be to be a jump: 4 × the scatter about the line once
        there are points enough to tell, else `young` (what the last segment knew)."""
        if self.n < 8:
            return young
        sxy, suu = self.moments()
        var = (self.sxx - self.sx * self.sx / self.n - (sxy * sxy / suu if suu > 0 else 0.0)) / (self.n - 2)
        return min(STEP_S, max(MIN_STEP_S, 4.0 * max(var, 0.0) ** 0.5))


class ClockBooks:
    """The output clock against the input's, from device frame counts (see module docstring)."""

    def __init__(self, sr_out: int, source: InputCount) -> None:
        self.sr_out = int(sr_out)
        self.source = source
        self.played = 0  # frames the output device asked for
        self.segments = 0  # segments closed by a jump (device time lost)
        self._closed = (0.0, 0.0, 0.0)  # pooled moments and span of closed segments
        self._fit: _Fit | None = None
        self._bin = (0.0, 0.0, 0, 0.0)  # Σu, Σx, count, first u
        self._prev: list[tuple[float, float]] = []  # the last two bins (u, x)
        self._lost = False
        self._step = STEP_S

    def lost(self) -> None:
        """The device reported an xrun (it lost time): the phase jumps here, start a new segment."""
        self._lost = True

    def note(self, frames: int) -> None:
        """Output callback: the device asks for `frames` more (counted before they are added)."""
        captured = self.source.now()
        played = self.played
        self.played += int(frames)
        u = captured / self.source.sr
        if u < SKIP_S:  # input not running yet, or its buffers still being sized (a slope, not a step)
            return
        x = played / self.sr_out - u
        su, sx, k, first = self._bin
        if k == 0:
            first = u
        su, sx, k = su + u, sx + x, k + 1
        if u - first < BIN_S:
            self._bin = (su, sx, k, first)
            return
        self._bin = (0.0, 0.0, 0, 0.0)
        self._add_bin(su / k, sx / k)

    def _add_bin(self, u: float, x: float) -> None:
        prev, self._prev = self._prev, self._prev[-1:] + [(u, x)]
        fit = self._fit
        lost, self._lost = self._lost, False
        if fit is None or not prev:
            self._fit = _Fit(u, x)
            self._fit.add(u, x)
            return
        # Against the last bin and the one before: a jump inside a bin shows only in part in that
        # bin, and in full one bin later.
        r, step = self._slope(), fit.step(self._step)
        if lost or any(abs(x - (px + r * (u - pu))) > step for pu, px in prev):
            # The last bin may hold part of the jump: it leaves the segment it would tilt.
            fit.drop_last(*prev[-1])
            sxy, sxx = fit.moments()
            a, b, span = self._closed
            self._closed = (a + sxy, b + sxx, span + fit.span)
            self.segments += 1
            self._step = step  # a young segment is judged by what this one knew
            self._prev = [(u, x)]
            fit = self._fit = _Fit(u, x)
        fit.add(u, x)

    def _slope(self) -> float:
        """The pooled slope so far, however little is fitted (to predict the next bin)."""
        a, b, _ = self._closed
        if self._fit is not None:
            sxy, sxx = self._fit.moments()
            a, b = a + sxy, b + sxx
        return a / b if b > 0 else 0.0

    @property
    def ratio(self) -> float:
        """Output clock rate / input clock rate − 1 (pooled over segments; 0 with too little data)."""
        a, b, span = self._closed
        if self._fit is not None:
            sxy, sxx = self._fit.moments()
            a, b, span = a + sxy, b + sxx, span + self._fit.span
        return a / b if b > 0 and span >= MIN_SPAN_S else 0.0

    @property
    def ppm(self) -> float:
        """Output clock relative to the input's, parts per million (+ = output faster); 0 until
        MIN_SPAN_S of fitted time."""
        return 1e6 * self.ratio
