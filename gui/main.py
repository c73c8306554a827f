"""The `rvclora` command: the panel when run bare, subcommands otherwise."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from ..synth import cli as synth_cli

    parser = argparse.ArgumentParser(
        prog="rvclora",
        description="Real-time AI voice changer for RVC voice models with LoRA adapters. "
        "Run without a command to open the panel.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    synth_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..synth.errors import USER_ERRORS

    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        # The panel arrives with the GUI issue; until then the bare command explains itself.
        parser.print_help()
        return 0
    try:
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
