"""Offline conversion pipeline: what reaches the synthesizer, and segmenting of long inputs."""

import numpy as np
import pytest
import torch

from rvclora.synth.content_encoder import load_content_encoder
from rvclora.synth.pipeline import ConvertSettings, VoiceConverter, highpass_48hz, quiet_cut_points
from rvclora.synth.pitch import PMPitch
from rvclora.synth.voice_file import load_voice
from tests.hubert_fixtures import tiny_hubert_config, write_hubert_file
from tests.rvc_fixtures import make_voice_file


@pytest.fixture(scope="module")
def converter(tmp_path_factory):
    d = tmp_path_factory.mktemp("pipe")
    voice = load_voice(make_voice_file(d, version="v1", sr=40000, f0=True))
    encoder = load_content_encoder(write_hubert_file(d / "h.pt", tiny_hubert_config("v1")), version="v1")
    return VoiceConverter(voice, encoder, PMPitch())


class _Recorder:
    """Wraps the synthesizer's infer to see what the pipeline feeds it."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def __enter__(self):
        self.infer = self.model.infer
        self.model.infer = self
        return self

    def __call__(self, phone, lengths, pitch, pitchf, sid, **kw):
        self.calls.append(dict(phone=phone, lengths=lengths, pitch=pitch, pitchf=pitchf, sid=sid, **kw))
        return self.infer(phone, lengths, pitch, pitchf, sid, **kw)

    def __exit__(self, *exc):
        del self.model.infer


def _tone(hz, seconds, sr=16000):
    t = np.arange(int(sr * seconds)) / sr
    return (0.4 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_pitch_shift_reaches_the_synthesizer(converter):
    audio = _tone(200, 2.0)
    with _Recorder(converter.voice.model) as rec:
        converter.convert(audio, ConvertSettings(pitch=0, seed=0))
        converter.convert(audio, ConvertSettings(pitch=12, seed=0))
    base, up = rec.calls[0]["pitchf"][0], rec.calls[1]["pitchf"][0]
    middle = slice(120, -120)  # 1 s of padding each side, reflected tone
    assert torch.median(base[middle]).item() == pytest.approx(200, rel=0.01)
    assert torch.allclose(up[middle], 2 * base[middle], rtol=1e-4)
    assert rec.calls[0]["noise_scale"] == pytest.approx(0.66666)
    # frames line up: 100 frames/s for content, pitch and lengths alike
    call = rec.calls[0]
    assert call["phone"].shape[1] == call["pitch"].shape[1] == call["lengths"].item()
    assert call["phone"].shape[1] == pytest.approx((2.0 + 2 * 1.0) * 100, abs=3)


def test_long_input_is_cut_at_quiet_points_and_keeps_its_length(converter):
    tone = _tone(150, 1.0)
    gap = np.zeros(1600, np.float32)
    audio = np.concatenate([tone, gap, tone, gap, tone, gap, tone])  # 4.3 s with 0.1 s pauses
    settings = ConvertSettings(seed=0, center=1.05, query=0.2, max_len=3.0)
    with _Recorder(converter.voice.model) as rec:
        out = converter.convert(audio, settings)
    assert len(rec.calls) > 1
    assert abs(len(out) / 40000 - len(audio) / 16000) < 0.05
    assert np.isfinite(out).all()


def test_quiet_cut_points_find_the_pauses():
    tone = _tone(300, 1.0)
    gap = np.zeros(3200, np.float32)
    audio = np.concatenate([tone, gap, tone, gap, tone])
    cuts = quiet_cut_points(audio, center=16000, query=4000)
    pauses = [(16000, 19200), (35200, 38400)]
    assert len(cuts) == len(audio) // 16000  # one near every multiple of `center`, as RVC cuts
    for cut, (lo, hi) in zip(cuts, pauses):
        assert lo <= cut < hi


def test_highpass_removes_rumble_and_keeps_voice():
    low, voice = _tone(20, 2.0), _tone(200, 2.0)
    rms = lambda x: np.sqrt(np.mean(x[4000:-4000] ** 2))  # noqa: E731 — a one-line helper local to this function
    assert rms(highpass_48hz(low)) < 0.05 * rms(low)
    assert rms(highpass_48hz(voice)) == pytest.approx(rms(voice), rel=0.01)


def test_rejects_too_short_and_nan(converter):
    with pytest.raises(ValueError, match="shorter"):
        converter.convert(np.zeros(100, np.float32))
    bad = _tone(200, 0.5)
    bad[100] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        converter.convert(bad)
