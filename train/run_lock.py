"""One training per output: an exclusive lock on the output file and on the work dir.

Hand-written on fcntl.flock rather than the `filelock` package because the refusal
must name the run that holds the lock (pid, start time), which the lock file itself
records.  The kernel drops a flock when its process dies, however it dies, so the
lock of a killed run is simply taken over by the next one (which rewrites the record).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import TrainingError


class TrainingLockedError(TrainingError):
    """Another training writes to the same output or work dir (one-line message)."""


def lock_path_for_output(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


def lock_path_for_work(work: Path) -> Path:
    return work / "train.lock"


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
        return f"pid {int(info['pid'])}, started {started}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _acquire(path: Path, what: str, resume_hint: bool) -> int:
    """An open descriptor holding the lock on `path` (created if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            then = "; run again with --resume once it has stopped" if resume_hint else ""
            raise TrainingLockedError(
                f"{what} is in use by another training ({_holder(path)}); wait for it to finish or choose another --out{then}"
            ) from None
        # The holder before us may have unlinked the file between our open and our lock:
        # then we hold a lock on a file nobody else can see; open the path afresh.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "started": time.time()}).encode())
    return fd


@contextlib.contextmanager
def training_lock(out: Path, work: Path) -> Iterator[None]:
    """Hold the locks of `out` and `work` for the block; refuse (TrainingLockedError) if either is held."""
    held: list[tuple[Path, int]] = []
    try:
        for path, what in ((lock_path_for_output(out), f"--out {out}"), (lock_path_for_work(work), f"work dir {work}")):
            held.append((path, _acquire(path, what, resume_hint=True)))
        yield
    finally:
        for path, fd in reversed(held):
            with contextlib.suppress(OSError):
                path.unlink()  # while still locked: the next run finds no record or a fresh one
            os.close(fd)
