"""The engine's output stays on the sink the user chose: when that sink (or the virtual mic) is
removed mid-stream, nothing of it is heard on the default sink (the speakers): the engine's
playback stream is its own libpulse stream, which the server ends instead of moving it there.
Uses the private server of tests/pulse_audio.py, whose default sink ``vsink`` stands for the
speakers: its monitor is recorded for the whole test."""

from __future__ import annotations

import subprocess
import threading
import time

import numpy as np
import pytest
import sounddevice as sd

from rvclora.realtime import devices
from rvclora.realtime.block_converter import BuiltinSource
from rvclora.realtime.engine import Engine, EngineDevices
from rvclora.realtime.settings import EngineSettings
from rvclora.realtime.virtual_mic import create_virtual_mic, remove_virtual_mic
from tests.pulse_audio import _reinit_portaudio, pulse  # noqa: F401

SILENT = 1e-3  # -60 dBFS: the loudest sample on the default sink that counts as "nothing of ours"


def _wait(cond, timeout: float) -> float:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.02)
    return time.monotonic() - t0


class Recorder:
    """Records a Pulse source with the server's own `parec` (not PortAudio: independent of the code
    under test, and a PortAudio capture thread can end under load, cutting the recording short)."""

    def __init__(self, source: str) -> None:
        self.chunks: list[bytes] = []
        self.proc = subprocess.Popen(
            ["parec", "--raw", "--format=float32le", "--channels=1", "--rate=48000", "--latency-msec=20",
             "-d", source], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while chunk := self.proc.stdout.read1(4800):
            self.chunks.append(chunk)

    def audio(self) -> np.ndarray:
        data = b"".join(list(self.chunks))
        return np.frombuffer(data[: len(data) // 4 * 4], np.float32)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)
        self.reader.join(5)


def _player(sink: str) -> sd.OutputStream:
    """A 220 Hz tone into `sink` (the engine's input hears it through the sink's monitor)."""
    pos = {"n": 0}

    def play(outdata, frames, t, status):
        n = pos["n"]
        outdata[:, 0] = 0.2 * np.sin(2 * np.pi * 220 * np.arange(n, n + frames) / 48000)
        pos["n"] += frames

    dev = devices.find_device("pulse", "output")
    with devices.temporary_env({"PULSE_SINK": sink}):
        stream = sd.OutputStream(device=dev.index, samplerate=48000, channels=1, dtype="float32", callback=play,
                                 latency="high")
    stream.start()
    return stream


def _null_sink(pulse, name: str) -> int:  # noqa: F811
    return int(pulse.pactl("load-module", "module-null-sink", f"sink_name={name}", "format=float32le",
                           "rate=48000", "channels=1", "channel_map=mono").strip())


def _unload(pulse, name: str) -> None:  # noqa: F811
    for line in pulse.pactl("list", "short", "modules").splitlines():
        if f"sink_name={name}" in line:
            pulse.pactl("unload-module", line.split("\t")[0])


@pytest.mark.parametrize("target", ["sink", "virtual-mic"])
def test_removed_output_is_never_heard_on_the_default_sink(pulse, target):  # noqa: F811
    """The engine's output device is removed mid-stream (its null sink unloaded, or the virtual mic
    removed): the default sink's monitor records at most LEAK_MS above -60 dBFS from before the removal
    to after the return, the user is told in one line, and once the device is back the output plays
    on it again (its own monitor hears the voice)."""
    name = "pin_out" if target == "sink" else "pinmic_sink"

    def add() -> None:
        if target == "sink":
            _null_sink(pulse, "pin_out")
        else:
            create_virtual_mic("pinmic")

    def remove() -> None:
        if target == "sink":
            _unload(pulse, "pin_out")
        else:
            remove_virtual_mic("pinmic")

    _null_sink(pulse, "pin_feed")
    add()
    _reinit_portaudio()
    feed = _player("pin_feed")
    speakers = Recorder(pulse.sink + ".monitor")  # the default sink: the user's speakers
    engine = Engine(BuiltinSource("deep"), EngineSettings(),
                    EngineDevices(input="pin_feed.monitor", output=name, duplex=False))
    engine.start()
    try:
        _wait(lambda: engine.pipeline.out.played > 48000 and engine.stats.output_level_db > -40, 20)

        heard = len(speakers.audio())
        remove()
        _wait(lambda: engine.state == "reconnecting", 5)
        time.sleep(1.5)  # the engine waits; the server would play a moved stream on the speakers meanwhile
        assert engine.state == "reconnecting" and engine.running
        add()
        played = engine.pipeline.out.played
        back = _wait(lambda: engine.state == "running", 15)  # reopened on the device (asserted ≤ 5 s below)
        _wait(lambda: engine.pipeline.out.played > played + 48000, 15)
        own = Recorder(name + ".monitor")
        time.sleep(1.0)
        own.close()
        time.sleep(0.3)
        leaked = speakers.audio()[heard:]
        assert len(leaked) > 48000 * (2.5 + back) * 0.8, len(leaked)  # the recording covered the fault
        loud = int(np.sum(np.abs(leaked) > SILENT))
        # Through ALSA's pulse plugin (PortAudio's stream) the server moved the stream here and 0-37 ms
        # of the voice played before the engine could mute it; a stream that cannot move plays nothing.
        assert loud == 0, f"{loud / 48:.1f} ms of our output reached the default sink"
        assert back <= 5.0, back
        resumed = own.audio()
        assert len(resumed) > 24000 and np.sqrt(np.mean(resumed[-24000:] ** 2)) > 0.01
        events = engine.drain_events()
        told = [e.message for e in events if e.kind == "reconnecting"]
        assert len(told) == 1 and f"output device {name!r} is gone" in told[0] and "\n" not in told[0], told
        assert not [e for e in events if e.kind == "error"]
    finally:
        engine.stop()
        speakers.close()
        feed.stop()
        feed.close()
        remove()
        _unload(pulse, "pin_feed")
