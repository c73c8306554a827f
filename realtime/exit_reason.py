"""Why the engine's child process ended, in one line the panel can show."""

from __future__ import annotations

import signal


def exit_reason(code: int | None) -> str:
    """One line on why the engine process ended, from its exit code."""
    if code is None:
        return "the engine process stopped answering; press Start to try again"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory, or ended by another program?)" if -code == signal.SIGKILL else ""
        return f"the engine process was killed by {name}{hint}; press Start to try again"
    return f"the engine process exited unexpectedly (code {code}); press Start to try again"
