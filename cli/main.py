"""The `rvclora` command (the panel when run bare, subcommands otherwise) and its aliases
`rvclora-train` and `rvclora-export`.

Only the chosen subcommand's module is imported (see `commands.COMMANDS`), so `rvclora --help`
and `rvclora <command> --help` load no torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..synth.cli_options import parents
from .boundary import OneLineParser, run_guarded
from .commands import COMMANDS
from .panel import open_panel

DESCRIPTION = ("Real-time AI voice changer for RVC voice models with LoRA adapters. "
               "Run without a command to open the panel.")


def _debug_parent(default: object) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--debug", action="store_true", default=default, help="show full tracebacks on errors")
    return p


def _add_command(parser: argparse.ArgumentParser, name: str) -> None:
    """Load `name`'s module and let it add its options to `parser`."""
    command = COMMANDS[name]
    getattr(importlib.import_module(command.module), command.adder)(parser)


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line, if any (the first word that is not an option)."""
    words = iter(argv)
    for word in words:
        if word == "--voice":
            next(words, None)  # the panel option's value
        elif not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The `rvclora` parser, with the options of the `chosen` subcommand loaded (the others listed only)."""
    parser = OneLineParser(prog="rvclora", description=DESCRIPTION, parents=[_debug_parent(False)])
    panel = parser.add_argument_group("panel (when no command is given)")
    panel.add_argument("--voice", help="voice to select: a built-in voice (e.g. deep) or one of your voices")
    panel.add_argument("--start", action="store_true", help="start the voice changer right away")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        shared = parents(command.parents) if name == chosen else []
        p = sub.add_parser(name, help=command.help, parents=[_debug_parent(argparse.SUPPRESS), *shared])  # type: ignore[list-item]  # the stubs want parents of the subparser's own class; argparse accepts any parser
        if name == chosen:
            _add_command(p, name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(chosen_command(argv)).parse_args(argv)
    args.argv = argv  # the command line itself, for a command that starts copies of itself (train on N processes)
    if args.command is None:
        return open_panel(args.voice, args.start)
    return run_guarded("rvclora", lambda: args.func(args), debug=args.debug)


def _alias(name: str, argv: Sequence[str] | None) -> int:
    """`rvclora-<name> ARGS` = `rvclora <name> ARGS`, with its own name in messages."""
    prog = f"rvclora-{name}"
    command = COMMANDS[name]
    parser = OneLineParser(prog=prog, parents=[_debug_parent(False), *parents(command.parents)])
    _add_command(parser, name)
    words = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(words)
    args.argv = [name, *words]  # as `rvclora <name> ...`
    return run_guarded(prog, lambda: args.func(args), debug=args.debug)


def train_main(argv: Sequence[str] | None = None) -> int:
    """`rvclora-train`, an alias of `rvclora train`."""
    return _alias("train", argv)


def export_main(argv: Sequence[str] | None = None) -> int:
    """`rvclora-export`, an alias of `rvclora export`."""
    return _alias("export", argv)


if __name__ == "__main__":
    sys.exit(main())
