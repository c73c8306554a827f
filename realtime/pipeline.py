"""The engine's data path between device callbacks, without threads or devices.

input callback → `on_input` → input ring → resampler → staging ring (converter rate)
→ `step` (one `BlockProcessor` block, or the latency probe) → `OutputPort.emit` for
the main output and the monitor → their callbacks read `out.read` / `mon.read`.

The engine's worker calls `step` in a loop; the file driver and the simulated
devices of the tests call the same methods, so all three run one code path.

Falling behind: when more than a whole block beyond the one about to be converted
is waiting (a slow first block, a stall), the stale input is skipped and only the
newest is converted, so a late block never becomes permanent delay. Skipped
samples are counted (device rate).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from ..synth.levels import rms_db
from .block_processor import BlockProcessor, gain
from .clock_books import InputCount
from .drift import DriftConfig
from .output_port import OutputPort
from .resample import StreamResampler
from .ring_buffer import RingBuffer
from .settings import EngineSettings

STATS_WINDOW = 512  # compute times kept for the percentiles
FRESH_BLOCKS = 3  # blocks after a start or change kept out of the percentiles


class BlockTap(Protocol):
    """Takes the converter's place for a while (the latency probe): same rates, same block sizes."""

    def process(self, block: np.ndarray) -> np.ndarray: ...


class BlockRecorder(Protocol):
    """Hears every block pair: input at `in_sr`, what was sent at `out_sr`, content lag in seconds."""

    def add(self, inp: np.ndarray, in_sr: int, out: np.ndarray, out_sr: int, lag_s: float) -> None: ...

    def close(self) -> object: ...


