"""Safe loading of `.pth` / `.pt` checkpoints.

Model files are pickles, and a pickle can run any code when it is loaded. We load
them with torch's restricted (`weights_only`) unpickler, which only rebuilds
tensors, storages and plain containers. The configuration objects that fairseq
pickles into `hubert_base.pt` (fairseq dataclasses, omegaconf nodes,
argparse.Namespace) are mapped to `InertObject` stand-ins that only record their
state; any other global in the file is refused before anything is unpickled.

Before torch.load runs, the file's pickle is replayed symbolically (`pickle_scan`): every
storage it declares must lie inside the file (a zip record of that size, or the bytes
after a legacy pickle), every tensor view inside its storage, and the total within a
memory budget derived from the file size, so no file can make a load allocate more than
it holds.
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import struct
import zipfile
from typing import Any, BinaryIO

import torch

from ..errors import ModelFileError
from .pickle_scan import MAX_PICKLE_BYTES, ForbiddenGlobal, PickleScan, PickleScanError, scan_pickle, scan_pickle_bytes

# Headroom of every memory budget: Python objects, small files' fixed costs.
BUDGET_SLACK = 32 << 20
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# Globals whose objects carry configuration only: rebuilt as inert stand-ins.
_INERT_PREFIXES = ("fairseq.", "omegaconf.", "hydra.")
_INERT_NAMES = frozenset(
    {
        "argparse.Namespace",
        "typing.Any",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "numpy.dtype",
        "enum.Enum",
    }
)


class CheckpointError(ModelFileError):
    """A checkpoint could not be loaded; the message says why and what to do."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint references code that loading it would run."""


class InertObject:
    """Stand-in for a pickled configuration object: keeps args and state, runs nothing."""

    _qualname = "InertObject"

    def __new__(cls, *args: Any, **kwargs: Any) -> InertObject:
        obj = super().__new__(cls)
        obj.__dict__["_args"] = args
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state = {**(state[0] or {}), **state[1]}  # (dict state, slot state)
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["_state"] = state

    def __getitem__(self, key: Any) -> Any:
        content = self.__dict__.get("_content", self.__dict__)
        return content[key]

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except (KeyError, TypeError, IndexError):
            return default

    def __repr__(self) -> str:
        return f"<inert {self._qualname}>"


def _stand_in(name: str) -> type:
    module, _, attr = name.rpartition(".")
    return type(attr, (InertObject,), {"__module__": module, "_qualname": name})


def _is_inert(name: str) -> bool:
    return name in _INERT_NAMES or name.startswith(_INERT_PREFIXES)


# What model files reference, should torch's own list (private API) be unreadable.
_MODEL_GLOBALS = frozenset(
    {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
     "torch._utils._rebuild_parameter_with_state", "torch._tensor._rebuild_from_type_v2", "torch.Size",
     "torch.device", "builtins.set", "_codecs.encode", "torch.nn.parameter.Parameter"}
    | {f"torch.{kind}Storage" for kind in ("Float", "Half", "BFloat16", "Double", "Long", "Int", "Short", "Char",
                                           "Byte", "Bool", "Untyped")}
)


@functools.lru_cache(maxsize=1)
def _torch_allowed() -> frozenset[str]:
    # torch's own default weights_only allowlist (read defensively; torch.load re-checks anyway).
    try:
        from torch import _weights_only_unpickler as w  # noqa: PLC0415 — torch-private module, read defensively

        return frozenset(w._get_allowed_globals())
    except (ImportError, AttributeError, TypeError):
        return _MODEL_GLOBALS


def _allowed(name: str) -> bool:
    return _is_inert(name) or name in _torch_allowed()


def memory_budget(file_size: int, factor: float = 1.5) -> int:
    """Bytes loading a model file of `file_size` may allocate: `factor` times the file plus slack.
    A model cannot need much more memory than the weights its file holds."""
    return int(file_size * factor) + BUDGET_SLACK


def _mb(n: int) -> str:
    return f"{n} bytes" if n < 10**6 else f"{n / 1e6:.1f} MB" if n < 10**12 else f"{n:.2e} bytes"


