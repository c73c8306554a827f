"""What the engine reports: events, a stats snapshot and latency measurements."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .device_delay import reported_s

if TYPE_CHECKING:
    from .engine import Engine

EVENT_KINDS = ("started", "stopped", "error", "warning", "settings", "adapters", "voice", "reconnecting", "latency")


@dataclass(frozen=True)
class EngineEvent:
    kind: str  # one of EVENT_KINDS
    message: str
    time: float  # time.monotonic()


@dataclass(frozen=True)
class LatencyMeasurement:
    """`Engine.measure_latency()`: end to end through the engine's own path, vs its estimate."""

    measured_ms: float  # median over the bursts (nan when none came back)
    estimated_ms: float  # the engine's estimate at the time (what `stats.latency_ms` shows)
    jitter_ms: float  # spread (max − min) of the bursts
    bursts: int  # bursts found
    snr_db: float  # median correlation peak over its floor
    valid: bool
    reason: str = ""  # why not valid
    tries_ms: list[float] = field(default_factory=list)

    def summary(self) -> str:
        if not self.valid:
            return f"latency not measured: {self.reason}"
        return (f"measured {self.measured_ms:.1f} ms (jitter {self.jitter_ms:.1f} ms, {self.bursts} bursts, "
                f"SNR {self.snr_db:.0f} dB); estimated {self.estimated_ms:.1f} ms")


@dataclass(frozen=True)
class EngineStats:
    """A snapshot; all times in milliseconds."""

    running: bool
    blocks: int
    block_ms: float
    compute_ms_p50: float
    compute_ms_p95: float
    compute_ms_p99: float
    compute_ms_last: float
    load: float  # p50 compute / block length; above 1 the engine cannot keep up
    overruns: int  # blocks whose compute exceeded the block length
    input_xruns: int  # device input overflows reported by PortAudio
    output_xruns: int  # device output underflows reported by PortAudio
    underflows: int  # times the output ring ran dry while playing (faded, heard as a gap)
    dropped_input: int  # input samples lost to a full input ring
    nonfinite_blocks: int  # blocks with NaN/inf replaced by silence
    algorithmic_latency_ms: float  # block + crossfade + search (+ converter look-ahead)
    latency_ms: float  # estimate from what is measured now (see Pipeline.estimate_ms)
    input_level_db: float
    output_level_db: float
    input_sr: int
    output_sr: int
    model_sr: int
    # Added with the timing work (all additive):
    state: str = "stopped"  # stopped, running, reconnecting
    waiting_for: str = ""  # the device(s) a reconnecting engine waits for
    skipped_input: int = 0  # input samples skipped because the worker was behind (device rate)
    trimmed_output: int = 0  # output samples cut from backlogs (main output)
    drift_ppm: float = 0.0  # main output clock vs input clock (+ = output faster)
    monitor_drift_ppm: float = 0.0
    monitor_underflows: int = 0
    monitor_trimmed: int = 0
    drift_corrections: int = 0  # samples dropped or repeated by the main output's corrector
    duplex: bool = False  # input and main output share one duplex stream (one clock)
    backlog_ms: float = 0.0  # output queue a new block joins (safety margin included)
    holdback_ms: float = 0.0  # resamplers' current hold-back (input → model, model → output)
    device_ms: float = 0.0  # input + output device delays, as the streams' callbacks report them
    measured_latency_ms: float = math.nan  # last `measure_latency()` (nan: none yet or invalid)
    measured_jitter_ms: float = math.nan
    # Added with the fault work (all additive):
    dropouts: int = 0  # stretches of audio lost: output underflows and device xruns (input overflow, output underflow)
    dropout_ms: float = 0.0  # silence heard in place of audio on the main output after underflows
    monitor_xruns: int = 0
    limiter_reduction_db: float = 0.0  # the output limiter's deepest gain reduction over the last second
    limiter_max_reduction_db: float = 0.0  # … since the start
    limiter_ms: float = 0.0  # the limiter's look-ahead (in latency_ms)


def make_stats(engine: Engine) -> EngineStats:
    p = engine.pipeline
    s = engine.settings
    block_ms = float(s.block_ms)
    m = engine._last_measure
    measured = m.measured_ms if m is not None and m.valid else math.nan
    jitter = m.jitter_ms if m is not None and m.valid else math.nan
    if p is None:
        return EngineStats(running=engine.running, blocks=0, block_ms=block_ms, compute_ms_p50=0.0,
                           compute_ms_p95=0.0, compute_ms_p99=0.0, compute_ms_last=0.0, load=0.0, overruns=0,
                           input_xruns=0, output_xruns=0, underflows=0, dropped_input=0, nonfinite_blocks=0,
                           algorithmic_latency_ms=float(s.algorithmic_latency_ms),
                           latency_ms=float(s.algorithmic_latency_ms + s.buffer_ms), input_level_db=-120.0,
                           output_level_db=-120.0, input_sr=0, output_sr=0, model_sr=0, state=engine.state,
                           measured_latency_ms=measured, measured_jitter_ms=jitter)
    p50, p95, p99 = p.percentiles()
    opened = engine._open
    fixed_in, fixed_out = reported_s(opened) if opened is not None and opened.streams else (0.0, 0.0)
    dev_in, dev_out = 1000.0 * engine.delays.input_s(fixed_in), 1000.0 * engine.delays.output_s(fixed_out)
    duplex = bool(opened is not None and opened.duplex)
    out, mon = p.out, p.mon
    return EngineStats(
        running=engine.running, blocks=p.blocks, block_ms=block_ms, compute_ms_p50=p50, compute_ms_p95=p95,
        compute_ms_p99=p99, compute_ms_last=p.last_ms, load=p50 / block_ms if block_ms else 0.0,
        overruns=p.overruns, input_xruns=p.input_xruns, output_xruns=engine._output_xruns,
        underflows=out.underflows, dropped_input=p.in_ring.overflows,
        nonfinite_blocks=p.proc.nonfinite + sum(port.limiter.state.silenced_blocks for port in p.ports),
        algorithmic_latency_ms=p.proc.algorithmic_latency_ms, latency_ms=p.estimate_ms(dev_in, dev_out),
        input_level_db=p.in_db, output_level_db=p.out_db, input_sr=p.sr_in, output_sr=p.sr_out,
        model_sr=p.proc.output_sr, state=engine.state, waiting_for=engine._waiting_for,
        skipped_input=p.skipped, trimmed_output=out.trimmed, drift_ppm=out.books.ppm,
        monitor_drift_ppm=mon.books.ppm if mon is not None else 0.0,
        monitor_underflows=mon.underflows if mon is not None else 0,
        monitor_trimmed=mon.trimmed if mon is not None else 0, drift_corrections=out.drift.corrections,
        duplex=duplex,
        backlog_ms=1000.0 * out.backlog / out.sr,
        holdback_ms=1000.0 * (p.to_conv.holdback_s + out.from_model.holdback_s), device_ms=dev_in + dev_out,
        measured_latency_ms=measured, measured_jitter_ms=jitter,
        dropouts=out.underflows + p.input_xruns + engine._output_xruns, dropout_ms=out.gap_ms,
        monitor_xruns=mon.xruns if mon is not None else 0, limiter_reduction_db=out.gain_reduction_db,
        limiter_max_reduction_db=out.limiter.state.max_gain_reduction_db, limiter_ms=out.limiter_ms,
    )
