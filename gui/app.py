"""`run_panel`: what `rvclora` runs when called without a subcommand.

Options (all optional, mostly for scripted use such as the README screenshot):
`--voice NAME` picks a voice (a built-in name or one of your voices), `--start`
starts it right away, `--screenshot PNG` saves a picture of the window after
`--wait` seconds and quits.
"""

from __future__ import annotations

import argparse
import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from ..synth.home import Home
from .main_window import MainWindow


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rvclora", description="Open the rvclora voice changer panel.")
    parser.add_argument("--voice", help="voice to select: a built-in voice (e.g. deep) or one of your voices")
    parser.add_argument("--start", action="store_true", help="start the voice changer right away")
    parser.add_argument("--screenshot", metavar="PNG", help="save a picture of the panel after --wait seconds, then quit")
    parser.add_argument("--wait", type=float, default=3.0, help="seconds before --screenshot (default: 3)")
    return parser


def run_panel(argv: list[str] | None = None) -> int:
    """Open the panel and run until it is closed; returns the process exit code."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "rvclora"])
    app.setApplicationName("rvclora")
    app.setApplicationDisplayName("rvclora")
    app.setDesktopFileName("rvclora")
    # No style or palette is forced: Qt follows the system's light or dark theme.
    window = MainWindow(Home.from_env())
    if args.voice:
        _select_by_name(window, args.voice)
    window.show()
    if args.start:
        QTimer.singleShot(0, window.start_engine)
    if args.screenshot:
        def shoot() -> None:
            ok = window.grab().save(args.screenshot, "PNG")
            print(f"rvclora: {'saved' if ok else 'could not save'} {args.screenshot}", file=sys.stderr)
            window.close()
            app.exit(0 if ok else 1)

        QTimer.singleShot(int(args.wait * 1000), shoot)
    return app.exec()


def _select_by_name(window, name: str) -> None:
    for choice in window.voice_list.choices():
        if choice.name.lower() == name.lower():
            window.voice_list.select(choice)
            return
    window.show_error(f"no voice named '{name}'")


if __name__ == "__main__":
    sys.exit(run_panel())
