"""PulseAudio / PipeWire access: the one owner of talking to the sound server (through pulsectl).

- `nodes()` / `node_names()`: the server's sinks and sources (no server: [] / None);
- `stream_env(sink, source)`: the PULSE_SINK / PULSE_SOURCE environment libpulse reads
  while PortAudio opens a stream through ALSA's "pulse" plugin, set under one lock;
- `load_module` / `unload_module` / `modules`: for the virtual microphone;
- `StreamGuard`: keeps the engine's streams on the sinks the user chose.

Why a guard: when a sink vanishes (unplugged, module unloaded, the virtual mic
removed) the server moves every stream on it to the default sink, the user's
speakers, and the stream plays on there. The engine's playback on a Pulse sink is its
own unmovable stream (`pulse_playback`), which the server ends instead; the guard is
for what still goes through PortAudio (capture, and playback where libpulse cannot be
used). A stream cannot be opened unmovable through ALSA's pulse plugin, so the guard watches the server's stream events and mutes any
stream of this process that lands on another sink than the one it was opened on
(measured on the test server: about 10 ms after the move, before the default sink
rendered any of it), then tells its owner, which closes the streams and waits for
the device. The server's stream-restore database remembers a mute per application,
so a guard that muted a stream unmutes the streams it pins next.

pulsectl is imported where it is used: it loads libpulse, which Windows and macOS lack.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import AudioDeviceError

# os.environ is one per process: every stream opener that sets it takes this lock.
_ENV_LOCK = threading.Lock()


class PulseUnavailableError(AudioDeviceError):
    """No PulseAudio/PipeWire server answers (or libpulse / pulsectl is missing)."""


@dataclass(frozen=True)
class Node:
    kind: str  # "sink" or "source"
    name: str
    description: str
    driver: str  # e.g. module-null-sink.c, module-remap-source.c
    monitor_of: str | None
    rate: int  # the node's own sample rate


def connect(client: str = "rvclora") -> Any:
    """An open pulsectl.Pulse; raises PulseUnavailableError with a one-line reason."""
    try:
        import pulsectl  # noqa: PLC0415 (optional: loads libpulse)
    except (ImportError, OSError) as e:
        raise PulseUnavailableError(f"pulsectl/libpulse not available ({e})") from None
    try:
        return pulsectl.Pulse(client)
    except pulsectl.PulseError as e:
        raise PulseUnavailableError(f"no PulseAudio/PipeWire server answers ({e})") from None


def nodes() -> list[Node]:
    """Every sink and source (monitors included); [] without a server."""
    try:
        pulse = connect("rvclora-list")
    except PulseUnavailableError:
        return []
    with pulse:
        out = [Node("sink", s.name, s.description, s.driver or "", None, int(s.sample_spec.rate))
               for s in pulse.sink_list()]
        out += [Node("source", s.name, s.description, s.driver or "", s.monitor_of_sink_name or None,
                     int(s.sample_spec.rate)) for s in pulse.source_list()]
    return out


def node_names() -> set[str] | None:
    """Names of the sinks and sources now; None without a server."""
    try:
        pulse = connect("rvclora-list")
    except PulseUnavailableError:
        return None
    with pulse:
        return {s.name for s in pulse.sink_list()} | {s.name for s in pulse.source_list()}


def modules() -> list[tuple[int, str, str]]:
    """(index, module name, arguments) of the loaded modules; raises PulseUnavailableError."""
    with connect("rvclora-modules") as pulse:
        return [(int(m.index), m.name, m.argument or "") for m in pulse.module_list()]


def load_module(name: str, args: str) -> int:
    import pulsectl  # noqa: PLC0415 (optional, see connect)

    with connect("rvclora-modules") as pulse:
        try:
            return int(pulse.module_load(name, args))
        except pulsectl.PulseError as e:
            raise PulseUnavailableError(f"loading {name} failed ({e})") from None


def unload_module(index: int) -> None:
    import pulsectl  # noqa: PLC0415 (optional, see connect)

    with connect("rvclora-modules") as pulse:
        try:
            pulse.module_unload(index)
        except pulsectl.PulseError as e:
            raise PulseUnavailableError(f"unloading module {index} failed ({e})") from None


@contextlib.contextmanager
def locked_env(env: dict[str, str]) -> Iterator[dict[str, str]]:
    """Environment variables set, under one process-wide lock, for the duration of a block."""
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield env
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def stream_env(sink: str | None = None, source: str | None = None) -> contextlib.AbstractContextManager[dict[str, str]]:
    """PULSE_SINK / PULSE_SOURCE set while a stream opens (libpulse reads them then); restored after."""
    return locked_env({k: v for k, v in (("PULSE_SINK", sink), ("PULSE_SOURCE", source)) if v})


def own_streams() -> set[tuple[str, int]]:
    """("sink_input" | "source_output", index) of this process's streams now; empty without a server."""
    try:
        pulse = connect("rvclora-guard")
    except PulseUnavailableError:
        return set()
    with pulse:
        return _own(pulse)


