"""Training checkpoints: everything needed to continue a run bit for bit.

A checkpoint holds the trainable generator tensors (the adapter, plus unfrozen
and posterior tensors; the whole generator in full mode), both optimizers, the
discriminator, the step, the best-so-far tensors for early stopping, and the
random number generator states.  The batch order and the learning rate are pure
functions of (seed, epoch), so they need no saving.  Files are written
atomically (`ckpt_<step>.pt`); only the newest few are kept.

Nothing else goes in: in LoRA mode the size is almost all discriminator (its
weights and two AdamW moments: 3 × 71 M fp32 values, ~0.86 GB, for a full-size v2
one), which an exact resume needs.  Free space is checked before each write; a
write that fails anyway (the disk filled meanwhile) removes its temporary file and
keeps the last good checkpoint.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..synth.output_file import replaced_atomically


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(x: Any) -> Any:
    # random.setstate wants tuples; a round trip through the loader may give lists.
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def checkpoint_path(folder: Path, step: int) -> Path:
    return folder / f"ckpt_{step:08d}.pt"


class CheckpointWriteError(UserError, OSError):
    """A checkpoint could not be written (no space, say); the one-line message says what is kept."""


# Room left over besides the tensors: pickle and zip records, and other files the run writes.
_SPACE_MARGIN = 16 * 2**20


def payload_bytes(payload: Any) -> int:
    """The bytes of every tensor in a (nested) checkpoint payload: close to its file size."""
    if isinstance(payload, torch.Tensor):
        return payload.numel() * payload.element_size()
    if isinstance(payload, dict):
        return sum(payload_bytes(v) for v in payload.values())
    if isinstance(payload, (list, tuple)):
        return sum(payload_bytes(v) for v in payload)
    return 0


def _kept(folder: Path) -> str:
    done = list_checkpoints(folder)
    return f"the last checkpoint ({done[-1].name}) is kept" if done else "no earlier checkpoint exists"


def save_checkpoint(folder: Path, step: int, payload: dict[str, Any], keep: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(folder, step)
    size = payload_bytes(payload)
    need = size + _SPACE_MARGIN
    free = shutil.disk_usage(folder).free
    if free < need:
        raise CheckpointWriteError(
            f"not enough free space in {folder} for a checkpoint ({need / 1e6:.0f} MB needed, {free / 1e6:.0f} MB free); "
            f"{_kept(folder)}: free some space (or move --work-dir) and run again with --resume"
        )
    try:
        with replaced_atomically(path) as tmp, open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())  # a full disk shows here at the latest, not after the rename
    except (OSError, RuntimeError) as e:  # torch words a failed write as a RuntimeError
        full = getattr(e, "errno", None) == errno.ENOSPC or shutil.disk_usage(folder).free < size
        why = "the disk is full" if full else (getattr(e, "strerror", None) or str(e).splitlines()[0])
        raise CheckpointWriteError(
            f"cannot write checkpoint {path.name} in {folder} ({why}); {_kept(folder)}: "
            "free some space (or move --work-dir) and run again with --resume"
        ) from None
    for old in list_checkpoints(folder)[:-max(1, keep)]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(folder: Path) -> list[Path]:
    """Oldest first."""
    return sorted(folder.glob("ckpt_*.pt")) if folder.is_dir() else []


def load_latest(folder: Path) -> dict[str, Any] | None:
    """The newest checkpoint that reads; a damaged newest one (killed mid-write on a
    filesystem without atomic rename) falls back to the one before."""
    for path in reversed(list_checkpoints(folder)):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - any unreadable file: try the previous one
            continue
    return None
