"""The engine's end-to-end delay measurement: probe bursts through its own running path.

A part of `Engine` (a mixin, as `reconnect.DeviceWatch`): it uses the engine's pipeline,
command queue and worker wake-up, and its event list for the result.
"""

from __future__ import annotations

import time
from typing import Any

from ..errors import EngineError
from .engine_types import LatencyMeasurement
from .probe import LatencyProbe, measurement


class LatencyProbing:
    """Engine methods that measure the delay through the engine's own streams and rings."""

    pipeline: Any
    stats: Any
    _running: bool
    _state: str
    _commands: Any
    _wake: Any
    _last_measure: LatencyMeasurement | None

    def _post(self, kind: str, message: str) -> None:
        raise NotImplementedError

    def measure_latency(self, timeout: float = 10.0) -> LatencyMeasurement:
        """Play probe bursts through the running engine's own path and time their return.

        The output must reach the input (a loopback, or a virtual sink's monitor). Right
        after a start the output first settles (≈2–3 s: until then its ring holds whatever
        the start left, which is then brought to the level it keeps), so this waits for that
        (at most `timeout`) and measures the delay the engine keeps. The voice is off for
        the ~3 s the bursts take. Raises EngineError when the engine is not running.
        (`begin_latency_probe` / `end_latency_probe` are the same in two steps, for drivers
        that pump the engine themselves.)"""
        deadline = time.monotonic() + timeout
        while not self._output_settled() and time.monotonic() < deadline and self._running:
            time.sleep(0.02)
        probe = self.begin_latency_probe()
        deadline = time.monotonic() + timeout
        while not probe.done and time.monotonic() < deadline and self._running:
            time.sleep(0.02)
        return self.end_latency_probe(probe)

    def begin_latency_probe(self) -> LatencyProbe:
        p = self.pipeline
        if not self._running or p is None or self._state != "running":
            raise EngineError("start the engine first: latency is measured through the running engine")
        proc = p.proc
        probe = LatencyProbe(proc.input_sr, proc.output_sr, proc.block_in, proc.block_out)
        self._probe_start = self._disturbances()
        self._commands.put(("tap", probe))
        self._wake.set()
        return probe

    def end_latency_probe(self, probe: LatencyProbe) -> LatencyMeasurement:
        self._commands.put(("tap", None))
        proc = self.pipeline.proc
        m = measurement(probe, disturbed=self._disturbances() - self._probe_start,
                        lookahead_ms=proc.algorithmic_latency_ms - proc.settings.block_ms,
                        estimated_ms=self.stats.latency_ms)
        self._last_measure = m
        self._post("latency", m.summary())
        return m

    _probe_start = 0

    def _output_settled(self) -> bool:
        p = self.pipeline
        return p is not None and p.out.primed and p.out.drift.settled and not p.out.drift.closing_in

    def _disturbances(self) -> int:
        p = self.pipeline
        if p is None:
            return 0
        return p.skipped + sum(port.trimmed + port.underflows for port in p.ports)

