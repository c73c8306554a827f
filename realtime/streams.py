"""Opening the engine's device streams: one duplex stream where the clocks allow, named refusals.

When the input and the main output sit on the same host API at the same rate they
open as ONE duplex stream: one callback, one clock, no drift between them. Otherwise
(and always for the monitor) each output is its own stream and its `OutputPort`'s
drift corrector keeps the delay where it settled.

Except through a sound server (PulseAudio/PipeWire behind ALSA's "pulse" plugin):
there a duplex stream's callback runs only as fast as the playback side asks, so
capture that arrives late (the server starts capture up to a second after playback,
a loaded machine stalls the callback) stays queued in the plugin for good. Measured
on the test server under load: a duplex stream's input delay grew from 0.4 s to
2.2 s in 12 s and the engine's delay moved by hundreds of ms between two starts,
while separate streams drained the same backlog within a second and held 5–15 ms.
Both directions run on the server's one clock anyway, so the drift corrector has
nothing to correct there.

On a Pulse sink (the virtual mic's included) each output is our own libpulse stream
(`pulse_playback.PulsePlayback`), connected so that the server ends it rather than move it
to the speakers when the sink goes; without libpulse or a server answering it, PortAudio's.

A device that refuses to open gets a one-line reason and what to try (busy, rate,
channels, permission, missing) instead of PortAudio's error code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sounddevice as sd

from ..errors import AudioDeviceError
from . import libpulse, pulse
from .devices import AudioDevice, DeviceError, find_device
from .pulse_playback import PulsePlayback, PulsePlaybackError


@dataclass(frozen=True)
class EngineDevices:
    """Which devices the engine opens. Specs are what `devices.find_device` accepts
    (an index, a name or part of one, or None for the system default)."""

    input: int | str | None = None
    output: int | str | None = None
    monitor: int | str | None = None  # a second output to hear yourself; None = none
    samplerate: int | None = None  # force one rate on every stream; None = each device's own
    latency: str | float = "auto"  # PortAudio's suggested latency: "auto", "low", "high" or seconds
    duplex: bool = True  # one duplex stream when input and output share host API and rate (not through a sound server)


def stream_latency(latency: str | float, hostapi: str) -> str | float:
    """`auto`: "high" on ALSA (incl. PulseAudio/PipeWire through it), "low" elsewhere.

    Through ALSA's pulse plugin, "low" (≈9 ms) starves capture whenever Pulse resamples
    (measured on the test server: a 48 kHz stream from a 44.1 kHz monitor got 2 % of its
    frames); "high" (≈21–35 ms there) was bit-exact and stable. WASAPI, Core Audio and
    ASIO run fine at "low"."""
    if latency != "auto":
        return latency
    return "high" if "ALSA" in hostapi else "low"


_SOUND_SERVER_ALSA_NAMES = ("pulse", "pipewire", "default")  # ALSA PCMs a desktop routes to its sound server


def through_sound_server(dev: AudioDevice) -> bool:
    """A Pulse/PipeWire node, or an ALSA PCM that desktops route to one ("default" there is the
    server; on a machine without one, separate streams only cost the one-clock shortcut)."""
    return dev.pulse is not None or ("ALSA" in dev.hostapi and dev.name.lower() in _SOUND_SERVER_ALSA_NAMES)


def one_clock(devices: EngineDevices, inp: AudioDevice, out: AudioDevice, sr_in: int, sr_out: int) -> bool:
    """Open input and main output as one duplex stream? (See the module docstring.)"""
    same = inp.hostapi == out.hostapi and sr_in == sr_out
    return devices.duplex and same and not (through_sound_server(inp) or through_sound_server(out))


_REASONS = (
    (("busy", "unavailable", "resource"), "busy",
     "another program may hold it exclusively: close it, or pick another device"),
    (("sample rate", "samplerate"), "rate", "try --samplerate with the device's own rate (see `rvclora devices`)"),
    (("channel",), "channels", "the device has no mono/stereo channel of that kind: pick another device"),
    (("permission", "access", "denied"), "permission",
     "this user may not open audio devices: check the 'audio' group or the system's privacy settings"),
    (("no such", "not found", "invalid device", "no device"), "missing",
     "it is not connected: plug it in, or run `rvclora devices`"),
)


def refusal(dev: AudioDevice, error: Exception) -> DeviceError:
    """A one-line DeviceError naming why `dev` refused to open and what to try."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    low = text.lower()
    for words, reason, hint in _REASONS:
        if any(w in low for w in words):
            return DeviceError(f"cannot open {dev.name!r} ({reason}: {text}); {hint}")
    return DeviceError(f"cannot open {dev.name!r}: {text}; run `rvclora devices` and pick another device")


