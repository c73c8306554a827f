"""The live engine: threads, commands between blocks, stats, device loss and return.

Who does what:

- PortAudio's callbacks only move samples: input into the `Pipeline`'s ring, output
  out of an `OutputPort` (ring → drift corrector → device), and wake the worker.
- The worker thread runs `Pipeline.step` (resample, skip stale input, convert,
  emit) and, between two blocks, the commands: settings, adapters, a new voice, the
  latency probe. When a device vanishes it closes the streams, keeps the voice
  loaded and waits in the `reconnecting` state, asking a subprocess every
  `RETRY_S` whether the device is back, then reopens the same devices.
- The caller's thread loads models (`VoiceSource.prepare`) and warms every path the
  settings can take before any stream opens, and reads `stats` / `drain_events`.

Drivers other than devices (files, simulated clocks) use `attach` + `pump` and the
pipeline's `on_input` / port `read` calls, the same path the callbacks take.
"""

from __future__ import annotations

import gc
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .block_processor import BlockProcessor
from .device_delay import DeviceDelay
from .drift import DriftConfig
from .engine_types import EVENT_KINDS, EngineEvent, EngineStats, LatencyMeasurement, make_stats
from .file_driver import convert_file
from .latency_probing import LatencyProbing
from .pipeline import FRESH_BLOCKS, BlockRecorder, Pipeline
from .reconnect import DeviceWatch
from .settings import EngineSettings
from .streams import EngineDevices, OpenStreams, open_streams, stream_latency
from .voice_source import VoiceSource


