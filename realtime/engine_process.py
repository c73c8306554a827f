"""The live engine in a child process, and the parent's handle on it.

Why a process: the panel paints meters and charts in Python too, and would share
the worker's interpreter lock; and a native crash (audio driver, CUDA, out of
memory) in the engine must not take the panel down with it. The child owns the
devices, the voice pool and the engine; the parent holds an `EngineProcess`, which
has the engine's interface (start, stop, update, set_adapters, switch_voice,
stats, drain_events) and forwards everything.

Wire protocol (two one-way pipes of a `spawn` context):

- parent → child, commands: ``(id, name, args)``; the child replies to every command
  with ``("reply", id, ok, value)`` — value is the result or a one-line error;
- child → parent, reports: the replies, and ``("stats", EngineStats | None, settings, plus ``("events", [EngineEvent])`` at `REPORT_HZ`.

Only small frozen values cross: `VoiceSpec`, `EngineSettings`, `EngineDevices`,
`EngineStats`, `EngineEvent`. When the child dies (killed, crashed) the parent's
reader sees the pipe close, turns the exit status into a one-line "error" event and
fails whatever waited for a reply; the next `start` spawns a fresh child.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import EngineError
from ..synth.device import set_live_threads
from .engine import Engine, EngineDevices, EngineEvent, EngineStats
from .exit_reason import exit_reason
from .library_log import library_noise_to
from .session_recorder import switch_recording
from .settings import EngineSettings
from .voice_pool import PoolConfig, VoicePool, VoiceSpec, VoiceSwitcher

REPORT_HZ = 15
START_TIMEOUT_S = 600.0  # loading a large voice on a slow disk
COMMAND_TIMEOUT_S = 60.0


class EngineProcessError(EngineError):
    """The child is gone or refused a command; the message is one line for the user."""


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


# --------------------------------------------------------------------------- the child


@dataclass
class _Host:
    """The child's state: one pool (kept between runs), at most one engine."""

    pool: VoicePool
    engine: Engine | None = None
    switcher: VoiceSwitcher | None = None
    seq: int = 0  # the parent's latest settings update applied here
    run: int = 0  # which start the reports belong to
    pending: list = field(default_factory=list)  # events of a stopped engine, not yet reported
    lock: Any = field(default_factory=threading.Lock)  # `pending` is shared with the reporter thread

    def start(self, spec: VoiceSpec, settings: EngineSettings, devices: EngineDevices, run: int) -> tuple[str, EngineStats]:
        events = self.stop()
        with self.lock:
            self.pending.extend(events)
        self.run = run
        source = self.pool.source(spec)
        engine = Engine(source, settings, devices)
        engine.start()
        self.engine = engine
        self.switcher = VoiceSwitcher(self.pool, self._report, current=source)
        return source.name, engine.stats

    def stop(self) -> list[EngineEvent]:
        """Stop the engine; returns its events not yet reported (the parent's `stop` passes them on)."""
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.stop()
            with self.lock:
                self.pending.extend(engine.drain_events())
        return self.take_pending()

    def take_pending(self) -> list[EngineEvent]:
        with self.lock:
            events, self.pending = self.pending, []
        return events

    def update(self, seq: int, changes: dict[str, Any]) -> EngineSettings:
        self.seq = seq
        if self.engine is None:
            raise EngineProcessError("the engine is not running")
        try:
            return self.engine.update(**changes)
        except Exception as e:  # nobody waits for this answer: tell the user in an event
            self._report("warning", _one_line(e))
            raise

    def set_adapters(self, adapters: list[tuple[str, float]], force: bool) -> None:
        if self.engine is None or self.switcher is None:
            raise EngineProcessError("the engine is not running")
        self.switcher.set_adapters(self.engine, adapters, force)

    def switch_voice(self, spec: VoiceSpec) -> str:
        if self.engine is None or self.switcher is None:
            raise EngineProcessError("the engine is not running")
        return self.switcher.switch(self.engine, spec)

    def measure_latency(self, kwargs: dict[str, Any]) -> Any:
        if self.engine is None:
            raise EngineProcessError("the engine is not running")
        return self.engine.measure_latency(**kwargs)

    def _report(self, kind: str, message: str) -> None:
        if self.engine is not None:
            self.engine.events.put(EngineEvent(kind, message, time.monotonic()))


