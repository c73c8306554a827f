"""The `rvclora` command: the panel when run bare, subcommands otherwise."""

import sys


def main(argv: list[str] | None = None) -> int:
    from ..synth.cli import build_parser, run

    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv:
        # The panel arrives with the GUI issue; until then the bare command explains itself.
        parser.print_help()
        return 0
    return run(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
