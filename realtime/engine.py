"""The live engine: input device → ring buffer → worker (resample, convert, SOLA) → ring buffer → output devices.

Threads and who does what:

- PortAudio's callbacks (one per stream) only move samples between the device and
  a ring buffer, note the stream's xrun flags and wake the worker. No model code, no
  locks, no allocation.
- The worker thread owns everything else: resampling the device rate to the
  converter's rate, the per-block chain (`BlockProcessor`: gate → gain → convert →
  SOLA → loudness → gain → finite check), resampling to each output device's rate,
  settings and adapter changes (applied between blocks), and the watchdog that turns
  a vanished device into an error event.
- The caller's thread starts, stops, updates and reads `stats` / `events`.

`process_file` drives the same rings, worker and chain from a file instead of
devices, either as fast as possible or paced like a device (`realtime=True`).

Output timing. The output stream starts playing once the first block exists, after
`buffer_ms` of silence: that margin absorbs compute jitter. When the ring runs dry
anyway (a block took longer than its budget) the callback plays silence, counts an
underflow, and the worker inserts the margin again before the next block, so one
late block costs one gap rather than a stream of crackles.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .block_converter import BlockConverter, VoiceSource, load_checked_adapters
from .settings import EngineSettings

EVENT_KINDS = ("started", "stopped", "error", "warning", "settings", "adapters", "voice")
_STATS_WINDOW = 512  # compute times kept for the percentiles
_WATCHDOG_S = 1.5  # no input callback for this long (and at least 4 blocks) = device gone


@dataclass(frozen=True)
class EngineDevices:
    """Which devices the engine opens. Specs are what `devices.find_device` accepts
    (an index, a name or part of one, or None for the system default)."""

    input: int | str | None = None
    output: int | str | None = None
    monitor: int | str | None = None  # a second output to hear yourself; None = none
    samplerate: int | None = None  # force one rate on every stream; None = each device's own
    latency: str | float = "auto"  # PortAudio's suggested latency: "auto", "low", "high" or seconds


def stream_latency(latency: str | float, hostapi: str) -> str | float:
    """`auto`: "high" on ALSA (incl. PulseAudio/PipeWire through it), "low" elsewhere.

    Through ALSA's pulse plugin, "low" (≈9 ms) starves capture whenever Pulse resamples
    (measured on the test server: a 48 kHz stream from a 44.1 kHz monitor got 2 % of its
    frames); "high" (≈21–35 ms there) was bit-exact and stable (research/lora-onnx-audio.md §C1).
    WASAPI, Core Audio and ASIO run fine at "low"."""
    if latency != "auto":
        return latency
    return "high" if "ALSA" in hostapi else "low"


@dataclass(frozen=True)
class EngineEvent:
    kind: str  # one of EVENT_KINDS
    message: str
    time: float  # time.monotonic()


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
    underflows: int  # times the output ring ran dry while playing (heard as a gap)
    dropped_input: int  # input samples lost because the worker fell behind
    nonfinite_blocks: int  # blocks with NaN/inf replaced by silence
    algorithmic_latency_ms: float  # block + crossfade + search (+ converter look-ahead)
    latency_ms: float  # estimate: algorithmic + buffer + resamplers + device buffers
    input_level_db: float
    output_level_db: float
    input_sr: int
    output_sr: int
    model_sr: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _db(x: np.ndarray) -> float:
    if x.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return max(20.0 * float(np.log10(rms + 1e-12)), -120.0)


def _gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


# --------------------------------------------------------------------------- the per-block chain


class BlockProcessor:
    """gate → input gain → convert → SOLA → loudness → output gain → finite check, one block at a time.

    No threads, no devices: the engine's worker and the benchmark both drive it.
    `process` takes `block_in` samples at `input_sr` and returns `block_out` at `output_sr`.
    """

    def __init__(self, source: VoiceSource, settings: EngineSettings, *, naive: bool = False) -> None:
        self.source = source
        self.naive = naive
        self.nonfinite = 0
        self.configure(settings)

    def configure(self, settings: EngineSettings) -> None:
        """(Re)build buffers for `settings`' block shape."""
        from .sola import SolaConfig, SolaCrossfader

        make = getattr(self.source, "make_converter")
        self.converter: BlockConverter = make(settings, naive=self.naive) if self.naive else make(settings)
        self.settings = settings
        c = self.converter
        self.input_sr, self.output_sr = c.input_sr, c.output_sr
        self.block_in = settings.block_ms * c.input_sr // 1000
        self.block_out = settings.block_ms * c.output_sr // 1000
        cf = settings.crossfade_ms * c.output_sr // 1000
        search = settings.search_ms * c.output_sr // 1000
        self._sola = SolaCrossfader(SolaConfig(crossfade=cf, search=search)) if c.uses_sola else None
        # The input span that matches the converter's output (block + crossfade + search), for rms_mix.
        tail = (settings.block_ms + settings.crossfade_ms + settings.search_ms) * c.input_sr // 1000
        self._history = np.zeros(max(tail, self.block_in), dtype=np.float32)
        self._block = np.zeros(self.block_in, dtype=np.float32)
        self._out = np.zeros(self.block_out, dtype=np.float32)
        from .gate import NoiseGate

        # Always present: it keeps its 30 ms of history even while off, so turning it on live has context.
        self._gate = NoiseGate(settings.threshold_db, c.input_sr // 100)

    def update(self, settings: EngineSettings) -> None:
        """Take new settings; rebuilds only when the block shape changes."""
        if self.settings.reshapes(settings):
            self.configure(settings)
        else:
            self.settings = settings
            self._gate.threshold_db = float(settings.threshold_db)

    def continue_from(self, old: BlockProcessor) -> None:
        """Take over a previous voice's stream state where the rates match (a live voice switch):
        the SOLA tail crossfades the seam; the gate, rms-mix and converter keep their input history."""
        if old.input_sr == self.input_sr and len(old._history) == len(self._history):
            self._history, self._gate = old._history, old._gate
        if self._sola is not None and old._sola is not None and old.output_sr == self.output_sr:
            if old._sola.config == self._sola.config:
                self._sola = old._sola
        self.converter.continue_from(old.converter)

    @property
    def algorithmic_latency_ms(self) -> float:
        s = self.settings
        ms = s.block_ms + (s.crossfade_ms + s.search_ms if self.converter.uses_sola else 0)
        return ms + 1000.0 * self.converter.latency_s

    def reset(self) -> None:
        self.converter.reset()
        if self._sola is not None:
            self._sola.reset()
        self._history[:] = 0.0

    def process(self, block: np.ndarray) -> np.ndarray:
        s = self.settings
        x = self._block
        np.copyto(x, block)
        if not np.isfinite(x).all():  # a broken driver or file: never feed NaN to a model
            np.nan_to_num(x, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        if s.input_gain_db:
            x *= _gain(s.input_gain_db)
        self._gate.apply(x)
        n = len(x)
        h = self._history
        h[: len(h) - n] = h[n:]  # numpy copes with the overlap
        h[len(h) - n :] = x
        out = self.converter.convert(x, s)
        if s.rms_mix_rate < 1.0:
            from .loudness import rms_mix

            # Input and output cover the same span (block + crossfade + search) at their own rates.
            span = len(h) if self.converter.uses_sola else n
            out = rms_mix(h[len(h) - span :], out, s.rms_mix_rate, self.output_sr // 100)
        if self._sola is not None:
            out = self._sola.process(out, self.block_out, out=self._out)
        if s.output_gain_db:
            out = out * _gain(s.output_gain_db)
        if not np.isfinite(out).all():
            self.nonfinite += 1
            if self._sola is not None:
                self._sola.reset()  # its saved tail may hold the NaNs too
            return np.zeros(self.block_out, dtype=np.float32)
        return np.asarray(out, dtype=np.float32)[: self.block_out]


# --------------------------------------------------------------------------- the engine


class Engine:
    """Real-time voice conversion between audio devices (or files, same code path).

    >>> engine = Engine(source, EngineSettings(pitch=12), EngineDevices(input="mic", output="rvclora"))
    >>> engine.start(); engine.update(pitch=7); print(engine.stats); engine.stop()
    """

    def __init__(
        self,
        voice_source: VoiceSource,
        settings: EngineSettings | None = None,
        devices: EngineDevices | None = None,
    ) -> None:
        self.source = voice_source
        self._settings = settings or EngineSettings()
        voice_source.check_settings(self._settings)
        self.devices = devices or EngineDevices()
        self.events: queue.Queue[EngineEvent] = queue.Queue()
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()  # start/stop only
        self._running = False
        self._worker: threading.Thread | None = None
        self._proc: BlockProcessor | None = None
        self._streams: list[Any] = []
        self._reset_counters()

    # -- public ----------------------------------------------------------------------------

    @property
    def settings(self) -> EngineSettings:
        return self._settings

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        """Open the devices and start converting. Device problems raise DeviceError (one line)."""
        with self._lock:
            if self._running:
                return
            self._open_devices_and_run()

    def stop(self) -> None:
        """Stop converting and close the devices; safe to call twice or after an error."""
        with self._lock:
            self._stop_flag.set()
            worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=10)
        self._worker = None

    def update(self, **changes: object) -> EngineSettings:
        """Change settings live (validated here, applied by the worker between two blocks)."""
        new = self._settings.replace(**changes)
        self.source.check_settings(new)
        self._settings = new
        if self._running:
            self._commands.put(("settings", new))
        elif self._proc is not None:
            self._proc.update(new)
        return new

    def set_adapters(self, adapters: Sequence[tuple[str | os.PathLike, float]], *, force: bool = False) -> None:
        """Hot-swap / re-weight LoRA adapters ([(file, weight)…]; empty = plain voice).

        Files are read and checked here (one-line AdapterError); the swap itself
        happens in the worker between two blocks, so the stream never stops."""
        loaded = load_checked_adapters(self.source, adapters, force=force) if adapters else []  # type: ignore[arg-type]
        if self._running:
            self._commands.put(("adapters", loaded))
        else:
            self.source.apply_adapters(loaded)  # type: ignore[attr-defined]

    def switch_voice(self, source: VoiceSource) -> None:
        """Change the voice live: the worker swaps it in between two blocks, streams left open,
        carrying the input history over and crossfading the seam. Load and warm `source`
        before calling (`voice_pool.VoiceSwitcher` does): the worker only swaps."""
        source.check_settings(self._settings)
        if self._running:
            self._commands.put(("voice", source))
        else:
            self.source, self._proc = source, None

    @property
    def stats(self) -> EngineStats:
        proc = self._proc
        n = min(self._blocks, _STATS_WINDOW)
        times = self._compute_ms[:n]
        p50, p95, p99 = (float(np.percentile(times, q)) for q in (50, 95, 99)) if n else (0.0, 0.0, 0.0)
        block_ms = float(self._settings.block_ms)
        algo = proc.algorithmic_latency_ms if proc is not None else float(self._settings.algorithmic_latency_ms)
        return EngineStats(
            running=self._running,
            blocks=self._blocks,
            block_ms=block_ms,
            compute_ms_p50=p50,
            compute_ms_p95=p95,
            compute_ms_p99=p99,
            compute_ms_last=self._last_ms,
            load=p50 / block_ms if block_ms else 0.0,
            overruns=self._overruns,
            input_xruns=self._input_xruns,
            output_xruns=self._output_xruns,
            underflows=self._underflows,
            dropped_input=self._in_ring.overflows if self._in_ring is not None else 0,
            nonfinite_blocks=proc.nonfinite if proc is not None else 0,
            algorithmic_latency_ms=algo,
            latency_ms=algo + self._extra_latency_ms,
            input_level_db=self._in_db,
            output_level_db=self._out_db,
            input_sr=self._sr_in,
            output_sr=self._sr_out,
            model_sr=proc.output_sr if proc is not None else 0,
        )

    def drain_events(self) -> list[EngineEvent]:
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def process_file(
        self,
        in_path: str | os.PathLike,
        out_path: str | os.PathLike | None = None,
        *,
        realtime: bool = False,
        out_sr: int | None = None,
    ) -> np.ndarray:
        """Convert a file through the live code path (rings, worker, SOLA); returns the output.

        Fast mode (default) feeds the file as fast as the worker converts and aligns the
        result with the input (the output's content lag of crossfade + search, the
        safety buffer and the resamplers' delay are removed). `realtime=True` paces
        input and output like devices, underflows and all, and returns what a device
        would have played (not aligned)."""
        from ..synth.audio_io import read_audio, to_mono, write_audio

        audio, sr = read_audio(in_path)
        audio = to_mono(audio)
        with self._lock:
            if self._running:
                raise RuntimeError("the engine is already running")
            driver = _FileDriver(self, audio, sr, realtime=realtime)
            self._run(sr_in=sr, sr_out=out_sr or 0, sr_mon=0, streams=[driver])
        try:
            result = driver.run()
        finally:
            self.stop()
        if self._failure:
            raise RuntimeError(self._failure)
        if out_path is not None:
            write_audio(out_path, result, self._sr_out)
        return result

    # -- setup -----------------------------------------------------------------------------

    def _reset_counters(self) -> None:
        self._stop_flag = threading.Event()
        self._wake = threading.Event()
        self._blocks = 0
        self._compute_ms = np.zeros(_STATS_WINDOW, dtype=np.float64)
        self._last_ms = 0.0
        self._overruns = 0
        self._input_xruns = 0
        self._output_xruns = 0
        self._underflows = 0
        self._in_db = self._out_db = -120.0
        self._sr_in = self._sr_out = self._sr_mon = 0
        self._extra_latency_ms = 0.0
        self._in_ring = self._out_ring = self._mon_ring = None
        self._failure: str | None = None
        self._busy = False
        self._last_input = time.monotonic()
        self._starved = True  # the output needs its safety margin before the first block
        self._mon_starved = True
        self._out_primed = False
        self._mon_primed = False
        self._drop_out = 0
        self._warned_quiet = False

    def _open_devices_and_run(self) -> None:
        from .devices import DeviceError, find_device, pulse_env

        d = self.devices
        inp = find_device(d.input, "input")
        out = find_device(d.output, "output")
        mon = find_device(d.monitor, "output") if d.monitor is not None else None
        sr_in = int(d.samplerate or inp.default_samplerate)
        sr_out = int(d.samplerate or out.default_samplerate)
        sr_mon = int(d.samplerate or mon.default_samplerate) if mon is not None else 0
        import sounddevice as sd

        plan = [(sd.InputStream, inp, "input", sr_in, self._on_input), (sd.OutputStream, out, "output", sr_out, self._on_output)]
        if mon is not None:
            plan.append((sd.OutputStream, mon, "output", sr_mon, self._on_monitor))
        streams: list[Any] = []
        try:
            for cls, dev, kind, sr, callback in plan:
                # Pulse sinks/sources are reached through ALSA "pulse": libpulse reads the
                # target from the environment while the stream opens.
                with pulse_env(dev, kind):
                    streams.append(
                        cls(device=dev.index, samplerate=sr, channels=1, dtype="float32",
                            latency=stream_latency(d.latency, dev.hostapi),
                            callback=callback, finished_callback=self._on_stream_finished)
                    )
        except (sd.PortAudioError, ValueError) as e:
            for s in streams:
                s.close()
            raise DeviceError(f"cannot open audio device {dev.name!r}: {str(e).splitlines()[0]}") from None
        device_ms = 1000.0 * (streams[0].latency + streams[1].latency)
        self._run(sr_in=sr_in, sr_out=sr_out, sr_mon=sr_mon, streams=streams, device_ms=device_ms)
        names = f"{inp.name} → {out.name}" + (f" (+ monitor {mon.name})" if mon is not None else "")
        self._post("started", f"{self.source.name}: {names}, {sr_in}/{sr_out} Hz")

    def _run(self, *, sr_in: int, sr_out: int, sr_mon: int, streams: list[Any], device_ms: float = 0.0) -> None:
        """Build rings, resamplers and the chain, start the worker and the streams (or file driver)."""
        from .resample import StreamResampler
        from .ring_buffer import RingBuffer

        self._reset_counters()
        s = self._settings
        proc = BlockProcessor(self.source, s)
        self._proc = proc
        sr_out = sr_out or proc.output_sr
        self._sr_in, self._sr_out, self._sr_mon = sr_in, sr_out, sr_mon
        # Rings hold 2 s: far more than any block, so only a stalled worker can fill them.
        self._in_ring = RingBuffer(2 * sr_in)
        self._out_ring = RingBuffer(2 * sr_out)
        self._mon_ring = RingBuffer(2 * sr_mon) if sr_mon else None
        self._stage = RingBuffer(2 * proc.input_sr + 2 * proc.block_in)  # input at the converter's rate
        self._in_chunk = np.zeros(self._in_ring.capacity, dtype=np.float32)
        self._block_buf = np.zeros(proc.block_in, dtype=np.float32)
        self._scratch = np.zeros(self._out_ring.capacity, dtype=np.float32)
        self._to_conv = StreamResampler(sr_in, proc.input_sr)
        self._to_out = StreamResampler(proc.output_sr, sr_out)
        self._to_mon = StreamResampler(proc.output_sr, sr_mon) if sr_mon else None
        self._pass_out = StreamResampler(sr_in, sr_out)
        self._pass_mon = StreamResampler(sr_in, sr_mon) if sr_mon else None
        self._was_passthrough = s.passthrough
        self._device_ms = device_ms
        self._set_extra_latency()
        self._streams = streams
        self._running = True
        self._last_input = time.monotonic()
        self._worker = threading.Thread(target=self._work, name="rvclora-engine", daemon=True)
        self._worker.start()
        for stream in streams:
            stream.start()

    def _set_extra_latency(self) -> None:
        # Beyond the algorithmic latency: the safety buffer, the resamplers' worst-case
        # hold-back (seconds) and the devices' own buffers.
        self._extra_latency_ms = (
            self._settings.buffer_ms
            + 1000.0 * (self._to_conv.delay + self._to_out.delay)
            + self._device_ms
        )

    # -- callbacks: move data, note flags, nothing else --------------------------------------

    def _on_input(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status and status.input_overflow:
            self._input_xruns += 1
        self._in_ring.write(indata[:, 0] if indata.ndim == 2 else indata)
        self._last_input = time.monotonic()
        self._wake.set()

    def _on_output(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status and status.output_underflow:
            self._output_xruns += 1
        self._play(self._out_ring, outdata, "_out_primed", "_starved")
        if self._drop_out:  # clock drift between input and output devices: skip the excess
            n = min(self._drop_out, self._out_ring.available, len(self._scratch))
            self._out_ring.read_into(self._scratch[:n])
            self._drop_out = 0

    def _on_monitor(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        self._play(self._mon_ring, outdata, "_mon_primed", "_mon_starved", count=False)

    def _play(self, ring: Any, outdata: np.ndarray, primed: str, starved: str, count: bool = True) -> None:
        out = outdata[:, 0] if outdata.ndim == 2 else outdata
        if not getattr(self, primed):
            # Silent until the first block and its safety margin are in the ring.
            if ring.available < len(out):
                out.fill(0.0)
                return
            setattr(self, primed, True)
        got = ring.read_into(out)
        if got < len(out):
            out[got:] = 0.0
            if count:
                self._underflows += 1
            setattr(self, starved, True)
            setattr(self, primed, False)
        if outdata.ndim == 2 and outdata.shape[1] > 1:
            outdata[:, 1:] = outdata[:, :1]

    def _on_stream_finished(self) -> None:
        if not self._stop_flag.is_set():
            self._fail("an audio device stopped unexpectedly (unplugged or taken by another program?)")

    # -- worker ----------------------------------------------------------------------------

    def _work(self) -> None:
        try:
            while not self._stop_flag.is_set():
                self._apply_commands()
                if not self._step():
                    self._wake.wait(0.02)
                    self._wake.clear()
                    self._watchdog()
        except Exception as e:  # never let a worker exception kill the process silently
            self._fail(f"conversion failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": "))
        finally:
            self._running = False
            for stream in self._streams:
                try:
                    stream.stop()
                    stream.close()
                except Exception:  # a vanished device may refuse to close; it is gone either way
                    pass
            self._streams = []
            self._post("stopped", self._failure or "stopped")

    def _apply_commands(self) -> None:
        while True:
            try:
                kind, value = self._commands.get_nowait()
            except queue.Empty:
                return
            if kind == "settings":
                reshaped = self._proc.settings.reshapes(value)
                self._proc.update(value)
                if reshaped:
                    self._stage.clear()
                    self._block_buf = np.zeros(self._proc.block_in, dtype=np.float32)
                    self._set_extra_latency()
                self._post("settings", "block shape changed, buffers rebuilt" if reshaped else "settings applied")
            elif kind == "adapters":
                t0 = time.perf_counter()
                self.source.apply_adapters(value)  # type: ignore[attr-defined]
                names = ", ".join(f"{a.source}×{w:g}" for a, w in value) or "none"
                self._post("adapters", f"adapters: {names} ({1000 * (time.perf_counter() - t0):.0f} ms)")
            elif kind == "voice":
                self._swap_voice(value)

    def _swap_voice(self, source: VoiceSource) -> None:
        t0 = time.perf_counter()
        if source is not self.source:
            from .resample import StreamResampler
            from .ring_buffer import RingBuffer

            old = self._proc
            proc = BlockProcessor(source, self._settings)
            proc.continue_from(old)  # same rates: the seam goes through the old SOLA tail
            if proc.input_sr != old.input_sr:
                self._to_conv = StreamResampler(self._sr_in, proc.input_sr)
                self._stage = RingBuffer(2 * proc.input_sr + 2 * proc.block_in)
            if proc.output_sr != old.output_sr:
                self._to_out = StreamResampler(proc.output_sr, self._sr_out)
                self._to_mon = StreamResampler(proc.output_sr, self._sr_mon) if self._sr_mon else None
            self._block_buf = np.zeros(proc.block_in, dtype=np.float32)
            self._proc, self.source = proc, source
            self._set_extra_latency()
        self._post("voice", f"voice: {source.name} (switched in {1000 * (time.perf_counter() - t0):.0f} ms)")

    def _step(self) -> bool:
        """Convert whatever input has arrived; False when there was nothing to do."""
        self._busy = True
        try:
            n = self._in_ring.available
            if n == 0:
                return False
            chunk = self._in_chunk[:n]
            n = self._in_ring.read_into(chunk)
            chunk = chunk[:n]
            s = self._settings
            if s.passthrough != self._was_passthrough:
                self._was_passthrough = s.passthrough
                self._proc.reset()
            if s.passthrough:
                self._in_db = _db(chunk)
                self._emit(self._pass_out.process(chunk * _gain(s.input_gain_db + s.output_gain_db)),
                           self._pass_mon.process(chunk * _gain(s.input_gain_db + s.monitor_gain_db)) if self._pass_mon else None)
                return True
            self._stage.write(self._to_conv.process(chunk))
            proc = self._proc
            block = self._block_buf
            while self._stage.available >= proc.block_in:
                self._stage.read_into(block)
                t0 = time.perf_counter()
                out = proc.process(block)
                ms = 1000.0 * (time.perf_counter() - t0)
                self._compute_ms[self._blocks % _STATS_WINDOW] = ms
                self._last_ms = ms
                self._blocks += 1
                if ms > proc.settings.block_ms:
                    self._overruns += 1
                self._in_db, self._out_db = _db(block), _db(out)
                mon = None
                if self._to_mon is not None:
                    mon = self._to_mon.process(out * _gain(s.monitor_gain_db - s.output_gain_db))
                self._emit(self._to_out.process(out), mon)
            return True
        finally:
            self._busy = False

    def _emit(self, out: np.ndarray, mon: np.ndarray | None) -> None:
        pad_out = self._settings.buffer_ms * self._sr_out // 1000
        if self._starved:
            self._starved = False
            self._out_ring.write(np.zeros(pad_out, dtype=np.float32))
        self._out_ring.write(out)
        # Clock drift: if the output falls far behind, ask its callback to skip ahead.
        limit = pad_out + 3 * self._settings.block_ms * self._sr_out // 1000
        if self._out_ring.available > limit + len(out):
            self._drop_out = self._out_ring.available - limit
        if mon is not None and self._mon_ring is not None:
            if self._mon_starved:
                self._mon_starved = False
                self._mon_ring.write(np.zeros(self._settings.buffer_ms * self._sr_mon // 1000, dtype=np.float32))
            self._mon_ring.write(mon)

    def _watchdog(self) -> None:
        # A vanished device normally ends its stream (finished_callback → error). Some
        # drivers just go quiet instead, and an idle virtual source (a null sink's
        # monitor) legitimately delivers nothing: so silence from the input is a warning
        # once, and the stream stops only if PortAudio says it is no longer active.
        if not self._streams or isinstance(self._streams[0], _FileDriver):
            return
        quiet = time.monotonic() - self._last_input
        if quiet > max(_WATCHDOG_S, 4 * self._settings.block_ms / 1000):
            if not self._streams[0].active:
                self._fail(f"the input device stopped (no audio for {quiet:.1f} s; unplugged?)")
            elif not self._warned_quiet:
                self._warned_quiet = True
                self._post("warning", f"no audio from the input device for {quiet:.1f} s")
        else:
            self._warned_quiet = False

    def _fail(self, message: str) -> None:
        if self._failure is None:
            self._failure = message
            self._post("error", message)
        self._stop_flag.set()
        self._wake.set()

    def _post(self, kind: str, message: str) -> None:
        self.events.put(EngineEvent(kind, message, time.monotonic()))


# --------------------------------------------------------------------------- file driver


class _FileDriver:
    """Plays a file into the engine's input callback and records its output, like a device pair."""

    def __init__(self, engine: Engine, audio: np.ndarray, sr: int, *, realtime: bool) -> None:
        self.engine = engine
        self.audio = np.asarray(audio, dtype=np.float32)
        self.sr = sr
        self.realtime = realtime
        self.chunk = max(sr // 100, 1)  # 10 ms "device period"
        self.latency = 0.0

    def start(self) -> None:  # the engine starts its streams; this one runs in the caller's thread
        pass

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass

    def run(self) -> np.ndarray:
        e = self.engine
        proc = e._proc
        s = e.settings
        sr_out = e._sr_out
        # Enough trailing silence to push the last input sample out of every buffer.
        flush_ms = s.block_ms * 2 + s.crossfade_ms + s.search_ms + s.buffer_ms + 1000.0 * proc.converter.latency_s + 50
        tail = np.zeros(int(self.sr * flush_ms / 1000) + self.chunk, dtype=np.float32)
        signal = np.concatenate([self.audio, tail])
        out = self._run_realtime(signal, sr_out) if self.realtime else self._run_fast(signal, sr_out)
        if self.realtime:
            return out[: int(round(len(self.audio) * sr_out / self.sr))]
        # Align: the output lags the input's content by crossfade + search (the SOLA
        # look-ahead), plus the safety buffer and the resamplers' delays.
        lag_ms = (s.crossfade_ms + s.search_ms if proc.converter.uses_sola else 0) + s.buffer_ms
        lag_ms += 1000.0 * proc.converter.latency_s
        # (soxr's streams are time-aligned: they hold samples back but add no lag.)
        lag = int(round(lag_ms * sr_out / 1000))
        n = int(round(len(self.audio) * sr_out / self.sr))
        out = out[lag : lag + n]
        return np.pad(out, (0, n - len(out)))

    def _run_fast(self, signal: np.ndarray, sr_out: int) -> np.ndarray:
        e = self.engine
        pieces: list[np.ndarray] = []
        buf = np.zeros(e._out_ring.capacity, dtype=np.float32)

        def drain() -> None:
            k = e._out_ring.available
            if k:
                got = e._out_ring.read_into(buf[:k])
                pieces.append(buf[:got].copy())

        pos = 0
        while pos < len(signal) and not e._stop_flag.is_set():
            piece = signal[pos : pos + self.chunk]
            if e._in_ring.space >= len(piece):
                e._on_input(piece[:, None], len(piece), None, None)
                pos += len(piece)
            else:
                time.sleep(0.0005)
            drain()
        # Wait for the worker to finish what it has.
        while not e._stop_flag.is_set() and (e._in_ring.available or e._busy):
            time.sleep(0.001)
            drain()
        drain()
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)

    def _run_realtime(self, signal: np.ndarray, sr_out: int) -> np.ndarray:
        e = self.engine
        period = self.chunk / self.sr
        out_chunk = max(int(round(period * sr_out)), 1)
        n_periods = -(-len(signal) // self.chunk)
        out = np.zeros(n_periods * out_chunk, dtype=np.float32)
        t0 = time.perf_counter()
        for k in range(n_periods):
            if e._stop_flag.is_set():
                break
            piece = signal[k * self.chunk : (k + 1) * self.chunk]
            e._on_input(piece[:, None], len(piece), None, None)
            e._on_output(out[k * out_chunk : (k + 1) * out_chunk, None], out_chunk, None, None)
            delay = t0 + (k + 1) * period - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        return out


__all__ = ["BlockProcessor", "Engine", "EngineDevices", "EngineEvent", "EngineStats", "EVENT_KINDS"]

