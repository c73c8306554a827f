"""Read what a checkpoint's pickle declares (storages, tensor views) without building any of it.

torch.load allocates every storage at the size the pickle declares before it reads a
byte of it, and rebuilds tensors as views with whatever sizes and strides the pickle
says: a 2 KB file can declare a 10 GB storage, or view one float as a billion (zero
strides) that the first `.float()` materialises. So the pickle is first replayed by
Python's own pure-Python unpickler in which every global is an inert symbol and every
call is only recorded: the storages (from the persistent ids) and tensor views (from the
rebuild calls) can then be checked against the file's size and a memory budget before
torch.load runs. Hand-written because no library reports a pickle's persistent ids and
call arguments without executing it; torch's own scan (`get_globals_in_pkl`) lists
names only.
"""

from __future__ import annotations

import io
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..errors import FileFormatError

# A model's pickle holds its structure only (tensor data lives beside it): ~55 KB for a
# released voice, ~220 KB for a training checkpoint with optimizer state. Each opcode can
# create a Python object ~70x its size, so the pickle itself is capped (1 MiB -> ~70 MB).
MAX_PICKLE_BYTES = 1 << 20
MAX_DIMS = 16

# Rebuilders torch's restricted unpickler allows that model files never use: they build
# tensors this scan cannot size (sparse, nested, quantized, subclass, meta, numpy).
_TENSOR_REBUILDS = frozenset({"torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3"})
_WRAPPERS = frozenset({"torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
                       "torch.nn.parameter.Parameter", "torch._tensor._rebuild_from_type_v2"})


class PickleScanError(FileFormatError):
    """The pickle declares something a model file never holds; one line says what."""


