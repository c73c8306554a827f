"""Simulated audio devices for the engine: callbacks paced by a virtual clock.

An input device delivers `period` samples every `period / sr` seconds of virtual
time (or, with `burst`, that many periods at once, as a sound server delivers capture); each output device asks for `period` samples on its own clock, `ppm` parts
per million faster or slower than the input's. The engine runs unthreaded: the
driver calls `Engine.pump()` and, whenever it has nothing to do, advances the clock
to the next callback. The voice is an identity converter whose compute time is
virtual too: `convert` advances the clock (callbacks keep firing during it), so a
400 ms block or a 500 ms stall behaves like a slow block on a real machine, in
microseconds of real time. Half an hour of audio runs in seconds.

The input is a fixed table of band-limited noise played in a loop (7 s, no two
windows alike), so the delay of any stretch of output is found by locating it in
the table, and every step between output samples can be compared with the
largest step the signal itself has.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

from rvclora.realtime.engine import Engine
from rvclora.realtime.settings import EngineSettings

SR = 16000
TABLE_S = 7


def noise_table(sr: int = SR, seconds: int = TABLE_S, band_hz: float = 3000.0) -> np.ndarray:
    rng = np.random.default_rng(3)
    n = sr * seconds
    spec = np.fft.rfft(rng.standard_normal(n))
    spec[np.fft.rfftfreq(n, 1 / sr) > band_hz] = 0
    x = np.fft.irfft(spec, n)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


@dataclass(frozen=True)
class TimeInfo:
    currentTime: float  # noqa: N815 — the names of PortAudio's time info, which the engine reads
    inputBufferAdcTime: float = 0.0  # noqa: N815 — as PortAudio names it
    outputBufferDacTime: float = 0.0  # noqa: N815 — as PortAudio names it


class Clock:
    def __init__(self) -> None:
        self.t = 0.0
        self._q: list[tuple[float, int, object]] = []
        self._n = 0

    def at(self, t: float, fn) -> None:
        heapq.heappush(self._q, (t, self._n, fn))
        self._n += 1

    def advance(self, dt: float) -> None:
        """Run every callback due within dt, in order; the clock ends at t + dt."""
        end = self.t + dt
        while self._q and self._q[0][0] <= end:
            t, _, fn = heapq.heappop(self._q)
            self.t = t
            fn()
        self.t = end

    def next(self) -> None:
        t, _, fn = heapq.heappop(self._q)
        self.t = t
        fn()


class VoiceStub:
    """The voice protocol's bookkeeping, doing nothing: simulated voices only convert."""

    def check_settings(self, settings): pass
    def prepare(self, settings): pass
    def prepared(self, settings): return True
    def load_adapters(self, specs, *, force=False): return []
    def apply_adapters(self, adapters): pass


class SlowIdentity(VoiceStub):
    """A voice that returns its input, taking `compute(k)` virtual seconds for block k."""

    name = "identity"

    def __init__(self, clock: Clock, compute) -> None:
        self.clock, self.compute, self.blocks, self.live = clock, compute, 0, False


    def make_converter(self, settings, *, naive=False):
        outer = self

        class Conv:
            input_sr = output_sr = SR
            uses_sola = False
            latency_s = 0.0

            def convert(self, block, s):
                if outer.live:  # warm-up runs before the devices exist
                    outer.clock.advance(outer.compute(outer.blocks))
                    outer.blocks += 1
                return block.copy()

            def reset(self): pass

            def continue_from(self, old): pass

        return Conv()


@dataclass
class Output:
    """One simulated output device: records windows of what it played, and the largest step."""

    ppm: float
    read: object
    period: int
    prev: float = 0.0
    max_step: float = 0.0
    steps_over: int = 0
    windows: list = field(default_factory=list)  # (play time of first sample, samples)
    played: int = 0
    held: float = 0.0


