"""Safe loading of `.pth` / `.pt` checkpoints.

Model files are pickles, and a pickle can run any code when it is loaded. We load
them with torch's restricted (`weights_only`) unpickler, which only rebuilds
tensors, storages and plain containers. The configuration objects that fairseq
pickles into `hubert_base.pt` (fairseq dataclasses, omegaconf nodes,
argparse.Namespace) are mapped to `InertObject` stand-ins that only record their
state; any other global in the file is refused before anything is unpickled.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import torch

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


class CheckpointError(ValueError):
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


def _unsafe_globals(data: bytes) -> list[str]:
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(data))
    except ValueError:
        return []  # legacy (non-zip) format: torch's restricted unpickler still guards it
    except (RuntimeError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"not a readable checkpoint (truncated or corrupt: {_first_reason(e)})") from None


def load_checkpoint(path: str | os.PathLike | BinaryIO, map_location: str | torch.device = "cpu") -> Any:
    """Load a torch checkpoint without executing code from it.

    Raises UnsafeCheckpointError when the file references anything beyond tensors,
    plain containers and known configuration classes, and CheckpointError when the
    file is missing, truncated or not a checkpoint.
    """
    label = str(path) if isinstance(path, (str, os.PathLike)) else getattr(path, "name", "<stream>")
    try:
        data = Path(path).read_bytes() if isinstance(path, (str, os.PathLike)) else path.read()
    except FileNotFoundError:
        raise CheckpointError(f"{label}: file not found") from None
    except IsADirectoryError:
        raise CheckpointError(f"{label}: is a folder, expected a .pth/.pt file") from None
    if not data:
        raise CheckpointError(f"{label}: file is empty")

    if not data.startswith((b"PK\x03\x04", b"\x80")):  # zip (torch ≥ 1.6) or a legacy pickle
        raise CheckpointError(f"{label}: not a PyTorch checkpoint (.pth/.pt)")
    try:
        names = _unsafe_globals(data)
    except CheckpointError as e:
        raise CheckpointError(f"{label}: {e}") from None
    refused = sorted(n for n in names if not _is_inert(n))
    if refused:
        raise UnsafeCheckpointError(
            f"{label}: refused to load: it references {', '.join(refused[:3])}"
            f"{' …' if len(refused) > 3 else ''}, which could run code; only load model files from sources you trust"
        )
    stand_ins = [(_stand_in(n), n) for n in sorted(set(names) | _INERT_NAMES)]
    try:
        with torch.serialization.safe_globals(stand_ins):
            return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        reason = _first_reason(e)
        if "GLOBAL" in reason:
            raise UnsafeCheckpointError(f"{label}: refused to load: {reason}") from None
        raise CheckpointError(f"{label}: not a readable checkpoint (truncated or corrupt: {reason})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, KeyError) as e:
        raise CheckpointError(f"{label}: not a readable checkpoint (truncated or corrupt: {_first_reason(e)})") from None


def _first_reason(e: Exception) -> str:
    """The one informative line of torch's multi-paragraph load errors."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or "Unsupported" in line:
            return line.rstrip(".")
    return (lines[0].split(". ")[0] if lines else type(e).__name__).rstrip(".")
