"""The `rvclora` command: the panel when run bare, subcommands otherwise."""

from __future__ import annotations

import argparse
import os
import sys

from ..realtime import cli as realtime_cli
from ..synth import cli as synth_cli
from ..synth import voices_cli
from ..synth.errors import USER_ERRORS, one_line_warnings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rvclora",
        description="Real-time AI voice changer for RVC voice models with LoRA adapters. "
        "Run without a command to open the panel.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    panel = parser.add_argument_group("panel (when no command is given)")
    panel.add_argument("--voice", help="voice to select: a built-in voice (e.g. deep) or one of your voices")
    panel.add_argument("--start", action="store_true", help="start the voice changer right away")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    synth_cli.register(sub)
    voices_cli.register(sub)
    realtime_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        from .app import run_panel  # noqa: PLC0415 — the panel needs the gui extra; headless commands run without PySide6
        shown = ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")  # the last: offscreen/VNC set explicitly
        if sys.platform.startswith("linux") and not any(os.environ.get(v) for v in shown):
            print("rvclora: error: no desktop display for the panel; use `rvclora run` for the headless engine", file=sys.stderr)
            return 2
        return run_panel((["--voice", args.voice] if args.voice else []) + (["--start"] if args.start else []))
    try:
        with one_line_warnings("rvclora"):
            return args.func(args)
    except KeyboardInterrupt:
        print("rvclora: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        if args.debug:
            raise
        print(f"rvclora: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug: say so in one line, the traceback is behind --debug
        if args.debug:
            raise
        print(f"rvclora: internal error: {type(e).__name__}: {e} (rerun with --debug for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
