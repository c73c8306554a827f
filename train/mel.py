"""Spectrograms as RVC's training computes them (mel_processing.py), on rvclora.synth.spectrogram.

- linear: reflect-pad (n_fft - hop)/2 both sides, Hann window, `center=False`,
  magnitude sqrt(|X|^2 + 1e-6): exactly `T = len // hop` frames, frame t covering
  samples [t*hop, t*hop + hop) in the middle, so frames line up with the 100 fps
  content and pitch frames.
- mel: Slaney-scale, Slaney-normalised triangular filters (librosa's default,
  which RVC uses), fmin 0, fmax Nyquist, then log(clamp(x, 1e-5)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..synth.spectrogram import STFT, LogMel
from ..synth.spectrogram import mel_filterbank as _filterbank

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


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """[n_mels, n_fft//2+1] Slaney triangular filters with area normalisation (librosa's default)."""
    return _filterbank(sr, n_fft, n_mels, fmin, fmax, htk=False)


def linear_spectrogram(wav: torch.Tensor, cfg: SpecConfig) -> torch.Tensor:
    """wav [..., N] -> magnitude [..., n_fft//2+1, N//hop]."""
    shape = wav.shape[:-1]
    x = wav.reshape(-1, wav.shape[-1]).float()
    mag = STFT(cfg.n_fft, cfg.hop, centred=False).to(x.device)(x, eps=1e-6)
    return mag.reshape(*shape, mag.shape[-2], mag.shape[-1])


def spec_to_mel(spec: torch.Tensor, cfg: SpecConfig) -> torch.Tensor:
    """Linear magnitude [..., F, T] -> log mel [..., n_mels, T]."""
    return LogMel(mel_filterbank(cfg.sr, cfg.n_fft, cfg.n_mels)).to(spec.device)(spec)


def mel_spectrogram(wav: torch.Tensor, cfg: SpecConfig) -> torch.Tensor:
    """wav [..., N] -> log mel [..., n_mels, N//hop] (computed in fp32)."""
    return spec_to_mel(linear_spectrogram(wav.float(), cfg), cfg)
