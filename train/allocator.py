"""Give the memory of freed tensors back to the operating system during training (glibc).

A CPU training step allocates and frees gigabytes of activations, many of them
1-32 MB; with activation checkpointing they are freed and allocated again in the
backward pass.  glibc serves blocks above its mmap threshold with mmap and
unmaps them on free, but the threshold is dynamic: each freed mmapped block
raises it to that block's size, so after the first large frees later tensors
come from the heap, and the heap keeps freed pages resident (fragmented between
live blocks, or above the trim threshold).  On a full-size RVC model this kept
~1.5 GB more resident than the tensors in use at LoRA's peak.  A fixed threshold
turns the dynamic rule off: every tensor over it is mapped and unmapped, so
resident memory follows the tensors in use.  The cost is a fresh, zeroed mapping
per large allocation: system time, a few CPU seconds per full-size CPU step.

Hand-written with ctypes: Python has no binding for mallopt/malloc_trim, and
this is two calls.  Elsewhere (musl, macOS, Windows) nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 1 << 20  # tensors of 1 MB and more get their own mapping
TRIM_THRESHOLD = 16 << 20  # free heap top above this goes back at once


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def return_freed_memory(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Fix glibc's mmap and trim thresholds for this process and give back what is free now.
    Returns False where the C library is not glibc (nothing changed)."""
    libc = _glibc()
    if libc is None:
        return False
    ok = libc.mallopt(M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
    ok = libc.mallopt(M_TRIM_THRESHOLD, int(trim_threshold)) == 1 and ok
    trim()
    return ok


def trim() -> None:
    """Give the free pages of the heap back now (after loading: the checkpoint dicts are gone)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
