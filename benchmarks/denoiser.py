"""Which denoiser: quality on noisy real speech, the delay it adds, CPU per block.

Speech: pytest-audioeval recordings (16 kHz, upsampled to the denoisers' 48 kHz).
Noise, each at 0, 5 and 10 dB SNR (over the whole clip): white noise; keyboard clicks
(short decaying noise bursts, 4–9 per second, as a mechanical keyboard); fan hum (a
50 Hz harmonic series plus low-passed broadband air noise).

Per candidate and condition: SNR improvement (output vs the clean speech, after the
denoiser's own delay is removed and the best gain fitted), PESQ (wide band) and STOI
where `pesq`/`pystoi` are installed, and the level of the output during the speech
pauses relative to the speech (how far noise-only stretches are pushed down: clicks and
fan must not become sounds the voice model turns into phonemes). The delay is found by
cross-correlating the output of clean speech with its input; CPU is the median
process time per 10 ms frame and per 60 ms block.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/denoiser.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import time
from importlib import resources

import numpy as np
import soundfile as sf
import soxr
from scipy import signal

from rvclora.realtime.denoise import StreamDenoiser
from rvclora.realtime.denoise_models import FRAME, SR, DenoiserMissingError, make_frame_denoiser

CLIPS = ("en/quick_brown_fox.wav", "en/counting.wav", "fr/comptage.wav")
SNRS = (0, 5, 10)


def speech(name: str) -> np.ndarray:
    path = resources.files("pytest_audioeval") / "samples" / "audio" / name
    audio, sr = sf.read(str(path), dtype="float32")
    audio = audio / np.abs(audio).max() * 0.5
    return soxr.resample(audio, sr, SR).astype(np.float32)


def white(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(n).astype(np.float32)


def clicks(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n, np.float32)
    t = 0
    while True:
        t += int(rng.uniform(0.11, 0.25) * SR)
        if t >= n:
            return out
        length = int(rng.uniform(0.004, 0.012) * SR)
        burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (0.0015 * SR))
        burst = signal.lfilter([1, -0.6], [1], burst)  # a bright, hard click
        end = min(n, t + length)
        out[t:end] += burst[: end - t] * rng.uniform(0.5, 1.0)


def fan(n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SR
    hum = sum(np.sin(2 * np.pi * 50 * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 8))
    air = signal.sosfilt(signal.butter(2, 600, fs=SR, output="sos"), rng.standard_normal(n))
    return (hum + 3.0 * air / np.std(air)).astype(np.float32)


NOISES = {"white": white, "clicks": clicks, "fan": fan}


def mix(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    gain = np.sqrt(np.mean(clean**2) / (np.mean(noise**2) * 10 ** (snr_db / 10)))
    return (clean + gain * noise).astype(np.float32)


def run(model, x: np.ndarray) -> tuple[np.ndarray, list[float]]:
    n = len(x) // FRAME * FRAME
    y = x[:n].copy()
    times = []
    for i in range(0, n, FRAME):
        t0 = time.process_time()
        model.process(y[i : i + FRAME])
        times.append(time.process_time() - t0)
    return y, times


def delay_of(out: np.ndarray, ref: np.ndarray) -> int:
    n = min(len(out), len(ref))
    c = signal.correlate(out[:n], ref[:n], mode="full", method="fft")
    lags = signal.correlation_lags(n, n, mode="full")
    keep = (lags >= 0) & (lags < SR // 10)
    return int(lags[keep][np.argmax(c[keep])])


def snr(est: np.ndarray, ref: np.ndarray) -> float:
    g = float(np.dot(est, ref) / max(np.dot(est, est), 1e-12))  # best gain: level changes are not noise
    err = ref - g * est
    return 10 * np.log10(np.sum(ref**2) / max(np.sum(err**2), 1e-12))


def pause_level(out: np.ndarray, clean: np.ndarray) -> float:
    """dB of the output in the speech pauses (clean below −45 dB re its peak, 20 ms frames) re speech frames."""
    f = SR // 50
    n = len(clean) // f * f
    e_clean = np.mean(clean[:n].reshape(-1, f) ** 2, axis=1)
    e_out = np.mean(out[:n].reshape(-1, f) ** 2, axis=1)
    pauses = e_clean < e_clean.max() * 10 ** (-45 / 10)
    speech_frames = e_clean > e_clean.max() * 10 ** (-25 / 10)
    if not pauses.any():
        return float("nan")
    return 10 * np.log10(np.mean(e_out[pauses]) / np.mean(e_out[speech_frames]))


def quality(est48: np.ndarray, ref48: np.ndarray) -> tuple[float, float]:
    est, ref = soxr.resample(est48, SR, 16000), soxr.resample(ref48, SR, 16000)
    p = s = float("nan")
    try:
        from pesq import pesq  # noqa: PLC0415 - optional measure

        p = float(pesq(16000, ref, est, "wb"))
    except ImportError:
        pass
    try:
        from pystoi import stoi  # noqa: PLC0415 - optional measure

        s = float(stoi(ref, est, 16000))
    except ImportError:
        pass
    return p, s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="speech per clip (default 3)")
    ap.add_argument("--clips", type=int, default=2, help=f"how many of {len(CLIPS)} clips")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    clips = [speech(c)[: int(args.seconds * SR)] for c in CLIPS[: args.clips]]
    candidates = {"none": None, "rnnoise": ("rnnoise", 100.0), "dfn": ("dfn", 100.0), "dfn-lim18": ("dfn", 18.0)}
    print(f"{'candidate':10} {'noise':6} {'SNR':>3} {'in SNR':>7} {'out SNR':>7} {'ΔSNR':>6} "
          f"{'PESQ in':>7} {'PESQ':>5} {'STOI in':>7} {'STOI':>5} {'pause dB':>8}")
    summary = {}
    for name, spec in candidates.items():
        model = None
        if spec is not None:
            try:
                model = make_frame_denoiser(*spec)
            except DenoiserMissingError as e:
                print(f"{name}: {e}")
                continue
            # Delay measured on clean speech, then the same state warmed by it.
            cal, _ = run(model, np.concatenate(clips))
            d = delay_of(cal, np.concatenate(clips))
        else:
            d = 0
        gains, cpu = [], []
        for noise_name, make in NOISES.items():
            for snr_db in SNRS:
                rows = []
                for clean in clips:
                    noisy = mix(clean, make(len(clean), rng), snr_db)
                    if model is None:
                        out, times = noisy, [0.0]
                    else:
                        out, times = run(model, np.concatenate([noisy, np.zeros(d + FRAME, np.float32)]))
                        out = out[d : d + len(clean)]
                        cpu += times
                    n = min(len(out), len(clean))
                    rows.append((snr(noisy[:n], clean[:n]), snr(out[:n], clean[:n]), *quality(noisy[:n], clean[:n]),
                                 *quality(out[:n], clean[:n]), pause_level(out[:n], clean[:n])))
                r = np.nanmean(np.array(rows), axis=0)
                gains.append(r[1] - r[0])
                print(f"{name:10} {noise_name:6} {snr_db:3d} {r[0]:7.1f} {r[1]:7.1f} {r[1] - r[0]:6.1f} "
                      f"{r[2]:7.2f} {r[4]:5.2f} {r[3]:7.2f} {r[5]:5.2f} {r[6]:8.1f}")
        if model is not None:
            per_frame = float(np.median(cpu)) * 1000
            summary[name] = (d, per_frame, float(np.mean(gains)))
    print("\ncandidate  model delay ms  CPU ms/10 ms frame  mean ΔSNR dB")
    for name, (d, per_frame, g) in summary.items():
        print(f"{name:10} {1000 * d / SR:14.1f} {per_frame:19.2f} {g:13.1f}")
    print("\nIn the engine (60 ms blocks, resampling included): delay it adds, median CPU per block")
    for backend in ("rnnoise", "dfn"):
        for where, sr in (("input 16 kHz", 16000), ("output 40 kHz", 40000), ("output 48 kHz", 48000)):
            try:
                den = StreamDenoiser(sr, 60 * sr // 1000, make_frame_denoiser(backend))
            except DenoiserMissingError:
                continue
            x = soxr.resample(np.concatenate(clips), SR, sr).astype(np.float32)
            times = []
            for i in range(0, len(x) - den.block, den.block):
                t0 = time.process_time()
                den.process(x[i : i + den.block])
                times.append(time.process_time() - t0)
            print(f"{backend:8} {where:14} delay {1000 * den.delay_s:5.1f} ms   CPU {1000 * np.median(times):5.2f} ms/block")


if __name__ == "__main__":
    main()
