"""rvclora.train building blocks: slicing, checks, spectrograms, discriminators, losses, metrics, split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rvclora.train.config import PreprocessConfig
from rvclora.train.dataset import epoch_batches, split_items
from rvclora.train.discriminators import (
    DiscriminatorError,
    DiscriminatorWidths,
    MultiPeriodDiscriminator,
    load_discriminator,
    save_discriminator,
)
from rvclora.train.feature_cache import Item
from rvclora.train.losses import discriminator_loss, feature_loss, generator_loss, kl_loss
from rvclora.train.mel import SpecConfig, linear_spectrogram, mel_filterbank, mel_spectrogram, spec_to_mel
from rvclora.train.metrics import f0_correlation, mel_cepstral_distortion, spectral_convergence
from rvclora.train.preprocess import FileRejected, check_recording, clipped_fraction, normalise
from rvclora.train.slicer import segment, slice_on_silence
from tests.rvc_fixtures import randomize_

SR = 16000


def _bursts(spans, total, sr=SR, seed=0):
    """Noise bursts (about -12 dBFS) at the given (start, end) seconds in silence."""
    rng = np.random.default_rng(seed)
    x = np.zeros(int(total * sr), np.float32)
    for a, b in spans:
        x[int(a * sr) : int(b * sr)] = 0.25 * rng.standard_normal(int(b * sr) - int(a * sr))
    return x


def test_slicer_cuts_long_pauses_and_trims_edges():
    x = _bursts([(1.0, 3.0), (4.0, 6.0)], 8.0)  # 1 s pause between two 2 s phrases
    chunks = slice_on_silence(x, SR)
    assert len(chunks) == 2
    (a0, b0), (a1, b1) = chunks
    # each chunk holds its phrase whole, with at most 0.25 s of pause kept at a cut edge
    assert 0.7 * SR <= a0 <= 1.0 * SR and 3.0 * SR <= b0 <= 3.3 * SR
    assert 3.7 * SR <= a1 <= 4.0 * SR and 6.0 * SR <= b1 <= 6.3 * SR


def test_slicer_keeps_short_pauses_and_short_phrases_together():
    # 0.2 s pause (< 0.4 s) is kept; a 0.5 s phrase is too short to stand alone
    x = _bursts([(0.5, 1.0), (1.6, 3.5), (3.7, 5.0)], 6.0)
    chunks = slice_on_silence(x, SR)
    assert len(chunks) == 1
    assert chunks[0][0] <= 0.5 * SR and chunks[0][1] >= 5.0 * SR
    assert slice_on_silence(np.zeros(SR * 2, np.float32), SR) == []


def test_segments_overlap_and_keep_a_short_tail():
    segs = segment(0, int(10.0 * SR), SR)
    starts = [a for a, _ in segs]
    assert starts[:3] == [0, int(3.4 * SR), int(6.8 * SR)]
    assert all(b - a == int(3.7 * SR) for a, b in segs[:-1])
    assert segs[-1][1] == int(10.0 * SR) and segs[-1][1] - segs[-1][0] <= 4.0 * SR
    assert segment(0, int(3.9 * SR), SR) == [(0, int(3.9 * SR))]


def test_normalise_is_rvcs_formula_and_rejects_broken_chunks():
    x = np.array([0.1, -0.5, 0.2], np.float32)
    y = normalise(x, PreprocessConfig())
    np.testing.assert_allclose(y, x / 0.5 * 0.675 + 0.25 * x, rtol=1e-6)
    assert normalise(np.array([3.0, 0.0], np.float32), PreprocessConfig()) is None


def test_recording_checks():
    cfg = PreprocessConfig()
    speech = _bursts([(0.1, 1.9)], 2.0)
    check_recording(speech, SR, cfg)  # fine
    with pytest.raises(FileRejected, match="too short"):
        check_recording(speech[: SR // 5], SR, cfg)
    with pytest.raises(FileRejected, match="silent"):
        check_recording(np.zeros(SR * 2, np.float32), SR, cfg)
    with pytest.raises(FileRejected, match="silent"):
        check_recording(speech * 1e-4, SR, cfg)
    clipped = np.clip(speech * 20, -1, 1)
    assert clipped_fraction(clipped, cfg.clip_level) > 0.5
    with pytest.raises(FileRejected, match="clipped"):
        check_recording(clipped, SR, cfg)
    # a loud but clean sine is not clipping
    t = np.arange(SR * 2) / SR
    assert clipped_fraction(np.sin(2 * np.pi * 220 * t).astype(np.float32), cfg.clip_level) < cfg.clip_fraction


@pytest.mark.reference
def test_mel_filterbank_matches_librosa_and_frames_align():
    librosa = pytest.importorskip("librosa")
    for sr, n_fft, n_mels in ((40000, 2048, 125), (32000, 1024, 80), (48000, 2048, 128)):
        ours = mel_filterbank(sr, n_fft, n_mels)
        ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
        np.testing.assert_allclose(ours, ref, atol=1e-7)
    cfg = SpecConfig.for_model(40000, 1025, 400)
    assert (cfg.n_fft, cfg.n_mels) == (2048, 125)
    wav = torch.randn(2, 400 * 37 + 123)
    spec = linear_spectrogram(wav, cfg)
    assert spec.shape == (2, 1025, 37)
    assert mel_spectrogram(wav, cfg).shape == (2, 125, 37)


def test_linear_spectrogram_matches_stft_definition():
    # frame t is centred on sample t*hop + hop/2 after RVC's (n_fft-hop)/2 reflect padding
    cfg = SpecConfig(sr=16000, n_fft=64, hop=16, n_mels=8)
    wav = torch.randn(16 * 20)
    spec = linear_spectrogram(wav, cfg)
    padded = torch.nn.functional.pad(wav[None, None], (24, 24), mode="reflect")[0, 0]
    frame = padded[5 * 16 : 5 * 16 + 64] * torch.hann_window(64)
    ref = torch.sqrt(torch.fft.rfft(frame).abs() ** 2 + 1e-6)
    torch.testing.assert_close(spec[:, 5], ref, atol=1e-4, rtol=1e-4)


def test_discriminator_layout_versions_and_file_roundtrip(tmp_path):
    with torch.device("meta"):  # shapes only: the official widths are 71 M parameters
        full, v1 = MultiPeriodDiscriminator("v2"), MultiPeriodDiscriminator("v1")
    assert len(full.discriminators) == 9 and len(v1.discriminators) == 7
    keys = full.state_dict().keys()
    assert "discriminators.0.convs.0.weight_g" in keys and "discriminators.8.conv_post.weight_v" in keys
    assert tuple(full.discriminators[1].convs[3].weight_v.shape) == (1024, 512, 5, 1)
    assert full.discriminators[0].convs[4].groups == 256

    torch.manual_seed(0)
    small = MultiPeriodDiscriminator("v1", DiscriminatorWidths.scaled(16))
    path = save_discriminator(tmp_path / "D.pth", small)
    loaded = load_discriminator(path, "v1")
    y = torch.randn(1, 1, 4000)
    for a, b in zip(small(y, y)[0], loaded(y, y)[0]):
        torch.testing.assert_close(a, b)
    with pytest.raises(DiscriminatorError, match="v1 discriminator, but the base is v2"):
        load_discriminator(path, "v2")
    torch.save({"model": {"enc_p.x": torch.zeros(1)}}, tmp_path / "G.pth")
    with pytest.raises(DiscriminatorError, match="not a discriminator"):
        load_discriminator(tmp_path / "G.pth", "v1")


def test_losses():
    ones, zeros = [torch.ones(2, 5)] * 3, [torch.zeros(2, 5)] * 3
    assert float(discriminator_loss(ones, zeros)) == 0.0  # a perfect discriminator
    assert float(discriminator_loss(zeros, ones)) == 6.0
    assert float(generator_loss(ones)) == 0.0
    f = [[torch.ones(3), torch.zeros(2)]]
    assert float(feature_loss(f, [[torch.zeros(3), torch.zeros(2)]])) == 1.0
    # KL estimate of a posterior equal to the prior averages to zero
    torch.manual_seed(0)
    m, logs = torch.randn(1, 4, 20000), torch.randn(1, 4, 20000) * 0.3
    z_p = m + torch.exp(logs) * torch.randn_like(m)
    assert abs(float(kl_loss(z_p, logs, m, logs, torch.ones(1, 1, 20000)))) < 0.01


def test_metrics():
    mel = torch.randn(80, 50)
    assert mel_cepstral_distortion(mel, mel) == 0.0
    assert mel_cepstral_distortion(mel, mel + 1.0) < 1e-4  # a gain change (c0) is not distortion
    assert mel_cepstral_distortion(mel, mel + torch.randn(80, 50)) > 1.0
    spec = torch.rand(100, 20) + 0.1
    assert spectral_convergence(spec, spec) == 0.0
    assert spectral_convergence(spec, torch.zeros_like(spec)) == pytest.approx(1.0)
    f0 = np.concatenate([np.linspace(100, 200, 50), np.zeros(10)])
    assert f0_correlation(f0, f0 * 1.5) == pytest.approx(1.0)
    assert f0_correlation(np.zeros(50), f0) is None


def test_split_holds_out_whole_chunks_deterministically(tmp_path):
    items = [Item(tmp_path / f"{g}_{i}.npz", tmp_path / "a.wav", f"h:{g}") for g in range(10) for i in range(3)]
    train, val = split_items(items, 0.1, 16, seed=1)
    assert len(val) == 3 and len(train) == 27
    assert len({it.group for it in val}) == 1 and not {it.group for it in val} & {it.group for it in train}
    assert split_items(items, 0.1, 16, seed=1)[1] == val
    one_group = [Item(tmp_path / f"{i}.npz", tmp_path / "a.wav", "h:0") for i in range(5)]
    train, val = split_items(one_group, 0.2, 16, seed=0)
    assert len(val) == 1 and len(train) == 4


def test_epoch_batches_are_a_function_of_seed_and_epoch():
    a = epoch_batches(10, 4, seed=3, epoch=2)
    assert a == epoch_batches(10, 4, seed=3, epoch=2)
    assert sorted(i for b in a for i in b) == list(range(10)) and [len(b) for b in a] == [4, 4, 2]
    assert a != epoch_batches(10, 4, seed=3, epoch=3)


@pytest.mark.reference
@pytest.mark.parametrize("version, ref_class", [("v1", "MultiPeriodDiscriminator"), ("v2", "MultiPeriodDiscriminatorV2")])
def test_discriminator_loads_rvc_d_files_and_matches_rvc(tmp_path, version, ref_class):
    """A pretrained D*.pth is RVC's discriminator state dict under "model": it must load strictly
    and score audio exactly as RVC's own discriminator (rvc==0.3.5) does."""
    models = pytest.importorskip("rvc.lib.infer_pack.models", reason="the RVC reference package is not installed")
    ref = randomize_(getattr(models, ref_class)(use_spectral_norm=False), seed=5, fp16_exact=False).eval()
    path = tmp_path / f"f0D40k_{version}.pth"
    torch.save({"model": ref.state_dict(), "iteration": 0}, path)
    ours = load_discriminator(path, version).eval()
    g = torch.Generator().manual_seed(0)
    y, y_hat = torch.randn(1, 1, 4000, generator=g) * 0.3, torch.randn(1, 1, 4000, generator=g) * 0.3
    with torch.no_grad():
        expected, got = ref(y, y_hat), ours(y, y_hat)
    for exp_list, got_list in zip(expected, got):  # scores real/fake, feature maps real/fake
        assert len(exp_list) == len(got_list)
        flat_e = [t for item in exp_list for t in (item if isinstance(item, list) else [item])]
        flat_g = [t for item in got_list for t in (item if isinstance(item, list) else [item])]
        assert max(float((a - b).abs().max()) for a, b in zip(flat_e, flat_g)) <= 1e-5


