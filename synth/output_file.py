"""Output files of every command: checked before the work, written beside and renamed into place.

A command calls `check_output_path` before any long work, so a wrong suffix, a
missing or read-only folder or an existing file is refused in the first second
rather than after minutes of converting, exporting or training. `staged_output`
then yields a temporary path beside the output and renames it into place only when
the block succeeds: a failed or interrupted write never leaves a partial (or
0-byte) file, never damages the file it would replace, and a file that appeared
meanwhile is not replaced unasked. `replaced_atomically` is the same rename without
the checks, for files rvclora owns (settings, checkpoints, caches, voice.json).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import OutputExistsError, OutputPathError


def check_output_path(
    out: str | os.PathLike,
    *,
    overwrite: bool,
    suffixes: Sequence[str] | None = None,
    what: str = "output",
    make_folder: bool = False,
) -> Path:
    """Refuse (one-line OutputPathError) an output we must not or cannot write; returns it as a Path.

    `suffixes` (lower case, with the dot) are the formats the command can write.
    `make_folder`: the command creates a missing folder (once its own checks pass), so
    the nearest existing folder above must be writable instead."""
    out = Path(out)
    if suffixes is not None and out.suffix.lower() not in suffixes:
        raise OutputPathError(f"{out}: the {what} must end in {' or '.join(suffixes)} (the suffix picks the format)")
    if out.is_dir():
        raise OutputPathError(f"{out} is a folder; give a file name")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists; pass --overwrite to replace it")
    parent = out.parent
    if make_folder:
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise OutputPathError(f"{out}: {parent} is a file, not a folder")
    if not parent.is_dir():
        raise OutputPathError(f"{out}: folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise OutputPathError(f"{out}: not writable (check the folder's permissions)")
    return out


def staging_path(out: Path) -> Path:
    """The temporary name beside `out`; it keeps the suffix, which some writers read as the format."""
    return out.with_name(f".{out.stem}.{os.getpid()}.partial{out.suffix}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def replaced_atomically(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` (write a file or make a folder there); when the
    block succeeds it replaces `path` in one rename, otherwise it is removed. Readers see
    the old or the new content, never a half-written one."""
    path = Path(path)
    tmp = staging_path(path)
    _remove(tmp)  # left by a killed earlier run with our pid
    try:
        yield tmp
        if tmp.is_dir() and path.is_dir():
            shutil.rmtree(path)  # a folder cannot be renamed onto a non-empty one
        os.replace(tmp, path)
    finally:
        _remove(tmp)


@contextlib.contextmanager
def staged_output(out: str | os.PathLike, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary path beside `out`; when the block succeeds, move it into place
    (refused, one line, when a file appeared there meanwhile and `overwrite` is off)."""
    out = Path(out)
    try:
        with replaced_atomically(out) as tmp:
            yield tmp
            if out.exists() and not overwrite:
                raise OutputExistsError(f"{out} already exists; pass --overwrite to replace it")
    except OSError as e:
        raise OutputPathError(f"{out}: cannot write ({e.strerror or e})") from None
