"""Hostile model files, built byte by byte: malicious pickles, lying storage sizes, absurd configs.

Every pickle payload here would create the file `marker` if it ever ran, so a test can
assert that nothing executed. Shared by tests/test_hostile_files.py, the fuzz test and
benchmarks/fuzz_model_files.py.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


# --------------------------------------------------------------------------- raw pickles


def _str(s: str) -> bytes:
    b = s.encode()
    return pickle.SHORT_BINUNICODE + bytes([len(b)]) + b


def payload_pickles(marker: Path) -> dict[str, bytes]:
    """Pickles that run `touch marker` when unpickled without restrictions, in several disguises."""
    cmd = f"touch {marker}"
    return {
        # GLOBAL os.system, REDUCE: the classic
        "global_reduce": b"\x80\x02cos\nsystem\n" + _str(cmd) + b"\x85R.",
        # getattr(__import__('os'), 'system')(cmd): a getattr chain of allowed-looking builtins
        "getattr_chain": (b"\x80\x02cbuiltins\ngetattr\ncbuiltins\n__import__\n" + _str("os") + b"\x85R"
                          + _str("system") + b"\x86R" + _str(cmd) + b"\x85R."),
        # protocol 4 STACK_GLOBAL whose module and name come back from the memo
        "stack_global_memo": (b"\x80\x04" + _str("os") + b"\x94" + _str("system") + b"\x94" + b"h\x00h\x01\x93"
                              + _str(cmd) + b"\x85R."),
        # INST opcode (protocol 0): os.system instantiated as a "class"
        "inst": b"(" + b"V" + cmd.encode() + b"\nios\nsystem\n.",
        # the payload nested inside a state dict, as a voice file would carry it
        "nested_reduce": (b"\x80\x02}" + _str("weight") + b"}" + _str("w") + b"cos\nsystem\n" + _str(cmd)
                          + b"\x85Rss."),
    }


# --------------------------------------------------------------------------- torch containers


class StorageSpec:
    """A storage as the pickle declares it (the bytes actually written may differ)."""

    def __init__(self, key: str, numel: int, cls: type = torch.FloatStorage) -> None:
        self.key, self.numel, self.cls = key, numel, cls


class TensorSpec:
    """A tensor view that pickles exactly as torch.save writes one."""

    def __init__(self, storage: StorageSpec, size: tuple[int, ...], stride: tuple[int, ...], offset: int = 0) -> None:
        self.storage, self.size, self.stride, self.offset = storage, size, stride, offset

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2,
                (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()))


class _Pickler(pickle.Pickler):
    def __init__(self, f: io.BytesIO, legacy: bool) -> None:
        super().__init__(f, protocol=2)
        self.legacy = legacy

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, StorageSpec):
            pid = ("storage", obj.cls, obj.key, "cpu", obj.numel)
            return pid + (None,) if self.legacy else pid
        return None


def torch_zip(obj: Any, data: dict[str, bytes], pickle_bytes: bytes | None = None) -> bytes:
    """A torch zip checkpoint: `archive/data.pkl` (obj pickled, or raw bytes) and storage records."""
    f = io.BytesIO()
    if pickle_bytes is None:
        buf = io.BytesIO()
        _Pickler(buf, legacy=False).dump(obj)
        pickle_bytes = buf.getvalue()
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle_bytes)
        z.writestr("archive/byteorder", "little")
        for key, raw in data.items():
            z.writestr(f"archive/data/{key}", raw)
        z.writestr("archive/version", "3\n")
    return f.getvalue()


def torch_legacy(obj: Any, data: dict[str, tuple[int, bytes]], pickle_bytes: bytes | None = None) -> bytes:
    """A legacy (torch < 1.6) checkpoint; `data` maps storage key -> (element count written, bytes)."""
    f = io.BytesIO()
    for head in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                                       "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(head, f, protocol=2)
    if pickle_bytes is None:
        _Pickler(f, legacy=True).dump(obj)
    else:
        f.write(pickle_bytes)
    pickle.dump(list(data), f, protocol=2)
    for count, raw in data.values():
        f.write(struct.pack("<q", count) + raw)
    return f.getvalue()


def declared_storage_file(declared_bytes: int, *, legacy: bool) -> bytes:
    """A 'voice' whose one storage declares `declared_bytes` while the file holds 16 bytes of it."""
    s = StorageSpec("0", declared_bytes // 4)
    obj = {"weight": {"w": TensorSpec(s, (4,), (1,))}}
    raw = b"\0" * 16
    return torch_legacy(obj, {"0": (s.numel, raw)}) if legacy else torch_zip(obj, {"0": raw})


def zero_stride_file(numel: int, *, legacy: bool) -> bytes:
    """One stored float viewed as `numel` floats through a zero stride."""
    s = StorageSpec("0", 1)
    obj = {"weight": {"w": TensorSpec(s, (numel,), (0,))}}
    return torch_legacy(obj, {"0": (1, b"\0" * 4)}) if legacy else torch_zip(obj, {"0": b"\0" * 4})


def payload_checkpoints(marker: Path) -> dict[str, bytes]:
    """Every payload pickle as a zip checkpoint and as a legacy one."""
    out = {}
    for name, pkl in payload_pickles(marker).items():
        out[f"zip_{name}"] = torch_zip(None, {}, pickle_bytes=pkl)
        out[f"legacy_{name}"] = torch_legacy(None, {}, pickle_bytes=pkl)
    return out


# --------------------------------------------------------------------------- configs


def rewrite_voice(src: Path, dst: Path, edit: Callable[[dict], None]) -> Path:
    """Copy a released voice .pth with `edit` applied to its dict (e.g. to its config list)."""
    ckpt = torch.load(src, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, dst)
    return dst


def config_edits() -> dict[str, Callable[[dict], None]]:
    """Config rewrites a stranger's voice file could carry (the 18-item list; index 17 is sr)."""

    def setter(**items: Any) -> Callable[[dict], None]:
        def edit(ckpt: dict) -> None:
            for index, value in items.items():
                ckpt["config"][int(index[1:])] = value
        return edit

    return {
        "64_layers_8192_wide": setter(i2=8192, i3=8192, i4=8192, i6=64),
        "20000_resblocks": setter(i10=[3] * 20000, i11=[[1, 3, 5]] * 20000),
        "sample_rate_0": lambda c: (setter(i17=0)(c), c.update(sr="0")),
        "hop_mismatch": setter(i12=[10, 10, 2, 3]),
        "heads_100": setter(i5=100),
        "speakers_huge": setter(i15=10**9),
        "negative_width": setter(i2=-8),
        "string_layers": setter(i6="6"),
    }


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def marker_path(folder: Path) -> Path:
    return Path(os.fspath(folder)) / "PAYLOAD_RAN"
