"""Live protect, autotune and automatic pitch in the per-block RVC path.

- protect: on real speech, the features the live path hands the synthesizer on voiceless
  frames equal what the offline pipeline (synth/pipeline.py, RVC's `vc` order: encoder →
  index blend → ×2 → protect) makes from the same encoder output and the same f0.
- autotune: a gliding tone comes out on semitones, as a pure function and through the
  live converter's f0.
- automatic pitch: speech played low and high ends up near the voice's typical f0.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rvclora.realtime.engine import BlockProcessor
from rvclora.realtime.pitch_shape import AutoPitch, autotune, typical_f0
from rvclora.realtime.settings import EngineSettings, SettingsError
from rvclora.synth.audio_io import load_mono
from rvclora.synth.index import FeatureIndex, build_index
from rvclora.synth.pipeline import ConvertSettings, VoiceConverter
from rvclora.synth.voice_file import load_voice
from tests.conftest import speech_path
from tests.speech_pitch import speech_at
from tests.test_engine import files as files  # the tiny v1 40 kHz voice and its encoder (module fixtures)
from tests.test_engine import source as source

FRAMES_PER_BLOCK = 6  # 60 ms blocks




def _run(source, audio, settings, *, encoder_out=None):
    """Stream `audio` block by block; per block: (feats, pitchf) of the decoded frames, the window and the encoder's output."""
    seen, synth, encoder = [], source.synth, source.encoder
    real_infer, real_encoder = synth.infer, encoder

    def spy(phone, lengths, pitch, pitchf, sid, **kw):
        head, n = kw["skip_head"], kw["return_length"]
        seen.append({"feats": phone[0].float().numpy().copy(), "pitchf": pitchf[0].float().numpy().copy(),
                     "head": head, "n": n})
        return real_infer(phone, lengths, pitch, pitchf, sid, **kw)

    def encoder_spy(wav):
        out = real_encoder(wav)
        if encoder_out is not None:
            encoder_out.append((wav[0].float().numpy().copy(), out[0].float().numpy().copy()))
        return out

    synth.infer, source.encoder = spy, encoder_spy
    try:
        proc = BlockProcessor(source, settings)
        for k in range(len(audio) // proc.block_in):
            proc.process(audio[k * proc.block_in : (k + 1) * proc.block_in])
    finally:
        del synth.infer
        source.encoder = real_encoder
    return seen


# --------------------------------------------------------------------------- protect


class _Replay:
    """Stands in for the content encoder offline: returns the features the live block's encoder gave."""

    def __init__(self, out: np.ndarray) -> None:
        self.out, self.version = out, "v1"

    def __call__(self, wav: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.out).unsqueeze(0)


def test_protect_on_voiceless_frames_matches_the_offline_pipeline(files, source):
    audio = load_mono(speech_path(), 16000)
    # An index of another speaker's-worth of features (other speech through the same encoder).
    other = load_mono(speech_path("en/counting.wav"), 16000)
    with torch.inference_mode():
        index_feats = source.encoder(torch.from_numpy(other).unsqueeze(0))[0].float().numpy()
    source.index = FeatureIndex.load(build_index(index_feats, files["dir"] / "added_IVF4_Flat.index", n_ivf=4))
    try:
        settings = EngineSettings(f0_method="pm", index_rate=0.8, protect=0.2, noise_scale=0.0)
        enc: list = []
        seen = _run(source, audio, settings, encoder_out=enc)
        unprotected = _run(source, audio, settings.replace(protect=0.5))
    finally:
        index = source.index
        source.index = None

    voice = load_voice(files["voice"])
    captured = {}

    def offline_infer(feats, lengths, pitch, pitchf, sid, **kw):
        captured["feats"] = feats[0].float().numpy()
        return torch.zeros(1, 1, 10)

    voice.model.infer = offline_infer
    compared = voiceless = 0
    for block, ((wav, enc_out), live, plain) in enumerate(zip(enc, seen, unprotected, strict=True)):
        if block < 20:  # the first blocks' windows are mostly the zeros before the stream
            continue
        frames = len(wav) // 160
        pitchf = torch.from_numpy(live["pitchf"][:frames]).unsqueeze(0)
        converter = VoiceConverter(voice, _Replay(enc_out), pitch_estimator=lambda x: None, index=index)
        converter._convert_segment(wav, torch.ones_like(pitchf, dtype=torch.long), pitchf,
                                   ConvertSettings(index_rate=0.8, protect=0.2))
        ref = captured["feats"]
        head, n = live["head"], live["n"]
        decoded = np.arange(head, min(head + n, len(ref)))  # offline has no features for the window's last 2 frames
        unvoiced = decoded[live["pitchf"][decoded] < 1]
        np.testing.assert_allclose(live["feats"][unvoiced], ref[unvoiced], atol=1e-4)
        # Voiced frames keep the blended features; protect moved the voiceless ones.
        voiced = decoded[live["pitchf"][decoded] >= 1]
        np.testing.assert_allclose(live["feats"][voiced], plain["feats"][voiced], atol=1e-5)
        compared += len(decoded)
        voiceless += len(unvoiced)
        if len(unvoiced):
            assert np.abs(live["feats"][unvoiced] - plain["feats"][unvoiced]).max() > 1e-3
    assert compared > 200 and voiceless > 30  # real speech has both, and enough was compared


def test_protect_setting_is_checked():
    with pytest.raises(SettingsError, match="protect"):
        EngineSettings(protect=0.7)


# --------------------------------------------------------------------------- autotune


def _cents_off(f0: np.ndarray) -> np.ndarray:
    semis = 12 * np.log2(f0 / 440.0)
    return 100 * np.abs(semis - np.round(semis))


def test_autotune_snaps_a_glide_to_semitones():
    glide = np.geomspace(110.0, 440.0, 500)  # two octaves, mostly between semitones
    glide[::7] = 0.0  # unvoiced frames
    assert np.mean(_cents_off(glide[glide > 0]) > 10) > 0.7
    full = autotune(glide, 1.0)
    assert np.all(full[glide == 0] == 0)
    assert _cents_off(full[glide > 0]).max() < 0.01
    # Every frame lands on the semitone nearest to it (not a neighbour).
    assert np.all(np.abs(12 * np.log2(full[glide > 0] / glide[glide > 0])) <= 0.5 + 1e-9)
    half = autotune(glide, 0.5)
    np.testing.assert_allclose(_cents_off(half[glide > 0]), _cents_off(glide[glide > 0]) / 2, atol=1e-6)
    assert np.array_equal(autotune(glide, 0.0), glide)


def test_a_gliding_tone_comes_out_of_the_live_converter_on_semitones(source):
    sr = 16000
    t = np.arange(3 * sr) / sr
    f = np.geomspace(150.0, 300.0, len(t))
    tone = (0.3 * np.sin(2 * np.pi * np.cumsum(f) / sr)).astype(np.float32)
    for strength, check in ((0.0, lambda c: np.mean(c > 15) > 0.4), (1.0, lambda c: c.max() < 0.1)):
        seen = _run(source, tone, EngineSettings(f0_method="pm", autotune=strength, pitch=0.3))
        f0 = np.concatenate([s["pitchf"][s["head"] : s["head"] + FRAMES_PER_BLOCK] for s in seen[10:]])
        voiced = f0[f0 > 0]
        assert len(voiced) > 100
        assert check(_cents_off(voiced)), (strength, np.percentile(_cents_off(voiced), [50, 100]))


# --------------------------------------------------------------------------- automatic pitch


def test_auto_pitch_moves_low_and_high_speech_to_the_voices_range(source):
    """Speech played an octave and a half apart (Praat median f0 ~110 and ~330 Hz) towards a 200 Hz voice:
    the shift applied once the median has settled is the whole-semitone distance from the speaker's
    median to the voice's (±1.5: half a semitone of rounding, and the live estimator's running median is
    not Praat's whole-file one), and both end up near 200 Hz."""
    voice_f0 = 200.0
    medians = {}
    for around in (110.0, 330.0):
        audio, own = speech_at(around, 16000)
        f0s = {}
        for auto in (False, True):
            seen = _run(source, audio, EngineSettings(f0_method="pm", auto_pitch=auto, voice_f0=voice_f0))
            f0s[auto] = np.concatenate([s["pitchf"][s["head"] : s["head"] + FRAMES_PER_BLOCK] for s in seen])
        late = slice(2 * len(f0s[True]) // 3, None)  # after the running median has settled
        on, off = f0s[True][late], f0s[False][late]
        both = (on > 0) & (off > 0)
        applied = float(np.median(12 * np.log2(on[both] / off[both])))
        assert abs(applied - 12 * np.log2(voice_f0 / own)) <= 1.5, (around, applied, own)
        assert abs(typical_f0(off) / own - 1) < 0.06  # off: the speaker's own pitch
        medians[around] = typical_f0(f0s[True][len(f0s[True]) // 2 :])
    for around in (110.0, 330.0):
        assert abs(12 * np.log2(medians[around] / voice_f0)) < 2.0, medians


def test_auto_pitch_waits_for_enough_voicing_and_needs_the_voices_f0():
    auto = AutoPitch()
    auto.observe(np.full(20, 120.0))
    assert auto.shift(240.0) == 0.0  # not enough voicing heard yet
    auto.observe(np.concatenate([np.zeros(50), np.full(60, 120.0)]))
    assert auto.shift(240.0) == 12.0
    assert auto.shift(0.0) == 0.0  # the voice's pitch unknown: no automatic shift
