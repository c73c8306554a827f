"""RVC feature-index retrieval (faiss) and voiceless-consonant protection.

An RVC `.index` file is a faiss `IVF{n},Flat` index (L2 metric) over the voice's
training HuBERT/ContentVec features (50 fps, 256-dim for v1, 768-dim for v2).
At inference each frame is replaced, in proportion `index_rate`, by a weighted
mean of its 8 nearest training frames, which pulls the timbre towards the
target speaker. Everything here follows RVC's pipeline bit for bit so that an
index built by RVC works here and one built here works in RVC.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import faiss
import numpy as np
import torch

from ..errors import ModelFileError, UsageError
from .index_layout import IndexLayoutError, check_index_layout

__all__ = [
    "FeatureIndex",
    "FeatureIndexError",
    "apply_protect",
    "build_index",
    "ivf_list_count",
]

# RVC searches for 8 neighbours per frame.
DEFAULT_K = 8
# Distances below this are treated as this, so an exact match gets (almost) all
# the weight instead of producing inf/nan.
_MIN_SCORE = 1e-12
# RVC adds vectors in batches of this many rows.
_ADD_BATCH = 8192


class FeatureIndexError(ModelFileError):
    """A feature index cannot be used; the message is one line saying why and what to do."""


class FeatureIndex:
    """A loaded faiss index plus all its vectors (needed to blend the neighbours)."""

    __slots__ = ("_index", "_vectors", "_path")

    def __init__(self, index: faiss.Index, vectors: np.ndarray, path: Path | None = None) -> None:
        self._index = index
        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._path = path

    @classmethod
    def load(cls, path: str | Path) -> FeatureIndex:
        """Read an RVC `added_*.index` file and reconstruct all of its vectors."""
        path = Path(path)
        if not path.is_file():
            raise FeatureIndexError(f"feature index not found: {path}")
        try:  # faiss allocates what the file declares before reading it: check the counts first
            with path.open("rb") as f:
                check_index_layout(f, path.stat().st_size)
        except IndexLayoutError as exc:
            raise FeatureIndexError(f"{path.name} is not a faiss index file RVC writes ({exc})") from None
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise FeatureIndexError(f"{path.name} is not a faiss index file ({_first_line(exc)})") from None
        if index.metric_type != faiss.METRIC_L2:
            raise FeatureIndexError(f"{path.name} uses a non-L2 metric; RVC feature indexes use L2 distances")
        # A `trained_*.index` holds only the IVF centroids: nothing to retrieve.
        if index.ntotal == 0:
            raise FeatureIndexError(_use_added_message(path, "it contains no vectors"))
        try:
            vectors = index.reconstruct_n(0, index.ntotal)
        except RuntimeError as exc:
            raise FeatureIndexError(_use_added_message(path, f"its vectors cannot be read back: {_first_line(exc)}")) from None
        return cls(index, vectors, path)

    @property
    def dim(self) -> int:
        """Feature dimension: 256 (v1 voices) or 768 (v2 voices)."""
        return int(self._index.d)

    @property
    def size(self) -> int:
        """Number of stored training frames."""
        return int(self._index.ntotal)

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def vectors(self) -> np.ndarray:
        """All stored vectors `[size, dim]` float32 (read-only view)."""
        view = self._vectors.view()
        view.flags.writeable = False
        return view

    def check_dim(self, voice_dim: int) -> None:
        """Fail early when the index was built for the other model version."""
        if voice_dim != self.dim:
            name = self._path.name if self._path is not None else "the index"
            raise FeatureIndexError(
                f"{name} holds {self.dim}-dim features but the voice uses {voice_dim}-dim features"
                f" ({_version_hint(self.dim)} index vs {_version_hint(voice_dim)} voice); use the index trained with this voice"
            )

    def search(self, feats: np.ndarray, k: int = DEFAULT_K) -> tuple[np.ndarray, np.ndarray]:
        """faiss search: (squared L2 distances `[T, k]`, ids `[T, k]`; -1 where fewer than k were found)."""
        query = self._as_query(feats)
        return self._index.search(query, k)

    def search_blend(self, feats: np.ndarray, index_rate: float, k: int = DEFAULT_K) -> np.ndarray:
        """Blend each frame with its k nearest stored frames, as RVC does.

        `feats` is `[T, C]` (50 fps, before the x2 upsampling). Returns a new float32
        array: `index_rate * retrieved + (1 - index_rate) * feats`, where `retrieved`
        is the mean of the k neighbours weighted by `1 / score**2` (faiss' score is
        the squared L2 distance; RVC squares it once more).
        """
        if not 0.0 <= index_rate <= 1.0:
            raise UsageError(f"index_rate must be in [0, 1], got {index_rate}")
        query = self._as_query(feats)
        if index_rate == 0.0 or query.shape[0] == 0:
            return query.copy()  # RVC skips the search entirely at rate 0
        score, ix = self._index.search(query, k)
        retrieved, found = _weighted_neighbours(self._vectors, score, ix)
        out = (index_rate * retrieved + (1.0 - index_rate) * query).astype(np.float32)
        # A frame whose probed IVF list was empty has no neighbours: leave it as is.
        out[~found] = query[~found]
        return out

    def _as_query(self, feats: np.ndarray) -> np.ndarray:
        feats = np.asarray(feats)
        if feats.ndim != 2:
            raise ValueError(f"features must be [frames, channels], got shape {feats.shape}")
        self.check_dim(int(feats.shape[1]))
        return np.ascontiguousarray(feats, dtype=np.float32)


def _weighted_neighbours(vectors: np.ndarray, score: np.ndarray, ix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Σ w·vectors[ix] with w = 1/score² normalised per row; ids of -1 get weight 0."""
    valid = ix >= 0
    # float64 so that 1/score² of a near-exact match cannot overflow.
    weight = np.where(valid, 1.0 / np.square(np.maximum(score.astype(np.float64), _MIN_SCORE)), 0.0)
    total = weight.sum(axis=1, keepdims=True)
    found = total[:, 0] > 0
    weight = np.divide(weight, total, out=np.zeros_like(weight), where=total > 0)
    neighbours = vectors[np.where(valid, ix, 0)]  # [T, k, C]
    retrieved = np.einsum("tk,tkc->tc", weight, neighbours.astype(np.float64))
    return retrieved.astype(np.float32), found


ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def apply_protect(feats: ArrayT, feats_orig: ArrayT, pitchf: ArrayT, protect: float) -> ArrayT:
    """RVC's voiceless-consonant protection (offline `pipeline.vc`).

    All inputs are at the synthesizer's 100 fps: `feats` (after index blending) and
    `feats_orig` (before it) are `[..., T, C]`, already upsampled x2; `pitchf` is
    `[..., T]` in Hz with 0 for unvoiced frames. Voiced frames (pitchf ≥ 1) keep the
    blended features; elsewhere only `protect` of them is kept and the rest comes from
    the original features. `protect >= 0.5` disables it (RVC's convention).
    Works on numpy arrays and torch tensors alike.
    """
    if protect >= 0.5:
        return feats
    if feats.shape != feats_orig.shape or tuple(pitchf.shape) != tuple(feats.shape[:-1]):
        raise ValueError(
            f"shape mismatch: feats {tuple(feats.shape)}, feats_orig {tuple(feats_orig.shape)}, pitchf {tuple(pitchf.shape)}"
        )
    # RVC sets w=1 where pitchf > 0, then w=protect where pitchf < 1, so the second
    # rule wins for 0 < pitchf < 1: w = protect wherever pitchf < 1.
    if isinstance(feats, torch.Tensor):
        w = torch.where(pitchf < 1, protect, 1.0).to(dtype=feats.dtype, device=feats.device).unsqueeze(-1)
    else:
        w = np.where(np.asarray(pitchf) < 1, protect, 1.0).astype(feats.dtype)[..., None]
    return feats * w + feats_orig * (1 - w)


