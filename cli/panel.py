"""`rvclora` without a subcommand: open the panel, or say in one line why it cannot open."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from ..errors import EXIT_USER_ERROR

GUI_HINT = "the panel needs PySide6: install it with `pip install 'rvclora[gui]'` (or use `rvclora run` for the headless engine)"


def open_panel(voice: str | None, start: bool) -> int:
    shown = ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")  # the last: offscreen/VNC set explicitly
    if sys.platform.startswith("linux") and not any(os.environ.get(v) for v in shown):
        print("rvclora: error: no desktop display for the panel; use `rvclora run` for the headless engine", file=sys.stderr)
        return EXIT_USER_ERROR
    if importlib.util.find_spec("PySide6") is None:
        print(f"rvclora: error: {GUI_HINT}", file=sys.stderr)
        return EXIT_USER_ERROR
    app = importlib.import_module("rvclora.gui.app")  # PySide6 is the optional `gui` extra
    return app.run_panel(voice=voice, start=start)
