"""Spectrograms as RVC's training computes them (mel_processing.py), with torch.stft only.

- linear: reflect-pad (n_fft - hop)/2 both sides, Hann window, `center=False`,
  magnitude sqrt(|X|^2 + 1e-6): exactly `T = len // hop` frames, frame t covering
  samples [t*hop, t*hop + hop) in the middle, so frames line up with the 100 fps
  content and pitch frames.
- mel: Slaney-scale, Slaney-normalised triangular filters (librosa's default,
  which RVC uses), fmin 0, fmax Nyquist, then log(clamp(x, 1e-5)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

# n_mels of RVC's configs per sample rate (32k: 80, 40k: 125, 48k: 128).
N_MELS = {32000: 80, 40000: 125, 48000: 128}


@dataclass(frozen=True)
class SpecConfig:
    sr: int
    n_fft: int
    hop: int
    n_mels: int

    @classmethod
    def for_model(cls, sr: int, spec_channels: int, hop: int) -> SpecConfig:
        """The spectrogram a model of this config was trained on (n_fft = win = 2*(bins-1))."""
        return cls(sr=sr, n_fft=2 * (spec_channels - 1), hop=hop, n_mels=N_MELS.get(sr, 128))


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    # Slaney: linear (3 mels per 200 Hz) below 1 kHz, logarithmic above.
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (math.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    lin = m * (200.0 / 3)
    log = 1000.0 * np.exp((m - 15.0) * (math.log(6.4) / 27.0))
    return np.where(m >= 15.0, log, lin)


@lru_cache(maxsize=16)
def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """[n_mels, n_fft//2+1] Slaney triangular filters with area normalisation."""
    fmax = sr / 2 if fmax is None else fmax
    bins = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area per filter
    return weights.astype(np.float32)


_WINDOWS: dict[tuple, torch.Tensor] = {}


def _window(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    key = (n, device, dtype)
    if key not in _WINDOWS:
        _WINDOWS[key] = torch.hann_window(n, device=device, dtype=dtype)
    return _WINDOWS[key]


def linear_spectrogram(wav: torch.Tensor, cfg: SpecConfig) -> torch.Tensor:
    """wav [..., N] -> magnitude [..., n_fft//2+1, N//hop]."""
    shape = wav.shape[:-1]
    x = wav.reshape(-1, 1, wav.shape[-1]).float()
    pad = (cfg.n_fft - cfg.hop) // 2
    x = torch.nn.functional.pad(x, (pad, pad), mode="reflect").squeeze(1)
    spec = torch.stft(
        x, cfg.n_fft, hop_length=cfg.hop, win_length=cfg.n_fft, window=_window(cfg.n_fft, x.device, x.dtype),
        center=False, return_complex=True,
    )
    mag = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-6)
    return mag.reshape(*shape, mag.shape[-2], mag.shape[-1])


def spec_to_mel(spec: torch.Tensor, cfg: SpecConfig) -> torch.Tensor:
    """Linear magnitude [..., F, T] -> log mel [..., n_mels, T]."""
    fb = torch.from_numpy(mel_filterbank(cfg.sr, cfg.n_fft, cfg.n_mels)).to(spec.device, spec.dtype)
    return torch.log(torch.clamp(torch.matmul(fb, spec), min=1e-5))


def mel_spectrogram(wav: torch.Tensor, cfg: SpecConfig) -> torch.Tensor:
    """wav [..., N] -> log mel [..., n_mels, N//hop] (computed in fp32)."""
    return spec_to_mel(linear_spectrogram(wav.float(), cfg), cfg)
