"""The engine's device watchdog: which stream ends it reports, and which it leaves to the stream.

A pinned playback stream whose sink went tells the engine why itself ("output device 'X' is
gone") and then turns inactive; the watchdog, which may have begun its check before that
message landed, must not replace it with its vaguer "stopped asking for audio"."""

from __future__ import annotations

import time
from types import SimpleNamespace

from rvclora.realtime.pulse_playback import PulsePlayback
from rvclora.realtime.reconnect import DeviceWatch
from rvclora.realtime.settings import EngineSettings


def _watch(*streams) -> DeviceWatch:
    w = DeviceWatch()
    w._open = SimpleNamespace(streams=list(streams))
    w.pipeline = SimpleNamespace(out=SimpleNamespace(played=48000), last_input=time.monotonic())
    w._settings = EngineSettings()
    w._last_output = time.monotonic()
    w._warned_quiet = False
    w._lost = None
    w._state = "running"
    return w


def _pinned(gone: bool) -> PulsePlayback:
    s = PulsePlayback.__new__(PulsePlayback)  # no server: only the state the watchdog reads
    s._started, s._closing, s.gone = True, False, gone
    return s


def test_a_pinned_stream_that_said_its_sink_went_is_left_to_its_own_message():
    w = _watch(SimpleNamespace(active=True), _pinned(gone=True))
    assert not w._open.streams[1].active
    w._watchdog()
    assert w._lost is None


def test_a_stream_that_just_stopped_is_reported():
    w = _watch(SimpleNamespace(active=False), _pinned(gone=False))
    w._watchdog()
    assert w._lost is not None and "stopped asking for audio" in w._lost


def test_a_running_pair_is_left_alone():
    w = _watch(SimpleNamespace(active=True), _pinned(gone=False))
    w._watchdog()
    assert w._lost is None
