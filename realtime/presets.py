"""Presets on the live settings: made from the settings' own fields, applied by name.

The fields come from `EngineSettings` itself, so a setting added to it later is
saved in and restored from presets with no change here. Passthrough is left out:
it is a switch the user flips, not part of a sound.
"""

from __future__ import annotations

import dataclasses

from ..library.presets import Preset
from .settings import FIELDS, EngineSettings
from .streams import EngineDevices

NOT_IN_PRESETS = frozenset({"passthrough"})
PRESET_FIELDS = FIELDS - NOT_IN_PRESETS


def preset_from_settings(name: str, settings: EngineSettings, *, voice: str | None = None,
                         devices: EngineDevices | None = None) -> Preset:
    """A preset holding every preset field of `settings` (and the device names when given)."""
    values = {k: v for k, v in dataclasses.asdict(settings).items() if k in PRESET_FIELDS}
    devs = None
    if devices is not None:
        devs = {k: str(getattr(devices, k)) for k in ("input", "output", "monitor") if getattr(devices, k) is not None}
    return Preset(name, values, voice, devs)


def settings_with_preset(settings: EngineSettings, preset: Preset) -> tuple[EngineSettings, list[str]]:
    """`settings` with the preset's values; returns the names it skipped (unknown to this version).
    Out-of-range values raise SettingsError naming the field."""
    known = {k: v for k, v in preset.values.items() if k in PRESET_FIELDS}
    skipped = sorted(set(preset.values) - PRESET_FIELDS)
    return settings.replace(**known), skipped


def preset_changes(settings: EngineSettings, preset: Preset) -> tuple[dict[str, object], list[str]]:
    """Only the values that differ from `settings` (what `Engine.update` needs), and the skipped names."""
    new, skipped = settings_with_preset(settings, preset)
    changes = {k: getattr(new, k) for k in PRESET_FIELDS if getattr(new, k) != getattr(settings, k)}
    return changes, skipped


def devices_with_preset(devices: EngineDevices, preset: Preset) -> EngineDevices:
    """`devices` with the preset's device names, when it carries any."""
    if not preset.devices:
        return devices
    return dataclasses.replace(devices, **{k: v for k, v in preset.devices.items()})  # type: ignore[arg-type]  # device fields are names (str); the others never appear in a preset
