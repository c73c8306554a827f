"""Keep freed memory in the process for repeated per-block inference (glibc only).

A full-size voice's block allocates tens of megabytes of short-lived tensors (the content
encoder's conv features are 3–7 MB each). With glibc's defaults those large blocks are
mapped fresh and handed back to the kernel on every free, so each block pays thousands of
page faults and the kernel's page zeroing again: measured ~5000 faults and ~24 ms of
system time per 60 ms block on a 2-core CPU, ~7 % of the block's compute. Raising the
mmap and trim thresholds keeps those pages in the heap for the next block; the cost is
that the process keeps its peak heap (what one block needed) mapped.

Hand-written because no packaged allocator switch exists that can be turned on from
inside a running Python process; `mallopt` is glibc's documented knob, reached through
ctypes. Elsewhere (macOS, Windows, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# glibc caps the mmap threshold at 32 MB on 64-bit (HEAP_MAX_SIZE / 2); larger tensors stay mapped.
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20


def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (idempotent).

    Returns whether the allocator took the settings (False off glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