class Engine(DeviceWatch, LatencyProbing):
    """Real-time voice conversion between audio devices (or files, same code path).

    >>> engine = Engine(source, EngineSettings(pitch=12), EngineDevices(input="mic", output="rvclora"))
    >>> engine.start(); engine.update(pitch=7); print(engine.stats); engine.stop()
    """

    def __init__(self, voice_source: VoiceSource, settings: EngineSettings | None = None,
                 devices: EngineDevices | None = None, *, drift: DriftConfig = DriftConfig()) -> None:
        self.source = voice_source
        self._settings = settings or EngineSettings()
        voice_source.check_settings(self._settings)
        self.devices = devices or EngineDevices()
        self.drift_config = drift
        self.events: queue.Queue[EngineEvent] = queue.Queue()
        self._commands: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()  # start/stop only
        self._stop_flag = threading.Event()
        self._wake = threading.Event()
        self._block_done = threading.Event()  # the worker converted and now idles (background preparation's cue)
        self._worker: threading.Thread | None = None
        self._proc: BlockProcessor | None = None
        self.pipeline: Pipeline | None = None
        self._open: OpenStreams | None = None
        self._running = False
        self._state = "stopped"
        self._waiting_for = ""
        self._failure: str | None = None
        self._output_xruns = 0
        self._last_output = time.monotonic()
        self._warned_quiet = False
        self._lost: str | None = None
        self._last_measure: LatencyMeasurement | None = None
        self.recorder: BlockRecorder | None = None  # a session recording (`session_recorder.use_recorder`)
        self.delays = DeviceDelay()  # the devices' own delays, from the callbacks' time info

    # -- public ----------------------------------------------------------------------------

    @property
    def settings(self) -> EngineSettings:
        return self._settings

    @property
    def running(self) -> bool:
        return self._running

    @property
    def state(self) -> str:
        """stopped, running or reconnecting."""
        return self._state

    def start(self) -> None:
        """Load and warm every model the settings can use, then open the devices and convert.
        Device problems raise DeviceError (one line, with the reason)."""
        with self._lock:
            if self._running:
                return
            proc = self._prepared_processor(self.source, self._settings)
            self._stop_flag.clear()
            self._failure = None
            opened = self._open_streams()
            self._proc = proc
            self.pipeline = Pipeline(proc, sr_in=opened.sr_in, sr_out=opened.sr_out, sr_mon=opened.sr_mon,
                                     drift=self.drift_config)
            self.pipeline.between_blocks = self._apply_commands
            self.pipeline.recorder = self.recorder
            self._open = opened
            self.delays.clear()
            self._launch(threaded=True)
            self._start_streams(opened)
        names = f"{opened.input.name} → {opened.output.name}" + (f" (+ monitor {opened.monitor.name})" if opened.monitor else "")
        kind = "one duplex stream" if opened.duplex else "separate streams, drift-corrected"
        self._post("started", f"{self.source.name}: {names}, {opened.sr_in}/{opened.sr_out} Hz, {kind}")

    def attach(self, sr_in: int, sr_out: int = 0, sr_mon: int = 0, *, threaded: bool = True,
               clock: Callable[[], float] = time.monotonic) -> Pipeline:
        """Run on a driver of the caller's own (a file, simulated devices) instead of devices.
        The driver feeds `pipeline.on_input`, calls `wake()`, and reads `pipeline.out.read`;
        with `threaded=False` it also calls `pump()` itself."""
        with self._lock:
            if self._running:
                raise RuntimeError("the engine is already running")
            proc = self._prepared_processor(self.source, self._settings)
            self._stop_flag.clear()
            self._failure = None
            self._proc = proc
            self.pipeline = Pipeline(proc, sr_in=sr_in, sr_out=sr_out or proc.output_sr, sr_mon=sr_mon,
                                     drift=self.drift_config, clock=clock)
            self.pipeline.between_blocks = self._apply_commands
            self.pipeline.recorder = self.recorder
            self._launch(threaded=threaded)
            return self.pipeline

    def stop(self) -> None:
        """Stop converting and close the devices; safe to call twice or after an error."""
        with self._lock:
            self._stop_flag.set()
            self._wake.set()
            worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=10)
        self._worker = None
        if self._running:  # never threaded (pump-driven): finish here
            self._finish()

    def wake(self) -> None:
        self._wake.set()

    def pump(self) -> bool:
        """One worker turn for drivers with `threaded=False`: commands, then the input there is."""
        self._apply_commands()
        worked = self.pipeline is not None and self.pipeline.step()
        self._say_silenced()
        return worked

    @property
    def idle(self) -> bool:
        """No input waiting and no block in progress (for drivers that wait for the end)."""
        p = self.pipeline
        return p is None or (p.in_ring.available == 0 and not self._busy)

    _busy = False

    def update(self, **changes: object) -> EngineSettings:
        """Change settings live (validated here, applied by the worker between two blocks). A pitch
        estimator not loaded yet is loaded in the background first; the old one plays meanwhile."""
        new = self._settings.replace(**changes)
        self.source.check_settings(new)
        self._settings = new
        if not self._running:
            if self._proc is not None:
                self._proc.update(new)
            return new
        if self.source.prepared(new):
            self._commands.put(("settings", new))
        else:
            source = self.source

            def load() -> None:
                try:
                    source.prepare(new)
                except Exception as e:  # noqa: BLE001 — a missing model file: say so, keep the old method running
                    self._post("warning", f"cannot load for {new.f0_method}: {str(e).splitlines()[0]}")
                    return
                self._commands.put(("settings", self._settings))
                self._wake.set()

            threading.Thread(target=load, name="rvclora-load", daemon=True).start()
        return new

    def set_adapters(self, adapters: Sequence[tuple[str | os.PathLike, float]], *, force: bool = False) -> None:
        """Hot-swap / re-weight LoRA adapters ([(file, weight)…]; empty = plain voice).

        Files are read and checked here (one-line AdapterError); the swap itself
        happens in the worker between two blocks, so the stream never stops."""
        loaded = self.source.load_adapters(adapters, force=force) if adapters else []
        if self._running:
            self._commands.put(("adapters", loaded))
        else:
            self.source.apply_adapters(loaded)

    def switch_voice(self, source: VoiceSource, *, warm: bool = True) -> None:
        """Play `source` from the next block on: prepared here (the old voice keeps converting
        meanwhile), swapped in by the worker between two blocks.

        While the worker runs, the warm-up goes one block at a time in the worker's idle
        time, each right after one of the worker's blocks: run flat out beside it, it would
        take the worker's CPU and starve the output. `warm=False` skips it, for a copy of the
        playing voice with other adapters: same shapes and code paths, already warm."""
        source.check_settings(self._settings)
        proc = self._prepared_processor(source, self._settings, warm=warm, pace=self._after_next_block)
        if self._running:
            self._commands.put(("voice", (source, proc)))
        else:
            self.source, self._proc = source, proc

    @property
    def stats(self) -> EngineStats:
        return make_stats(self)

    def drain_events(self) -> list[EngineEvent]:
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def process_file(self, in_path: str | os.PathLike, out_path: str | os.PathLike | None = None, *,
                     realtime: bool = False, out_sr: int | None = None) -> np.ndarray:
        """Convert a file through the live code path (see `file_driver.convert_file`)."""
        return convert_file(self, in_path, out_path, realtime=realtime, out_sr=out_sr)

    # -- setup -----------------------------------------------------------------------------

    def _prepared_processor(self, source: VoiceSource, settings: EngineSettings, *, warm: bool = True,
                            pace: Callable[[], None] | None = None) -> BlockProcessor:
        source.prepare(settings)
        proc = BlockProcessor(source, settings)
        if warm:
            try:
                proc.warm_up(pace=pace)
            except Exception as e:  # noqa: BLE001 — a broken model fails here, before any device opens: one line
                message = f"the voice failed while warming up: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                self._post("error", message.rstrip(": "))
                raise RuntimeError(message.rstrip(": ")) from None
        # A loaded voice or adapter copy allocates enough to start a full garbage-collector pass over
        # the models' ~240k objects: 100–350 ms holding the interpreter lock, in whichever thread allocates
        # next (often the worker): the output starved. Frozen, they stay out of every pass (their
        # cyclic garbage is never collected: a few dozen objects per base voice the pool drops).
        gc.freeze()
        return proc

    def _after_next_block(self) -> None:
        """Background work's turn: wait until the worker has converted what came in and idles.
        Returns at once without a worker thread or a clock to keep (a file fed ahead of real
        time), and after two blocks' time when the worker converts nothing (passthrough, a lost
        device, no input for a block's time)."""
        worker, p = self._worker, self.pipeline
        if worker is None or not worker.is_alive() or worker is threading.current_thread() or p is None or not p.skip_stale:
            return
        self._block_done.clear()
        period = self._settings.block_ms / 1000.0
        deadline = time.monotonic() + 2.0 * period
        while not self._block_done.wait(period) and worker.is_alive():
            converting = self._busy or (not p.proc.settings.passthrough and time.monotonic() - p.last_input < period)
            if not converting and time.monotonic() > deadline:
                return

    def _open_streams(self) -> OpenStreams:
        return open_streams(self.devices, on_input=self._on_input, on_output=self._on_output,
                            on_duplex=self._on_duplex, on_monitor=self._on_monitor, on_finished=self._on_finished)

    def _launch(self, *, threaded: bool) -> None:
        self._running = True
        self._state = "running"
        self._output_xruns = 0
        self._said_silenced = False
        self._last_output = time.monotonic()
        if threaded:
            self._worker = threading.Thread(target=self._work, name="rvclora-engine", daemon=True)
            self._worker.start()

    # -- callbacks: move data, note flags, nothing else --------------------------------------

    def _on_input(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        p = self.pipeline
        if status and status.input_overflow:
            p.input_xrun()
        self.delays.note_input(time_info)
        p.on_input(indata[:, 0])
        self._wake.set()

    def _on_output(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status and status.output_underflow:
            self._output_xruns += 1
            self.pipeline.out.books_lost()
        self.delays.note_output(time_info)
        self.pipeline.out.read(outdata[:, 0])
        self._last_output = time.monotonic()

    def _on_duplex(self, indata: np.ndarray, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        self._on_input(indata, frames, time_info, status)
        self._on_output(outdata, frames, time_info, status)

    def _on_monitor(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status and status.output_underflow:
            self.pipeline.mon.xruns += 1
            self.pipeline.mon.books_lost()
        self.pipeline.mon.read(outdata[:, 0])

    def _on_finished(self) -> None:
        if not self._stop_flag.is_set() and self._state == "running":
            self._lost = "an audio device stopped unexpectedly (unplugged or taken by another program?)"
            self._wake.set()

    # -- worker ----------------------------------------------------------------------------

    def _work(self) -> None:
        try:
            while not self._stop_flag.is_set():
                self._apply_commands()
                if self._lost is not None:
                    self._reconnect()
                    continue
                self._busy = True
                blocks = self.pipeline.blocks
                try:
                    worked = self.pipeline.step()
                finally:
                    self._busy = False
                if self.pipeline.blocks != blocks:
                    self._block_done.set()  # blocks done, the worker idles until more input: background's turn
                self._say_silenced()
                if not worked:
                    self._wake.wait(0.02)
                    self._wake.clear()
                self._watchdog()  # also when always busy: a worker behind on a loaded machine never idles
        except Exception as e:  # noqa: BLE001 — never let a worker exception kill the process silently
            self._fail(f"conversion failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": "))
        finally:
            self._finish()

    def _finish(self) -> None:
        self._running = False
        self._state = "stopped"
        if self._open is not None:
            self._open.close()
            self._open = None
        if self.recorder is not None:  # a recording ends with the engine, its file complete
            self.recorder.close()
            self.recorder = None
        self._post("stopped", self._failure or "stopped")

    def _apply_commands(self) -> None:
        p = self.pipeline
        while True:
            try:
                kind, value = self._commands.get_nowait()
            except queue.Empty:
                return
            if kind == "settings":
                reshaped = p.apply(value)
                p.fresh = FRESH_BLOCKS
                self._post("settings", "block shape changed, buffers rebuilt" if reshaped else "settings applied")
            elif kind == "adapters":
                t0 = time.perf_counter()
                self.source.apply_adapters(value)
                p.fresh = FRESH_BLOCKS
                names = ", ".join(f"{a.source}×{w:g}" for a, w in value) or "none"
                self._post("adapters", f"adapters: {names} ({1000 * (time.perf_counter() - t0):.0f} ms)")
            elif kind == "voice":
                source, proc = value
                proc.update(self._settings)
                proc.continue_from(p.proc)  # same rates: the seam goes through the old SOLA tail
                self.source, self._proc = source, proc
                p.swap_processor(proc)
                self._post("voice", f"voice: {source.name}")
            elif kind == "tap":
                p.tap = value
                p.proc.reset()
                for port in p.ports:  # the probe times the path, not the corrector's edits (≤ 4 ms/s)
                    port.drift.held = value is not None

    def _fail(self, message: str) -> None:
        if self._failure is None:
            self._failure = message
            self._post("error", message)
        self._stop_flag.set()
        self._wake.set()

    def _post(self, kind: str, message: str) -> None:
        self.events.put(EngineEvent(kind, message, time.monotonic()))


__all__ = ["Engine", "EngineDevices", "EngineEvent", "EngineStats", "EVENT_KINDS", "LatencyMeasurement",
           "stream_latency", "BlockProcessor"]
