"""The window's engine side: Start/Stop, restarts, the readout poll, and the "too heavy" watch.

A mixin of `MainWindow` (it uses the window's widgets and state); slow calls go to
the worker pool, the lifecycle is an `EngineState`, decisions about overload are
`OverloadWatch`'s.
"""

from __future__ import annotations

import time
from dataclasses import fields
from typing import Any

from . import engine_link
from .asset_jobs import needed_to_start, start_refusal
from .engine_link import EngineStats
from .panel_model import ASSETS, DEVICES, ENGINE, VOICE, EngineState
from .voice_list import display_name
from .workers import one_line


class EngineActions:
    @property
    def engine_state(self) -> EngineState:
        return self._engine_state

    def toggle_engine(self) -> None:
        if self._engine_state.active:
            self.stop_engine()
        elif self._engine_state == EngineState.STOPPED:
            self.start_engine()

    def start_engine(self) -> None:
        if self.voice is None:
            self.show_error("pick a voice first")
            return
        if self._listing_devices:
            self._start_after_listing = True
            self.show_message("Looking for audio devices\u2026")
            return
        # A voice that needs a missing file fails now, not after seconds of loading.
        missing = needed_to_start(self.home, builtin=self.voice.is_builtin, f0_method=self.settings.f0_method)
        if missing:
            self._restart_pending = False
            if self._engine_state != EngineState.STOPPED:
                self.stop_engine()
            self.show_error(start_refusal(missing), topic=ASSETS)
            return
        self._set_engine_state(EngineState.STARTING)
        self.show_message(f"Loading \u201c{display_name(self.voice)}\u201d\u2026", topic=ENGINE)
        voice, entry, settings, devices = self.voice, self.entry, self.settings, self.devices.choice()

        def start() -> str:
            spec = engine_link.voice_spec(voice, entry)
            self.link.start(spec, settings, devices)
            return f"\u201c{display_name(voice)}\u201d on {self.link.compute_label(spec)}"

        self.workers.submit(start, on_done=self._started, on_failed=self._start_failed)

    def _restart(self) -> None:
        if self._engine_state == EngineState.STARTING:
            self._restart_pending = True  # one more start once this one lands, with the newest choices
            return
        self.start_engine()

    def _started(self, name: str) -> None:
        """`name`: the voice and what it runs on, from the start job."""
        if self._restart_pending:
            self._restart_pending = False
            self.start_engine()
            return
        self._set_engine_state(EngineState.RUNNING)
        # Settings may have moved while the model loaded: send the newest ones.
        current = self.link.settings
        if current is not None and current != self.settings:
            changed = {
                f.name: getattr(self.settings, f.name)
                for f in fields(self.settings)
                if getattr(current, f.name) != getattr(self.settings, f.name)
            }
            try:
                self.link.update(**changed)
            except Exception as e:  # noqa: BLE001 — the engine refused the change: shown as one line, the panel stays up
                self.show_error(one_line(e))
        output = self.devices.choice().output or "the system's default output"
        self.show_message(f"Running: {name} \u2192 {output}", topic=ENGINE)

    def _start_failed(self, message: str) -> None:
        self._restart_pending = False
        self._set_engine_state(EngineState.STOPPED)
        self.show_error(message, topic=VOICE)

    def stop_engine(self) -> None:
        self._restart_pending = False
        self._set_engine_state(EngineState.STOPPING)
        self.workers.submit(self.link.stop, on_done=lambda _r: self._stopped(by_user=True), on_failed=self._stop_failed)

    def _stopped(self, message: str | None = None, *, by_user: bool = False) -> None:
        self._set_engine_state(EngineState.STOPPED)
        # After the user's own Stop, passing warnings of the run (a quiet input, say) are
        # over; errors still show. When the engine stopped by itself, its last word stays.
        if by_user and not message and self.status.is_error and not self._show_engine_messages(errors_only=True):
            self.show_message("Stopped.", topic=ENGINE)
            return
        self._show_engine_messages()
        if message:
            self.show_error(message, topic=DEVICES)
        elif not self.status.is_error:
            self.show_message("Stopped.", topic=ENGINE)

    def _stop_failed(self, message: str) -> None:
        self._stopped(message)

    def _set_engine_state(self, state: EngineState) -> None:
        self._engine_state = state
        self.start_button.setText(state.button_text)
        self.start_button.setEnabled(state != EngineState.STOPPING)
        stopped = state == EngineState.STOPPED
        self.devices.refresh_button.setEnabled(stopped)
        self.devices.virtual_mic_button.setEnabled(stopped)
        if state != EngineState.RUNNING:
            self.overload.reset()
            self._show_overload()
        if stopped:
            self._show_stats(None)

    def _poll_engine(self) -> None:
        if self._engine_state != EngineState.RUNNING:
            return
        self._show_engine_messages()
        if not self.link.running:
            # The engine stopped by itself (a device vanished, say): its event says why.
            self._stopped()
            return
        try:
            stats = self.link.stats()
        except Exception as e:  # noqa: BLE001 - a readout glitch must not take the panel down
            self.show_error(f"engine readout failed: {one_line(e)}")
            return
        if stats is not None:
            s = self.settings
            before = self.overload.current
            self.overload.observe(
                time.monotonic(), blocks=stats.blocks, overruns=stats.overruns, compute_p95_ms=stats.compute_p95_ms,
                block_ms=s.block_ms, fixed_ms=s.context_ms + s.crossfade_ms + s.search_ms,
            )
            if self.overload.current != before:
                self._show_overload()
        self._show_stats(stats)

    def _show_overload(self) -> None:
        self.transport.show_overload(self.overload.current)
        self._show_latency()

    def _show_engine_messages(self, *, errors_only: bool = False) -> bool:
        """Show the engine's pending messages; True when an error was among them."""
        error = False
        for message in self.link.drain_messages():
            if message.kind == "error":
                error = True
            if message.is_problem and (message.kind == "error" or not errors_only):
                self.show_error(message.text, topic=DEVICES)
            elif message.kind in ("adapters", "voice") and not errors_only:
                self.show_message(message.text[:1].upper() + message.text[1:], topic=ENGINE)
        return error

    def _show_stats(self, stats: EngineStats | None) -> None:
        keeps_up = self.overload.current is None
        self.transport.show_stats(stats, self.settings.block_ms, self.settings.algorithmic_latency_ms, delay_valid=keeps_up)
        self._show_latency(None if stats is None else stats.algorithmic_latency_ms)

    def measure_delay(self) -> None:
        """Time probe bursts through the running engine (the result also shows in the readout)."""
        self.transport.measure_button.setEnabled(False)
        self.show_message("Measuring the delay (about 3 s)\u2026", topic=ENGINE)

        def done(result: Any) -> None:
            self.transport.measure_button.setEnabled(self._engine_state == EngineState.RUNNING)
            if result.valid:
                self.show_message(f"Delay {result.summary()}", topic=ENGINE)
            else:
                self.show_error(
                    f"{result.summary()}; the output must reach the input (e.g. record the virtual microphone)",
                    topic=ENGINE,
                )

        self.workers.submit(self.link.measure_latency, on_done=done, on_failed=lambda m: self.show_error(m, topic=ENGINE))

    def apply_suggested_block(self, block_ms: int) -> None:
        """The overload notice's one-click fix: move the block slider (which applies it live)."""
        self.block.set_value(block_ms, emit=True)
        self.overload.reset()
        self._show_overload()
        self.show_message(f"Block length set to {block_ms} ms.", topic=ENGINE)
