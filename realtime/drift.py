"""Clock-drift correction for an output that runs on another clock than the input.

Two sound cards never run at exactly the same rate: an output clock 100 ppm faster
than the input's drains its ring by ~5 samples a second at 48 kHz, so over half an
hour the delay would creep by ~180 ms and then click. The corrector watches the
level, smoothed, against a target, and asks the output port to drop (too full) or
repeat (too empty) single samples, which the port does at the flattest point of a
period, where it is inaudible.

The level is the whole delay, not the output ring alone: the ring plus the input
still waiting upstream of it (captured, queued, or in the block being converted),
continuous (it does not jump with blocks or capture bursts). A block that takes
longer than the last moves samples from one to the other and leaves the sum alone, so
compute jitter, a stall or a burst of capture is not taken for drift (following the
ring alone did: each slow block looked like a slow clock, each catch-up like a fast
one, and the edits starved the ring); only the clocks move it, and the gaps, trims
and skips that the port and the pipeline make and count.

The target: the upstream queue's peak (a block plus the worker's compute time, more
with capture bursts and slow blocks) on top of one device period on top of the safety
margin, so that when the slowest block arrives the ring still holds the margin beyond
the next period. The peak is taken just before each write, where it is whatever the
device's periods do (watched only at the periods it depended on their phase against the
blocks: up to a period or two less on some starts, too little room once two clocks slid
the phase); while settling, the second-highest block's, so that one slow block does not
set the delay of a whole start. The peak is watched over 2.5 s windows and the room follows it
slowly (see LAG_WINDOWS): a steady voice keeps the delay it always had, a voice whose
blocks take 20 to 90 ms gets the room its slower blocks need instead of an underflow
for each, and one stall changes nothing. The target is not the level the stream
happens to settle at: that keeps whatever the first seconds left in the ring (a sound
server starting capture late, a stalled first period; measured on PulseAudio under
load: 70 ms to 760 ms above what the margin asks) in the delay for good, a different
delay on every start. On settling the port cuts an excess over the target at once (a
faded trim) and the corrector closes a shortfall to within `stop` at a faster rate
(one edit per 2 ms, a 1 % change of speed, for up to a second); after that, when the
smoothed level leaves the target by more than `start` it edits until it is back
within `stop` (hysteresis: no hunting around the target).

The clock estimate in ppm comes from the devices' own frame counts (the port's `ClockBooks`),
not from the corrector's edits: it stays true whatever the worker, the ring or the
corrector do.

Hand-written because no maintained library does adaptive drop/repeat on a live
ring; the arithmetic is a few lines and is tested against simulated clocks.
"""

from __future__ import annotations

from dataclasses import dataclass

# The room kept for the upstream queue follows its peaks over 2.5 s windows, never for one window alone
# (a stall): it rises to the second-highest peak of the last RAISE_WINDOWS (two slower windows in 25 s),
# and falls only to the second-highest of the last LAG_WINDOWS (a minute without them), so the delay
# does not swing with every slow block that comes and goes.
LAG_WINDOWS = 24
RAISE_WINDOWS = 10


@dataclass(frozen=True)
class DriftConfig:
    settle_skip_s: float = 0.5  # after (re)priming: ignore this long (start-up transients)
    settle_s: float = 1.4  # then average the level over this long before correcting (2 s after priming in all, less a period)
    resettle_s: float = 0.5  # after a gap, with the target known: average this long, no skip
    smooth_s: float = 0.5  # time constant of the smoothed level
    start_frac: float = 0.125  # start correcting beyond this share of a block (or a quarter of the margin)
    stop_frac: float = 0.25  # stop within this share of the start distance
    spacing_s: float = 0.005  # at most one dropped/repeated sample per this long of output
    catch_up_spacing_s: float = 0.002  # … while closing in on the target right after settling
    lag_window_s: float = 2.5  # the upstream queue's peak over each window this long (see LAG_WINDOWS)


