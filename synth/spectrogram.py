"""Short-time Fourier transforms and mel filterbanks, for RMVPE's front end and for training.

`STFT` owns its Hann window as a (non-persistent) buffer, so the window follows the
module to its device and no cache outlives it. The filterbank is librosa's
construction (triangles between mel-spaced edges, Slaney area normalisation) on
either mel scale: HTK (RMVPE) or Slaney (librosa's default, which RVC's training
uses). It is written out here rather than taken from librosa so that inference
does not depend on librosa; the tests compare it with librosa.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _hz_to_mel_htk(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_to_hz_htk(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def _hz_to_mel_slaney(f: np.ndarray) -> np.ndarray:
    # Linear (3 mels per 200 Hz) below 1 kHz, logarithmic above.
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (math.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz_slaney(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    lin = m * (200.0 / 3)
    log = 1000.0 * np.exp((m - 15.0) * (math.log(6.4) / 27.0))
    return np.where(m >= 15.0, log, lin)


def mel_filterbank(
    sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None, *, htk: bool = False
) -> np.ndarray:
    """Triangular mel filters with Slaney area normalisation, [n_mels, n_fft//2 + 1] float32.

    As librosa.filters.mel(htk=htk, norm="slaney"): each triangle spans two consecutive
    mel-spaced edge frequencies and is scaled by 2/(bandwidth in Hz), so all have unit area.
    """
    fmax = sr / 2 if fmax is None else fmax
    to_mel, to_hz = (_hz_to_mel_htk, _mel_to_hz_htk) if htk else (_hz_to_mel_slaney, _mel_to_hz_slaney)
    fft_freqs = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    edges = to_hz(np.linspace(to_mel(np.float64(fmin)), to_mel(np.float64(fmax)), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


class _Float32Buffers(nn.Module):
    """A module whose buffers follow device moves but never precision casts: a network
    cast to fp16 keeps a float32 front end (an fp16 window would change every spectrum)."""

    def _apply(self, fn, recurse=True):  # nn.Module's own signature
        def move(t: Tensor) -> Tensor:
            return t.to(device=fn(t.new_empty(0)).device)

        return super()._apply(move, recurse)


class STFT(_Float32Buffers):
    """Magnitude STFT with a Hann window of `win_length` (default `n_fft`), reflect padded.

    `centred=True`: torch's centring, frame i centred on sample i·hop, N//hop + 1 frames.
    `centred=False`: RVC's training layout, (n_fft − hop)/2 reflect padding on both
    sides and no centring, N//hop frames, frame t covering [t·hop, t·hop + hop) in its middle.
    The window stays float32 whatever the module is cast to.
    """

    window: Tensor

    def __init__(self, n_fft: int, hop: int, win_length: int | None = None, *, centred: bool = True) -> None:
        super().__init__()
        self.n_fft, self.hop, self.centred = n_fft, hop, centred
        self.win_length = n_fft if win_length is None else win_length
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)

    def forward(self, x: Tensor, eps: float = 0.0) -> Tensor:
        """x [B, N] float32 → magnitude sqrt(|X|² + eps) [B, n_fft//2 + 1, frames]."""
        if not self.centred:
            pad = (self.n_fft - self.hop) // 2
            x = F.pad(x.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        spec = torch.stft(
            x, n_fft=self.n_fft, hop_length=self.hop, win_length=self.win_length, window=self.window,
            center=self.centred, pad_mode="reflect", return_complex=True,
        )
        return torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + eps)  # + 0.0 is exact


class LogMel(_Float32Buffers):
    """Linear magnitude [..., F, T] → log(clamp(mel, `clamp`)) [..., n_mels, T]; the filterbank is a float32 buffer."""

    basis: Tensor

    def __init__(self, basis: np.ndarray, clamp: float = 1e-5) -> None:
        super().__init__()
        self.clamp = clamp
        self.register_buffer("basis", torch.from_numpy(basis), persistent=False)

    def forward(self, magnitude: Tensor) -> Tensor:
        basis = self.basis if magnitude.dtype == self.basis.dtype else self.basis.to(magnitude.dtype)
        return torch.log(torch.clamp(torch.matmul(basis, magnitude), min=self.clamp))
