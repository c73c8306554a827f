"""Audio devices: list them, find the one a user named, flag virtual cables.

PortAudio (through sounddevice) lists what the host APIs show. On Linux that is
ALSA only (Debian's libportaudio2 has no PulseAudio host API): a PulseAudio or
PipeWire desktop appears as the two ALSA devices "pulse" and "default", and the
individual Pulse sinks and sources (null sinks, the rvclora virtual mic, …) are
not listed at all. So on Linux ``list_devices``
adds one entry per Pulse sink (output) and source (input) reached through the ALSA
"pulse" device; such an entry carries ``pulse`` = the sink/source name, and a
stream opened on it must be opened with ``pulse_device_env`` applied (libpulse
reads PULSE_SINK / PULSE_SOURCE when the ALSA plugin opens its stream):

    dev = find_device("rvclora_sink", "output")
    with pulse_env(dev, "output"):
        stream = sd.OutputStream(device=dev.index, ...)
        stream.start()          # the env only matters while the stream opens
"""

from __future__ import annotations

import contextlib
import re
import sys
from dataclasses import dataclass

import sounddevice as sd

from ..errors import AudioDeviceError
from . import pulse

PULSE_HOSTAPI = "PulseAudio (via ALSA)"


class DeviceError(AudioDeviceError):
    """A device that cannot be found or used; the message is one line for the user."""


@dataclass(frozen=True)
class AudioDevice:
    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    virtual: str | None
    pulse: str | None = None  # Pulse sink/source name, for entries reached through ALSA "pulse"
    null_sink: bool = False  # a Pulse null sink: it plays nowhere, its monitor's readers hear it

    def can(self, kind: str) -> bool:
        return (self.max_input_channels if kind == "input" else self.max_output_channels) > 0


# Name patterns of the virtual cables users route into Discord/OBS, most specific first.
_VIRTUAL_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"rvclora", "rvclora"),
    (r"voicemeeter", "VoiceMeeter"),
    (r"vb-audio|vb-cable|\bcable (input|output)\b|\bcable-[a-d]\b", "VB-CABLE"),
    (r"blackhole", "BlackHole"),
    (r"virtual audio cable|\bline \d+ \(virtual", "Virtual Audio Cable"),
    (r"soundflower", "Soundflower"),
    (r"loopback audio", "Loopback"),
    (r"null sink|null output|null-sink|dummy output", "PulseAudio null sink"),
)


def virtual_kind(name: str) -> str | None:
    """Which virtual-cable product a device name belongs to, or None for real hardware."""
    low = name.lower()
    for pattern, kind in _VIRTUAL_PATTERNS:
        if re.search(pattern, low):
            return kind
    return None


# -- PulseAudio / PipeWire (Linux) ------------------------------------------------

@dataclass(frozen=True)
class PulseNode:
    kind: str            # "sink" or "source"
    name: str
    description: str
    driver: str          # e.g. module-null-sink.c, module-remap-source.c
    monitor_of: str | None
    virtual: str | None
    rate: int = 0  # the node's own sample rate (0 = unknown)


def pulse_virtual_sources() -> list[PulseNode]:
    """Pulse/PipeWire sinks and sources, with virtual ones flagged; [] without a server.

    Virtual: null sinks, their monitors, and sources remapped from a null sink's
    monitor (the rvclora virtual mic), besides the name patterns of ``virtual_kind``.
    """
    nodes: list[PulseNode] = []
    null_sinks: set[str] = set()
    for node in pulse.nodes():
        virtual = virtual_kind(node.name) or virtual_kind(node.description)
        if "null-sink" in node.driver and node.kind == "sink":
            null_sinks.add(node.name)
            virtual = virtual or "PulseAudio null sink"
        nodes.append(PulseNode(node.kind, node.name, node.description, node.driver, node.monitor_of, virtual,
                               node.rate))
    flagged = []
    for n in nodes:
        v = n.virtual
        if v is None and n.monitor_of in null_sinks:
            v = "PulseAudio null sink"
        if v is None and "remap-source" in n.driver:
            v = "PulseAudio remapped source"
        flagged.append(PulseNode(n.kind, n.name, n.description, n.driver, n.monitor_of, v, n.rate))
    return flagged


def pulse_names() -> set[str] | None:
    """Names of the Pulse/PipeWire sinks and sources now (monitors included); None without a server."""
    return pulse.node_names()


def pulse_device_env(sink: str | None = None, source: str | None = None) -> dict[str, str]:
    """Environment that points the ALSA "pulse"/"default" device at a given sink/source."""
    env = {}
    if sink:
        env["PULSE_SINK"] = sink
    if source:
        env["PULSE_SOURCE"] = source
    return env