def _zip_records(f: BinaryIO, size: int) -> tuple[str, dict[str, int]]:
    """A torch zip's records (name -> size), all stored uncompressed inside the file, and the
    folder of its single data.pkl."""
    try:
        with zipfile.ZipFile(f) as z:
            infos = z.infolist()
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"not a readable checkpoint (truncated or corrupt: {e})") from None
    finally:
        f.seek(0)
    for i in infos:
        if i.compress_type != zipfile.ZIP_STORED or i.file_size != i.compress_size or i.header_offset + i.file_size > size:
            raise CheckpointError(f"its zip record {i.filename} is compressed or runs past the end of the file")
    pkl = [i.filename for i in infos if i.filename.endswith("/data.pkl") and i.filename.count("/") == 1]
    if len(pkl) != 1:
        raise CheckpointError("not a PyTorch checkpoint zip (no single data.pkl)")
    return pkl[0][: -len("data.pkl")], {i.filename: i.file_size for i in infos}


def _scan_zip(f: BinaryIO, size: int) -> PickleScan:
    """Every storage the zip's pickle declares must be backed by a record at least that large."""
    prefix, records = _zip_records(f, size)
    try:
        with zipfile.ZipFile(f) as z:
            if records[prefix + "data.pkl"] > MAX_PICKLE_BYTES:
                raise PickleScanError(f"a {records[prefix + 'data.pkl']} byte pickle; model files hold their structure in far less")
            scan = scan_pickle_bytes(z.read(prefix + "data.pkl"), _allowed)
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"not a readable checkpoint (truncated or corrupt: {e})") from None
    for ref in scan.storages.values():
        have = records.get(f"{prefix}data/{ref.key}")
        if have is None:
            raise CheckpointError(f"storage {ref.key} has no data in the file (truncated or corrupt)")
        if ref.nbytes > have:
            raise CheckpointError(f"storage {ref.key} declares {_mb(ref.nbytes)} but the file holds {_mb(have)} of it")
    return scan


def _scan_bounded(f: BinaryIO, size: int) -> tuple[Any, PickleScan]:
    """Scan the next pickle of a legacy file from at most MAX_PICKLE_BYTES of it."""
    pos = f.tell()
    buf = io.BytesIO(f.read(MAX_PICKLE_BYTES))
    try:
        result = scan_pickle(buf, _allowed)
    except EOFError:
        if pos + len(buf.getvalue()) < size:
            raise CheckpointError("its pickle is implausibly large for a model file") from None
        raise
    f.seek(pos + buf.tell())
    return result


def _scan_legacy(f: BinaryIO, size: int) -> PickleScan:
    """Check a legacy (torch < 1.6) checkpoint: magic, then the pickle, then each storage as
    an element count and its bytes; every count must match its declaration and fit the file."""
    magic, _ = _scan_bounded(f, size)
    if magic != _LEGACY_MAGIC:
        raise CheckpointError("not a PyTorch checkpoint (.pth/.pt): no torch magic number")
    _scan_bounded(f, size)  # protocol version
    _scan_bounded(f, size)  # sys info
    _, scan = _scan_bounded(f, size)
    keys, _ = _scan_bounded(f, size)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise CheckpointError("not a readable checkpoint (corrupt storage list)")
    for key in keys:
        ref = scan.storages.get(key)
        header = f.read(8)
        if ref is None or len(header) < 8:
            raise CheckpointError("not a readable checkpoint (truncated or corrupt storage list)")
        (count,) = struct.unpack("<q", header)
        if count != ref.numel or f.tell() + ref.nbytes > size:
            raise CheckpointError(f"storage {key} declares {_mb(ref.nbytes)} but the file holds "
                                  f"{_mb(max(0, min(count * ref.itemsize, size - f.tell())))} of it")
        f.seek(ref.nbytes, os.SEEK_CUR)
    return scan


