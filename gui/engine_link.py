"""The panel's one link to `rvclora.realtime`: engine, devices, virtual microphone, built-in voices.

Everything the panel needs from the live engine goes through this module, in the
panel's own small frozen types, so a change in the engine's API is fixed here and
nowhere else. The engine runs in its own process (`realtime.engine_process`): the
panel sends it voice specs and settings, and reads back stats and events; if that
process dies, the panel gets a one-line "error" message and can start again.

Slow calls (`EngineLink.start`, `stop`, `switch_voice`, `set_adapters`,
`list_devices`, `create_virtual_mic`) are plain blocking functions: the window runs
them on its worker pool, never on the UI thread. `update`, `stats` and
`drain_messages` are cheap and thread-safe, so the UI calls them directly.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sounddevice

from ..errors import EngineError, LibraryError
from ..library.voice_library import VoiceEntry
from ..realtime import devices, virtual_mic
from ..realtime.builtin_voices import BUILTIN_VOICES
from ..realtime.engine import EngineDevices
from ..realtime.engine_process import EngineProcess
from ..realtime.session_recorder import switch_recording
from ..realtime.settings import EngineSettings
from ..realtime.voice_pool import PoolConfig, VoiceSpec, load_voice
from ..synth.device import resolve_compute
from .voice_choice import VoiceChoice

# --------------------------------------------------------------------------- devices


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    hostapi: str
    inputs: int
    outputs: int
    samplerate: float
    virtual: str | None  # e.g. "VB-CABLE", "PulseAudio null sink"; None for real hardware
    pulse: str | None = None  # the PulseAudio sink/source behind the entry (Linux), e.g. "rvclora_sink"

    @property
    def label(self) -> str:
        """What the picker shows: virtual devices are marked so users find their Discord route."""
        return f"{self.name} (virtual)" if self.virtual else self.name


@dataclass(frozen=True)
class DeviceChoice:
    input: str | None = None  # device names; None = the system default
    output: str | None = None
    monitor: str | None = None  # None = no monitor


def list_devices() -> list[DeviceInfo]:
    """Every audio device, inputs and outputs together (slow: PortAudio rescans; run off the UI thread)."""
    _rescan_portaudio()
    return [
        DeviceInfo(
            name=d.name,
            hostapi=str(d.hostapi),
            inputs=int(d.max_input_channels),
            outputs=int(d.max_output_channels),
            samplerate=float(d.default_samplerate),
            virtual=d.virtual,
            pulse=d.pulse,
        )
        for d in devices.list_devices()
    ]


def _rescan_portaudio() -> None:
    # PortAudio lists devices once per initialisation; a new virtual sink or a plugged-in
    # headset shows up only after a re-init. Only safe while no stream is open.
    try:
        sounddevice._terminate()
        sounddevice._initialize()
    except Exception:  # noqa: BLE001 - a stale list is better than no list
        pass


def virtual_mic_supported() -> bool:
    return sys.platform.startswith("linux")


def create_virtual_mic() -> str:
    """Create (or find) the "rvclora" virtual microphone; returns the sink to send the voice to."""
    return virtual_mic.create_virtual_mic().sink


# --------------------------------------------------------------------------- voices


def builtin_voices() -> list[tuple[str, str]]:
    """(name, one-line description) of the built-in voices, in the engine's order."""
    return [(name, preset.description) for name, preset in BUILTIN_VOICES.items()]


def builtin_preset(name: str) -> tuple[float, float]:
    """The preset's own (pitch, formant); the panel's sliders add to these."""
    preset = BUILTIN_VOICES[name]
    return preset.pitch, preset.formant


def voice_spec(choice: VoiceChoice, entry: VoiceEntry | None) -> VoiceSpec:
    """What the engine should load for a choice (cheap: names files, reads none)."""
    if choice.is_builtin:
        return VoiceSpec(builtin=choice.name, name=choice.name)
    if entry is None or entry.runnable_model is None:
        raise LibraryError(f"voice '{choice.name}' has no model file; import a .pth or .onnx model for it")
    return VoiceSpec(
        model=str(entry.runnable_model),
        index=str(entry.index_path) if entry.index_path is not None else None,
        adapters=tuple((str(p), float(w)) for p, w in entry.active_adapters()),
        name=entry.name,
        force=entry.needs_force,
    )


