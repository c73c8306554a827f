"""Errors shared by the commands: each carries a one-line message for the user."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator

from ..lora import AdapterWarning


class MissingAssetError(ValueError):
    """A model file the command needs is not where it was looked for."""


class ModelFileError(ValueError):
    """A model file (voice, pretrained base, content encoder, pitch model, index) that cannot be
    used: missing, corrupt, hostile or not what it claims. Commands exit 2 on it, with its line."""


class OutputPathError(ValueError):
    """An output path that cannot be written (no such folder, not writable, wrong suffix)."""


class OutputExistsError(OutputPathError):
    """The output file exists and the user did not ask to replace it."""


# What a command reports as a one-line error instead of a traceback. Our own error
# classes derive from ValueError (bad input) or OSError (files, devices, network).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)



@contextlib.contextmanager
def one_line_warnings(prog: str) -> Iterator[None]:
    """Within the block, rvclora's own warnings (e.g. an adapter applied with --force)
    print as one line `prog: warning: …`, each text once, with no source line."""
    seen: set[str] = set()
    with warnings.catch_warnings():
        previous = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if not issubclass(category, AdapterWarning):
                previous(message, category, filename, lineno, file, line)
            elif str(message) not in seen:
                seen.add(str(message))
                print(f"{prog}: warning: {str(message).splitlines()[0]}", file=sys.stderr)

        warnings.simplefilter("always", AdapterWarning)  # dedup is ours, per command
        warnings.showwarning = show
        yield
