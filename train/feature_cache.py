"""Per-file feature cache: content features, pitch and spectrogram, keyed by content hash.

Layout under the cache folder::

    <sha256 of file>[:2]/<sha256 of file>-<settings key>/
        meta.json          {"status": "ok" | "rejected", "reason", "source", "segments"}
        0000.npz ...       one training segment: wav, phone, pitch, pitchf, spec, chunk

The settings key hashes everything the features depend on (preprocessing, model
rate/version/f0, pitch method, content encoder file, spectrogram geometry), so a
changed setting never reads stale features, and an unchanged file is never
decoded again, whatever its name or folder.  Rejections are cached too, so a bad
file is reported on every run without being decoded each time.  Each entry is
written to a temporary folder and renamed: a killed run leaves no half entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..synth.file_hash import sha256_file
from ..synth.output_file import replaced_atomically
from ..synth.pitch import f0_to_coarse
from .mel import SpecConfig, linear_spectrogram
from .preprocess import FileRejected, Segment, Skipped

MAX_FRAMES = 900  # RVC caps content features at 9 s


@dataclass(frozen=True)
class Item:
    """One cached training segment."""

    path: Path  # the .npz
    source: Path  # the recording it came from
    group: str  # file hash + slicer chunk: segments of one group overlap in time


class FeatureExtractor:
    """Segment -> the arrays the synthesizer trains on, all at 100 frames/s."""

    def __init__(self, encoder, pitch, spec: SpecConfig, *, device: torch.device = torch.device("cpu")) -> None:
        self.encoder = encoder  # ContentEncoder (16 kHz -> 50 fps features)
        self.pitch = pitch  # PitchEstimator, or None for no-f0 models
        self.spec = spec
        self.device = device

    @torch.no_grad()
    def __call__(self, seg: Segment) -> dict[str, np.ndarray]:
        wav16 = torch.from_numpy(seg.wav16k).to(self.device)[None]
        feats = self.encoder(wav16)[0].float().cpu().numpy()
        phone = np.repeat(feats, 2, axis=0)  # 50 -> 100 fps, as RVC's loader does
        spec = linear_spectrogram(torch.from_numpy(seg.wav), self.spec).numpy()
        if self.pitch is not None:
            f0 = np.asarray(self.pitch(seg.wav16k), dtype=np.float32)
        else:
            f0 = np.zeros(spec.shape[-1], dtype=np.float32)
        n = min(len(phone), len(f0), spec.shape[-1], MAX_FRAMES)
        return {
            "wav": seg.wav[: n * self.spec.hop].astype(np.float32),
            "phone": phone[:n].astype(np.float32),
            "pitch": f0_to_coarse(f0[:n]).astype(np.int64),
            "pitchf": f0[:n].astype(np.float32),
            "spec": spec[:, :n].astype(np.float32),
            "chunk": np.int64(seg.chunk),
        }


@dataclass
class CacheResult:
    items: list[Item]
    skipped: list[Skipped]
    hits: int
    misses: int


def entry_dir(cache: Path, digest: str, settings_key: str) -> Path:
    return cache / digest[:2] / f"{digest}-{settings_key}"


def build_cache(
    files: Iterable[Path],
    cache: Path,
    settings_key: str,
    preprocess: Callable[[Path], list[Segment]],
    extractor: Callable[[], Callable[[Segment], dict[str, np.ndarray]]],
    *,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
) -> CacheResult:
    """Preprocess and extract every file not cached yet; return all usable segments.

    `extractor` is called (once) only when some file misses the cache, so a rerun
    on unchanged data never loads the content encoder or pitch model."""
    cache.mkdir(parents=True, exist_ok=True)
    items: list[Item] = []
    skipped: list[Skipped] = []
    hits = misses = 0
    extract = None
    for path in progress(list(files)):
        try:
            digest = sha256_file(path)  # the cache key: renaming or moving a file costs nothing
        except OSError as e:
            skipped.append(Skipped(path, f"unreadable ({e.strerror or e})"))
            continue
        folder = entry_dir(cache, digest, settings_key)
        meta = _read_meta(folder)
        if meta is None:
            misses += 1
            try:
                segments = preprocess(path)
            except FileRejected as e:
                meta = {"status": "rejected", "reason": str(e), "source": str(path), "segments": 0}
                _write_entry(folder, meta, [])
            else:
                extract = extract or extractor()
                arrays = [extract(s) for s in segments]
                chunks = [int(a["chunk"]) for a in arrays]
                meta = {"status": "ok", "reason": "", "source": str(path), "segments": len(arrays), "chunks": chunks}
                _write_entry(folder, meta, arrays)
        else:
            hits += 1
        if meta["status"] != "ok":
            skipped.append(Skipped(path, meta["reason"]))
            continue
        for i, chunk in enumerate(meta["chunks"]):
            items.append(Item(folder / f"{i:04d}.npz", path, f"{digest}:{chunk}"))
    return CacheResult(items, skipped, hits, misses)


def load_item(item: Item) -> dict[str, np.ndarray]:
    with np.load(item.path) as z:
        return {k: z[k] for k in z.files}


def _read_meta(folder: Path) -> dict | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("status") == "ok" and not all((folder / f"{i:04d}.npz").is_file() for i in range(int(meta.get("segments", 0)))):
        return None  # damaged entry (files deleted by hand): rebuild it
    return meta


def _write_entry(folder: Path, meta: dict, arrays: list[dict[str, np.ndarray]]) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(folder) as tmp:
        tmp.mkdir()
        for i, a in enumerate(arrays):
            np.savez(tmp / f"{i:04d}.npz", **a)
        (tmp / "meta.json").write_text(json.dumps(meta))