# --------------------------------------------------------------------------- engine


@dataclass(frozen=True)
class EngineStats:
    """One snapshot for the readout, in the panel's terms."""

    blocks: int = 0
    compute_ms: float = 0.0  # the latest block's compute time (what the chart plots)
    compute_p50_ms: float = 0.0
    compute_p95_ms: float = 0.0
    budget_ms: float = 0.0  # the block length: compute must stay under it
    overruns: int = 0  # blocks whose compute exceeded the budget
    glitches: int = 0  # device over/underflows and gaps the listener may have heard
    algorithmic_latency_ms: float = 0.0  # block + crossfade + search (+ converter look-ahead)
    latency_ms: float = 0.0  # the engine's end-to-end estimate, device buffers included
    input_db: float | None = None
    output_db: float | None = None
    skipped_ms: float = 0.0  # input skipped because conversion fell behind (heard as a jump)
    trimmed_ms: float = 0.0  # output backlog cut (faded) to bring the delay back
    drift_ppm: float = 0.0  # output clock against the input's, as the drift corrector estimates it
    measured_latency_ms: float | None = None  # the last "Measure delay" result, when valid
    waiting_for: str = ""  # a lost device the engine waits for (reconnecting)
    dropouts: int = 0  # stretches of audio lost (output underflows, device xruns)
    dropout_ms: float = 0.0  # silence heard in place of audio after underflows
    limiter_db: float = 0.0  # the output limiter's gain reduction over the last second
    silenced_blocks: int = 0  # blocks with NaN/inf replaced by silence


@dataclass(frozen=True)
class EngineMessage:
    kind: str  # the engine's event kind: started, stopped, error, warning, settings, adapters
    text: str

    @property
    def is_problem(self) -> bool:
        return self.kind in ("error", "warning")


