"""A stand-in for the live engine whose compute time exceeds the block: a voice too heavy
for the computer, without a full-size model. Used by the panel tests and the screenshots."""

from __future__ import annotations

import time
from types import SimpleNamespace


class SlowEngine:
    """Converts one block per `compute_ms()`; every block that takes longer than it lasts is an overrun.

    Compute grows with the converted window (left context + crossfade + search + block), as
    with the real engine, so a long enough block keeps up. `COMPUTE_MS` is the time per block
    at the default settings (60 ms blocks).
    """

    COMPUTE_MS = 150.0

    def __init__(self, source, settings, devices):
        self.source, self.settings, self.devices = source, settings, devices
        self.running = False
        self.adapters = None
        self.events: list = []
        self._since, self._done, self._late = time.monotonic(), 0, 0

    def start(self):
        self.running = True
        self._since = time.monotonic()

    def stop(self):
        self.running = False

    def compute_ms(self) -> float:
        s = self.settings
        return self.COMPUTE_MS * (s.context_ms + s.crossfade_ms + s.search_ms + s.block_ms) / (1000 + 30 + 10 + 60)

    def _counts(self) -> tuple[int, int]:
        compute, block = self.compute_ms(), self.settings.block_ms
        new = int((time.monotonic() - self._since) * 1000 / max(compute, block))
        return self._done + new, self._late + (new if compute > block else 0)

    def update(self, **changes):
        self._done, self._late = self._counts()  # the counters carry on, at the new pace
        self._since = time.monotonic()
        self.settings = self.settings.replace(**changes)

    def set_adapters(self, adapters, force=False):
        self.adapters = list(adapters)

    def drain_events(self):
        events, self.events = self.events, []
        return events

    @property
    def stats(self):
        blocks, late = self._counts()
        compute = self.compute_ms()
        return SimpleNamespace(
            blocks=blocks, block_ms=self.settings.block_ms, compute_ms_last=compute, compute_ms_p50=compute,
            compute_ms_p95=compute, overruns=late, input_xruns=0, output_xruns=0, underflows=0,
            algorithmic_latency_ms=self.settings.algorithmic_latency_ms, latency_ms=self.settings.algorithmic_latency_ms + 40.0,
            input_level_db=-20.0, output_level_db=-14.0, skipped_input=0, trimmed_output=0, drift_ppm=0.0,
            measured_latency_ms=float("nan"), state="running", waiting_for="", input_sr=48000, output_sr=48000,
            dropouts=0, dropout_ms=0.0, limiter_reduction_db=0.0, nonfinite_blocks=0,
        )