def temporary_env(env: dict[str, str]) -> contextlib.AbstractContextManager[dict[str, str]]:
    """Set environment variables for the duration of a block (libpulse reads them at stream open),
    under the lock every stream opener takes."""
    return pulse.locked_env(env)


def pulse_env(device: AudioDevice | None, kind: str):
    """Apply ``pulse_device_env`` for ``device`` while a stream is being opened."""
    env = {}
    if device is not None and device.pulse:
        env = pulse_device_env(sink=device.pulse if kind == "output" else None,
                               source=device.pulse if kind == "input" else None)
    return temporary_env(env)


# -- listing and lookup -------------------------------------------------------------

def list_devices(include_pulse: bool = True) -> list[AudioDevice]:
    """All PortAudio devices, plus (Linux) the Pulse sinks/sources behind ALSA "pulse"."""
    try:
        raw = sd.query_devices()
        apis = sd.query_hostapis()
    except sd.PortAudioError as e:  # PortAudio itself failed to start
        raise DeviceError(f"cannot list audio devices: {e}") from None
    devices = [
        AudioDevice(
            index=int(d["index"]), name=d["name"], hostapi=apis[d["hostapi"]]["name"],
            max_input_channels=int(d["max_input_channels"]),
            max_output_channels=int(d["max_output_channels"]),
            default_samplerate=float(d["default_samplerate"]), virtual=virtual_kind(d["name"]),
        )
        for d in raw
    ]
    if include_pulse and sys.platform.startswith("linux"):
        pulse = next((d for d in devices if d.name == "pulse"), None)
        if pulse is not None:
            for node in pulse_virtual_sources():
                if node.kind == "source" and node.monitor_of is not None and node.virtual is None:
                    continue  # monitors of real outputs: rarely wanted, clutter the list
                is_out = node.kind == "sink"
                devices.append(AudioDevice(
                    index=pulse.index, name=f"{node.description or node.name} [{node.name}]",
                    hostapi=PULSE_HOSTAPI,
                    max_input_channels=0 if is_out else pulse.max_input_channels,
                    max_output_channels=pulse.max_output_channels if is_out else 0,
                    # The node's own rate: a stream at another rate makes Pulse resample, and
                    # capture through ALSA's pulse plugin then starves.
                    default_samplerate=float(node.rate or pulse.default_samplerate), virtual=node.virtual,
                    pulse=node.name, null_sink=is_out and "null-sink" in node.driver,
                ))
    return devices


def _default_index(kind: str) -> int:
    try:
        idx = sd.default.device[0 if kind == "input" else 1]
    except Exception:  # noqa: BLE001 — PortAudio fails several ways when there is no default; all mean "none"
        idx = -1
    if idx is None or int(idx) < 0:
        try:
            idx = sd.query_devices(kind=kind)["index"]
        except Exception:  # noqa: BLE001 — as above: no default device
            idx = -1
    return int(idx)


def find_device(spec: str | int | None, kind: str) -> AudioDevice:
    """The device a user named: None = system default, an index, or part of a name.

    A name matches case-insensitively; an exact name (or Pulse sink/source name) wins
    over a substring. Raises DeviceError with a one-line message.
    """
    if kind not in ("input", "output"):
        raise ValueError("kind must be 'input' or 'output'")
    hint = "run `rvclora devices` to list them"
    devices = list_devices()
    if not devices:
        raise DeviceError(f"no audio devices found (is a sound server running?); {hint}")
    candidates = [d for d in devices if d.can(kind)]
    if spec is None:
        idx = _default_index(kind)
        for d in candidates:
            if d.index == idx and d.pulse is None:
                return d
        raise DeviceError(f"no default {kind} device; {hint}")
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        idx = int(spec)
        match = [d for d in devices if d.index == idx and d.pulse is None]
        if not match:
            raise DeviceError(f"no audio device #{idx}; {hint}")
        if not match[0].can(kind):
            raise DeviceError(f"device #{idx} ({match[0].name}) has no {kind} channels; {hint}")
        return match[0]
    want = spec.strip().lower()
    exact = [d for d in candidates if want in (d.name.lower(), (d.pulse or "").lower())]
    if exact:
        return exact[0]
    sub = [d for d in candidates if want in d.name.lower()]
    if len(sub) == 1 or (sub and len({d.name for d in sub}) == 1):
        return sub[0]
    if len(sub) > 1:
        names = ", ".join(repr(d.name) for d in sub[:4])
        raise DeviceError(f"{kind} device {spec!r} is ambiguous ({names}); {hint}")
    if any(want in d.name.lower() or want == (d.pulse or "").lower() for d in devices):
        raise DeviceError(f"device {spec!r} has no {kind} channels; {hint}")
    raise DeviceError(f"no {kind} device matches {spec!r}; {hint}")
