"""Pitch estimation: native RMVPE against RVC's own implementation, pm alignment, f0 helpers."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from rvclora.synth.checkpoint import CheckpointError
from rvclora.synth.pitch import (
    FCPEPitch,
    PitchError,
    PitchEstimator,
    PMPitch,
    RMVPEPitch,
    f0_to_coarse,
    f0_to_coarse_torch,
    make_pitch_estimator,
    shift_f0,
    shift_f0_torch,
)
from rvclora.synth.rmvpe import load_rmvpe
from rvclora.synth.rmvpe_decode import decode_salience, decode_salience_torch
from rvclora.synth.rmvpe_mel import mel_filterbank, mel_spectrogram
from rvclora.synth.rmvpe_net import RMVPE

SR = 16_000


def speech_files() -> list[Path]:
    registry = pytest.importorskip("pytest_audioeval.samples.registry")
    return sorted(s.audio_path for s in registry.SampleRegistry().all())


def read_speech(name: str) -> np.ndarray:
    path = next(p for p in speech_files() if p.name == name)
    audio, sr = sf.read(path, dtype="float32")
    assert sr == SR and audio.ndim == 1
    return audio


def sine(freq: float | np.ndarray, n: int, amp: float = 0.5) -> np.ndarray:
    freq = np.broadcast_to(np.asarray(freq, dtype=np.float64), (n,))
    return amp * np.sin(2 * np.pi * np.cumsum(freq) / SR)


def cents(f: np.ndarray, ref: float | np.ndarray) -> np.ndarray:
    return 1200 * np.log2(f / ref)


# ---------------------------------------------------------------------------
# RMVPE against the RVC reference (pip package `rvc`, which uses librosa)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ref_module():
    return pytest.importorskip("rvc.lib.rmvpe")


@pytest.fixture(scope="module")
def rmvpe_file(ref_module, tmp_path_factory) -> Path:
    """Full-size reference E2E, random weights and non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    net = ref_module.E2E(4, 1, (2, 2))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
    path = tmp_path_factory.mktemp("rmvpe") / "rmvpe.pt"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def hollow_file(tmp_path_factory) -> Path:
    """rmvpe.pt with every tensor a view of one shared zero storage per dtype: right names and
    shapes, the size of the largest tensor. (Zero-stride views are refused as a memory bomb.)"""
    with torch.device("meta"):
        shapes = RMVPE().state_dict()
    pools = {}
    for v in shapes.values():
        pools[v.dtype] = max(pools.get(v.dtype, 0), v.numel())
    pools = {dtype: torch.zeros(n, dtype=dtype) for dtype, n in pools.items()}
    state = {k: pools[v.dtype][: v.numel()].view(v.shape) for k, v in shapes.items()}
    path = tmp_path_factory.mktemp("hollow") / "rmvpe.pt"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def reference(ref_module, rmvpe_file):
    return ref_module.RMVPE(str(rmvpe_file), is_half=False, device="cpu")


@pytest.fixture(scope="module")
def model(rmvpe_file) -> RMVPE:
    return load_rmvpe(rmvpe_file)


@pytest.mark.reference
def test_filterbank_matches_librosa_htk_slaney():
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=128, fmin=30, fmax=8000, htk=True)
    ours = mel_filterbank()
    assert ours.shape == ref.shape == (128, 513)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-8)


@pytest.mark.reference
def test_state_dict_matches_reference_names_and_shapes(ref_module):
    ref = ref_module.E2E(4, 1, (2, 2)).state_dict()
    ours = RMVPE().state_dict()
    assert list(ours) == list(ref)
    assert all(ours[k].shape == ref[k].shape for k in ref)