@dataclass
class OpenStreams:
    streams: list[Any]
    input: AudioDevice
    output: AudioDevice
    monitor: AudioDevice | None
    sr_in: int
    sr_out: int
    sr_mon: int
    duplex: bool
    foreign: set[tuple[str, int]] = field(default_factory=set)  # this process's Pulse streams before these opened
    guard: pulse.StreamGuard | None = None

    @property
    def device_ms(self) -> float:
        """The devices' own buffering (input + main output), as PortAudio reports it."""
        first = self.streams[0]
        if self.duplex:
            lat_in, lat_out = first.latency
            return 1000.0 * (lat_in + lat_out)
        return 1000.0 * (first.latency + self.streams[1].latency)

    def start(self, on_moved: Callable[[str], None] | None = None, *, unmute: bool = False) -> None:
        """Start the streams; with `on_moved`, pin those on named Pulse sinks/sources there (see
        `pulse.StreamGuard`): a stream the server moves elsewhere is muted and reported."""
        for s in self.streams:
            if isinstance(s, PulsePlayback) and on_moved is not None:
                s.on_gone = on_moved  # the sink went: the server ended the stream (it never moves it)
            s.start()
        sinks = {d.pulse for d in (self.output, self.monitor) if d is not None and d.pulse}
        sources = {self.input.pulse} if self.input.pulse else set()
        if on_moved is not None and (sinks or sources):
            self.guard = pulse.StreamGuard(sinks, sources, self.foreign, on_moved, unmute=unmute).start()

    def close(self) -> None:
        if self.guard is not None:
            self.guard.stop()
        for s in self.streams:
            try:
                s.stop()
                s.close()
            except Exception:  # noqa: BLE001 — a vanished device may refuse to close; it is gone either way
                pass
        self.streams = []


def resolve(devices: EngineDevices) -> tuple[AudioDevice, AudioDevice, AudioDevice | None]:
    inp = find_device(devices.input, "input")
    out = find_device(devices.output, "output")
    mon = find_device(devices.monitor, "output") if devices.monitor is not None else None
    return inp, out, mon


def output_stream(dev: AudioDevice, samplerate: int, latency: str | float, callback: Callable[..., None],
                  on_finished: Callable[[], None], name: str = "rvclora output") -> Any:
    """A playback stream on `dev`: pinned (our libpulse stream) on a Pulse sink, else PortAudio's.
    Raises PulsePlaybackError when the sink refuses; sd.PortAudioError / ValueError from PortAudio."""
    if dev.pulse and libpulse.available():
        try:
            return PulsePlayback(dev.pulse, samplerate, callback, latency=latency, finished_callback=on_finished,
                                 name=name, heard_at_render=dev.null_sink)
        except PulsePlaybackError:
            raise
        except AudioDeviceError:
            pass  # no server answers our client: PortAudio's path, as without libpulse
    with pulse.stream_env(sink=dev.pulse):
        return sd.OutputStream(device=dev.index, samplerate=samplerate, channels=1, dtype="float32",
                               latency=stream_latency(latency, dev.hostapi), callback=callback,
                               finished_callback=on_finished)


def open_streams(
    devices: EngineDevices,
    *,
    on_input: Callable[..., None],
    on_output: Callable[..., None],
    on_duplex: Callable[..., None],
    on_monitor: Callable[..., None],
    on_finished: Callable[[], None],
) -> OpenStreams:
    """Open (not start) the streams for `devices`; raises DeviceError with the reason."""
    inp, out, mon = resolve(devices)
    d = devices
    sr_in = int(d.samplerate or inp.default_samplerate)
    sr_out = int(d.samplerate or out.default_samplerate)
    sr_mon = int(d.samplerate or mon.default_samplerate) if mon is not None else 0
    duplex = one_clock(d, inp, out, sr_in, sr_out)
    streams: list[Any] = []
    current = inp
    # Streams of this process already there (a test's own player) are not the engine's to guard.
    foreign = pulse.own_streams() if any(x is not None and x.pulse for x in (inp, out, mon)) else set()
    try:
        if duplex:
            current = out
            # Pulse sinks/sources are reached through ALSA "pulse": libpulse reads both
            # targets from the environment while the stream opens.
            with pulse.stream_env(sink=out.pulse, source=inp.pulse):
                streams.append(sd.Stream(device=(inp.index, out.index), samplerate=sr_in, channels=1, dtype="float32",
                                         latency=stream_latency(d.latency, out.hostapi), callback=on_duplex,
                                         finished_callback=on_finished))
        else:
            with pulse.stream_env(source=inp.pulse):
                streams.append(sd.InputStream(device=inp.index, samplerate=sr_in, channels=1, dtype="float32",
                                              latency=stream_latency(d.latency, inp.hostapi), callback=on_input,
                                              finished_callback=on_finished))
            current = out
            streams.append(output_stream(out, sr_out, d.latency, on_output, on_finished))
        if mon is not None:
            current = mon
            streams.append(output_stream(mon, sr_mon, d.latency, on_monitor, on_finished, "rvclora monitor"))
    except (sd.PortAudioError, ValueError, PulsePlaybackError) as e:
        for s in streams:
            s.close()
        raise refusal(current, e) from None
    return OpenStreams(streams, inp, out, mon, sr_in, sr_out, sr_mon, duplex, foreign)