def ivf_list_count(n_rows: int) -> int:
    """RVC's number of IVF lists for `n_rows` training frames."""
    return max(1, min(int(16 * np.sqrt(n_rows)), n_rows // 39))


def build_index(
    features: np.ndarray,
    path: str | Path,
    *,
    n_ivf: int | None = None,
    reduce_above: int = 200_000,
    reduced_size: int = 10_000,
    seed: int = 0,
) -> Path:
    """Build and write an RVC-compatible `IVF{n},Flat` index (the `added_*` kind).

    Same recipe as RVC's `train_index`: shuffle the 50 fps training features; above
    `reduce_above` rows replace them by `reduced_size` k-means centroids (RVC uses
    sklearn's MiniBatchKMeans; faiss' k-means gives equivalent centroids without the
    extra dependency); `n_ivf = max(1, min(16·√N, N//39))` unless given; train with
    nprobe 1 and add the vectors in batches of 8192.
    """
    feats = np.asarray(features, dtype=np.float32)
    if feats.ndim != 2 or feats.shape[0] == 0:
        raise ValueError(f"features must be a non-empty [rows, channels] array, got shape {feats.shape}")
    rng = np.random.default_rng(seed)
    feats = np.ascontiguousarray(feats[rng.permutation(feats.shape[0])])
    dim = int(feats.shape[1])

    if feats.shape[0] > reduce_above:
        kmeans = faiss.Kmeans(dim, reduced_size, niter=20, seed=seed, verbose=False)
        kmeans.train(feats)
        feats = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)

    n_lists = ivf_list_count(feats.shape[0]) if n_ivf is None else n_ivf
    if not 1 <= n_lists <= feats.shape[0]:
        raise ValueError(f"n_ivf must be in [1, {feats.shape[0]}], got {n_lists}")
    index = faiss.index_factory(dim, f"IVF{n_lists},Flat")  # L2 metric, as RVC
    faiss.extract_index_ivf(index).nprobe = 1
    index.train(feats)
    for start in range(0, feats.shape[0], _ADD_BATCH):
        index.add(feats[start : start + _ADD_BATCH])

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(path))
    return path


def _use_added_message(path: Path, why: str) -> str:
    return f"{path.name} cannot be used for retrieval ({why}); use the added_*.index file from the voice's training, not trained_*.index"


def _version_hint(dim: int) -> str:
    return {256: "v1", 768: "v2"}.get(dim, "unknown-version")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    # faiss errors look like "Error in <C++ signature> at <file>:<line>: <reason>".
    reason = text.rsplit(": ", 1)[-1] if text.startswith("Error in") else text
    return reason.splitlines()[0] if reason else type(exc).__name__