@pytest.mark.reference
def test_rmvpe_matches_reference_on_speech(reference, model):
    audio = read_speech("hello_world.wav")
    x = torch.from_numpy(audio).unsqueeze(0)

    ref_mel = reference.mel_extractor(x, center=True)
    mel = mel_spectrogram(x)
    assert mel.shape == ref_mel.shape == (1, 128, len(audio) // 160 + 1)
    rel = ((mel - ref_mel).abs() / ref_mel.abs().clamp(min=1e-3)).max().item()
    assert rel <= 1e-4

    ref_sal = reference.mel2hidden(ref_mel)  # pads T to a multiple of 32 and crops back
    sal = model.salience(mel)
    assert sal.shape == ref_sal.shape
    assert (sal - ref_sal).abs().max().item() <= 1e-4

    ref_f0 = reference.decode(ref_sal[0].numpy(), thred=0.03)  # = reference.infer_from_audio(audio)
    f0 = model.infer_from_audio(audio)
    assert f0.shape == ref_f0.shape == (len(audio) // 160 + 1,)
    np.testing.assert_array_equal(f0 > 0, ref_f0 > 0)
    np.testing.assert_allclose(f0, ref_f0, rtol=1e-5)
    # The on-device decoder agrees with the numpy one.
    np.testing.assert_allclose(decode_salience_torch(sal[0]).numpy(), f0, rtol=1e-5)


@pytest.mark.reference
@pytest.mark.parametrize("n", [5120 * 2 - 160, 4000])  # realtime-aligned (32·k frames) and ragged
def test_rmvpe_matches_reference_on_tone_lengths(reference, model, n):
    audio = (sine(np.linspace(120, 400, n), n) + 0.01 * np.random.default_rng(n).standard_normal(n)).astype(
        np.float32
    )
    ref_f0 = reference.infer_from_audio(audio, thred=0.03)
    f0 = model.infer_from_audio(audio)
    assert len(f0) == len(ref_f0) == n // 160 + 1
    np.testing.assert_allclose(f0, ref_f0, rtol=1e-5)


def test_mel_frame_counts_batch_and_short_audio():
    for n in (1, 100, 512, 513, 1600, 16001):
        assert mel_spectrogram(torch.zeros(n)).shape == (128, n // 160 + 1)
    batch = torch.randn(3, 3200)
    np.testing.assert_allclose(mel_spectrogram(batch)[1].numpy(), mel_spectrogram(batch[1]).numpy(), atol=1e-5)
    silent = mel_spectrogram(torch.zeros(1600))
    assert torch.allclose(silent, torch.full_like(silent, float(np.log(1e-5))))


# ---------------------------------------------------------------------------
# Salience decoding
# ---------------------------------------------------------------------------


def bin_cents(b: float) -> float:
    return 20 * b + 1997.3794084376191


def test_decode_symmetric_peak_gives_bin_pitch():
    sal = np.zeros((4, 360), np.float32)
    for i, b in enumerate((10, 100, 200, 300)):
        sal[i, b - 2 : b + 3] = [0.1, 0.5, 0.9, 0.5, 0.1]
        sal[i, (b + 150) % 360] = 0.2  # a far-away bump outside argmax ± 4 is ignored
    f0 = decode_salience(sal)
    expected = [10 * 2 ** (bin_cents(b) / 1200) for b in (10, 100, 200, 300)]
    # Weights are summed in float32, as RVC does: ~1e-7 relative (0.0003 cents).
    np.testing.assert_allclose(f0, expected, rtol=1e-6)


def test_decode_interpolates_between_bins_and_thresholds():
    sal = np.zeros((5, 360), np.float32)
    sal[0, 50:52] = 0.8  # two equal bins → halfway
    sal[1, 50] = 0.03  # exactly the threshold → unvoiced (≤)
    sal[2, 50] = 0.0301
    sal[3, 0] = 0.9  # edge bins: the window runs into the zero padding
    sal[4, 359] = 0.9
    f0 = decode_salience(sal, threshold=0.03)
    np.testing.assert_allclose(f0[0], 10 * 2 ** (bin_cents(50.5) / 1200), rtol=1e-6)
    assert f0[1] == 0.0
    np.testing.assert_allclose(f0[2], 10 * 2 ** (bin_cents(50) / 1200), rtol=1e-6)
    np.testing.assert_allclose(f0[3:], [10 * 2 ** (bin_cents(0) / 1200), 10 * 2 ** (bin_cents(359) / 1200)])
    assert 31 < f0[3] < 32.5 and 2000 < f0[4] < 2010


@pytest.mark.reference
def test_decode_matches_reference_and_torch(reference):
    rng = np.random.default_rng(1)
    sal = (rng.random((300, 360)) ** 8).astype(np.float32)
    sal[::7] *= 0.03  # some frames under the threshold
    ref_cents = reference.to_local_average_cents(sal.copy(), thred=0.03)
    ref_f0 = 10 * 2 ** (ref_cents / 1200)
    ref_f0[ref_f0 == 10] = 0
    f0 = decode_salience(sal, 0.03)
    np.testing.assert_allclose(f0, ref_f0, rtol=1e-12)
    assert (f0 == 0).sum() >= 300 // 7
    np.testing.assert_allclose(decode_salience_torch(torch.from_numpy(sal), 0.03).numpy(), f0, rtol=1e-5)
    with pytest.raises(PitchError):
        decode_salience(np.zeros((3, 100)))


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def test_load_rmvpe_rejects_wrong_files(tmp_path, hollow_file):
    state = torch.load(hollow_file, weights_only=True)

    renamed = {("x." + k if i == 0 else k): v for i, (k, v) in enumerate(state.items())}
    torch.save(renamed, tmp_path / "renamed.pt")
    with pytest.raises(PitchError, match="not an RMVPE checkpoint: 1 missing keys .* 1 unexpected") as e:
        load_rmvpe(tmp_path / "renamed.pt")
    assert "\n" not in str(e.value)

    reshaped = dict(state, **{"fc.1.bias": torch.zeros(100)})
    torch.save(reshaped, tmp_path / "reshaped.pt")
    with pytest.raises(PitchError, match="size mismatch for fc.1.bias") as e:
        load_rmvpe(tmp_path / "reshaped.pt")
    assert "\n" not in str(e.value)

    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(PitchError, match="expected a state dict"):
        load_rmvpe(tmp_path / "list.pt")

    with pytest.raises(CheckpointError, match="not found"):
        load_rmvpe(tmp_path / "absent.pt")

    torch.save({"model": state}, tmp_path / "wrapped.pt")  # common re-saved layout
    assert isinstance(load_rmvpe(tmp_path / "wrapped.pt"), RMVPE)


def test_make_pitch_estimator(hollow_file):
    est = make_pitch_estimator(" RMVPE ", rmvpe_path=hollow_file)
    assert isinstance(est, RMVPEPitch) and isinstance(est, PitchEstimator) and est.name == "rmvpe"
    assert not est.model.training
    # All-zero weights: salience is sigmoid(0) = 0.5 everywhere, so argmax is bin 0.
    f0 = est(sine(220.0, 3333).astype(np.float32))
    assert f0.shape == (3333 // 160 + 1,)
    np.testing.assert_allclose(f0, 10 * 2 ** (bin_cents(2) / 1200), rtol=1e-6)  # bins 0..4 averaged

    pm = make_pitch_estimator("pm")
    assert isinstance(pm, PMPitch) and isinstance(pm, PitchEstimator) and pm.name == "pm"

    with pytest.raises(PitchError, match="rvclora assets download"):
        make_pitch_estimator("rmvpe")
    with pytest.raises(PitchError, match="not found.*rvclora assets download"):
        make_pitch_estimator("rmvpe", rmvpe_path=hollow_file.parent / "nope.pt")
    with pytest.raises(PitchError, match="unknown pitch method 'harvest'.*rmvpe, pm, fcpe"):
        make_pitch_estimator("harvest")


def test_fcpe_unavailable_is_a_one_line_pitch_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchfcpe", None)  # makes `import torchfcpe` fail
    with pytest.raises(PitchError, match="fcpe is unavailable.*use the rmvpe or pm") as e:
        make_pitch_estimator("fcpe")
    assert "\n" not in str(e.value)


def test_fcpe_wrapper_with_stub_module(monkeypatch):
    calls = {}

    class StubModel:
        def infer(self, wav, sr, decoder_mode, threshold):
            calls.update(shape=tuple(wav.shape), sr=sr, mode=decoder_mode)
            n = wav.shape[1] // 160 + 1
            f0 = torch.full((1, n + 2, 1), 220.0)  # one-off lengths get trimmed
            f0[0, 0, 0] = float("nan")
            return f0

    stub = types.SimpleNamespace(spawn_bundled_infer_model=lambda device: StubModel())
    monkeypatch.setitem(sys.modules, "torchfcpe", stub)
    est = FCPEPitch()
    f0 = est(np.zeros(1000, np.float32))
    assert calls == {"shape": (1, 1000, 1), "sr": SR, "mode": "local_argmax"}
    assert f0.shape == (7,) and f0[0] == 0.0 and np.all(f0[1:] == 220.0)


# ---------------------------------------------------------------------------
# Input validation (shared by all estimators)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros(0, np.float32), "empty"),
        (np.array([0.0, np.nan, 0.0] * 200), "NaN or infinite"),
        (np.array([0.0, np.inf] * 300), "NaN or infinite"),
        (np.zeros((2, 800), np.float32), "mono"),
        (np.zeros(800, np.int16), "float"),
    ],
)
def test_bad_audio_raises(model, bad, match):
    for est in (PMPitch(), RMVPEPitch(model)):
        with pytest.raises(PitchError, match=match):
            est(bad)


# ---------------------------------------------------------------------------
# pm (Praat autocorrelation)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [16000, 16123, 4321])
def test_pm_sine_pitch_and_frame_count(n):
    f0 = PMPitch()(sine(220.0, n))
    assert f0.shape == (n // 160 + 1,)
    assert np.all(f0 > 0)
    assert np.abs(cents(f0[3:-3], 220.0)).max() < 5.0
    assert np.abs(cents(f0, 220.0)).max() < 25.0  # edge frames see less of the tone


@pytest.mark.parametrize("lo, hi", [(150.0, 260.0), (260.0, 150.0)])
def test_pm_pitch_step_lands_on_the_right_frame(lo, hi):
    # The step sits between samples 15999 and 16000, i.e. at frame 100.
    n = 2 * SR
    freq = np.where(np.arange(n) < SR, lo, hi)
    f0 = PMPitch()(sine(freq, n))
    assert np.abs(cents(f0[3:98], lo)).max() < 10.0
    assert np.abs(cents(f0[103:-3], hi)).max() < 10.0
    mid = np.sqrt(lo * hi)
    side = (f0 > mid) if hi > lo else ((f0 > 0) & (f0 < mid))
    assert 99 <= np.argmax(side) <= 102


@pytest.mark.parametrize("offset", [0, 80, 37])
def test_pm_tone_burst_is_centred(offset):
    # A 1 s tone centred at sample 16000 + offset: voiced frames centred at frame (16000 + offset)/160.
    x = np.zeros(2 * SR + offset)
    x[SR // 2 + offset : 3 * SR // 2 + offset] = sine(220.0, SR)
    voiced = np.nonzero(PMPitch()(x))[0]
    assert abs((voiced[0] + voiced[-1]) / 2 - (SR + offset) / 160) <= 1.0
    assert 95 <= len(voiced) <= 106


def test_pm_silence_is_unvoiced():
    assert np.all(PMPitch()(np.zeros(SR)) == 0.0)
    assert np.all(PMPitch()(np.zeros(100)) == 0.0)


@pytest.mark.parametrize("name", ["hello_world.wav", "quick_brown_fox.wav", "conteo.wav", "kazoeru.wav"])
def test_pm_on_real_speech_is_plausible(name):
    audio = read_speech(name)
    f0 = PMPitch()(audio)
    assert f0.shape == (len(audio) // 160 + 1,)
    voiced = f0 > 0
    assert 0.2 <= voiced.mean() <= 0.9
    assert 70.0 <= np.median(f0[voiced]) <= 400.0
    assert np.all((f0[voiced] >= 50.0) & (f0[voiced] <= 1100.0))


# ---------------------------------------------------------------------------
# f0 helpers
# ---------------------------------------------------------------------------


def rvc_coarse(f0: np.ndarray) -> np.ndarray:
    """RVC's published procedure, written out step by step."""
    mel_min = 1127 * np.log(1 + 50 / 700)
    mel_max = 1127 * np.log(1 + 1100 / 700)
    mel = 1127 * np.log(1 + f0 / 700)
    mel[mel > 0] = (mel[mel > 0] - mel_min) * 254 / (mel_max - mel_min) + 1
    mel[mel <= 1] = 1
    mel[mel > 255] = 255
    return np.rint(mel).astype(np.int64)


def test_f0_to_coarse_known_values_and_formula():
    f0 = np.array([0.0, 50.0, 1100.0, 30.0, 2000.0, 220.0, 440.0])
    coarse = f0_to_coarse(f0)
    assert coarse.dtype == np.int64
    assert list(coarse[:5]) == [1, 1, 255, 1, 255]
    sweep = np.concatenate([[0.0], np.geomspace(20.0, 3000.0, 2000)])
    np.testing.assert_array_equal(f0_to_coarse(sweep), rvc_coarse(sweep.copy()))
    assert np.all(np.diff(f0_to_coarse(sweep[1:])) >= 0)
    assert f0_to_coarse(np.array([-5.0]))[0] == 1
    torch_coarse = f0_to_coarse_torch(torch.from_numpy(sweep).float())
    assert torch_coarse.dtype == torch.int64
    assert (torch_coarse.numpy() != rvc_coarse(sweep.copy())).sum() <= 2  # float32 rounding at .5 edges


def test_shift_f0():
    f0 = np.array([0.0, 100.0, 220.0])
    np.testing.assert_allclose(shift_f0(f0, 12), [0.0, 200.0, 440.0])
    np.testing.assert_allclose(shift_f0(f0, -12), [0.0, 50.0, 110.0])
    np.testing.assert_allclose(shift_f0(f0, 7), f0 * 2 ** (7 / 12))
    np.testing.assert_allclose(shift_f0_torch(torch.from_numpy(f0), 12).numpy(), [0.0, 200.0, 440.0])
