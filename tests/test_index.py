"""Feature-index retrieval against a brute-force transcription of RVC's blend."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest
import torch

from rvclora.synth.index import FeatureIndex, FeatureIndexError, apply_protect, build_index, ivf_list_count


def brute_force_blend(vectors: np.ndarray, feats: np.ndarray, index_rate: float, k: int = 8) -> np.ndarray:
    """RVC's `pipeline.vc` blend with an exhaustive search, in float64."""
    v = vectors.astype(np.float64)
    q = feats.astype(np.float64)
    score_all = ((q[:, None, :] - v[None, :, :]) ** 2).sum(-1)  # squared L2, as faiss returns
    ix = np.argsort(score_all, axis=1)[:, :k]
    score = np.take_along_axis(score_all, ix, axis=1)
    weight = np.square(1 / score)
    weight /= weight.sum(axis=1, keepdims=True)
    retrieved = np.sum(v[ix] * weight[:, :, None], axis=1)
    return index_rate * retrieved + (1 - index_rate) * q


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


@pytest.fixture
def small_index(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """60 rows -> RVC's formula gives a single IVF list, so the search is exhaustive."""
    vectors = np.random.default_rng(0).standard_normal((60, 16)).astype(np.float32)
    assert ivf_list_count(60) == 1
    return build_index(vectors, tmp_path / "added_IVF1_Flat_nprobe_1_test_v2.index"), vectors


def test_small_index_matches_brute_force(small_index: tuple[Path, np.ndarray]) -> None:
    path, vectors = small_index
    index = FeatureIndex.load(path)
    assert (index.dim, index.size) == (16, 60)
    # The stored vectors are the training rows (shuffled).
    np.testing.assert_array_equal(np.sort(index.vectors, axis=0), np.sort(vectors, axis=0))

    feats = np.random.default_rng(1).standard_normal((25, 16)).astype(np.float32)
    for rate in (0.3, 0.75, 1.0):
        got = index.search_blend(feats, rate)
        assert got.dtype == np.float32 and got.shape == feats.shape
        np.testing.assert_allclose(got, brute_force_blend(vectors, feats, rate), rtol=1e-5, atol=1e-5)


def test_rate_zero_is_identity_and_one_is_pure_retrieval(small_index: tuple[Path, np.ndarray]) -> None:
    path, vectors = small_index
    index = FeatureIndex.load(path)
    feats = np.random.default_rng(2).standard_normal((10, 16)).astype(np.float32)
    unchanged = index.search_blend(feats, 0.0)
    np.testing.assert_array_equal(unchanged, feats)
    assert unchanged is not feats

    pure = index.search_blend(feats, 1.0)
    np.testing.assert_allclose(pure, brute_force_blend(vectors, feats, 1.0), rtol=1e-5, atol=1e-5)
    half = index.search_blend(feats, 0.5)
    np.testing.assert_allclose(half, 0.5 * pure + 0.5 * feats, rtol=1e-5, atol=1e-5)

    with pytest.raises(ValueError):
        index.search_blend(feats, 1.5)


def test_exact_match_gets_all_the_weight(small_index: tuple[Path, np.ndarray]) -> None:
    path, vectors = small_index
    index = FeatureIndex.load(path)
    # A distance of 0 would make RVC's 1/score² infinite; the stored vector must come back.
    got = index.search_blend(vectors[:5], 1.0)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, vectors[:5], atol=1e-5)


def test_flat_index_matches_brute_force(tmp_path: Path) -> None:
    vectors = np.random.default_rng(3).standard_normal((500, 32)).astype(np.float32)
    flat = faiss.IndexFlatL2(32)
    flat.add(vectors)
    faiss.write_index(flat, str(tmp_path / "flat.index"))
    index = FeatureIndex.load(tmp_path / "flat.index")
    feats = np.random.default_rng(4).standard_normal((40, 32)).astype(np.float32)
    np.testing.assert_allclose(index.search_blend(feats, 0.75), brute_force_blend(vectors, feats, 0.75), rtol=1e-5, atol=1e-5)


