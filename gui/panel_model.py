"""The panel's state without Qt: the engine's lifecycle and what the status line says.

`EngineState` is the lifecycle the Start button follows. `StatusLine` keeps the one
message the status line shows together with its topic (the voice, the devices, the
models...): when what a message describes changes (another voice is selected, the
missing files arrive), the window clears that topic and a stale message goes away,
while a message about something else stays. A status is a kind and a text; the
view decides how a kind looks (the error glyph is drawn by the window).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal


class EngineState(str, Enum):
    # A str enum: `window.engine_state == "running"` reads naturally in tests and scripts.
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"

    @property
    def button_text(self) -> str:
        return {"stopped": "Start", "starting": "Starting\u2026", "running": "Stop", "stopping": "Stopping\u2026"}[self.value]

    @property
    def active(self) -> bool:
        """Running or on its way: a change of voice or devices restarts it."""
        return self in (EngineState.STARTING, EngineState.RUNNING)


Kind = Literal["info", "error"]

# Topics: what a message is about, so it can be cleared when that changes.
VOICE, DEVICES, ASSETS, ENGINE, LIBRARY, SETTINGS = "voice", "devices", "assets", "engine", "library", "settings"


@dataclass(frozen=True)
class Status:
    text: str = ""
    kind: Kind = "info"
    topic: str | None = None


class StatusLine:
    def __init__(self) -> None:
        self.current = Status()

    def show(self, text: str, kind: Kind = "info", topic: str | None = None) -> Status:
        self.current = Status(text, kind, topic)
        return self.current

    def clear(self, *topics: str) -> bool:
        """Forget the message if it is about one of `topics`; True when it was."""
        if self.current.text and self.current.topic in topics:
            self.current = Status()
            return True
        return False

    @property
    def is_error(self) -> bool:
        return self.current.kind == "error" and bool(self.current.text)
