"""A virtual microphone on Linux that Discord and OBS can select.

PulseAudio and PipeWire (through pipewire-pulse) both take the same two modules:
a null sink ``<name>_sink`` that rvclora plays into, and a source ``<name>``
remapped from that sink's monitor. Apps that hide monitor sources (Discord does)
still list a remapped source as an ordinary microphone, shown by its description.
Everything goes through the server's native protocol (pulsectl), so it works on
either server and needs no privileges; the modules live until removed or until the sound server restarts.
Creating and removing hold a lock per server and name (a file in the user's
runtime dir), so concurrent `virtual-mic create` runs make one device, not several.

Windows and macOS have no equivalent rvclora can create: there users install
VB-CABLE or BlackHole (README, "Routing to Discord/OBS").
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import AudioDeviceError
from . import pulse


class VirtualMicError(AudioDeviceError):
    """One line for the user: why the virtual microphone cannot be made or removed."""


@dataclass(frozen=True)
class VirtualMic:
    name: str            # the source apps select ("rvclora")
    sink: str            # the sink rvclora plays into ("rvclora_sink")
    sink_module: int | None
    source_module: int | None


def _check_platform() -> None:
    if not sys.platform.startswith("linux"):
        where = "macOS: install BlackHole" if sys.platform == "darwin" else "Windows: install VB-CABLE"
        raise VirtualMicError(
            f"rvclora creates virtual microphones on Linux only; on {where} and pick it as rvclora's output")


def _server(call, *args):
    """Run one sound-server call; its failure becomes a one-line VirtualMicError."""
    try:
        return call(*args)
    except pulse.PulseUnavailableError as e:
        raise VirtualMicError(str(e)) from None


def _modules() -> list[tuple[int, str, str]]:
    """(id, module name, arguments) of loaded modules."""
    return _server(pulse.modules)


def _arg(args: str, key: str) -> str | None:
    m = re.search(rf"(?:^|\s){re.escape(key)}=(\S+)", args)
    return m.group(1).strip("'\"") if m else None


def _find(name: str, mods: list[tuple[int, str, str]]) -> tuple[int | None, int | None]:
    sink_mod = src_mod = None
    for mid, mname, args in mods:
        if mname == "module-null-sink" and _arg(args, "sink_name") == f"{name}_sink":
            sink_mod = mid
        elif mname == "module-remap-source" and _arg(args, "source_name") == name:
            src_mod = mid
    return sink_mod, src_mod


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name or ""):
        raise VirtualMicError(f"invalid virtual microphone name {name!r}: use letters, digits, '_', '-', '.'")


@contextlib.contextmanager
def _mic_lock(name: str) -> Iterator[None]:
    """Exclusive while checking and changing the modules of `name` on this user's sound server."""
    server = os.environ.get("PULSE_SERVER", "")
    key = hashlib.sha256(f"{server}\0{name}".encode()).hexdigest()[:16]
    folder = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    fd = os.open(folder / f"rvclora-virtual-mic-{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits: each holder only runs a few pactl calls (10 s timeout each)
        yield
    finally:
        os.close(fd)


def find_virtual_mic(name: str = "rvclora") -> VirtualMic | None:
    """The virtual microphone ``name`` if both its modules are loaded, else None."""
    _check_platform()
    _check_name(name)
    sink_mod, src_mod = _find(name, _modules())
    if sink_mod is None or src_mod is None:
        return None
    return VirtualMic(name, f"{name}_sink", sink_mod, src_mod)


def create_virtual_mic(name: str = "rvclora") -> VirtualMic:
    """Create (or return the existing) null sink ``<name>_sink`` + remapped source ``<name>``."""
    _check_platform()
    _check_name(name)
    _modules()  # one clear error when no server runs
    with _mic_lock(name):
        return _create(name)


def _create(name: str) -> VirtualMic:
    sink = f"{name}_sink"
    sink_mod, src_mod = _find(name, _modules())
    if sink_mod is None:
        # Descriptions are what Discord/OBS show; quotes keep the space inside one property.
        sink_mod = _server(pulse.load_module, "module-null-sink",
                           f"sink_name={sink} sink_properties=device.description='{name}\\ output\\ (feed)'")
    if src_mod is None:
        src_mod = _server(pulse.load_module, "module-remap-source",
                          f"master={sink}.monitor source_name={name} source_properties=device.description={name}")
    return VirtualMic(name, sink, sink_mod, src_mod)


def remove_virtual_mic(name: str = "rvclora") -> bool:
    """Unload the virtual microphone's modules; False when there was nothing to remove."""
    _check_platform()
    _check_name(name)
    with _mic_lock(name):
        sink_mod, src_mod = _find(name, _modules())
        # The source first: it depends on the sink's monitor.
        for mid in (src_mod, sink_mod):
            if mid is not None:
                _server(pulse.unload_module, mid)
    return sink_mod is not None or src_mod is not None