def test_ivf_index_is_built_like_rvc_and_blends_faiss_neighbours(tmp_path: Path) -> None:
    # > 8192 rows: the vectors are added in several batches.
    n_rows = 9000
    vectors = np.random.default_rng(5).standard_normal((n_rows, 16)).astype(np.float32)
    path = build_index(vectors, tmp_path / "added.index")

    raw = faiss.read_index(str(path))
    ivf = faiss.extract_index_ivf(raw)
    assert isinstance(raw, faiss.IndexIVFFlat)
    assert ivf.nlist == ivf_list_count(n_rows) == min(int(16 * np.sqrt(n_rows)), n_rows // 39)
    assert ivf.nprobe == 1 and raw.metric_type == faiss.METRIC_L2

    index = FeatureIndex.load(path)
    assert index.size == n_rows
    np.testing.assert_array_equal(np.sort(index.vectors, axis=0), np.sort(vectors, axis=0))

    # With nprobe 1 the neighbours are whatever faiss returns: blend those in numpy.
    feats = np.random.default_rng(6).standard_normal((30, 16)).astype(np.float32)
    score, ix = raw.search(feats, 8)
    assert (ix >= 0).all()
    weight = np.square(1 / score.astype(np.float64))
    weight /= weight.sum(axis=1, keepdims=True)
    expected = 0.6 * np.sum(index.vectors[ix] * weight[:, :, None], axis=1) + 0.4 * feats
    np.testing.assert_allclose(index.search_blend(feats, 0.6), expected, rtol=1e-5, atol=1e-5)


def test_large_feature_sets_are_reduced_to_centroids(tmp_path: Path) -> None:
    vectors = np.random.default_rng(7).standard_normal((500, 8)).astype(np.float32)
    path = build_index(vectors, tmp_path / "reduced.index", reduce_above=300, reduced_size=40)
    assert FeatureIndex.load(path).size == 40


def test_frames_without_neighbours_are_left_alone() -> None:
    # Two far-apart clusters, only one of them added: with nprobe 1 a query near the
    # other cluster probes an empty list and gets no neighbours (ids of -1).
    rng = np.random.default_rng(8)
    near = rng.standard_normal((100, 4)).astype(np.float32)
    far = near + 100.0
    raw = faiss.index_factory(4, "IVF2,Flat")
    raw.train(np.concatenate([near, far]))
    faiss.extract_index_ivf(raw).nprobe = 1
    raw.add(near)
    index = FeatureIndex(raw, raw.reconstruct_n(0, raw.ntotal))
    feats = np.concatenate([far[:3], near[:2] + 0.01]).astype(np.float32)
    got = index.search_blend(feats, 1.0)
    np.testing.assert_array_equal(got[:3], feats[:3])
    assert np.abs(got[3:] - feats[3:]).max() < 1.0


def test_trained_only_index_is_refused(tmp_path: Path) -> None:
    vectors = np.random.default_rng(9).standard_normal((200, 16)).astype(np.float32)
    trained = faiss.index_factory(16, "IVF4,Flat")
    trained.train(vectors)
    path = tmp_path / "trained_IVF4_Flat_nprobe_1_test_v2.index"
    faiss.write_index(trained, str(path))
    with pytest.raises(FeatureIndexError) as exc:
        FeatureIndex.load(path)
    message = one_line(exc)
    assert "added_" in message and path.name in message


def test_non_index_and_missing_files_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "model.index"
    junk.write_bytes(b"this is not a faiss index at all")
    with pytest.raises(FeatureIndexError) as exc:
        FeatureIndex.load(junk)
    assert "not a faiss index" in one_line(exc)
    with pytest.raises(FeatureIndexError) as exc:
        FeatureIndex.load(tmp_path / "missing.index")
    assert "not found" in one_line(exc)


def test_dimension_mismatch_names_both(tmp_path: Path) -> None:
    vectors = np.random.default_rng(10).standard_normal((50, 256)).astype(np.float32)
    index = FeatureIndex.load(build_index(vectors, tmp_path / "added_v1.index"))
    feats = np.zeros((5, 768), np.float32)
    with pytest.raises(FeatureIndexError) as exc:
        index.search_blend(feats, 0.5)
    message = one_line(exc)
    assert "256" in message and "768" in message
    with pytest.raises(FeatureIndexError):
        index.check_dim(768)
    index.check_dim(256)


def rvc_protect(feats: torch.Tensor, feats0: torch.Tensor, pitchf: torch.Tensor, protect: float) -> torch.Tensor:
    """Literal transcription of RVC `pipeline.vc` (batch of 1)."""
    pitchff = pitchf.clone()
    pitchff[pitchf > 0] = 1
    pitchff[pitchf < 1] = protect
    pitchff = pitchff.unsqueeze(-1)
    return feats * pitchff + feats0 * (1 - pitchff)


def test_protect_matches_rvc() -> None:
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(1, 12, 8, generator=gen)
    feats0 = torch.randn(1, 12, 8, generator=gen)
    # Unvoiced (0), voiced, and RVC's edge case 0 < f0 < 1 (counts as unvoiced).
    pitchf = torch.tensor([[0.0, 0.0, 110.0, 220.0, 0.5, 1.0, 0.0, 300.0, 0.99, 150.0, 0.0, 80.0]])

    got = apply_protect(feats, feats0, pitchf, 0.33)
    torch.testing.assert_close(got, rvc_protect(feats, feats0, pitchf, 0.33))
    voiced = pitchf[0] >= 1
    torch.testing.assert_close(got[0, voiced], feats[0, voiced])
    torch.testing.assert_close(got[0, ~voiced], 0.33 * feats[0, ~voiced] + 0.67 * feats0[0, ~voiced])

    got_np = apply_protect(feats[0].numpy(), feats0[0].numpy(), pitchf[0].numpy(), 0.33)
    assert isinstance(got_np, np.ndarray) and got_np.dtype == np.float32
    np.testing.assert_allclose(got_np, got[0].numpy(), rtol=1e-6, atol=1e-6)

    # 0.5 (and above) disables it; 0 restores the original features in unvoiced frames.
    assert apply_protect(feats, feats0, pitchf, 0.5) is feats
    torch.testing.assert_close(apply_protect(feats, feats0, pitchf, 0.0)[0, ~voiced], feats0[0, ~voiced])

    half = apply_protect(feats.half(), feats0.half(), pitchf, 0.33)
    assert half.dtype == torch.float16

    with pytest.raises(ValueError):
        apply_protect(feats, feats0, pitchf[:, :-1], 0.33)
