"""glibc's heap thresholds, set for what a process does (Linux/glibc only; elsewhere nothing).

glibc serves blocks above its mmap threshold with their own mapping and unmaps them on
free; the threshold is dynamic (each freed mapped block raises it to that block's size),
and free memory at the heap's top goes back to the kernel above the trim threshold. The
two kinds of process rvclora runs want opposite things:

- Live inference (`retain_freed_memory`): each block frees and reallocates the same large
  tensors (the content encoder's conv features are 3-7 MB each). With glibc's defaults they
  are mapped fresh on every block: ~5000 page faults and ~24 ms of system time per 60 ms
  block for a full-size voice on a 2-core CPU. High thresholds keep those pages in the heap
  for the next block; the process keeps the heap one block needed.
- Training (`return_freed_memory`): a step allocates and frees gigabytes of activations
  (freed and made again under activation checkpointing). With the dynamic threshold, later
  1-32 MB tensors come from the heap and stay resident: on a full-size model ~1.5 GB more
  than the tensors in use at LoRA's peak. A fixed 1 MB threshold turns the dynamic rule off,
  so resident memory follows the tensors in use, at the cost of a fresh zeroed mapping per
  large tensor (measured ~35 % more CPU per LoRA step on a loaded 2-core machine).

The setting is process-wide and is made once by the process's entry point (the live
converter; the training command and the panel's training job), never by a library call
that might run inside another kind of process.

Hand-written with ctypes: Python has no binding for mallopt/malloc_trim, and each use is
two calls.
"""

from __future__ import annotations

import ctypes
import functools
import os

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3

# Live: glibc caps the mmap threshold at 32 MB on 64-bit (HEAP_MAX_SIZE / 2); larger tensors stay mapped.
LIVE_MMAP_THRESHOLD = 32 << 20
LIVE_TRIM_THRESHOLD = 256 << 20
# Training: tensors of 1 MB and more get their own mapping; free heap top above 16 MB goes back at once.
TRAIN_MMAP_THRESHOLD = 1 << 20
TRAIN_TRIM_THRESHOLD = 16 << 20


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The loaded glibc with mallopt declared, once per process (trim runs after every training step);
    confstr, not platform.libc_ver(), which reads the interpreter's binary."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        libc = ctypes.CDLL("libc.so.6")
    except (ValueError, OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return None
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.mallopt.restype = ctypes.c_int
    return libc


def set_thresholds(mmap_threshold: int, trim_threshold: int) -> bool:
    """Fix glibc's mmap and trim thresholds for this process; False where the C library is not glibc."""
    libc = _glibc()
    if libc is None:
        return False
    ok = libc.mallopt(M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
    return libc.mallopt(M_TRIM_THRESHOLD, int(trim_threshold)) == 1 and ok


def retain_freed_memory() -> bool:
    """For repeated per-block inference: keep freed large blocks in the heap (idempotent)."""
    return set_thresholds(LIVE_MMAP_THRESHOLD, LIVE_TRIM_THRESHOLD)


def return_freed_memory(mmap_threshold: int = TRAIN_MMAP_THRESHOLD, trim_threshold: int = TRAIN_TRIM_THRESHOLD) -> bool:
    """For training: resident memory follows the tensors in use; gives back what is free now."""
    ok = set_thresholds(mmap_threshold, trim_threshold)
    trim()
    return ok


def trim() -> None:
    """Give the free pages of the heap back now (after loading, after a step)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