def _child_main(commands: Any, reports: Any, pool_config: PoolConfig) -> None:
    """Entry point of the engine process (a top-level function: `spawn` imports it)."""
    set_live_threads()  # the panel's engine: half the cores (torch's all-cores default starves a busy CPU)
    with library_noise_to():  # ALSA/PortAudio lines go to the log for the life of the process
        _serve(commands, reports, pool_config)


def _serve(commands: Any, reports: Any, pool_config: PoolConfig) -> None:
    send_lock = threading.Lock()
    host = _Host(VoicePool(pool_config))
    done = threading.Event()

    def send(message: tuple) -> bool:
        try:
            with send_lock:
                reports.send(message)
            return True
        except (OSError, EOFError, BrokenPipeError):
            done.set()  # the parent is gone: nothing left to report to
            return False

    def publish() -> None:
        while not done.wait(1.0 / REPORT_HZ):
            engine, run = host.engine, host.run
            events = host.take_pending()
            if engine is not None:
                events += engine.drain_events()
            stats = engine.stats if engine is not None else None
            settings = engine.settings if engine is not None else None
            if events and not send(("events", events)):
                return
            if not send(("stats", stats, settings, host.seq, run)):
                return

    reporter = threading.Thread(target=publish, name="rvclora-reports", daemon=True)
    reporter.start()
    handlers = {
        "start": host.start, "stop": host.stop, "update": host.update, "set_adapters": host.set_adapters,
        "switch_voice": host.switch_voice, "measure_latency": host.measure_latency,
        "record": lambda path: switch_recording(host.engine, path),
    }
    try:
        while not done.is_set():
            try:
                cid, name, args = commands.recv()
            except (EOFError, OSError):
                break  # the parent closed the pipe or died
            if name == "quit":
                send(("reply", cid, True, None))
                break
            try:
                value = handlers[name](*args)
                ok = True
            except Exception as e:  # noqa: BLE001 - every refusal goes back as one line
                value, ok = _one_line(e), False
            send(("reply", cid, ok, value))
    finally:
        host.stop()
        done.set()


# --------------------------------------------------------------------------- the parent's handle


