"""Training/validation split, deterministic batch order, and padding into batches.

The batch order of an epoch is a pure function of (seed, epoch), so a resumed run
can skip to the exact batch where it stopped without having saved any sampler state.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from ..errors import TrainingError
from .feature_cache import Item, load_item


class DataError(TrainingError):
    """Not enough usable data to train; the message says what to do."""


def split_items(items: list[Item], fraction: float, max_val: int, seed: int) -> tuple[list[Item], list[Item]]:
    """Hold out whole slicer chunks (their segments overlap, so splitting inside one
    would leak training audio into validation) until ~`fraction` of the segments,
    at least one and at most `max_val`, are held out."""
    if len(items) < 2:
        raise DataError(f"only {len(items)} usable segment; record more audio (a few minutes at least)")
    groups: dict[str, list[Item]] = {}
    for it in items:
        groups.setdefault(it.group, []).append(it)
    target = min(max(1, round(fraction * len(items))), max_val, len(items) - 1)
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    val: list[Item] = []
    if len(order) == 1:  # one long phrase: nothing to do but take its last segments
        val = groups[order[0]][-target:]
    else:
        for g in order[:-1]:  # never hold out everything
            if len(val) >= target:
                break
            val += groups[g][: max(0, max_val - len(val))]
    held = {it.path for it in val}
    return [it for it in items if it.path not in held], val


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffled batches of indices for one epoch (the last one may be smaller)."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
    return [perm[i : i + batch_size] for i in range(0, n, batch_size)]


@dataclass
class Batch:
    phone: torch.Tensor  # [B, T, C]
    lengths: torch.Tensor  # [B] frames (content, pitch and spectrogram alike)
    pitch: torch.Tensor  # [B, T] long
    pitchf: torch.Tensor  # [B, T] Hz
    spec: torch.Tensor  # [B, F, T]
    wav: torch.Tensor  # [B, 1, T*hop]

    def to(self, device: torch.device) -> Batch:
        return Batch(*(getattr(self, f).to(device) for f in ("phone", "lengths", "pitch", "pitchf", "spec", "wav")))


def collate(samples: list[dict], hop: int) -> Batch:
    """Zero-pad a list of cached segments to the longest one."""
    t = max(len(s["phone"]) for s in samples)
    b, c, f = len(samples), samples[0]["phone"].shape[1], samples[0]["spec"].shape[0]
    phone = torch.zeros(b, t, c)
    pitch = torch.ones(b, t, dtype=torch.long)  # coarse 1 = unvoiced
    pitchf = torch.zeros(b, t)
    spec = torch.zeros(b, f, t)
    wav = torch.zeros(b, 1, t * hop)
    lengths = torch.zeros(b, dtype=torch.long)
    for i, s in enumerate(samples):
        n = len(s["phone"])
        lengths[i] = n
        phone[i, :n] = torch.from_numpy(s["phone"])
        pitch[i, :n] = torch.from_numpy(s["pitch"])
        pitchf[i, :n] = torch.from_numpy(s["pitchf"])
        spec[i, :, :n] = torch.from_numpy(s["spec"])
        wav[i, 0, : len(s["wav"])] = torch.from_numpy(s["wav"])
    return Batch(phone, lengths, pitch, pitchf, spec, wav)


class SegmentData:
    """Cached segments, loaded from disk on demand (a 30-minute set of spectrograms
    would not fit in memory comfortably)."""

    def __init__(self, items: list[Item], hop: int) -> None:
        self.hop = hop
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def load(self, i: int) -> dict:
        return load_item(self.items[i])

    def batch(self, indices: list[int]) -> Batch:
        return collate([self.load(i) for i in indices], self.hop)