class DriftCorrector:
    """Follows one output ring's fill level; tells the port how many samples to drop (+) or repeat (−)."""

    def __init__(self, sr: int, block: int, margin: int = 0, config: DriftConfig = DriftConfig()) -> None:
        self.sr = int(sr)
        self.block = max(int(block), 1)
        self.margin = int(margin)  # the safety margin: a drift larger than it underflows, so act well before
        self.config = config
        self.target: float | None = None  # fill level to hold (samples), set when the stream has settled
        self.level = 0.0  # smoothed fill level
        self.active = 0  # +1 dropping, −1 repeating, 0 idle
        self.enabled = True  # False: one clock (a duplex stream): only watch and report
        self.period = 0  # largest device period seen (samples)
        self.held = False  # True while the latency probe runs: no edits, so its bursts keep their spacing
        self.corrections = 0  # samples dropped + repeated, all told
        self.lag = 0.0  # the upstream queue's peak kept in the target (samples)
        self._peak = 0.0  # the upstream queue's peak while settling or over the current window
        self._block_peak = 0.0  # its peak since the last write (a block's worth)
        self._settle_peaks: list[float] = []  # the two highest block peaks while settling
        self._windows = [0.0] * LAG_WINDOWS  # its peaks over the last windows
        self._window_at = 0  # samples played in the current window
        self._settled = False
        self.restart()

    def restart(self) -> None:
        """The stream (re)primed after a gap: settle again, keep the target."""
        self._elapsed = 0
        self._sum = 0.0
        self._count = 0
        self._settled = False
        self._catching_up = False
        self.active = 0

    @property
    def settled(self) -> bool:
        return self._settled

    def shift(self, samples: int) -> None:
        """The port removed (−) or inserted (+) samples on purpose (a trim): the level moves at once."""
        self.level += samples

    def watch(self, upstream: float, frames: int) -> None:
        """Every device period, primed or not (the slowest blocks are those during which the ring runs
        dry): the part of the level not yet in the ring."""
        # More than the pipeline's skip level (a block converting, two waiting and a period) is skipped,
        # not played late: the ring never has to bridge more.
        up = min(upstream, 3.0 * self.block + self.period)
        self._block_peak = max(self._block_peak, up)
        if self.target is None:
            if self._elapsed > self.config.settle_skip_s * self.sr:
                self._peak = max(self._peak, up)
            return
        self._follow_lag(up, frames)

    def watch_write(self, upstream: float) -> None:
        """Just before each write (worker side): the upstream queue is at its peak then (the block still
        counts as in flight), wherever the device's periods fall around the write. Closes a block's peak."""
        self.watch(upstream, 0)
        if self.target is None and self._elapsed > self.config.settle_skip_s * self.sr:
            self._settle_peaks = sorted([*self._settle_peaks, self._block_peak])[-2:]
        self._block_peak = 0.0

    def plan(self, fill: float, frames: int) -> int:
        """Before a device period of `frames`: samples to drop (> 0) or repeat (< 0) in it. `fill` is the
        whole level (see `watch`)."""
        c = self.config
        self._elapsed += frames
        self.period = max(self.period, frames)
        first = self.target is None
        skip = c.settle_skip_s * self.sr if first else 0.0
        if not self._settled:
            if self._elapsed > skip:
                self._sum += fill * frames
                self._count += frames
            if self._elapsed >= skip + (c.settle_s if first else c.resettle_s) * self.sr and self._count:
                mean = self._sum / self._count
                self.level = mean
                if self.target is None:
                    # The peak, not the mean: the ring must bridge the slowest blocks and the latest
                    # capture bursts too, not only the typical ones.
                    # One slow block while settling is not kept for a minute (as after settling, see
                    # RAISE_WINDOWS): the second-highest block peak, so that every start keeps one delay.
                    peaks = self._settle_peaks
                    self.lag = peaks[0] if len(peaks) == 2 else self._peak
                    self._settle_peaks = []
                    self._windows = [self.lag] * LAG_WINDOWS
                    self.target = float(self.margin + self.period) + self.lag
                    self._peak = 0.0
                self._settled = True
                # Settled off target (the port has cut an excess by now): close in to within `stop`, at
                # the faster rate, so that the delay kept is reached within a second of settling.
                if self.enabled and abs(mean - self.target) > c.stop_frac * self.start_band():
                    self.active = 1 if mean > self.target else -1
                    self._catching_up = True
            return 0
        a = min(frames / (c.smooth_s * self.sr), 1.0)
        self.level += a * (fill - self.level)
        err = self.level - self.target
        start = self.start_band()
        if not self.enabled or self.held:
            self.active = 0
        elif self.active == 0 and abs(err) > start:
            self.active = 1 if err > 0 else -1
        elif self.active and (abs(err) < c.stop_frac * start or err * self.active < 0):
            self.active = 0
        if not self.active:
            self._catching_up = False
            return 0
        spacing = c.catch_up_spacing_s if self._catching_up else c.spacing_s
        return self.active * max(1, int(frames / (spacing * self.sr)))

    def _follow_lag(self, upstream: float, frames: int) -> None:
        """A voice that gets slower (another voice, another pitch estimator, a busier machine) needs more
        room, a faster one less (see RAISE_WINDOWS); the target moves when the room moves by more than
        the start distance."""
        self._peak = max(self._peak, upstream)
        self._window_at += frames
        if self._window_at < self.config.lag_window_s * self.sr or self.target is None:
            return
        self._windows = self._windows[1:] + [self._peak]
        self._peak = 0.0
        self._window_at = 0
        band = self.start_band()
        new = sorted(self._windows[-RAISE_WINDOWS:])[-2]
        if new <= self.lag + band:
            new = sorted(self._windows)[-2]
        if abs(new - self.lag) > band:
            self.target += new - self.lag
            self.lag = new

    def reshape(self, block: int) -> None:
        """A new block length (between blocks): the upstream queue and so the target move by the difference."""
        diff = max(int(block), 1) - self.block
        self.block += diff
        if self.target is not None:
            self.target += diff
            self.lag += diff
            self._windows = [w + diff for w in self._windows]

    @property
    def closing_in(self) -> bool:
        """Settled, and still closing in on the target (the delay is not yet the one kept)."""
        return self._catching_up

    def start_band(self) -> float:
        """The distance from the target (samples) beyond which correcting starts."""
        start = self.config.start_frac * self.block
        if self.margin > 0:
            start = min(start, 0.25 * self.margin)
        return max(start, 2.0)

    @property
    def excess(self) -> float:
        """Settled level above the target (samples; 0 before settling): what a trim may cut."""
        if not self._settled or self.target is None:
            return 0.0
        return self.level - self.target

    def done(self, read: int, net: int) -> None:
        """After the period: `read` samples came from the ring, `net` = repeats − drops."""
        if self._settled:
            self.corrections += abs(net)
            # The ring holds `net` more samples from now on: the smoothed level takes that at once
            # (else it lags its own edits by `smooth_s` and overshoots the target).
            self.level += net
