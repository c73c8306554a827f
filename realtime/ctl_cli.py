"""`rvclora ctl`: drive a running panel or `rvclora run` from outside (OBS scripts, a Stream Deck).

Shaped as `add_arguments(parser)` + `run(args) -> int`; `register(sub)` adds it to the
current `rvclora` parser.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UsageError
from .control_server import COMMANDS, ControlError, default_socket_path, send_command

NEEDS_VALUE = {"voice": "NAME", "preset": "NAME", "pitch": "±N"}
EXAMPLES = (
    "examples: rvclora ctl start | rvclora ctl voice deep | rvclora ctl preset Stream | rvclora ctl pitch +2 | "
    "rvclora ctl pitch 0 | rvclora ctl bypass on | rvclora ctl mute toggle | rvclora ctl status"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=COMMANDS, help="what to do")
    p.add_argument("value", nargs="?", default="",
                   help="voice or preset name; pitch +N/-N (move) or N (set); bypass/mute on, off or toggle")
    p.add_argument("--socket", type=Path, help=f"control socket (default {default_socket_path()})")


def run(args: argparse.Namespace) -> int:
    if args.action in NEEDS_VALUE and not args.value:
        raise UsageError(f"ctl {args.action} needs {NEEDS_VALUE[args.action]}, e.g. {_example(args.action)}")
    try:
        ok, message = send_command(args.action, args.value, args.socket)
    except ControlError as e:
        raise ControlError(f"{e}; start the panel or `rvclora run` first") from None
    if not ok:
        print(f"rvclora: error: {message}", file=sys.stderr)
        return 2
    print(message)
    return 0


def add_command(p: argparse.ArgumentParser) -> None:
    """The options of `rvclora ctl`; its one-line help is in the front door's command table."""
    p.description = (
        "Send one command to the rvclora running as this user, over its local control socket "
        "(readable only by you; no network port). " + EXAMPLES
    )
    add_arguments(p)
    p.set_defaults(func=run)


def _example(action: str) -> str:
    return {"voice": "rvclora ctl voice deep", "preset": "rvclora ctl preset Stream", "pitch": "rvclora ctl pitch +2"}[action]
