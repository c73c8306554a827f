"""Named presets of sound settings, global or per voice, kept in RVCLORA_HOME/presets.json.

A preset is a plain mapping of setting names to values (pitch, formant, index rate,
protect, gate, block, crossfade, ... whatever the live settings have), plus devices
when the user asked for them. Nothing here knows the live settings' type: the live
engine keeps the names it has and says which it skipped, and `convert` takes the
ones it has options for, so a field added to the live settings later travels in
presets without a change here.

A voice's default preset (`set_default`) is what both `convert` and the live engine
start from for that voice, so the two sound the same.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..synth.output_file import replaced_atomically
from .home import Home

PRESETS_FILE = "presets.json"
DEVICE_KEYS = ("input", "output", "monitor")
# convert's options that a preset can fill (live-only settings like block_ms do not apply offline).
CONVERT_KEYS = ("pitch", "f0_method", "index_rate", "protect", "noise_scale", "speaker")


class PresetError(ValueError):
    """A preset is missing or malformed; the message is one line for the user."""


@dataclass(frozen=True)
class Preset:
    name: str
    values: dict[str, Any] = field(default_factory=dict)  # setting name -> JSON value
    voice: str | None = None  # None: global; else the voice it belongs to
    devices: dict[str, str] | None = None  # only when the user saved devices with it

    def __post_init__(self) -> None:
        check_name(self.name)
        for key, value in self.values.items():
            if not isinstance(key, str) or not _plain(value):
                raise PresetError(f"preset {self.name!r}: value of {key!r} must be a number, text or true/false")
        if self.devices is not None:
            bad = sorted(set(self.devices) - set(DEVICE_KEYS))
            if bad:
                raise PresetError(f"preset {self.name!r}: unknown device {bad[0]!r}; use {', '.join(DEVICE_KEYS)}")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "values": dict(self.values)}
        if self.voice is not None:
            data["voice"] = self.voice
        if self.devices is not None:
            data["devices"] = dict(self.devices)
        return data

    @classmethod
    def from_json(cls, data: Any) -> Preset:
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise PresetError("a preset needs a name")
        values = data.get("values") or {}
        devices = data.get("devices")
        if not isinstance(values, dict) or (devices is not None and not isinstance(devices, dict)):
            raise PresetError(f"preset {data['name']!r}: values and devices must be objects")
        voice = data.get("voice")
        return cls(data["name"], dict(values), voice if isinstance(voice, str) and voice else None,
                   {str(k): str(v) for k, v in devices.items()} if devices is not None else None)

    def convert_values(self) -> dict[str, Any]:
        """The values `convert` has options for."""
        return {k: self.values[k] for k in CONVERT_KEYS if k in self.values}


def check_name(name: object) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > 80 or any(c in name for c in "\n\r\t"):
        raise PresetError(f"preset name {name!r}: use one line of up to 80 characters")


def _plain(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (bool, int, str))


class PresetStore:
    """Presets and per-voice defaults in one JSON file, written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def for_home(cls, home: Home | None = None) -> PresetStore:
        return cls((home or Home.from_env()).root / PRESETS_FILE)

    # -- reading -------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"presets": [], "defaults": {}}
        except (OSError, ValueError) as e:
            raise PresetError(f"cannot read presets from {self.path} ({e}); fix or remove the file") from None
        if not isinstance(data, dict):
            raise PresetError(f"{self.path} is not a presets file; fix or remove it")
        return data

    def all(self) -> list[Preset]:
        out = []
        for item in self._read().get("presets") or []:
            try:
                out.append(Preset.from_json(item))
            except PresetError:
                continue  # one damaged entry must not hide the others
        return out

    def for_voice(self, voice: str | None) -> list[Preset]:
        """The presets offered for `voice`: the global ones and the voice's own."""
        return [p for p in self.all() if p.voice is None or p.voice == voice]

    def get(self, name: str, voice: str | None = None) -> Preset:
        """By name; a voice's own preset wins over a global one of the same name."""
        matches = [p for p in self.all() if p.name == name and (p.voice is None or p.voice == voice)]
        if not matches:
            known = ", ".join(sorted({p.name for p in self.for_voice(voice)})) or "none yet"
            raise PresetError(f"no preset named {name!r}; presets: {known}")
        return sorted(matches, key=lambda p: p.voice is None)[0]

    def find(self, name: str, voice: str | None = None) -> Preset:
        """Like `get`, but also another voice's preset when only one voice has one of that name
        (a hotkey or `rvclora ctl preset` then brings that voice along)."""
        try:
            return self.get(name, voice)
        except PresetError:
            others = [p for p in self.all() if p.name == name]
            if len(others) == 1:
                return others[0]
            if others:
                voices = ", ".join(sorted(str(p.voice) for p in others))
                raise PresetError(f"preset {name!r} belongs to several voices ({voices}); switch to one first") from None
            raise

    def default_for(self, voice: str) -> Preset | None:
        name = (self._read().get("defaults") or {}).get(voice)
        if not isinstance(name, str):
            return None
        try:
            return self.get(name, voice)
        except PresetError:
            return None  # the default was removed since

    # -- writing -------------------------------------------------------------------------

    def save(self, preset: Preset) -> None:
        """Add or replace the preset with the same name and owner."""
        data = self._read()
        kept = [p for p in data.get("presets") or [] if not _same(p, preset)]
        data["presets"] = [*kept, preset.to_json()]
        self._write(data)

    def remove(self, name: str, voice: str | None = None) -> bool:
        data = self._read()
        before = data.get("presets") or []
        kept = [p for p in before if not _same(p, Preset(name, voice=voice))]
        data["presets"] = kept
        self._write(data)
        return len(kept) != len(before)

    def set_default(self, voice: str, name: str | None) -> None:
        """Make `name` the default preset of `voice` (None: no default)."""
        if name is not None:
            self.get(name, voice)
        data = self._read()
        defaults = dict(data.get("defaults") or {})
        if name is None:
            defaults.pop(voice, None)
        else:
            defaults[voice] = name
        data["defaults"] = defaults
        self._write(data)

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with replaced_atomically(self.path) as tmp:
            tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")


def _same(item: Any, preset: Preset) -> bool:
    return isinstance(item, dict) and item.get("name") == preset.name and (item.get("voice") or None) == preset.voice


def voice_of_model(model: Path, home: Home) -> str | None:
    """The library voice a model file belongs to (its folder under voices/), else None."""
    try:
        folder = Path(model).resolve().parent
    except OSError:
        return None
    return folder.name if folder.parent == home.voices.resolve() else None


def convert_preset(store: PresetStore, name: str | None, voice: str | None) -> Preset | None:
    """The preset `convert` starts from: the one named, else the voice's default (None: neither)."""
    if name:
        return store.get(name, voice)
    return store.default_for(voice) if voice else None
