"""Background work beside the live worker, without taking its CPU.

Loading a voice, merging adapters and warming a new voice up run in threads of the
engine's own process while the worker converts. Measured on a loaded 2-core machine
(tiny voice, 200 ms blocks): a base voice loading beside the worker doubled the
worker's block time (median 60 → 110–150 ms, single blocks past 600 ms, long enough
to empty a 400 ms output margin). At a lower scheduling priority (nice +10, Linux
threads can be given their own) the loading thread takes what the worker leaves, and
the worker's blocks stay near their usual time. Not lower: at +19 a thread starved
while it holds the interpreter lock stalls the worker for longer than before.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

BACKGROUND_NICE = 10


def lower_thread_priority(nice: int = BACKGROUND_NICE) -> None:
    """Give the calling thread a lower CPU priority (Linux only: elsewhere a no-op, since only
    Linux schedules threads by their own nice value)."""
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), nice))