@pytest.mark.reference
def test_losses_and_mel_match_rvcs_training_code():
    """Mel L1 target/prediction and the GAN/KL losses agree with RVC's own training code (rvc==0.3.5)."""
    ref_losses = pytest.importorskip("rvc.lib.train.losses", reason="the RVC reference package is not installed")
    ref_mel = pytest.importorskip("rvc.lib.train.mel_processing")
    g = torch.Generator().manual_seed(3)
    for sr, bins, hop in ((40000, 1025, 400), (48000, 1025, 480), (32000, 513, 320)):
        # RVC caches its filterbank and window by fmax/dtype/device only (one config per process)
        ref_mel.mel_basis.clear()
        ref_mel.hann_window.clear()
        cfg = SpecConfig.for_model(sr, bins, hop)
        wav = torch.randn(2, sr // 2, generator=g) * 0.2
        spec = linear_spectrogram(wav, cfg)
        ref_spec = ref_mel.spectrogram_torch(wav, cfg.n_fft, sr, hop, cfg.n_fft, center=False)
        assert torch.allclose(spec, ref_spec, rtol=1e-4, atol=1e-5)
        ref = ref_mel.mel_spectrogram_torch(wav, cfg.n_fft, cfg.n_mels, sr, hop, cfg.n_fft, 0.0, None)
        assert torch.allclose(mel_spectrogram(wav, cfg), ref, rtol=1e-4, atol=1e-4)
        assert torch.allclose(spec_to_mel(spec, cfg), ref_mel.spec_to_mel_torch(ref_spec, cfg.n_fft, cfg.n_mels, sr, 0.0, None), atol=1e-4)
    real = [torch.randn(2, 7, generator=g) for _ in range(3)]
    fake = [torch.randn(2, 7, generator=g) for _ in range(3)]
    fm_r = [[torch.randn(2, 3, 5, generator=g) for _ in range(4)] for _ in range(3)]
    fm_g = [[torch.randn(2, 3, 5, generator=g) for _ in range(4)] for _ in range(3)]
    assert torch.allclose(discriminator_loss(real, fake), ref_losses.discriminator_loss(real, fake)[0])
    assert torch.allclose(generator_loss(fake), ref_losses.generator_loss(fake)[0])
    # RVC folds the ×2 feature-matching weight into its function; ours leaves it to the objective.
    assert torch.allclose(2 * feature_loss(fm_r, fm_g), ref_losses.feature_loss(fm_r, fm_g))
    z_p, logs_q, m_p, logs_p = (torch.randn(2, 4, 30, generator=g) * 0.5 for _ in range(4))
    mask = (torch.arange(30) < 25).float().expand(2, 1, 30)
    assert torch.allclose(kl_loss(z_p, logs_q, m_p, logs_p, mask), ref_losses.kl_loss(z_p, logs_q, m_p, logs_p, mask), atol=1e-6)
