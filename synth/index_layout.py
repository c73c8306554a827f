"""Check a faiss index file's declared sizes before faiss reads it.

faiss sizes every array from a count in the file and fills it before reading a byte of
it, so a 1 KB `.index` can declare terabytes and get the process killed. RVC writes one
layout only, `IVF<n>,Flat` over a flat quantizer (or a bare flat index); this walks that
layout's headers (faiss's `index_write.cpp` order), skipping the data, and checks every
count against the bytes that remain. Anything else is refused as not an RVC index.
Hand-written because faiss offers no way to read a header without the arrays.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

from ..errors import FileFormatError


class IndexLayoutError(FileFormatError):
    """The file is not an RVC faiss index, or declares more than it holds."""


class _Reader:
    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f, self.size = f, size

    def take(self, fmt: str) -> tuple:
        n = struct.calcsize("<" + fmt)
        raw = self.f.read(n)
        if len(raw) < n:
            raise IndexLayoutError("truncated")
        return struct.unpack("<" + fmt, raw)

    def skip(self, nbytes: int, what: str) -> None:
        left = self.size - self.f.tell()
        if nbytes < 0 or nbytes > left:
            raise IndexLayoutError(f"its {what} declare {nbytes} bytes but only {left} remain")
        self.f.seek(nbytes, os.SEEK_CUR)

    def vector(self, itemsize: int, what: str) -> int:
        (n,) = self.take("Q")
        self.skip(n * itemsize, what)
        return n


def _header(r: _Reader) -> tuple[int, int]:
    d, ntotal, _, _, _, metric = r.take("iqqqBi")
    if metric > 1:
        r.take("f")
    if not 0 < d <= 65536 or ntotal < 0:
        raise IndexLayoutError(f"its header says {d} dimensions and {ntotal} vectors")
    return d, ntotal


def _flat(r: _Reader) -> tuple[int, int]:
    d, ntotal = _header(r)
    if r.vector(4, "flat vectors") != d * ntotal:
        raise IndexLayoutError("its flat vectors do not match its header")
    return d, ntotal


def _ivf_flat(r: _Reader) -> tuple[int, int]:
    d, ntotal = _header(r)
    nlist, _ = r.take("QQ")
    if r.f.read(4) not in (b"IxF2", b"IxFI"):
        raise IndexLayoutError("its coarse quantizer is not a flat index")
    qd, qn = _flat(r)
    if qd != d or qn != nlist:
        raise IndexLayoutError(f"its quantizer holds {qn} centroids of {qd} dimensions, expected {nlist} of {d}")
    (kind,) = r.take("B")
    r.vector(8, "direct map")
    if kind == 2:  # hashtable direct map
        r.vector(16, "direct map")
    fourcc = r.f.read(4)
    if fourcc == b"il00":
        return d, ntotal
    if fourcc != b"ilar":
        raise IndexLayoutError("its inverted lists are not stored in the file")
    lists, code_size = r.take("QQ")
    if lists != nlist or code_size != 4 * d:
        raise IndexLayoutError("its inverted lists do not match its header")
    layout = r.f.read(4)
    (n,) = r.take("Q")
    if n * 8 > r.size - r.f.tell():
        raise IndexLayoutError(f"its list sizes declare {n} entries past the end of the file")
    sizes = r.take(f"{n}Q")
    if layout == b"full" and n == nlist:
        counts = list(sizes)
    elif layout == b"sprs" and n % 2 == 0:
        counts = list(sizes[1::2])
    else:
        raise IndexLayoutError("its inverted-list sizes are damaged")
    if sum(counts) != ntotal:
        raise IndexLayoutError(f"its lists hold {sum(counts)} vectors, its header says {ntotal}")
    r.skip(sum(counts) * (code_size + 8), "inverted lists")
    return d, ntotal


def check_index_layout(f: BinaryIO, size: int) -> tuple[int, int]:
    """(dimensions, vectors) of an RVC faiss index whose every declared array fits the file;
    raises IndexLayoutError (one line) otherwise. Reads headers only."""
    r = _Reader(f, size)
    fourcc = f.read(4)
    if fourcc == b"IwFl":
        d, ntotal = _ivf_flat(r)
    elif fourcc in (b"IxF2", b"IxFI"):
        d, ntotal = _flat(r)
    else:
        raise IndexLayoutError(f"faiss type {fourcc!r} is not the IVF-Flat or Flat index RVC writes")
    if f.tell() != size:
        raise IndexLayoutError(f"{size - f.tell()} unexpected bytes after the index")
    return d, ntotal
