"""The one error boundary every entry point runs its command in, and the one exit-code rule.

- rvclora.errors.UserError: one line `prog: error: <message>` on stderr, exit 2.
- Ctrl-C: `prog: interrupted`, exit 130.
- Anything else is a bug: one line `prog: internal error: <type>: <message> (rerun with --debug
  for details)`, exit 1. `--debug` lets every error through with its traceback.
- rvclora's own warnings (RvcloraWarning, e.g. an adapter applied with --force) print as one
  line `prog: warning: …`, each text once.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import NoReturn

from ..errors import EXIT_INTERNAL_ERROR, EXIT_USER_ERROR, RvcloraWarning, UserError

EXIT_INTERRUPTED = 130


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (exit 2), like every other user error."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)


@contextlib.contextmanager
def one_line_warnings(prog: str) -> Iterator[None]:
    """Within the block, rvclora's own warnings print as one line `prog: warning: …`, each text
    once, with no source line; other warnings print as Python prints them."""
    seen: set[str] = set()
    with warnings.catch_warnings():
        previous = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if not issubclass(category, RvcloraWarning):
                previous(message, category, filename, lineno, file, line)
            elif str(message) not in seen:
                seen.add(str(message))
                print(f"{prog}: warning: {str(message).splitlines()[0]}", file=sys.stderr)

        warnings.simplefilter("always", RvcloraWarning)  # dedup is ours, per command
        warnings.showwarning = show
        yield


def run_guarded(prog: str, command: Callable[[], int], *, debug: bool) -> int:
    """Run `command` and turn what it raises into the exit-code rule above."""
    try:
        with one_line_warnings(prog):
            return command()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UserError as e:
        if debug:
            raise
        print(f"{prog}: error: {first_line(e)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as e:  # a bug: say so in one line, the traceback is behind --debug
        if debug:
            raise
        print(f"{prog}: internal error: {type(e).__name__}: {first_line(e)} (rerun with --debug for details)",
              file=sys.stderr)
        return EXIT_INTERNAL_ERROR