def _own(pulse: Any) -> set[tuple[str, int]]:
    pid = str(os.getpid())
    found = {("sink_input", int(s.index)) for s in pulse.sink_input_list()
             if s.proplist.get("application.process.id") == pid}
    found |= {("source_output", int(s.index)) for s in pulse.source_output_list()
              if s.proplist.get("application.process.id") == pid}
    return found


class StreamGuard:
    """Keeps this process's streams (those not in `foreign`) where they were opened.

    Each stream found on one of `sinks` / `sources` is pinned there (streams elsewhere, e.g.
    on ALSA's "default" device, follow the default and are left alone). A pinned playback
    stream that the server moves is muted at once and reported, once, through
    `on_moved(message)` from the guard's thread; so is a pinned capture stream that moves,
    and a pinned sink/source that is missing when the guard starts."""

    def __init__(self, sinks: set[str], sources: set[str], foreign: set[tuple[str, int]],
                 on_moved: Callable[[str], None], *, unmute: bool = False) -> None:
        self.sinks, self.sources, self.foreign = set(sinks), set(sources), set(foreign)
        self.on_moved = on_moved
        self.pins: dict[tuple[str, int], tuple[int, str]] = {}  # stream → (sink/source index, name)
        self.muted = 0  # streams this guard muted
        self.error: str | None = None
        self._unmute = unmute
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rvclora-pulse-guard", daemon=True)

    def start(self, timeout: float = 5.0) -> StreamGuard:
        self._thread.start()
        self._ready.wait(timeout)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        import pulsectl  # noqa: PLC0415 (optional, see connect)

        try:
            pulse = connect("rvclora-guard")
        except PulseUnavailableError as e:
            self.error = str(e)
            self._ready.set()
            return
        events: list[Any] = []

        def queue(ev: Any) -> None:
            events.append(ev)
            raise pulsectl.PulseLoopStop  # handled outside the callback, where calls are allowed

        with pulse:
            try:
                pulse.event_mask_set("sink_input", "source_output")
                pulse.event_callback_set(queue)
                done = self._check(pulse, None)
                self._ready.set()
                while not self._stop.is_set() and not done:
                    pulse.event_listen(timeout=0.25)
                    while events and not done:
                        ev = events.pop(0)
                        if ev.t != "remove":  # (pulsectl's enum values compare equal to their names)
                            facility = "sink_input" if ev.facility == "sink_input" else "source_output"
                            done = self._check(pulse, (facility, int(ev.index)))
            except pulsectl.PulseError as e:  # the server went away: the streams end, the engine notices
                self.error = f"PulseAudio connection lost ({e})"
            finally:
                self._ready.set()

    def _check(self, pulse: Any, only: tuple[str, int] | None) -> bool:
        """Pin new streams of ours; mute and report a pinned one that moved. True once reported.
        The event path costs two round trips before the mute: the stream's info, then the mute."""
        import pulsectl  # noqa: PLC0415 (optional, see connect)

        if only is None:
            sinks = {s.name for s in pulse.sink_list()}
            sources = {s.name for s in pulse.source_list()}
            missing = (self.sinks - sinks) | (self.sources - sources)
            if missing:
                self.on_moved(f"{' / '.join(sorted(missing))} vanished")
                return True
            keys = sorted(_own(pulse) - self.foreign)
        else:
            keys = [only] if only not in self.foreign else []
        for key in keys:
            facility, index = key
            playback = facility == "sink_input"
            try:
                info = pulse.sink_input_info(index) if playback else pulse.source_output_info(index)
                where = int(info.sink if playback else info.source)
                pin = self.pins.get(key)
                if pin is not None:
                    if where == pin[0]:
                        continue
                    if playback:
                        pulse.sink_input_mute(index, True)
                        self.muted += 1
                    node = pulse.sink_info(where) if playback else pulse.source_info(where)
                    what = "output muted: the sound server moved it" if playback else "the sound server moved the input"
                    self.on_moved(f"{pin[1]} vanished ({what} to {node.name})")
                    return True
                if info.proplist.get("application.process.id") != str(os.getpid()):
                    continue
                node = pulse.sink_info(where) if playback else pulse.source_info(where)
                if node.name in (self.sinks if playback else self.sources):
                    self.pins[key] = (where, node.name)
                    if playback and self._unmute and info.mute:
                        pulse.sink_input_mute(index, False)  # a mute we left in the server's restore data
            except pulsectl.PulseIndexError:
                continue  # the stream (or its sink) ended meanwhile
        return False
