"""The panel's state without a window: the engine lifecycle and the status line model are plain
Python (no Qt), so they are tested here without a display."""

from __future__ import annotations

import subprocess
import sys

from rvclora.gui.panel_model import ASSETS, ENGINE, VOICE, EngineState, Status, StatusLine


def test_the_model_loads_without_qt():
    code = "import sys, rvclora.gui.panel_model; print(any(m.startswith('PySide6') for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "False"


def test_the_start_button_follows_the_lifecycle():
    assert [s.button_text for s in EngineState] == ["Start", "Starting\u2026", "Stop", "Stopping\u2026"]
    assert [s for s in EngineState if s.active] == [EngineState.STARTING, EngineState.RUNNING]
    assert EngineState.RUNNING == "running"  # scripts and tests compare with the plain name


def test_a_status_is_a_kind_and_a_text_without_the_glyph():
    line = StatusLine()
    assert line.show("voice file is damaged", "error", VOICE) == Status("voice file is damaged", "error", VOICE)
    assert line.is_error and line.current.text == "voice file is damaged"  # the view draws the warning sign


def test_clearing_a_topic_drops_only_its_message():
    line = StatusLine()
    line.show("hubert_base.pt is missing", "error", ASSETS)
    assert not line.clear(VOICE, ENGINE) and line.is_error  # about something else: it stays
    assert line.clear(ASSETS) and line.current == Status() and not line.is_error
    line.show("Stopped.", "info", ENGINE)
    assert not line.is_error