class EngineLink:
    """Owns at most one running engine. `start`/`stop`/`switch_voice` block (worker pool); the rest is cheap.

    By default the engine runs in a child process that outlives `stop` (its loaded
    voices stay warm) and ends with `close`. `engine_factory(source, settings,
    devices)` runs an engine in this process instead (tests, diagnostics): the link
    then loads the voice here and restarts it on a voice change."""

    def __init__(self, engine_factory: Callable[..., Any] | None = None, pool: PoolConfig | None = None) -> None:
        self._factory = engine_factory
        self._pool = pool
        self._lock = threading.Lock()  # start/stop come from pool threads; never two at once
        self._process: EngineProcess | None = None
        self._engine: Any = None
        self._devices = DeviceChoice()
        self._messages: list[EngineMessage] = []
        if engine_factory is None:
            # The child takes seconds to import torch and the engine: let it do so while the user picks a voice.
            self._process = EngineProcess(pool)
            self._process.prepare()

    @property
    def engine(self) -> Any:
        """The running engine (or the engine process's handle), for tests and diagnostics; None when stopped."""
        return self._engine

    @property
    def running(self) -> bool:
        engine = self._engine
        return engine is not None and bool(engine.running)

    @property
    def settings(self) -> EngineSettings | None:
        engine = self._engine
        return None if engine is None else engine.settings

    def start(self, spec: VoiceSpec, settings: EngineSettings, devices: DeviceChoice) -> None:
        with self._lock:
            self._stop_locked()
            self._devices = devices
            if self._factory is not None:
                engine = self._factory(load_voice(spec), settings, devices)
                engine.start()
                self._engine = engine
                return
            if self._process is None:
                self._process = EngineProcess(self._pool)
            self._process.start(spec, settings, _engine_devices(devices))
            self._engine = self._process

    def compute_label(self, spec: VoiceSpec) -> str:
        """What the voice runs on, as the engine will choose it: "CUDA fp16 (…)", "CPU fp32"."""
        if spec.builtin is not None:
            return "CPU (built-in voice)"
        pool = self._pool or PoolConfig()
        label = resolve_compute(pool.device, pool.precision)[1].label
        return f"{label}, ONNX Runtime" if pool.backend == "onnx" else label

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()

    def close(self) -> None:
        """Stop, and end the engine process (the window is closing)."""
        with self._lock:
            self._stop_locked()
            process, self._process = self._process, None
        if process is not None:
            process.close()
            self._messages.extend(EngineMessage(e.kind, e.message) for e in process.drain_events())

    def _stop_locked(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.stop()
            self._collect(engine)

    def switch_voice(self, spec: VoiceSpec) -> str:
        """Change the running voice without stopping the sound (run off the UI thread).

        Same base: the adapters are swapped at the next block ("adapters"); another base
        loads in the background while the current voice plays on ("loading"; a "voice"
        message says when it took over). Raises a one-line error for a bad adapter."""
        engine = self._engine
        if engine is None:
            raise EngineError("the engine is not running")
        if self._factory is not None:  # an in-process engine: restart it with the new voice
            self.start(spec, engine.settings, self._devices)
            return "restarted"
        return engine.switch_voice(spec)

    def update(self, **changes: Any) -> None:
        """Live settings change; raises a one-line ValueError on a value the voice cannot take."""
        engine = self._engine
        if engine is not None:
            engine.update(**changes)

    def set_adapters(self, adapters: Sequence[tuple[Path, float]], *, force: bool = False) -> None:
        """Hot-swap or re-weight the running voice's adapters (reads files: run off the UI thread)."""
        engine = self._engine
        if engine is not None:
            engine.set_adapters([(str(p), float(w)) for p, w in adapters], force=force)

    def measure_latency(self) -> Any:
        """Time probe bursts through the running engine's own path (≈3 s; off the UI thread).
        The output must reach the input (a loopback or the virtual microphone's monitor)."""
        engine = self._engine
        if engine is None:
            raise EngineError("start the voice first: the delay is measured through the running engine")
        return engine.measure_latency()

    def record(self, path: str | None) -> str:
        """Start (into `path`) or stop (None) recording the running engine; returns a line for the user."""
        engine = self._engine
        if isinstance(engine, EngineProcess):
            return engine.record(path)
        return switch_recording(engine, path)

    @property
    def engine_pid(self) -> int | None:
        """The engine process's id while one exists (None for in-process engines)."""
        return None if self._process is None else self._process.pid

    def stats(self) -> EngineStats | None:
        engine = self._engine
        raw = None if engine is None else engine.stats
        if raw is None:
            return None
        return EngineStats(
            blocks=int(raw.blocks),
            compute_ms=float(raw.compute_ms_last),
            compute_p50_ms=float(raw.compute_ms_p50),
            compute_p95_ms=float(raw.compute_ms_p95),
            budget_ms=float(raw.block_ms),
            overruns=int(raw.overruns),
            glitches=int(raw.input_xruns + raw.output_xruns + raw.underflows),
            algorithmic_latency_ms=float(raw.algorithmic_latency_ms),
            latency_ms=float(raw.latency_ms),
            input_db=float(raw.input_level_db),
            output_db=float(raw.output_level_db),
            skipped_ms=1000.0 * raw.skipped_input / max(raw.input_sr, 1),
            trimmed_ms=1000.0 * raw.trimmed_output / max(raw.output_sr, 1),
            drift_ppm=float(raw.drift_ppm),
            measured_latency_ms=None if math.isnan(raw.measured_latency_ms) else float(raw.measured_latency_ms),
            waiting_for=raw.waiting_for if raw.state == "reconnecting" else "",
            dropouts=int(raw.dropouts),
            dropout_ms=float(raw.dropout_ms),
            limiter_db=float(raw.limiter_reduction_db),
            silenced_blocks=int(raw.nonfinite_blocks),
        )

    def drain_messages(self) -> list[EngineMessage]:
        """What the engine reported since the last call (errors, device loss, applied changes)."""
        engine = self._engine
        if engine is not None:
            self._collect(engine)
        messages, self._messages = self._messages, []
        return messages

    def _collect(self, engine: Any) -> None:
        self._messages.extend(EngineMessage(e.kind, e.message) for e in engine.drain_events())


def _engine_devices(devices: DeviceChoice) -> EngineDevices:
    return EngineDevices(input=devices.input, output=devices.output, monitor=devices.monitor)
