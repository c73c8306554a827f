"""A small ctypes binding to libpulse's asynchronous API: the calls a playback stream needs.

Hand-written because no kept Python package opens a PulseAudio playback stream with
stream flags: pulsectl is control-only (introspection, modules, volumes), and the
`pasimple` / `pulseaudio` wrappers of the simple API cannot pass `PA_STREAM_DONT_MOVE`,
the flag that makes the server end a stream instead of moving it to another sink.

`load()` returns the library with argument and result types declared, or raises
`LibpulseMissing` where there is none (Windows, macOS, a Linux without libpulse).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

from ..errors import AudioDeviceError

# enum pa_context_state / pa_stream_state
CONTEXT_READY, CONTEXT_FAILED, CONTEXT_TERMINATED = 4, 5, 6
STREAM_READY, STREAM_FAILED, STREAM_TERMINATED = 2, 3, 4
SAMPLE_FLOAT32LE = 5
SEEK_RELATIVE = 0

# enum pa_stream_flags
START_CORKED = 0x0001
INTERPOLATE_TIMING = 0x0002
AUTO_TIMING_UPDATE = 0x0008
DONT_MOVE = 0x0200
EARLY_REQUESTS = 0x4000


class LibpulseMissing(AudioDeviceError):
    """libpulse.so.0 cannot be loaded on this system."""


class SampleSpec(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("rate", ctypes.c_uint32), ("channels", ctypes.c_uint8)]


class BufferAttr(ctypes.Structure):
    _fields_ = [("maxlength", ctypes.c_uint32), ("tlength", ctypes.c_uint32), ("prebuf", ctypes.c_uint32),
                ("minreq", ctypes.c_uint32), ("fragsize", ctypes.c_uint32)]


class TimingInfo(ctypes.Structure):
    """pa_timing_info (a struct timeval first, then the server's figures)."""

    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long), ("synchronized_clocks", ctypes.c_int),
                ("sink_usec", ctypes.c_uint64), ("source_usec", ctypes.c_uint64), ("transport_usec", ctypes.c_uint64),
                ("playing", ctypes.c_int), ("write_index_corrupt", ctypes.c_int), ("write_index", ctypes.c_int64),
                ("read_index_corrupt", ctypes.c_int), ("read_index", ctypes.c_int64),
                ("configured_sink_usec", ctypes.c_uint64), ("configured_source_usec", ctypes.c_uint64),
                ("since_underrun", ctypes.c_int64)]


VOIDP = ctypes.c_void_p
STATE_CB = ctypes.CFUNCTYPE(None, VOIDP, VOIDP)  # (context or stream, userdata)
REQUEST_CB = ctypes.CFUNCTYPE(None, VOIDP, ctypes.c_size_t, VOIDP)  # (stream, nbytes, userdata)
NOTIFY_CB = ctypes.CFUNCTYPE(None, VOIDP, VOIDP)  # (stream, userdata)

_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "pa_threaded_mainloop_new": (VOIDP, []),
    "pa_threaded_mainloop_start": (ctypes.c_int, [VOIDP]),
    "pa_threaded_mainloop_stop": (None, [VOIDP]),
    "pa_threaded_mainloop_free": (None, [VOIDP]),
    "pa_threaded_mainloop_lock": (None, [VOIDP]),
    "pa_threaded_mainloop_unlock": (None, [VOIDP]),
    "pa_threaded_mainloop_get_api": (VOIDP, [VOIDP]),
    "pa_context_new": (VOIDP, [VOIDP, ctypes.c_char_p]),
    "pa_context_set_state_callback": (None, [VOIDP, STATE_CB, VOIDP]),
    "pa_context_connect": (ctypes.c_int, [VOIDP, ctypes.c_char_p, ctypes.c_int, VOIDP]),
    "pa_context_get_state": (ctypes.c_int, [VOIDP]),
    "pa_context_errno": (ctypes.c_int, [VOIDP]),
    "pa_context_disconnect": (None, [VOIDP]),
    "pa_context_unref": (None, [VOIDP]),
    "pa_strerror": (ctypes.c_char_p, [ctypes.c_int]),
    "pa_stream_new": (VOIDP, [VOIDP, ctypes.c_char_p, ctypes.POINTER(SampleSpec), VOIDP]),
    "pa_stream_set_state_callback": (None, [VOIDP, STATE_CB, VOIDP]),
    "pa_stream_set_write_callback": (None, [VOIDP, REQUEST_CB, VOIDP]),
    "pa_stream_set_underflow_callback": (None, [VOIDP, NOTIFY_CB, VOIDP]),
    "pa_stream_connect_playback": (ctypes.c_int, [VOIDP, ctypes.c_char_p, ctypes.POINTER(BufferAttr), ctypes.c_int,
                                                  VOIDP, VOIDP]),
    "pa_stream_get_state": (ctypes.c_int, [VOIDP]),
    "pa_stream_write": (ctypes.c_int, [VOIDP, VOIDP, ctypes.c_size_t, VOIDP, ctypes.c_int64, ctypes.c_int]),
    "pa_stream_get_latency": (ctypes.c_int, [VOIDP, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_int)]),
    "pa_stream_get_timing_info": (ctypes.POINTER(TimingInfo), [VOIDP]),
    "pa_stream_cork": (VOIDP, [VOIDP, ctypes.c_int, VOIDP, VOIDP]),
    "pa_operation_unref": (None, [VOIDP]),
    "pa_stream_disconnect": (ctypes.c_int, [VOIDP]),
    "pa_stream_unref": (None, [VOIDP]),
}


@functools.cache
def _loaded_name() -> str:
    try:
        ctypes.CDLL("libpulse.so.0")  # Linux: no ldconfig subprocess as find_library runs
        return "libpulse.so.0"
    except OSError:
        return ctypes.util.find_library("pulse") or "libpulse.so.0"


@functools.cache
def load() -> ctypes.CDLL:
    """libpulse with its signatures declared (loaded once per process); raises LibpulseMissing.
    A CDLL releases the interpreter lock during each call, so a callback can take it meanwhile."""
    try:
        lib = ctypes.CDLL(_loaded_name())
        for fn, (restype, argtypes) in _SIGNATURES.items():
            f = getattr(lib, fn)
            f.restype, f.argtypes = restype, argtypes
    except (OSError, AttributeError) as e:
        raise LibpulseMissing(f"libpulse is not available ({e})") from None
    return lib


_HELD = ("pa_stream_write", "pa_stream_get_latency", "pa_stream_get_timing_info")  # non-blocking; called in the write callback


@functools.cache
def load_held() -> ctypes.PyDLL:
    """libpulse's non-blocking stream calls through a PyDLL: they keep the interpreter lock (the
    write callback calls them; giving the lock back and waiting for it again costs up to 5 ms)."""
    load()
    lib = ctypes.PyDLL(_loaded_name())
    for fn in _HELD:
        restype, argtypes = _SIGNATURES[fn]
        f = getattr(lib, fn)
        f.restype, f.argtypes = restype, argtypes
    return lib


def available() -> bool:
    try:
        load()
    except LibpulseMissing:
        return False
    return True


def strerror(lib: ctypes.CDLL, code: int) -> str:
    text = lib.pa_strerror(code)
    return text.decode(errors="replace") if text else f"error {code}"