class Sim:
    def __init__(self, settings: EngineSettings, *, out_ppm: float, mon_ppm: float | None = None,
                 compute=lambda k: 0.02, period: int = 320, window_every_s: float = 1.0,
                 loop_s: float | None = None, seconds: float = 60.0, burst: int = 1, out_phase_s: float = 0.0) -> None:
        self.clock = Clock()
        # Loopback: the main output reaches the input `loop_s` later (a cable with a known delay).
        self.loop_s = loop_s or 0.0
        self.loop = np.zeros(int((seconds + 2) * SR), np.float32) if loop_s is not None else None
        self.table = noise_table()
        self.limit = float(np.max(np.abs(np.diff(np.concatenate([self.table, self.table[:1]])))))
        self.source = SlowIdentity(self.clock, compute)
        self.engine = Engine(self.source, settings)
        self.pipe = self.engine.attach(SR, SR, SR if mon_ppm is not None else 0, threaded=False,
                                       clock=lambda: self.clock.t)
        self.source.live = True
        self.period = period
        self.burst = max(int(burst), 1)  # capture delivered `burst` periods at a time (a sound server's fragments)
        self.window_every = window_every_s
        self.fed = 0
        self.clock.at(period / SR, self._input)
        self.outputs = [Output(out_ppm, self.pipe.out.read, period)]
        if mon_ppm is not None:
            self.outputs.append(Output(mon_ppm, self.pipe.mon.read, period))
        for o in self.outputs:  # `out_phase_s`: where the output's periods fall against the input's
            o.held = out_phase_s
            self.clock.at(out_phase_s, lambda o=o: self._output(o))
        self.next_window = [0.0] * len(self.outputs)

    def _input(self) -> None:
        n, size = self.fed, self.period * self.burst
        idx = np.arange(n, n + size) % len(self.table)
        x = self.table[idx]
        if self.loop is not None:  # what the main output played `loop_s` ago comes back (over quiet noise)
            x = 0.1 * x + self.loop[n : n + size]
        # Like a device's time info: the buffer's first sample was captured `size` samples ago.
        self.engine.delays.note_input(TimeInfo(self.clock.t + 1.0, self.clock.t + 1.0 - size / SR))
        self.pipe.on_input(x)
        self.fed += size
        self.clock.at((self.fed + size) / SR, self._input)

    def _output(self, o: Output) -> None:
        buf = np.zeros(o.period, np.float32)
        o.read(buf)
        rate = SR * (1 + o.ppm * 1e-6)
        t0 = o.played / rate + o.held
        step = max(float(np.max(np.abs(buf[1:] - buf[:-1]))), abs(float(buf[0]) - o.prev))
        o.max_step = max(o.max_step, step)
        if step > self.limit:
            steps = np.abs(np.diff(np.concatenate([[o.prev], buf])))
            o.steps_over += int(np.sum(steps > self.limit))
        o.prev = float(buf[-1])
        i = self.outputs.index(o)
        if self.clock.t >= self.next_window[i]:
            o.windows.append((t0, buf.copy()))
            self.next_window[i] = self.clock.t + self.window_every
        if self.loop is not None and o is self.outputs[0]:
            start = int(round((t0 + self.loop_s) * SR))
            if start + len(buf) <= len(self.loop):
                self.loop[start : start + len(buf)] += buf
        o.played += o.period
        self.clock.at(o.played / rate + o.held, lambda: self._output(o))

    def hold_output(self, o: Output, seconds: float) -> None:
        """From now on `o` calls back `seconds` later than its clock says (a stalled device)."""
        o.held += seconds
        self.clock._q = [(t + seconds if getattr(fn, "__name__", "") == "<lambda>" else t, n, fn)
                         for t, n, fn in self.clock._q]
        heapq.heapify(self.clock._q)

    def run(self, seconds: float) -> None:
        end = self.clock.t + seconds
        while self.clock.t < end:
            if not self.engine.pump():
                self.clock.next()

    def delays(self, o: Output, near: float | None = None, span: float = 0.5) -> list[tuple[float, float]]:
        """(time, delay in seconds) for each recorded window that holds signal (not silence).

        With `near`, only delays within `span` seconds of it are considered: a window in
        which a drift corrector repeated or dropped samples at its highest rate correlates
        with the table at only ~0.35, and over the table's 7 s a chance peak can beat that."""
        table = self.table
        L = len(table)
        F = np.fft.rfft(table)
        out = []
        for t0, w in o.windows:
            if np.sqrt(np.mean(w ** 2)) < 0.05:
                continue
            pad = np.zeros(L, np.float32)
            pad[: len(w)] = w
            corr = np.fft.irfft(F * np.conj(np.fft.rfft(pad)), L)  # corr[n] = Σ table[n+i]·w[i]
            if near is not None:  # lags whose delay lies within span of `near`
                expect = int(round((t0 - near) * SR))
                far = np.abs((np.arange(L) - expect + L // 2) % L - L // 2) > span * SR
                corr[far] = -np.inf
            n0 = int(np.argmax(corr))
            # Input sample n0 (mod L) was captured at n0/SR; pick the copy just before t0.
            cycles = np.floor((t0 - n0 / SR) / (L / SR))
            out.append((t0, t0 - (n0 / SR + cycles * L / SR)))
        return out