def _check_budget(scan: PickleScan, size: int, budget: int | None) -> None:
    budget = memory_budget(size) if budget is None else budget
    if scan.storage_bytes > size:
        raise CheckpointError(f"declares {_mb(scan.storage_bytes)} of tensor data in a {_mb(size)} file")
    if scan.tensor_bytes > budget:
        raise CheckpointError(f"its tensors would need {_mb(scan.tensor_bytes)}, more than a {_mb(size)} model "
                              f"file can (budget {_mb(budget)}); the file is corrupt or hostile")


def _scan(f: BinaryIO, size: int, zipped: bool, budget: int | None) -> PickleScan:
    try:
        scan = _scan_zip(f, size) if zipped else _scan_legacy(f, size)
    except ForbiddenGlobal as e:
        raise UnsafeCheckpointError(
            f"refused to load: it references {e.name}, which could run code; only load model files from sources you trust"
        ) from None
    except PickleScanError as e:
        raise CheckpointError(f"refused to load: its pickle declares {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            struct.error, OverflowError, MemoryError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"not a readable checkpoint (truncated or corrupt: {_first_reason(e)})") from None
    finally:
        f.seek(0)
    _check_budget(scan, size, budget)
    return scan


def load_checkpoint(
    path: str | os.PathLike | BinaryIO, map_location: str | torch.device = "cpu", *, max_tensor_bytes: int | None = None
) -> Any:
    """Load a torch checkpoint without executing code from it, within a memory budget.

    Raises UnsafeCheckpointError when the file references anything beyond tensors,
    plain containers and known configuration classes, and CheckpointError when the
    file is missing, truncated, not a checkpoint, or declares more tensor data than it
    holds. The tensors it describes (views counted each) may total `max_tensor_bytes`
    (default: `memory_budget` of the file size); a loader whose model has a known size
    may pass that instead.
    """
    label = str(path) if isinstance(path, (str, os.PathLike)) else getattr(path, "name", "<stream>")
    try:
        f = open(path, "rb") if isinstance(path, (str, os.PathLike)) else io.BytesIO(path.read())  # noqa: SIM115 — closed by `with f` below, after the open errors are sorted
    except FileNotFoundError:
        raise CheckpointError(f"{label}: file not found") from None
    except IsADirectoryError:
        raise CheckpointError(f"{label}: is a folder, expected a .pth/.pt file") from None
    with f:
        return _load_open(f, label, map_location, max_tensor_bytes)


def _load_open(f: BinaryIO, label: str, map_location: str | torch.device, budget: int | None) -> Any:
    size = f.seek(0, os.SEEK_END)
    f.seek(0)
    head = f.read(4)
    f.seek(0)
    if not size:
        raise CheckpointError(f"{label}: file is empty")
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # zip (torch ≥ 1.6) or a legacy pickle
        raise CheckpointError(f"{label}: not a PyTorch checkpoint (.pth/.pt)")
    zipped = head.startswith(b"PK")
    try:
        scan = _scan(f, size, zipped, budget)
    except UnsafeCheckpointError as e:
        raise UnsafeCheckpointError(f"{label}: {e}") from None
    except CheckpointError as e:
        raise CheckpointError(f"{label}: {e}") from None
    stand_ins = [(_stand_in(n), n) for n in sorted({n for n in scan.globals if _is_inert(n)} | _INERT_NAMES)]
    try:
        with torch.serialization.safe_globals(stand_ins):
            return torch.load(f, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        reason = _first_reason(e)
        if "GLOBAL" in reason:
            raise UnsafeCheckpointError(f"{label}: refused to load: {reason}") from None
        raise CheckpointError(f"{label}: not a readable checkpoint (truncated or corrupt: {reason})") from None
    except Exception as e:  # noqa: BLE001 - whatever torch trips on in a stranger's file is a bad file
        raise CheckpointError(f"{label}: not a readable checkpoint (truncated or corrupt: {_first_reason(e)})") from None


def _first_reason(e: Exception) -> str:
    """The one informative line of torch's multi-paragraph load errors."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or "Unsupported" in line:
            return line.rstrip(".")
    return (lines[0].split(". ")[0] if lines else type(e).__name__).rstrip(".")
