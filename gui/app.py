"""`run_panel`: the panel's application, started by the front door (`rvclora` without a subcommand).

`voice` picks a voice (a built-in name or one of your voices); `start` starts it right away.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from ..library.home import Home
from .main_window import MainWindow


def run_panel(*, voice: str | None = None, start: bool = False) -> int:
    """Open the panel and run until it is closed; returns the process exit code."""
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "rvclora"])
    app.setApplicationName("rvclora")
    app.setApplicationDisplayName("rvclora")
    app.setDesktopFileName("rvclora")
    # No style or palette is forced: Qt follows the system's light or dark theme.
    window = MainWindow(Home.from_env())
    if voice:
        _select_by_name(window, voice)
    window.show()
    if start:
        QTimer.singleShot(0, window.start_engine)
    return app.exec()


def _select_by_name(window, name: str) -> None:
    for choice in window.voice_list.choices():
        if choice.name.lower() == name.lower():
            window.voice_list.select(choice)
            return
    window.show_error(f"no voice named '{name}'")
