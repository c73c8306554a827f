"""What `rvclora run` adds around its engine: presets, the control socket and a session recording.

`add_run_extras(parser)` adds --preset, --record and --no-control; `settings_for_run`
starts from the preset (or the voice's default preset) and keeps every sound option
the user typed; `RunExtras` opens the control socket and the recorder for the run
and closes both at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..library.presets import PresetStore
from .control_server import ControlError, ControlServer
from .engine_control import EngineControl
from .presets import settings_with_preset
from .session_recorder import SessionRecorder, use_recorder
from .settings import EngineSettings
from .voice_source import VoiceSource

if TYPE_CHECKING:  # the engine (torch) loads when a run starts, not for `rvclora run --help`
    from .engine import Engine


def add_run_extras(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("presets, control and recording")
    g.add_argument("--preset", metavar="NAME", help="start from this saved preset (default: the voice's default "
                   "preset, if it has one); sound options given here still win")
    g.add_argument("--record", type=Path, metavar="FILE", help="record the session: your voice (delayed to line up) "
                   "and the converted voice as the two channels of FILE (.wav, .flac)")
    g.add_argument("--no-control", action="store_true", help="do not open the control socket for `rvclora ctl`")


def settings_for_run(typed: EngineSettings, voice: str, preset_name: str | None,
                     store: PresetStore) -> tuple[EngineSettings, str]:
    """The preset's settings with every option the user changed from its default on top; returns
    (settings, the preset's name or "")."""
    preset = store.get(preset_name, voice) if preset_name else store.default_for(voice)
    if preset is None:
        return typed, ""
    base = EngineSettings()
    typed_changes = {f.name: getattr(typed, f.name) for f in dataclasses.fields(typed)
                     if getattr(typed, f.name) != getattr(base, f.name)}
    settings, skipped = settings_with_preset(base, preset)
    if skipped:
        print(f"preset {preset.name}: not known to this version, skipped: {', '.join(skipped)}", file=sys.stderr)
    return settings.replace(**typed_changes), preset.name


class RunExtras:
    """The control socket and the session recording of one `rvclora run`."""

    def __init__(self, engine: Engine, *, voice: str, preset: str, store: PresetStore, record: Path | None,
                 control: bool, load_voice: Callable[[str], VoiceSource] | None,
                 restart: Callable[[], None] | None) -> None:
        self.engine = engine
        self.control = EngineControl(engine, store, load_voice=load_voice, restart=restart, voice=voice, preset=preset)
        self.recorder = SessionRecorder(record) if record is not None else None  # refuses an existing file now
        self.server: ControlServer | None = None
        self._want_control = control

    def __enter__(self) -> RunExtras:
        if self.recorder is not None:
            use_recorder(self.engine, self.recorder)
        if self._want_control:
            try:
                self.server = ControlServer(self.control).start()
                print(f"control: `rvclora ctl` talks to this run ({self.server.path})", file=sys.stderr, flush=True)
            except ControlError as e:
                print(f"control: not available: {e}", file=sys.stderr, flush=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.close()
        if self.recorder is not None:
            use_recorder(self.engine, None)
            self.recorder.close()
            if self.recorder.error:
                print(self.recorder.error, file=sys.stderr)
            else:
                print(f"recorded {self.recorder.path} ({self.recorder.seconds:.1f} s; left: your voice, "
                      f"right: converted)", file=sys.stderr)

    @property
    def keep_waiting(self) -> bool:
        """Stopped with `rvclora ctl stop`: the run waits for `start` instead of ending."""
        return self.control.stopped_by_user and self.control.restart is not None
