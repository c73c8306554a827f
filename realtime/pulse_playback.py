"""The engine's playback stream on a PulseAudio/PipeWire sink, pinned there: it ends, never moves.

Through ALSA's "pulse" plugin (PortAudio's only way to Pulse) a stream can be moved by
the server: when its sink goes (unplugged, module unloaded, the virtual mic removed)
the server moves it to the default sink, the user's speakers, and they play our voice
until someone notices. This stream talks to libpulse directly (see `libpulse`) and
connects with `PA_STREAM_DONT_MOVE`: the server then kills it instead of moving it
(pipewire-pulse honours the flag too), so nothing of ours ever reaches another sink.
Its owner hears of it through `on_gone(message)` and reconnects.

It looks like a sounddevice.OutputStream to the engine: `start`/`stop`/`close`, `active`,
`latency`, and a callback `(outdata[frames, 1], frames, time_info, status)` run on
libpulse's mainloop thread. Requests are cut into fixed periods of `minreq` frames (the
output port sizes its margin from the largest period it is asked for), and each call's
`time_info.outputBufferDacTime - currentTime` is the server's own latency for the
first sample of it (`pa_stream_get_latency`), as PortAudio reports its devices' delay.

The server asks for data every `minreq` (≤ 5 ms) with `PA_STREAM_EARLY_REQUESTS`, which
also sets the sink's own latency to `minreq`, while the stream keeps its whole target
buffer against a late callback. With `PA_STREAM_ADJUST_LATENCY` instead the server gives
the sink (tlength − 2·minreq)/2: 12.5 ms at a 50 ms target, and a null sink (the virtual
mic) then renders, and hands its monitor, 17 ms at once. Measured through a null sink's
monitor, that made the input arrive in bursts whose device times do not line up, the
engine's delay estimate 10–15 ms above the delay measured, and the delay the engine
settles at differ by up to 16 ms from one start to the next.

On a null sink (`heard_at_render`) the time info leaves the sink's own latency out: a
null sink plays nowhere, and its monitor, the only way it is heard, gets each piece when
the sink renders it, the sink's latency before it would "play".
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import AudioDeviceError
from . import libpulse as pa

OPEN_TIMEOUT_S = 5.0  # a server that does not answer (paused, wedged) within this is refused
# The server-side buffer for sounddevice's latency names; "auto" is what PortAudio's ALSA "pulse"
# device reported at its default (34.5 ms on a null sink).
_TARGET_S = {"low": 0.02, "auto": 0.035, "high": 0.05}
_PERIODS = 4  # a target buffer is topped up in at least this many requests…
_MAX_PERIOD_S = 0.005  # …each at most this long (it is the sink's latency too: see the module docstring)


class PulsePlaybackError(AudioDeviceError):
    """The sink refused the stream (its reason is libpulse's: "No such entity", "Access denied"...)."""


def target_seconds(latency: str | float) -> float:
    """The server-side buffer (tlength) for an engine latency setting ("low"/"high"/"auto"/seconds)."""
    if isinstance(latency, str):
        return _TARGET_S.get(latency, _TARGET_S["auto"])
    return min(max(float(latency), 0.005), 2.0)


@dataclass(frozen=True)
class TimeInfo:
    """What PortAudio's callbacks get, in time.monotonic() seconds."""

    currentTime: float  # noqa: N815 (PortAudio's field names)
    outputBufferDacTime: float  # noqa: N815
    inputBufferAdcTime: float = 0.0  # noqa: N815


@dataclass(frozen=True)
class Status:
    output_underflow: bool = False

    def __bool__(self) -> bool:
        return self.output_underflow


class PulsePlayback:
    """A mono float32 playback stream on Pulse sink `sink`, opened (corked) on construction.

    Raises PulsePlaybackError if the sink refuses, pa.LibpulseMissing without libpulse, and
    AudioDeviceError (PulseUnavailable) when no server answers."""

    def __init__(self, sink: str, samplerate: int, callback: Callable[..., None], *,
                 latency: str | float = "auto", finished_callback: Callable[[], None] | None = None,
                 name: str = "rvclora output", heard_at_render: bool = False) -> None:
        self.sink, self.samplerate = sink, int(samplerate)
        self.heard_at_render = heard_at_render  # a null sink: heard from its monitor (module docstring)
        self.callback, self.finished_callback = callback, finished_callback
        self.on_gone: Callable[[str], None] | None = None  # set by the owner: the sink vanished
        self.gone = False
        self.underflows = 0
        self._pending_underflow = False
        self._started = False
        self._closing = False
        target = int(round(target_seconds(latency) * self.samplerate))
        self.period = max(32, min(target // _PERIODS, int(_MAX_PERIOD_S * self.samplerate)))
        self._reported = target / self.samplerate
        self._last_latency: float | None = None
        self._buf = np.zeros((4 * self.period, 1), np.float32)
        self._lib = pa.load()
        self._held = pa.load_held()
        lib = self._lib
        # Keep the callback objects alive as long as libpulse may call them (the state one serves
        # the context and the stream).
        self._cbs = (pa.STATE_CB(self._on_state), pa.REQUEST_CB(self._on_write), pa.NOTIFY_CB(self._on_underflow))
        self._loop = lib.pa_threaded_mainloop_new()
        self._ctx = self._stream = None
        if not self._loop:
            raise AudioDeviceError("libpulse could not create its mainloop")
        try:
            self._connect(name, target)
        except BaseException:
            self.close()
            raise

    # -- opening -------------------------------------------------------------------------

    def _connect(self, name: str, target: int) -> None:
        lib, loop = self._lib, self._loop
        lib.pa_threaded_mainloop_start(loop)
        lib.pa_threaded_mainloop_lock(loop)
        try:
            self._ctx = lib.pa_context_new(lib.pa_threaded_mainloop_get_api(loop), b"rvclora")
            lib.pa_context_set_state_callback(self._ctx, self._cbs[0], None)
            if lib.pa_context_connect(self._ctx, None, 0, None) < 0:
                raise self._error(AudioDeviceError, "no PulseAudio/PipeWire server answers")
        finally:
            lib.pa_threaded_mainloop_unlock(loop)
        self._wait(lambda: lib.pa_context_get_state(self._ctx), pa.CONTEXT_READY,
                   (pa.CONTEXT_FAILED, pa.CONTEXT_TERMINATED), AudioDeviceError, "no PulseAudio/PipeWire server answers")
        spec = pa.SampleSpec(pa.SAMPLE_FLOAT32LE, self.samplerate, 1)
        period_bytes = 4 * self.period
        # maxlength/prebuf/fragsize -1: the server's defaults (prebuf = tlength - minreq: playback
        # waits until the buffer is nearly full again after an underflow).
        attr = pa.BufferAttr(0xFFFFFFFF, 4 * target, 0xFFFFFFFF, period_bytes, 0xFFFFFFFF)
        flags = (pa.DONT_MOVE | pa.EARLY_REQUESTS | pa.AUTO_TIMING_UPDATE | pa.INTERPOLATE_TIMING
                 | pa.START_CORKED)
        lib.pa_threaded_mainloop_lock(loop)
        try:
            self._stream = lib.pa_stream_new(self._ctx, name.encode(), ctypes.byref(spec), None)
            if not self._stream:
                raise self._error(PulsePlaybackError, f"cannot open {self.sink!r}")
            lib.pa_stream_set_state_callback(self._stream, self._cbs[0], None)
            lib.pa_stream_set_write_callback(self._stream, self._cbs[1], None)
            lib.pa_stream_set_underflow_callback(self._stream, self._cbs[2], None)
            if lib.pa_stream_connect_playback(self._stream, self.sink.encode(), ctypes.byref(attr), flags,
                                              None, None) < 0:
                raise self._error(PulsePlaybackError, f"cannot open {self.sink!r}")
        finally:
            lib.pa_threaded_mainloop_unlock(loop)
        self._wait(lambda: lib.pa_stream_get_state(self._stream), pa.STREAM_READY,
                   (pa.STREAM_FAILED, pa.STREAM_TERMINATED), PulsePlaybackError, f"cannot open {self.sink!r}")

    def _wait(self, state: Callable[[], int], ready: int, failed: tuple[int, ...], error: type[Exception],
              what: str) -> None:
        """Poll (not pa_threaded_mainloop_wait: that has no timeout) until `ready` or a failure."""
        lib, loop = self._lib, self._loop
        deadline = time.monotonic() + OPEN_TIMEOUT_S
        while True:
            lib.pa_threaded_mainloop_lock(loop)
            try:
                now = state()
                if now == ready:
                    return
                if now in failed:
                    raise self._error(error, what)
            finally:
                lib.pa_threaded_mainloop_unlock(loop)
            if time.monotonic() > deadline:
                raise error(f"{what}: the sound server did not answer within {OPEN_TIMEOUT_S:.0f} s")
            time.sleep(0.005)

    def _error(self, cls: type[Exception], what: str) -> Exception:
        code = self._lib.pa_context_errno(self._ctx) if self._ctx else 0
        return cls(f"{what}: {pa.strerror(self._lib, code)}")

    # -- the mainloop thread's callbacks (libpulse holds the mainloop lock) -------------------

    def _on_state(self, _obj: Any, _userdata: Any) -> None:
        if self._closing or self._stream is None or self.gone:
            return
        failed = self._lib.pa_stream_get_state(self._stream) in (pa.STREAM_FAILED, pa.STREAM_TERMINATED)
        failed = failed or self._lib.pa_context_get_state(self._ctx) in (pa.CONTEXT_FAILED, pa.CONTEXT_TERMINATED)
        if not failed:
            return
        # Killed by the server (its sink went; DONT_MOVE forbids the move) or the server itself went.
        if self.on_gone is not None:
            self.on_gone(f"output device {self.sink!r} is gone")
        elif self.finished_callback is not None:
            self.finished_callback()
        self.gone = True  # after telling: `active` turning False first would be reported as a vaguer loss

    def _on_underflow(self, _stream: Any, _userdata: Any) -> None:
        if self._started:
            self.underflows += 1
            self._pending_underflow = True

    def _on_write(self, stream: Any, nbytes: int, _userdata: Any) -> None:
        """Fill the request in periods, then hand it to the server in one write. The calls into
        libpulse here go through `pa.load_held()`: they keep the interpreter lock, which a busy worker
        could otherwise hold for a switch interval (5 ms) each time it is given back."""
        frames = int(nbytes) // 4
        if frames <= 0 or self.gone or self._closing:
            return
        if len(self._buf) < frames:
            self._buf = np.zeros((frames, 1), np.float32)
        buf = self._buf[:frames]
        if not self._started:
            buf.fill(0.0)  # opened, not started: the server fills its buffer with silence
        else:
            lat = self._server_latency(stream)
            done = 0
            while done < frames:
                n = min(frames - done, self.period)
                now = time.monotonic()
                # The first sample of this period plays after what the server holds plus what is queued here.
                info = TimeInfo(now, now + lat + done / self.samplerate if lat is not None else 0.0)
                status = Status(self._pending_underflow)
                self._pending_underflow = False
                out = buf[done:done + n]
                try:
                    self.callback(out, n, info, status)
                except Exception:  # noqa: BLE001 — a callback error must not end the mainloop thread
                    out.fill(0.0)
                done += n
        self._held.pa_stream_write(stream, buf.ctypes.data, 4 * frames, None, 0, pa.SEEK_RELATIVE)

    def _server_latency(self, stream: Any) -> float | None:
        usec, negative = ctypes.c_uint64(0), ctypes.c_int(0)
        if self._held.pa_stream_get_latency(stream, ctypes.byref(usec), ctypes.byref(negative)) < 0:
            return None  # no timing information yet
        latency = 0.0 if negative.value else usec.value / 1e6
        if self.heard_at_render:
            timing = self._held.pa_stream_get_timing_info(stream)
            if timing:
                latency = max(latency - timing.contents.sink_usec / 1e6, 0.0)
        self._last_latency = latency
        return latency

    # -- what sounddevice's streams offer ------------------------------------------------------

    @property
    def latency(self) -> float:
        """Seconds until a sample written now is heard: the server's last figure, else the target buffer."""
        return self._last_latency if self._last_latency is not None else self._reported

    @property
    def active(self) -> bool:
        return self._started and not self.gone and not self._closing

    def start(self) -> None:
        self._cork(False)
        self._started = True

    def stop(self) -> None:
        self._started = False
        self._cork(True)

    def _cork(self, cork: bool) -> None:
        if self._stream is None or self.gone:
            return
        lib = self._lib
        lib.pa_threaded_mainloop_lock(self._loop)
        try:
            op = lib.pa_stream_cork(self._stream, int(cork), None, None)
            if op:
                lib.pa_operation_unref(op)
        finally:
            lib.pa_threaded_mainloop_unlock(self._loop)

    def close(self) -> None:
        """Disconnect and free everything; safe to call twice and after the stream was killed."""
        if self._loop is None:
            return
        lib, loop = self._lib, self._loop
        self._closing, self._started = True, False
        lib.pa_threaded_mainloop_lock(loop)
        try:
            if self._stream:
                lib.pa_stream_disconnect(self._stream)
                lib.pa_stream_unref(self._stream)
            if self._ctx:
                lib.pa_context_disconnect(self._ctx)
                lib.pa_context_unref(self._ctx)
        finally:
            lib.pa_threaded_mainloop_unlock(loop)
        self._stream = self._ctx = None
        lib.pa_threaded_mainloop_stop(loop)
        lib.pa_threaded_mainloop_free(loop)
        self._loop = None
