"""PortAudio's and ALSA's own messages go to a log file, not into the terminal or the status line.

ALSA ("ALSA lib pcm.c:…(snd_pcm_recover) underrun occurred") and PortAudio
("Expression '…' failed in pa_linux_alsa.c") write from C straight to file
descriptor 2, at stream open and close and from the audio thread at every xrun
(measured: 29 such lines in a 4 s `rvclora run` on the test server). No Python
setting silences them, so while the engine runs, descriptor 2 points at a log file
and Python's own `sys.stderr` (the run line, events, errors) keeps writing to where
descriptor 2 pointed before.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import platformdirs

from ..library.home import HOME_ENV

LOG_NAME = "audio-library.log"


def log_path() -> Path:
    """<RVCLORA_HOME>/logs/… when the home is set, else the platform's user log folder."""
    home = os.environ.get(HOME_ENV, "").strip()
    folder = Path(home).expanduser() / "logs" if home else platformdirs.user_log_path("rvclora", appauthor=False)
    return folder / LOG_NAME


@contextlib.contextmanager
def library_noise_to(path: Path | None = None) -> Iterator[Path]:
    """Within the block, C libraries' writes to descriptor 2 are appended to `path`; `sys.stderr` is unchanged
    for the user. Where the log cannot be opened, nothing is redirected (the noise is shown, not lost)."""
    path = path or log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        yield path
        return
    old = sys.stderr
    try:
        old.flush()
        on_fd2 = old.fileno() == 2
    except (AttributeError, ValueError, OSError):  # a test's capture object: not descriptor 2
        on_fd2 = False
    terminal = os.dup(2)
    os.dup2(log, 2)
    os.close(log)
    if on_fd2:
        sys.stderr = open(terminal, "w", buffering=1, encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
                          closefd=False)
    try:
        yield path
    finally:
        if on_fd2:
            sys.stderr.flush()
            sys.stderr.close()
            sys.stderr = old
        os.dup2(terminal, 2)
        os.close(terminal)
