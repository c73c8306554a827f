"""The true-peak limiter on every output file: loud input never leaves above the ceiling, normal audio untouched."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from rvclora.cli.main import build_parser, chosen_command
from rvclora.synth.audio_io import AudioError, write_audio
from rvclora.synth.limiter import Limiter, LimiterConfig, limit
from rvclora.tests.conftest import speech_path


def true_peak_db(audio: np.ndarray) -> float:
    """Reference true peak: 4× oversampled with scipy's polyphase FIR (independent of the limiter's own)."""
    return 20 * np.log10(np.abs(resample_poly(np.asarray(audio, np.float64), 4, 1)).max())


def loud_signals(sr):
    rng = np.random.default_rng(0)
    t = np.arange(sr) / sr
    return {
        "noise ±1000": rng.uniform(-1000, 1000, sr),
        "sine near Nyquist ×1000": 1000 * np.sin(2 * np.pi * 0.46 * sr * t + 0.3),
        "burst in quiet": np.concatenate([0.05 * rng.standard_normal(sr // 2), 40 * rng.standard_normal(sr // 20),
                                          0.05 * rng.standard_normal(sr // 2)]),
        "speech ×100": 100 * sf.read(speech_path(), dtype="float32")[0],
    }


@pytest.mark.parametrize("ceiling_db", [-1.0, -6.0])
def test_loud_signals_stay_at_or_below_the_ceiling(ceiling_db):
    sr = 48000
    for name, x in loud_signals(sr).items():
        y, state = limit(x.astype(np.float32), sr, LimiterConfig(ceiling_db=ceiling_db))
        assert len(y) == len(x)
        assert true_peak_db(y) <= ceiling_db, name
        assert state.max_gain_reduction_db > 10, name
        # only what is too loud is turned down: the quiet parts around a burst come back
        if name == "burst in quiet":
            tail = slice(len(x) - sr // 10, len(x))
            np.testing.assert_allclose(y[tail], x[tail], rtol=0.01, atol=1e-5)


def test_normal_level_audio_is_unchanged():
    speech, sr = sf.read(speech_path(), dtype="float32")
    assert true_peak_db(speech) < -3
    y, state = limit(speech, sr)
    assert np.array_equal(y, speech) and state.max_gain_reduction_db == 0


def test_streaming_equals_whole_signal_with_the_stated_delay():
    sr = 40000
    x = (np.random.default_rng(2).uniform(-5, 5, sr) * (np.arange(sr) > sr // 3)).astype(np.float32)
    whole, _ = limit(x, sr)
    lim = Limiter(sr)
    out = np.concatenate([lim.process(b) for b in np.array_split(x, 37)] + [lim.flush()])
    assert len(out) == len(x) + lim.delay and np.all(out[: lim.delay] == 0)
    np.testing.assert_allclose(out[lim.delay :], whole, atol=1e-6)


def test_a_non_finite_block_becomes_silence_and_is_counted():
    lim = Limiter(16000)
    block = np.full(320, 0.1, dtype=np.float32)
    lim.process(block)
    bad = block.copy()
    bad[7] = np.nan
    lim.process(bad)
    out = np.concatenate([lim.process(block), lim.flush()])
    assert np.isfinite(out).all() and lim.state.silenced_blocks == 1


def test_a_file_with_nan_is_refused_and_not_written(tmp_path):
    out = tmp_path / "o.wav"
    with pytest.raises(AudioError, match="NaN or infinite"):
        write_audio(out, np.array([0.0, np.nan, 0.1], np.float32), 16000)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_write_audio_keeps_normal_audio_bit_exact(tmp_path):
    speech, sr = sf.read(speech_path(), dtype="float32")
    write_audio(tmp_path / "o.wav", speech, sr)
    assert np.array_equal(sf.read(tmp_path / "o.wav", dtype="float32")[0], speech)


def _run(*argv):
    argv = [str(a) for a in argv]
    args = build_parser(chosen_command(argv)).parse_args(argv)
    return args.func(args)


def test_run_with_a_deafening_input_writes_a_file_at_the_ceiling(tmp_path, capsys):
    speech, sr = sf.read(speech_path(), dtype="float32")
    loud = tmp_path / "loud.wav"
    sf.write(loud, np.clip(speech * 1e4, -1000, 1000), sr, subtype="FLOAT")  # ±1000
    for ceiling in (-1.0, -3.0):
        out = tmp_path / f"o{ceiling}.wav"
        extra = [] if ceiling == -1.0 else ["--ceiling-db", ceiling]  # -1 dBTP by default
        assert _run("run", "--builtin", "deep", "--input-file", loud, "--output-file", out, *extra) == 0
        audio, _ = sf.read(out, dtype="float32")
        assert np.abs(audio).max() > 0.1  # the voice is there, only limited
        assert true_peak_db(audio) <= ceiling
        assert "limiter: up to" in capsys.readouterr().out
    with pytest.raises(ValueError, match="--ceiling-db"):
        _run("run", "--builtin", "deep", "--input-file", loud, "--output-file", out, "--ceiling-db", "3")
