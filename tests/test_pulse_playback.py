"""Our own libpulse playback stream (realtime/pulse_playback.py) on the private server of
tests/pulse_audio.py: it plays on its sink, reports the server's latency, cannot be moved, ends
(and says so once) when its sink goes, and the engine falls back to PortAudio without libpulse
or without a server answering it."""

from __future__ import annotations

import os
import re
import time

import numpy as np
import pytest
import sounddevice as sd

from rvclora.realtime import libpulse, streams
from rvclora.realtime.devices import AudioDevice
from rvclora.realtime.pulse_playback import PulsePlayback, PulsePlaybackError, target_seconds
from tests.pulse_audio import _reinit_portaudio, pulse  # noqa: F401
from tests.test_output_pinned import Recorder, _null_sink, _unload, _wait


class Tone:
    """A 440 Hz callback that keeps what the stream told it."""

    def __init__(self) -> None:
        self.n = 0
        self.frames: list[int] = []
        self.delays: list[float] = []

    def __call__(self, outdata, frames, time_info, status) -> None:
        outdata[:, 0] = 0.3 * np.sin(2 * np.pi * 440 * np.arange(self.n, self.n + frames) / 48000)
        self.n += frames
        self.frames.append(frames)
        if time_info.outputBufferDacTime > 0:
            self.delays.append(time_info.outputBufferDacTime - time_info.currentTime)


def _our_inputs(pulse) -> dict[int, str]:  # noqa: F811
    """sink-input index → sink index, for this process's playback streams."""
    out = {}
    for block in pulse.pactl("list", "sink-inputs").split("Sink Input #")[1:]:
        if f'application.process.id = "{os.getpid()}"' in block:
            out[int(block.split()[0])] = re.search(r"Sink: (\d+)", block).group(1)
    return out


def _device(sink: str) -> AudioDevice:
    return AudioDevice(index=0, name=f"Null [{sink}]", hostapi="ALSA", max_input_channels=0,
                       max_output_channels=1, default_samplerate=48000.0, virtual=None, pulse=sink)


def test_plays_on_its_sink_reports_the_servers_latency_and_cannot_be_moved(pulse):  # noqa: F811
    """A tone through the stream is heard on its sink's monitor; callbacks come in periods of at
    most `period` frames with the server's latency in their time info (the `latency` figure);
    the server refuses to move the stream (pactl's move fails, the stream stays)."""
    _null_sink(pulse, "pp_out")
    tone = Tone()
    before = set(_our_inputs(pulse))
    stream = PulsePlayback("pp_out", 48000, tone, latency="high")
    rec = None
    try:
        stream.start()
        rec = Recorder("pp_out.monitor")
        _wait(lambda: len(rec.audio()) > 48000, 15)
        heard = rec.audio()[-24000:]
        assert np.sqrt(np.mean(heard ** 2)) > 0.1, "the tone did not reach the sink"
        assert stream.active and max(tone.frames) <= stream.period == 240  # 5 ms: the longest period asked for
        # The sink's own latency is a period, not a share of the target buffer: a null sink (the
        # virtual mic) hands its monitor 5 ms at a time, not 17 ms bursts (see pulse_playback).
        configured = re.search(r"Name: pp_out\n(?:.*\n)*?\s*Latency: \d+ usec, configured (\d+) usec",
                               pulse.pactl("list", "sinks"))
        assert configured and int(configured.group(1)) <= 5500, pulse.pactl("list", "sinks")
        assert len(tone.delays) > 20 and 0.002 < float(np.median(tone.delays)) < 0.2, tone.delays[-5:]
        assert abs(stream.latency - float(np.median(tone.delays[-20:]))) < 0.05
        (index,) = set(_our_inputs(pulse)) - before
        with pytest.raises(RuntimeError):
            pulse.pactl("move-sink-input", str(index), pulse.sink)
        sinks = {s.split("\t")[1]: s.split("\t")[0] for s in pulse.pactl("list", "short", "sinks").splitlines()}
        assert _our_inputs(pulse)[index] == sinks["pp_out"]
    finally:
        if rec is not None:
            rec.close()
        stream.close()
        stream.close()  # twice is harmless
        _unload(pulse, "pp_out")


