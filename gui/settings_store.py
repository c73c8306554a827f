"""What the panel remembers between runs, kept under the "panel" key of RVCLORA_HOME/settings.json.

Only the panel's own key is rewritten, so other parts of rvclora can keep their
settings in the same file. A damaged file never stops the panel from opening: it
starts from defaults and says so in the status line.

Per-voice settings of library voices (pitch, formant, index rate, adapters) live in
the voice's own voice.json (see `VoiceLibrary.update`) so they travel with the voice;
built-in voices have no folder, so their pitch and formant are kept here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..realtime.settings import EngineSettings, SettingsError
from ..synth.output_file import replaced_atomically

PANEL_KEY = "panel"
# Engine settings that belong to the panel as a whole rather than to a voice. Passthrough
# is left out on purpose: coming back to a panel that silently passes the raw voice
# through would look like a broken voice changer.
GLOBAL_ENGINE_FIELDS = ("block_ms", "crossfade_ms", "threshold_db", "rms_mix_rate")


@dataclass(frozen=True)
class BuiltinTweak:
    pitch: float = 0.0
    formant: float = 0.0


@dataclass(frozen=True)
class PanelState:
    voice: str | None = None  # a VoiceChoice key, e.g. "builtin:Robot" or "library:Alto"
    input_device: str | None = None  # device names, not indices: indices change when devices come and go
    output_device: str | None = None
    monitor_device: str | None = None
    engine: EngineSettings = field(default_factory=EngineSettings)
    builtin_tweaks: tuple[tuple[str, BuiltinTweak], ...] = ()
    geometry: str | None = None  # Qt's saveGeometry(), base64

    def tweak(self, builtin: str) -> BuiltinTweak:
        return dict(self.builtin_tweaks).get(builtin, BuiltinTweak())

    def with_tweak(self, builtin: str, tweak: BuiltinTweak) -> PanelState:
        tweaks = dict(self.builtin_tweaks)
        tweaks[builtin] = tweak
        return replace(self, builtin_tweaks=tuple(sorted(tweaks.items())))

    def to_json(self) -> dict[str, Any]:
        engine = asdict(self.engine)
        return {
            "voice": self.voice,
            "input_device": self.input_device,
            "output_device": self.output_device,
            "monitor_device": self.monitor_device,
            "engine": {k: engine[k] for k in GLOBAL_ENGINE_FIELDS},
            "builtin_tweaks": {name: asdict(t) for name, t in self.builtin_tweaks},
            "geometry": self.geometry,
        }

    @classmethod
    def from_json(cls, data: Any) -> PanelState:
        """Tolerant: unknown keys are ignored and bad values fall back to defaults one by one."""
        if not isinstance(data, dict):
            return cls()

        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else None

        engine = EngineSettings()
        for key, value in (data.get("engine") or {}).items():
            if key in GLOBAL_ENGINE_FIELDS:
                try:
                    engine = engine.replace(**{key: value})
                except (SettingsError, TypeError):
                    continue
        tweaks = []
        for name, value in (data.get("builtin_tweaks") or {}).items():
            if isinstance(value, dict):
                known = {f.name for f in fields(BuiltinTweak)}
                try:
                    tweaks.append((str(name), BuiltinTweak(**{k: float(v) for k, v in value.items() if k in known})))
                except (TypeError, ValueError):
                    continue
        return cls(
            voice=text("voice"),
            input_device=text("input_device"),
            output_device=text("output_device"),
            monitor_device=text("monitor_device"),
            engine=engine,
            builtin_tweaks=tuple(sorted(tweaks)),
            geometry=text("geometry"),
        )


class SettingsStore:
    """Loads and saves `PanelState` in one JSON file; `problem` holds a one-line reason after a bad load."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.problem: str | None = None

    def _read_all(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            self.problem = f"could not read {self.path} ({e}); starting from default settings"
            return {}
        if not isinstance(data, dict):
            self.problem = f"{self.path} is not a settings file; starting from default settings"
            return {}
        return data

    def load(self) -> PanelState:
        self.problem = None
        return PanelState.from_json(self._read_all().get(PANEL_KEY))

    def save(self, state: PanelState) -> None:
        data = self._read_all()
        data[PANEL_KEY] = state.to_json()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Atomic replace: a crash mid-write must not cost the user their other settings.
        with replaced_atomically(self.path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