class EngineProcess:
    """The engine in a child process, behind the engine's own interface.

    `start`, `stop`, `set_adapters` and `switch_voice` wait for the child's answer
    (call them off the UI thread); `update` validates here and sends without waiting;
    `stats`, `settings`, `running` and `drain_events` read what the child last
    reported. The child outlives `stop` (its voice pool stays warm); `close` ends it."""

    def __init__(self, pool: PoolConfig | None = None) -> None:
        self.pool = pool or PoolConfig()
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()  # child lifecycle and sends
        self._process: Any = None
        self._commands: Any = None
        self._reader: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, list] = {}  # id → [threading.Event, ok, value]
        self._events: list[EngineEvent] = []
        self._events_lock = threading.Lock()
        self._stats: EngineStats | None = None
        self._settings: EngineSettings | None = None
        self._seq = 0
        self._run = 0
        self._running = False

    # -- engine interface --------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    @property
    def settings(self) -> EngineSettings | None:
        return self._settings

    @property
    def stats(self) -> EngineStats | None:
        return self._stats

    @property
    def pid(self) -> int | None:
        process = self._process
        return None if process is None else process.pid

    def prepare(self) -> None:
        """Start the child now (it imports torch and the engine: seconds) so the first `start` is quick."""
        self._ensure_child()

    def start(self, spec: VoiceSpec, settings: EngineSettings, devices: EngineDevices) -> str:
        """Load the voice and open the devices in the child; returns the voice's name."""
        self._ensure_child()
        self._settings, self._stats = settings, None
        self._run += 1
        name, self._stats = self._call("start", spec, settings, devices, self._run, timeout=START_TIMEOUT_S)
        self._running = True
        return name

    def stop(self) -> None:
        if self._process is not None and self._process.is_alive():
            try:
                events = self._call("stop")
            except EngineProcessError:
                events = []  # it died meanwhile: stopped either way
            with self._events_lock:
                self._events.extend(events)
        self._running = False

    def update(self, **changes: Any) -> EngineSettings:
        """Validated here (one-line SettingsError); the child refuses what the voice cannot take with a warning."""
        current = self._settings or EngineSettings()
        new = current.replace(**changes)
        self._seq += 1
        self._settings = new
        if self._running:
            self._send("update", self._seq, changes)
        return new

    def set_adapters(self, adapters: list[tuple[str, float]], *, force: bool = False) -> None:
        self._call("set_adapters", [(str(p), float(w)) for p, w in adapters], force)

    def switch_voice(self, spec: VoiceSpec) -> str:
        """Same base: "adapters" (swapped at the next block); another base: "loading" (a "voice" event follows)."""
        return self._call("switch_voice", spec)

    def measure_latency(self, **kwargs: Any) -> Any:
        return self._call("measure_latency", kwargs, timeout=START_TIMEOUT_S)

    def record(self, path: str | None) -> str:
        return self._call("record", path)

    def drain_events(self) -> list[EngineEvent]:
        with self._events_lock:
            events, self._events = self._events, []
        return events

    def close(self, timeout: float = 5.0) -> None:
        """End the child (stopping its engine first)."""
        process = self._process
        if process is None:
            return
        if process.is_alive():
            with contextlib.suppress(EngineProcessError):
                self._call("quit", timeout=timeout)
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join(timeout)
        self._running = False

    # -- plumbing ------------------------------------------------------------------------

    def _ensure_child(self) -> None:
        reader = self._reader
        if reader is not None and self._process is not None and not self._process.is_alive():
            reader.join(5.0)  # let the dead child's reader finish reporting before a new one starts
        with self._lock:
            if self._process is not None and self._process.is_alive():
                return
            command_in, command_out = self._ctx.Pipe(duplex=False)  # (receiving end, sending end)
            report_in, report_out = self._ctx.Pipe(duplex=False)
            process = self._ctx.Process(
                target=_child_main, args=(command_in, report_out, self.pool), name="rvclora-engine", daemon=True
            )
            process.start()
            # The child's ends: only the child holds them now, so either side's death is an EOF for the other.
            command_in.close()
            report_out.close()
            self._process, self._commands = process, command_out
            self._reader = threading.Thread(
                target=self._read, args=(process, report_in), name="rvclora-engine-reader", daemon=True
            )
            self._reader.start()

    def _send(self, name: str, *args: Any, cid: int | None = None) -> int:
        cid = next(self._ids) if cid is None else cid
        with self._lock:
            if self._commands is None:
                raise EngineProcessError("the engine process is not running; press Start")
            try:
                self._commands.send((cid, name, args))
            except (OSError, EOFError, BrokenPipeError):
                raise EngineProcessError("the engine process has stopped; press Start") from None
        return cid

    def _call(self, name: str, *args: Any, timeout: float = COMMAND_TIMEOUT_S) -> Any:
        slot = [threading.Event(), False, None]
        cid = next(self._ids)
        self._waiting[cid] = slot
        try:
            self._send(name, *args, cid=cid)
            if not slot[0].wait(timeout):
                raise EngineProcessError(f"the engine process did not answer {name!r} within {timeout:.0f} s")
        finally:
            self._waiting.pop(cid, None)
        if not slot[1]:
            raise EngineProcessError(str(slot[2]))
        return slot[2]

    def _read(self, process: Any, reports: Any) -> None:
        while True:
            try:
                message = reports.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "reply":
                _, cid, ok, value = message
                slot = self._waiting.get(cid)
                if slot is not None:
                    slot[1], slot[2] = ok, value
                    slot[0].set()
            elif kind == "stats":
                _, stats, settings, seq, run = message
                if run != self._run:
                    continue  # from an earlier run
                self._stats = stats
                if settings is not None and seq == self._seq:
                    self._settings = settings  # the child's word, unless a newer update is on its way
                if stats is not None and not stats.running and self._running:
                    self._running = False  # the engine stopped by itself; its events say why
            elif kind == "events":
                with self._events_lock:
                    self._events.extend(message[1])
        self._child_gone(process)

    def _child_gone(self, process: Any) -> None:
        process.join(2.0)
        with self._lock:
            if self._process is not process:
                return  # an older child: a newer one already runs
            self._commands = None
        code = process.exitcode
        expected = code == 0
        if not expected:
            with self._events_lock:
                self._events.append(EngineEvent("error", exit_reason(code), time.monotonic()))
        self._running = False
        for slot in list(self._waiting.values()):
            slot[1], slot[2] = False, exit_reason(code)
            slot[0].set()


__all__ = ["EngineProcess", "EngineProcessError"]
