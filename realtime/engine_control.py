"""The commands `rvclora ctl` and the hotkeys send, carried out on one `Engine`.

`EngineControl(command, arg)` is the handler the control socket calls (and what a
hotkey calls in an engine host without a panel): start, stop, voice NAME, preset
NAME, pitch ±N, bypass on|off|toggle, mute on|off (push-to-talk / push-to-mute),
toggle (start/stop), status. Every answer is one line; bad arguments are one-line ValueErrors.

Mute lowers the main output to the gain floor (−60 dB) rather than adding a mute
switch to the engine: it goes through the engine's normal live-settings path, so it
takes effect at the next block like any other change.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..library.presets import Preset, PresetStore
from .control_server import COMMANDS
from .presets import preset_changes
from .voice_source import VoiceSource

if TYPE_CHECKING:  # the engine (torch) is passed in; `rvclora run --help` never loads it
    from .engine import Engine

MUTE_GAIN_DB = -60.0  # the output gain floor of the settings


def parse_switch(command: str, arg: str, current: bool) -> bool:
    value = arg.strip().lower()
    if value in ("on", "1", "true", "yes"):
        return True
    if value in ("off", "0", "false", "no"):
        return False
    if value in ("toggle", ""):
        return not current
    raise ValueError(f"{command} {arg!r}: use on, off or toggle")


def parse_pitch(arg: str, current: float) -> float:
    """'+2' / '-3': relative to `current`; '5': absolute (semitones)."""
    text = arg.strip().replace("\u2212", "-")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"pitch {arg!r}: give semitones, +N or -N to move, N to set") from None
    return current + value if text[:1] in "+-" else value


@dataclass
class EngineControl:
    """Carries out control commands on `engine`.

    `load_voice(name)` makes a voice source from a name (None: switching voices is not
    offered); `restart` reopens the engine after a `stop` (None: a file run, which ends
    when stopped)."""

    engine: Engine
    presets: PresetStore
    load_voice: Callable[[str], VoiceSource] | None = None
    restart: Callable[[], None] | None = None
    voice: str = ""
    preset: str = ""
    stopped_by_user: bool = False
    _unmuted_db: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, command: str, arg: str = "") -> str:
        with self._lock:  # one command at a time, whoever sends it (socket, hotkey)
            if command not in COMMANDS:
                raise ValueError(f"unknown command {command!r}; commands: {', '.join(COMMANDS)}")
            return getattr(self, f"_do_{command}")(arg)

    # -- commands ----------------------------------------------------------------------------

    def _do_start(self, arg: str) -> str:
        if self.engine.running:
            return "already running"
        if self.restart is None:
            raise RuntimeError("this run converted a file and has ended; start a new `rvclora run`")
        self.restart()
        self.stopped_by_user = False
        return "started"

    def _do_stop(self, arg: str) -> str:
        if not self.engine.running:
            return "already stopped"
        self.stopped_by_user = True
        self.engine.stop()
        return "stopped"

    def _do_toggle(self, arg: str) -> str:
        return self._do_stop(arg) if self.engine.running else self._do_start(arg)

    def _do_voice(self, arg: str) -> str:
        name = arg.strip()
        if not name:
            raise ValueError("voice: give a voice name")
        if name in ("+1", "-1"):
            raise ValueError("next/previous voice needs the panel's voice list; name the voice instead")
        if self.load_voice is None:
            raise ValueError("this engine cannot switch voices")
        self.engine.switch_voice(self.load_voice(name))
        self.voice = name
        default = self.presets.default_for(name)
        if default is None:
            return f"voice {name}"
        return f"voice {name}; {self._apply(default)}"

    def _do_preset(self, arg: str) -> str:
        name = arg.strip()
        if not name:
            raise ValueError("preset: give a preset name")
        preset = self.presets.find(name, self.voice or None)
        said = ""
        if preset.voice is not None and preset.voice != self.voice:
            said = self._do_voice(preset.voice).split(";")[0] + "; "
        return said + self._apply(preset)

    def _do_pitch(self, arg: str) -> str:
        new = self.engine.update(pitch=parse_pitch(arg, self.engine.settings.pitch))
        return f"pitch {new.pitch:+g}"

    def _do_bypass(self, arg: str) -> str:
        on = parse_switch("bypass", arg, self.engine.settings.passthrough)
        self.engine.update(passthrough=on)
        return f"bypass {'on' if on else 'off'}"

    def _do_mute(self, arg: str) -> str:
        on = parse_switch("mute", arg, self._unmuted_db is not None)
        if on and self._unmuted_db is None:
            self._unmuted_db = self.engine.settings.output_gain_db
            self.engine.update(output_gain_db=MUTE_GAIN_DB)
        elif not on and self._unmuted_db is not None:
            self.engine.update(output_gain_db=self._unmuted_db)
            self._unmuted_db = None
        return f"mute {'on' if on else 'off'}"

    def _do_status(self, arg: str) -> str:
        s = self.engine.settings
        return json.dumps({
            "state": self.engine.state, "voice": self.voice or self.engine.source.name, "preset": self.preset,
            "pitch": s.pitch, "bypass": s.passthrough, "mute": self._unmuted_db is not None,
        })

    # -- helpers -------------------------------------------------------------------------------

    def _apply(self, preset: Preset) -> str:
        changes, skipped = preset_changes(self.engine.settings, preset)
        if self._unmuted_db is not None and "output_gain_db" in changes:
            self._unmuted_db = float(changes.pop("output_gain_db"))  # type: ignore[arg-type]  # a gain preset value is a number  # stays muted; the preset's gain comes back on unmute
        if changes:
            self.engine.update(**changes)
        self.preset = preset.name
        note = f" (not known here: {', '.join(skipped)})" if skipped else ""
        return f"preset {preset.name}{note}"
