"""Built-in voices: a known sine comes out at the preset's pitch, after the stated latency."""

import numpy as np
import pytest

from rvclora.realtime.builtin_voices import BUILTIN_VOICES, DSPVoice, make_builtin_voice

SR = 48000


def _sine(f, seconds=1.5, sr=SR, a=0.5):
    return (a * np.sin(2 * np.pi * f * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def _zc_freq(x, sr=SR):
    """Frequency from interpolated upward zero crossings."""
    x = x - x.mean()
    i = np.flatnonzero((x[:-1] < 0) & (x[1:] >= 0))
    t = i + (-x[i]) / (x[i + 1] - x[i])
    return (len(t) - 1) * sr / (t[-1] - t[0])


def _stream(voice, x, seed=0):
    # Irregular block sizes, as a device callback may deliver them.
    rng = np.random.default_rng(seed)
    out, pos = [], 0
    while pos < len(x):
        n = int(rng.integers(1, 1200))
        y = voice.process(x[pos:pos + n])
        assert len(y) == len(x[pos:pos + n]) and y.dtype == np.float32
        out.append(y)
        pos += n
    return np.concatenate(out)


def test_plus_twelve_doubles_a_sine_after_the_stated_latency():
    v = make_builtin_voice("chipmunk", SR)
    assert v.effective_pitch == 12 and v.latency == 2048  # 42.7 ms at 48 kHz
    y = _stream(v, _sine(220.0))
    settle = v.latency + 2 * v.hop  # the first frames mix in the silence before the tone
    assert _zc_freq(y[settle:]) == pytest.approx(440.0, abs=0.5)
    assert np.sqrt(np.mean(y[settle:] ** 2)) > 0.1  # audible, not a trickle


def test_passthrough_is_the_input_delayed_by_exactly_the_latency():
    v = make_builtin_voice("passthrough", SR)
    x = _sine(330.0, 0.5) + 0.01 * np.random.default_rng(1).standard_normal(SR // 2).astype(np.float32)
    y = _stream(v, x)
    np.testing.assert_allclose(y[v.latency:], x[:-v.latency], atol=1e-5)
    assert np.abs(y[:v.latency]).max() < 1e-6


@pytest.mark.parametrize("name", [n for n in BUILTIN_VOICES if n != "passthrough"])
def test_every_preset_lands_on_its_pitch(name):
    v = make_builtin_voice(name, SR)
    y = _stream(v, _sine(220.0, 1.0))
    expected = 220.0 * 2 ** (v.effective_pitch / 12)
    assert _zc_freq(y[v.latency + 2 * v.hop:]) == pytest.approx(expected, rel=2e-3)
    assert np.isfinite(y).all() and np.abs(y).max() < 2.0


def test_pitch_and_formant_change_live_without_changing_the_timing():
    v = make_builtin_voice("passthrough", SR, pitch=0.0)
    x = _sine(200.0, 2.0)
    first = v.process(x[:SR])
    v.set_pitch(7.0)
    v.set_formant(3.0)
    second = v.process(x[SR:])
    assert len(first) == len(second) == SR and v.latency == 2048
    tail = second[SR // 4:]
    assert _zc_freq(tail) == pytest.approx(200.0 * 2 ** (7 / 12), rel=2e-3)
    v.reset()
    assert np.abs(v.process(np.zeros(2048, np.float32))).max() == 0


def test_formant_shift_moves_the_spectral_envelope_not_the_pitch():
    # A 150 Hz pulse train through one resonance at 1 kHz: shifting formants by +6
    # semitones moves the strongest harmonic up to ≈ 1.4 kHz while f0 stays 150 Hz.
    sr, f0 = SR, 150.0
    n = sr
    pulses = np.zeros(n)
    pulses[:: int(sr / f0)] = 1.0
    from scipy.signal import lfilter
    r, fc = 0.995, 1000.0
    src = lfilter([1.0], [1, -2 * r * np.cos(2 * np.pi * fc / sr), r * r], pulses)
    src = (0.3 * src / np.abs(src).max()).astype(np.float32)
    out = _stream(DSPVoice("passthrough", sr, formant=6.0), src)
    seg = out[sr // 4:]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    freqs = np.fft.rfftfreq(len(seg), 1 / sr)
    peak = freqs[np.argmax(spec)]
    assert 1200 < peak < 1650
    # f0 unchanged: the spectrum's harmonic spacing is still 150 Hz (autocorrelation).
    from scipy.signal import correlate
    ac = correlate(seg[:8000], seg[:8000], "full", method="fft")[8000 - 1:]
    lag = np.argmax(ac[200:600]) + 200
    assert sr / lag == pytest.approx(f0, rel=0.02)


def test_unknown_voice_is_a_one_line_error():
    with pytest.raises(ValueError, match="choose one of: passthrough"):
        make_builtin_voice("robot", SR)


def test_works_at_other_rates():
    v = make_builtin_voice("chipmunk", 16000)
    assert v.latency == 1024
    y = _stream(v, _sine(220.0, 1.0, sr=16000))
    assert _zc_freq(y[v.latency + 2 * v.hop:], 16000) == pytest.approx(440.0, abs=0.5)
