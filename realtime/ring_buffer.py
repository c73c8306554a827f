"""A fixed-size audio FIFO between an audio callback and a worker thread.

One thread writes, one thread reads. Storage is allocated once; ``write`` and
``read_into`` only copy samples and move two counters, so the audio callback never
allocates or waits on model code.

Why a lock at all: CPython makes each attribute store atomic, and in a strict
single-producer/single-consumer FIFO the writer only moves ``_written`` and the
reader only moves ``_read``, so the data itself needs no lock (a side copies its
samples *before* it publishes the new counter). ``clear()`` and the counters of
dropped frames are touched by both sides, though, so the counter updates run under
a ``threading.Lock`` that is held for a few integer operations only, never during a
copy: contention costs nanoseconds, never a blocked callback.
"""

from __future__ import annotations

import threading

import numpy as np


class RingBuffer:
    """FIFO of ``capacity`` frames of ``channels`` samples.

    Mono buffers take and give 1-D arrays ``[n]``; multichannel ones ``[n, channels]``
    (mono also accepts ``[n, 1]``).
    """

    def __init__(self, capacity: int, channels: int = 1, dtype=np.float32):
        if capacity <= 0 or channels <= 0:
            raise ValueError("capacity and channels must be positive")
        self.capacity = int(capacity)
        self.channels = int(channels)
        self.dtype = np.dtype(dtype)
        self._data = np.zeros((self.capacity, self.channels), self.dtype)
        # Monotonic frame counters: Python ints never overflow, and their difference
        # is the fill level, so "full" and "empty" need no extra flag.
        self._written = 0
        self._read = 0
        self._lock = threading.Lock()
        self.overflows = 0   # frames dropped by write() because the buffer was full
        self.underflows = 0  # frames read_into() had to zero-fill

    # -- levels ------------------------------------------------------------------
    @property
    def available(self) -> int:
        """Frames that can be read now."""
        return self._written - self._read

    @property
    def space(self) -> int:
        """Frames that can be written now without dropping."""
        return self.capacity - (self._written - self._read)

    def _frames(self, a: np.ndarray) -> np.ndarray:
        # A [n] mono array becomes a [n, 1] view; no copy.
        if a.ndim == 1:
            if self.channels != 1:
                raise ValueError(f"expected [n, {self.channels}] frames, got a 1-D array")
            return a.reshape(-1, 1)
        if a.ndim != 2 or a.shape[1] != self.channels:
            raise ValueError(f"expected [n, {self.channels}] frames, got shape {a.shape}")
        return a

    # -- producer ----------------------------------------------------------------
    def write(self, frames: np.ndarray) -> int:
        """Append what fits; the rest is dropped and counted in ``overflows``.

        Returns the number of frames written.
        """
        src = self._frames(frames)
        n = len(src)
        free = self.space
        k = min(n, free)
        if k:
            start = self._written % self.capacity
            first = min(k, self.capacity - start)
            self._data[start:start + first] = src[:first]
            if k > first:
                self._data[:k - first] = src[first:k]
        with self._lock:
            self._written += k
            self.overflows += n - k
        return k

    # -- consumer ----------------------------------------------------------------
    def read_into(self, out: np.ndarray) -> int:
        """Fill ``out`` from the buffer; frames missing are zeros, counted in ``underflows``.

        Returns the number of frames actually read (≤ ``len(out)``).
        """
        dst = self._frames(out)
        n = len(dst)
        k = min(n, self.available)
        if k:
            start = self._read % self.capacity
            first = min(k, self.capacity - start)
            dst[:first] = self._data[start:start + first]
            if k > first:
                dst[first:k] = self._data[:k - first]
        if k < n:
            dst[k:] = 0
        with self._lock:
            # min(): a clear() that ran during the copy already moved _read forward.
            self._read = min(self._read + k, self._written)
            self.underflows += n - k
        return k

    def discard(self, n: int) -> int:
        """Drop the oldest ``n`` frames (consumer side); returns how many were dropped."""
        with self._lock:
            k = min(int(n), self._written - self._read)
            self._read += k
        return k

    def clear(self) -> None:
        """Drop everything buffered (counters of dropped frames are kept).

        Safe from the consumer side or while the stream is stopped; from the producer
        side it may race with a read in progress, which then returns stale frames once.
        """
        with self._lock:
            self._read = self._written