class Pipeline:
    """Rings, resamplers, the block chain and the output ports of one running engine."""

    def __init__(self, proc: BlockProcessor, *, sr_in: int, sr_out: int, sr_mon: int = 0,
                 drift: DriftConfig = DriftConfig(), clock: Callable[[], float] = time.monotonic) -> None:
        self.proc = proc
        self.clock = clock
        self.sr_in, self.sr_out, self.sr_mon = int(sr_in), int(sr_out), int(sr_mon)
        self.drift_config = drift
        self.in_ring = RingBuffer(4 * self.sr_in)
        self.to_conv = StreamResampler(self.sr_in, proc.input_sr)
        self.stage = RingBuffer(4 * proc.input_sr + 2 * proc.block_in)
        self._chunk = np.zeros(self.in_ring.capacity, dtype=np.float32)
        self._block = np.zeros(proc.block_in, dtype=np.float32)
        self.input_count = InputCount(self.sr_in, clock)
        self._in_flight = 0  # converter-rate samples of the block being converted (read from the stage, not yet emitted)
        self.out = self._port(self.sr_out, "output")
        self.mon = self._port(self.sr_mon, "monitor") if self.sr_mon else None
        self.tap: BlockTap | None = None
        self.between_blocks: Callable[[], None] | None = None  # the engine's command queue, between two blocks
        self.recorder: BlockRecorder | None = None  # a session recording: gets every (input, output) pair
        self.skip_stale = True  # False for drivers that feed faster than real time (files)
        self.blocks = 0
        self.timed = 0
        self.compute_ms = np.zeros(STATS_WINDOW, dtype=np.float64)
        self.last_ms = 0.0
        self.overruns = 0
        self.skipped = 0  # input samples (device rate) skipped because the worker was behind
        self.max_period = 0  # largest input device period seen (device-rate samples)
        self.input_lag_s = 0.0  # average time from the newest input buffer's first sample to a block's conversion, less
        # the device's own delay: (since that callback) − (its length) + (input that arrived after the block's last sample)
        self._input_t = clock()
        self._input_n = 0
        self.fresh = FRESH_BLOCKS
        self.in_db = self.out_db = -120.0
        self.input_xruns = 0
        self.last_input = time.monotonic()
        self._was_passthrough = proc.settings.passthrough

    def _port(self, sr: int, name: str) -> OutputPort:
        s = self.proc.settings
        return OutputPort(sr, model_sr=self.proc.output_sr, input_sr=self.sr_in, margin=s.buffer_ms * sr // 1000,
                          block=s.block_ms * sr // 1000, drift=self.drift_config, name=name, clock=self.clock,
                          ceiling_db=s.ceiling_db, input_count=self.input_count, upstream=self.upstream_s)

    def upstream_s(self) -> float:
        """Seconds of captured input not yet in the output rings (callback side, read without locks):
        the input ring, the block being converted, the staging ring, and what the device has
        captured since its last buffer (so the sum does not jump with capture bursts). The input
        resampler's hold-back is left out: it is constant, so it is part of the settled target."""
        conv = self.proc.input_sr
        return ((self.in_ring.available + self.input_count.pending()) / self.sr_in
                + (self.stage.available + self._in_flight) / conv)

    @property
    def ports(self) -> list[OutputPort]:
        return [self.out] if self.mon is None else [self.out, self.mon]

    # -- callbacks ---------------------------------------------------------------------------

    def on_input(self, samples: np.ndarray) -> None:
        self.in_ring.write(samples)
        self.input_count.note(len(samples))
        self.last_input = time.monotonic()
        if len(samples) > self.max_period:
            self.max_period = len(samples)
        self._input_t = self.clock()
        self._input_n = len(samples)

    def input_xrun(self) -> None:
        """The input device reported an overflow: it lost time, so each output's clock books jump."""
        self.input_xruns += 1
        for port in self.ports:
            port.books_lost()

    # -- worker ------------------------------------------------------------------------------

    def apply(self, settings: EngineSettings) -> bool:
        """Between blocks: new settings. A new block shape rebuilds the chain's buffers (True); a new
        safety margin is inserted (faded silence) or trimmed in the output rings, exactly."""
        old = self.proc.settings
        reshaped = old.reshapes(settings)
        self.proc.update(settings)
        if reshaped:
            self.stage.clear()
            self._block = np.zeros(self.proc.block_in, dtype=np.float32)
            for port in self.ports:
                port.block = settings.block_ms * port.sr // 1000
                port.drift.reshape(port.block)  # the target holds one block on top of the margin
            self.fresh = FRESH_BLOCKS
        if settings.ceiling_db != old.ceiling_db:
            for port in self.ports:
                port.limiter.set_ceiling(settings.ceiling_db)
        if settings.buffer_ms != old.buffer_ms:
            for port in self.ports:
                port.set_margin(settings.buffer_ms * port.sr // 1000)
        return reshaped

    def swap_processor(self, proc: BlockProcessor) -> None:
        """Between blocks: another voice's chain; resamplers follow its rates."""
        old = self.proc
        self.proc = proc
        if proc.input_sr != old.input_sr or proc.block_in != old.block_in:
            self.to_conv = StreamResampler(self.sr_in, proc.input_sr)
            self.stage = RingBuffer(4 * proc.input_sr + 2 * proc.block_in)
            self._block = np.zeros(proc.block_in, dtype=np.float32)
        if proc.output_sr != old.output_sr:
            # Another rate: each port fades the old voice's future into the new voice's first samples.
            future, s = old.future(), old.settings
            self.out.change_model_rate(proc.output_sr, future * gain(s.output_gain_db))
            if self.mon is not None:
                self.mon.change_model_rate(proc.output_sr, future * gain(s.monitor_gain_db))
        self.fresh = FRESH_BLOCKS

    def step(self) -> bool:
        """Convert whatever input has arrived; False when there was nothing to do."""
        n = self.in_ring.available
        if n == 0:
            return False
        chunk = self._chunk[:n]
        n = self.in_ring.read_into(chunk)
        chunk = chunk[:n]
        s = self.proc.settings
        if s.passthrough != self._was_passthrough:
            self._was_passthrough = s.passthrough
            self.proc.reset()
        if s.passthrough and self.tap is None:
            self.in_db = rms_db(chunk)
            self.out.emit_input(chunk * gain(s.input_gain_db + s.output_gain_db))
            if self.recorder is not None:
                self.recorder.add(chunk, self.sr_in, chunk * gain(s.input_gain_db + s.output_gain_db), self.sr_in, 0.0)
            if self.mon is not None:
                self.mon.emit_input(chunk * gain(s.input_gain_db + s.monitor_gain_db))
            return True
        self.stage.write(self.to_conv.process(chunk))
        self._skip_stale()
        while self.stage.available >= self.proc.block_in:
            self.stage.read_into(self._block)
            self._in_flight = self.proc.block_in  # counted upstream until emitted
            self._convert(self._block)
            self._skip_stale()
            if self.between_blocks is not None:
                self.between_blocks()  # commands (a voice, settings) land between two blocks, even in a long run
        return True

    def _skip_stale(self) -> None:
        if not self.skip_stale:
            return
        b = self.proc.block_in
        avail = self.stage.available
        # A block beyond the one due now, plus one device period of slack: more is stale.
        if avail >= 2 * b + self.max_period * self.proc.input_sr // self.sr_in:
            dropped = self.stage.discard((avail // b - 1) * b)
            self.skipped += int(round(dropped * self.sr_in / self.proc.input_sr))

    def _convert(self, block: np.ndarray) -> None:
        proc, s = self.proc, self.proc.settings
        t0 = self.clock()
        behind = self.in_ring.available / self.sr_in + self.to_conv.holdback_s + self.stage.available / proc.input_sr
        self.input_lag_s += 0.1 * (t0 - self._input_t - self._input_n / self.sr_in + behind - self.input_lag_s)
        out = proc.process(block)
        if self.tap is not None:  # the voice still runs (same compute, same timing); the probe is heard
            out = self.tap.process(block)
        ms = 1000.0 * (self.clock() - t0)
        self.last_ms = ms
        self.blocks += 1
        if self.fresh > 0:
            self.fresh -= 1  # warm-up after a change: not what the steady state costs
        else:
            self.compute_ms[self.timed % STATS_WINDOW] = ms
            self.timed += 1
        if ms > s.block_ms:
            self.overruns += 1
        self.in_db, self.out_db = rms_db(block), rms_db(out)
        if self.recorder is not None:
            self.recorder.add(block, proc.input_sr, out, proc.output_sr,
                              (proc.algorithmic_latency_ms - s.block_ms) / 1000.0)
        self.out.emit(out)
        if self.mon is not None:
            self.mon.emit(out * gain(s.monitor_gain_db - s.output_gain_db) if self.tap is None else out * 0.0)
        self._in_flight = 0

    def percentiles(self) -> tuple[float, float, float]:
        n = min(self.timed, STATS_WINDOW)
        if not n:
            return 0.0, 0.0, 0.0
        p50, p95, p99 = np.percentile(self.compute_ms[:n], (50, 95, 99))
        return float(p50), float(p95), float(p99)

    def estimate_ms(self, device_in_ms: float = 0.0, device_out_ms: float = 0.0) -> float:
        """Delay from a sample entering the input device to leaving the output device, from what is measured
        now. Device times refer to a buffer's first sample, so a block's last sample was captured the
        device's input delay plus `input_lag_s` before its conversion starts (the worker's wake-up and the
        input resampler's hold-back included); then compute (p50), the output ring's queue at the write
        (safety margin included), the wait for the next output period (measured: about half a period with
        separate streams, a period less compute with one duplex stream), the output resampler's hold-back,
        the output limiter's look-ahead and the output device's delay; plus the chain's algorithmic latency (block, crossfade, search,
        the voice's look-ahead)."""
        p50 = self.percentiles()[0] or self.last_ms
        out = self.out
        queue_ms = 1000.0 * out.backlog / out.sr if out.backlog else float(self.proc.settings.buffer_ms)
        input_ms = device_in_ms + 1000.0 * self.input_lag_s
        output_ms = 1000.0 * (out.wait_s + out.from_model.holdback_s) + out.limiter_ms + device_out_ms
        return self.proc.algorithmic_latency_ms + input_ms + p50 + queue_ms + output_ms