class ForbiddenGlobal(PickleScanError):
    """The pickle references a global outside the allowed set (code it would run)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _Sym:
    """A global (or the result of calling one): records, never resolves or runs."""

    __slots__ = ("name", "args", "state", "items")

    def __init__(self, name: str, args: tuple = ()) -> None:
        self.name, self.args, self.state = name, args, None
        self.items: list[Any] = []

    def __call__(self, *args: Any, **kwargs: Any) -> _Sym:
        raise PickleScanError("a call the scan does not model")  # every call path is overridden below

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items.append((key, value))

    def append(self, value: Any) -> None:
        self.items.append(value)

    def extend(self, values: Any) -> None:
        self.items.extend(values)


@dataclass(frozen=True)
class StorageRef:
    key: str
    itemsize: int
    numel: int  # in elements of its dtype

    @property
    def nbytes(self) -> int:
        return self.numel * self.itemsize


@dataclass
class PickleScan:
    """What the pickle asks torch.load to allocate."""

    storages: dict[str, StorageRef] = field(default_factory=dict)
    tensor_bytes: int = 0  # sum over tensor views, shared storages counted per view
    calls: list[_Sym] = field(default_factory=list)
    globals: set[str] = field(default_factory=set)

    @property
    def storage_bytes(self) -> int:
        return sum(s.nbytes for s in self.storages.values())


# Storage classes a checkpoint names, by element size (torch.<Name>Storage).
_ITEMSIZE = {"Untyped": 1, "Byte": 1, "Char": 1, "Bool": 1, "QUInt8": 1, "QInt8": 1, "QUInt4x2": 1, "QUInt2x4": 1,
             "Half": 2, "BFloat16": 2, "Short": 2, "Float": 4, "Int": 4, "QInt32": 4, "Double": 8, "Long": 8,
             "ComplexFloat": 8, "ComplexDouble": 16}


def _itemsize(storage_type: Any) -> int:
    name = storage_type.name if isinstance(storage_type, _Sym) else ""
    size = _ITEMSIZE.get(name.removeprefix("torch.").removesuffix("Storage")) if name.startswith("torch.") else None
    if size is None:
        raise PickleScanError(f"unknown storage type {name or type(storage_type).__name__}")
    return size


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if isinstance(value, _Sym) and value.name == "torch.Size()" and len(value.args) == 1:
        value = value.args[0]
    if not isinstance(value, tuple) or len(value) > MAX_DIMS or not all(type(v) is int and v >= 0 for v in value):
        raise PickleScanError(f"a tensor with an invalid {what}")
    return value


class _Scanner(pickle._Unpickler):
    dispatch = dict(pickle._Unpickler.dispatch)
    # set by pickle's pure-Python unpickler while it runs; its type stubs leave them out
    stack: list[Any]
    append: Callable[[Any], None]

    def __init__(self, file: BinaryIO, scan: PickleScan, allowed: Callable[[str], bool]) -> None:
        super().__init__(file)
        self.scan, self.allowed = scan, allowed

    def find_class(self, module: str, name: str) -> _Sym:
        full = f"{module}.{name}"[:200]
        if not self.allowed(full):
            raise ForbiddenGlobal(full)
        self.scan.globals.add(full)
        return _Sym(full)

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid or pid[0] not in ("storage", b"storage"):
            if isinstance(pid, tuple) and pid and pid[0] in ("module", b"module"):
                return _Sym("module")
            raise PickleScanError("an unknown persistent id")
        if len(pid) not in (5, 6) or type(pid[4]) is not int or pid[4] < 0:
            raise PickleScanError("a storage without a plain element count")
        key, numel = str(pid[2]), pid[4]
        ref = self.scan.storages.setdefault(key, StorageRef(key, _itemsize(pid[1]), numel))
        view = pid[5] if len(pid) == 6 else None
        if view is not None:  # legacy format: (view key, offset, size) into the root storage
            if not (isinstance(view, tuple) and len(view) == 3 and all(type(v) is int and v >= 0 for v in view[1:])):
                raise PickleScanError("a storage view without plain offsets")
            if view[1] + view[2] > ref.numel:
                raise PickleScanError(f"a storage view past the end of storage {key}")
            return StorageRef(f"{key}/{view[0]}", ref.itemsize, view[2])
        return ref

    def _call(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        if not isinstance(func, _Sym) or not isinstance(args, tuple):
            raise PickleScanError("a call of something that is not a global")
        self.stack[-1] = self._record(func, args)

    def _newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        if not isinstance(cls, _Sym) or not isinstance(args, tuple):
            raise PickleScanError("NEWOBJ of something that is not a global")
        self.append(self._record(cls, args))

    def _newobj_ex(self) -> None:
        self.stack.pop()  # kwargs
        self._newobj()

    def _instantiate(self, klass: Any, args: list) -> None:  # INST / OBJ (protocols 0 and 1)
        if not isinstance(klass, _Sym):
            raise PickleScanError("a call of something that is not a global")
        self.append(self._record(klass, tuple(args)))

    def _record(self, func: _Sym, args: tuple) -> _Sym:
        name = func.name
        if name in _TENSOR_REBUILDS:
            self._check_view(args)
        elif name == "torch._tensor._rebuild_from_type_v2" and len(args) >= 3 and isinstance(args[0], _Sym):
            if args[0].name not in _TENSOR_REBUILDS | _WRAPPERS or not isinstance(args[2], tuple):
                raise PickleScanError(f"a tensor rebuilt by {args[0].name}")
            if args[0].name in _TENSOR_REBUILDS:
                self._check_view(args[2])
        elif name.startswith(("torch._utils._rebuild", "torch._tensor._rebuild")) and name not in _WRAPPERS:
            raise PickleScanError(f"a tensor of a kind model files never hold ({name.rsplit('.', 1)[-1]})")
        elif name == "builtins.bytearray" and args and not isinstance(args[0], (bytes, str)):
            raise PickleScanError("a bytearray of a declared size")
        call = _Sym(name + "()", args)
        self.scan.calls.append(call)
        return call

    def _check_view(self, args: tuple) -> None:
        if len(args) < 4 or not isinstance(args[0], StorageRef) or type(args[1]) is not int or args[1] < 0:
            raise PickleScanError("a tensor without a storage and offset")
        storage, offset = args[0], args[1]
        size, stride = _ints(args[2], "size"), _ints(args[3], "stride")
        if len(size) != len(stride):
            raise PickleScanError("a tensor whose size and stride differ in length")
        numel = math.prod(size)
        if numel:
            last = offset + sum((n - 1) * s for n, s in zip(size, stride))
            if last >= storage.numel:
                raise PickleScanError(f"a tensor view {list(size)} past the end of its storage ({storage.numel} elements)")
            if numel > storage.numel:
                why = "zero strides" if 0 in (s for n, s in zip(size, stride) if n > 1) else "overlapping strides"
                raise PickleScanError(f"a tensor of {numel} elements over a storage of {storage.numel} ({why})")
        self.scan.tensor_bytes += numel * storage.itemsize


for _op, _method in ((pickle.REDUCE, _Scanner._call), (pickle.NEWOBJ, _Scanner._newobj), (pickle.NEWOBJ_EX, _Scanner._newobj_ex)):
    _Scanner.dispatch[_op[0]] = _method  # type: ignore[assignment]  # our handlers take the subclass; pickle calls them on it


def scan_pickle(stream: BinaryIO, allowed: Callable[[str], bool]) -> tuple[Any, PickleScan]:
    """Replay one pickle from `stream` symbolically; returns (symbolic result, scan).

    Raises ForbiddenGlobal for a global `allowed` refuses, PickleScanError for declarations
    no model file makes, and pickle/EOF/value errors for a damaged pickle.
    """
    scan = PickleScan()
    try:
        return _Scanner(stream, scan, allowed).load(), scan
    except RecursionError:
        raise PickleScanError("a pickle nested too deeply") from None


def scan_pickle_bytes(data: bytes, allowed: Callable[[str], bool]) -> PickleScan:
    if len(data) > MAX_PICKLE_BYTES:
        raise PickleScanError(f"a {len(data) >> 20} MB pickle; model files hold their structure in far less")
    return scan_pickle(io.BytesIO(data), allowed)[1]
