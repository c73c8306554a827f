"""Training checkpoints: everything needed to continue a run bit for bit.

A checkpoint holds the trainable generator tensors (the adapter, plus unfrozen
and posterior tensors; the whole generator in full mode), both optimizers, the
discriminator, the step, the best-so-far tensors for early stopping, and the
random number generator states.  The batch order and the learning rate are pure
functions of (seed, epoch), so they need no saving.  Files are written
atomically (`ckpt_<step>.pt`); only the newest few are kept.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import torch


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


def save_checkpoint(folder: Path, step: int, payload: dict[str, Any], keep: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(folder, step)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
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
