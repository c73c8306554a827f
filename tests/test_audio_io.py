"""Audio files in: any rate, any channel count; broken files give one-line errors."""

import numpy as np
import pytest
import soundfile as sf

from rvclora.synth.audio_io import AudioError, load_mono, read_audio, resample, write_audio


def _peak_hz(x, sr):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)]


def test_8khz_stereo_becomes_16khz_mono_with_pitch_kept(tmp_path):
    t = np.arange(8000 * 2) / 8000
    left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "in.wav"
    sf.write(path, np.stack([left, right], axis=1), 8000, subtype="PCM_16")
    mono = load_mono(path, 16000)
    assert mono.dtype == np.float32 and mono.ndim == 1
    assert abs(len(mono) - 32000) <= 2
    assert abs(_peak_hz(mono, 16000) - 440) < 1.0
    assert np.sqrt(np.mean(mono[1000:-1000] ** 2)) == pytest.approx(0.4 / np.sqrt(2), rel=0.02)


def test_resample_round_trip_preserves_a_sine():
    t = np.arange(48000) / 48000
    x = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    y = resample(resample(x, 48000, 16000), 16000, 48000)
    assert np.max(np.abs(y[2000:-2000] - x[2000:-2000])) < 1e-3


def test_flac_and_ogg_read(tmp_path, speech):
    audio, sr = speech
    for suffix in (".flac", ".ogg"):
        path = tmp_path / f"s{suffix}"
        sf.write(path, audio, sr)
        back, back_sr = read_audio(path)
        assert back_sr == sr and back.shape == (len(audio), 1)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: sf.write(p, np.zeros((0, 1), np.float32), 16000), "no audio"),
        (lambda p: sf.write(p, np.array([0.1, np.nan, 0.2] * 100, np.float32), 16000, subtype="FLOAT"), "NaN"),
        (lambda p: p.write_bytes(b"RIFF\x00\x00garbage"), "cannot decode"),
    ],
)
def test_broken_inputs_give_one_line_errors(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=message) as err:
        read_audio(path)
    assert "\n" not in str(err.value)


def test_write_refuses_unknown_format_and_existing_file(tmp_path):
    x = np.zeros(100, np.float32)
    with pytest.raises(AudioError, match="must end in .wav or .flac or .ogg"):
        write_audio(tmp_path / "x.xyz", x, 16000)
    path = write_audio(tmp_path / "x.wav", x, 16000)
    with pytest.raises(AudioError, match="already exists"):
        write_audio(path, x, 16000, overwrite=False)
    with pytest.raises(AudioError, match="does not exist"):
        write_audio(tmp_path / "nope" / "x.wav", x, 16000)


def _mp3s(tmp_path):
    """A real mp3 (libsndfile writes it), the same with damaged frames, and 5,000 random bytes."""
    tone = (0.3 * np.sin(np.arange(48000) / 48000 * 2 * np.pi * 220)).astype(np.float32)
    good = tmp_path / "tone.mp3"
    sf.write(good, tone, 48000)
    data = bytearray(good.read_bytes())
    rng = np.random.default_rng(0)
    for i in range(2000, len(data), 100):
        data[i] = int(rng.integers(256))
    damaged = tmp_path / "damaged.mp3"
    damaged.write_bytes(bytes(data))
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    return good, damaged, junk


def test_mp3_reads_quietly_and_a_broken_one_cannot_be_decoded(tmp_path, capfd):
    good, damaged, junk = _mp3s(tmp_path)
    capfd.readouterr()
    audio, sr = read_audio(good)
    assert sr == 48000 and audio.shape[0] > 40000
    audio, _ = read_audio(damaged)  # the decoder resyncs past the damage and complains on stderr
    assert audio.shape[0] > 20000
    with pytest.raises(AudioError) as err:
        read_audio(junk)
    message = str(err.value)
    assert "cannot decode" in message and "does not exist" not in message and "\n" not in message
    assert capfd.readouterr().err == ""  # no decoder noise reached the terminal


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    out = tmp_path / "out.wav"
    real_write = sf.write

    def disk_full(path, *a, **k):
        real_write(path, *a, **k)  # the data went out, then the disk filled up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sf, "write", disk_full)
    with pytest.raises(AudioError, match="cannot write.*No space left"):
        write_audio(out, np.zeros(1000, np.float32), 16000)
    assert list(tmp_path.iterdir()) == []
    out.write_bytes(b"precious")
    with pytest.raises(AudioError):
        write_audio(out, np.zeros(1000, np.float32), 16000)
    assert out.read_bytes() == b"precious" and list(tmp_path.iterdir()) == [out]