def test_a_removed_sink_ends_the_stream_and_is_said_once(pulse):  # noqa: F811
    """Unloading the sink ends the stream (no stream of ours is left, none moved to the default
    sink) and `on_gone` is called exactly once with the sink's name."""
    _null_sink(pulse, "pp_gone")
    told: list[str] = []
    stream = PulsePlayback("pp_gone", 48000, Tone())
    stream.on_gone = told.append
    try:
        stream.start()
        _wait(lambda: len(_our_inputs(pulse)) >= 1, 5)
        _unload(pulse, "pp_gone")
        _wait(lambda: bool(told), 5)
        time.sleep(0.3)
        assert told == ["output device 'pp_gone' is gone"]
        assert not stream.active and _our_inputs(pulse) == {}
    finally:
        stream.close()
        _unload(pulse, "pp_gone")


def test_a_missing_sink_is_refused_in_one_line(pulse):  # noqa: F811
    with pytest.raises(PulsePlaybackError) as e:
        PulsePlayback("pp_never_there", 48000, Tone())
    msg = str(streams.refusal(_device("pp_never_there"), e.value))
    assert "\n" not in msg and "(missing:" in msg, msg


def test_pulse_sinks_get_the_pinned_stream_and_portaudio_stays_without_libpulse_or_a_server(pulse, monkeypatch):  # noqa: F811
    _null_sink(pulse, "pp_pick")
    _reinit_portaudio()
    dev = streams.find_device("pp_pick", "output")
    opened = []
    try:
        opened.append(streams.output_stream(dev, 48000, "auto", Tone(), lambda: None))
        assert isinstance(opened[-1], PulsePlayback)
        # A server that does not answer our client: PortAudio's stream, as before.
        # (PortAudio's ALSA "pulse" cannot reach it either: its own error, which `refusal` words.)
        monkeypatch.setenv("PULSE_SERVER", "unix:/nonexistent/pulse/native")
        with pytest.raises(sd.PortAudioError):
            opened.append(streams.output_stream(dev, 48000, "auto", Tone(), lambda: None))
        monkeypatch.undo()
        monkeypatch.setattr(libpulse, "available", lambda: False)
        opened.append(streams.output_stream(dev, 48000, "auto", Tone(), lambda: None))
        assert isinstance(opened[-1], sd.OutputStream)
    finally:
        for s in opened:
            s.close()
        _unload(pulse, "pp_pick")


def test_the_engine_opens_pinned_streams_for_its_output_and_monitor(pulse):  # noqa: F811
    """Output and monitor on Pulse sinks are both pinned streams; capture stays PortAudio's; the
    devices' delay the latency estimate starts from is the streams' own figures."""
    _null_sink(pulse, "pp_main")
    _null_sink(pulse, "pp_mon")
    _reinit_portaudio()
    def noop(*_a):
        return None
    opened = streams.open_streams(streams.EngineDevices(input="vmic", output="pp_main", monitor="pp_mon"),
                                  on_input=noop, on_output=noop, on_duplex=noop, on_monitor=noop, on_finished=noop)
    try:
        assert [type(s) for s in opened.streams] == [sd.InputStream, PulsePlayback, PulsePlayback]
        assert [s.sink for s in opened.streams[1:]] == ["pp_main", "pp_mon"] and not opened.duplex
        assert 0 < opened.device_ms < 500
    finally:
        opened.close()
        _unload(pulse, "pp_main")
        _unload(pulse, "pp_mon")


def test_target_buffer_follows_the_latency_setting():
    assert target_seconds("low") < target_seconds("auto") < target_seconds("high")
    assert target_seconds(0.08) == 0.08 and target_seconds(0.0) == 0.005 and target_seconds(9.0) == 2.0
