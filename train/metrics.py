"""Quality figures of a converted validation segment against its recording.

- MCD (dB): mel-cepstral distortion over cepstra 1..13 of the ln-amplitude mel
  spectrogram (DCT-II, cosine-series scaling), averaged over frames: (10/ln 10) * sqrt(2 * sum (c - c')^2).  Computed
  from the training mel so it needs no extra dependency; absolute values are not
  comparable with MCDs from WORLD/SPTK cepstra, trends are.
- F0 correlation: Pearson correlation of f0 (Hz) over frames voiced in both.
- Spectral convergence: ||S - S'||_F / ||S||_F on linear magnitudes (0 = identical).
"""

from __future__ import annotations

import math

import numpy as np
import torch

N_CEPS = 13


def _dct_matrix(n_in: int, n_out: int) -> torch.Tensor:
    # Cosine-series coefficients (2/N) sum ln|S_n| cos(pi k (n + 1/2) / N): the log
    # spectrum is c0/2 + sum c_k cos(...), the scaling of a real cepstrum of ln amplitude.
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    n = torch.arange(n_in, dtype=torch.float64)[None, :]
    return (torch.cos(math.pi / n_in * (n + 0.5) * k) * (2.0 / n_in)).float()


def mel_cepstral_distortion(log_mel_ref: torch.Tensor, log_mel_hyp: torch.Tensor) -> float:
    """Both [n_mels, T] natural-log mel spectrograms of the same length."""
    d = _dct_matrix(log_mel_ref.shape[0], N_CEPS + 1)
    diff = (d @ log_mel_ref.float() - d @ log_mel_hyp.float())[1:]  # c0 is loudness: left out
    # the usual MCD constant for cepstra of ln amplitude
    per_frame = (10.0 / math.log(10.0)) * torch.sqrt(2.0 * torch.sum(diff**2, dim=0))
    return float(per_frame.mean())


def f0_correlation(f0_ref: np.ndarray, f0_hyp: np.ndarray) -> float | None:
    """None when fewer than 10 frames are voiced in both (nothing to correlate)."""
    n = min(len(f0_ref), len(f0_hyp))
    a, b = np.asarray(f0_ref[:n], float), np.asarray(f0_hyp[:n], float)
    voiced = (a > 0) & (b > 0)
    if voiced.sum() < 10 or np.std(a[voiced]) == 0 or np.std(b[voiced]) == 0:
        return None
    return float(np.corrcoef(a[voiced], b[voiced])[0, 1])


def spectral_convergence(spec_ref: torch.Tensor, spec_hyp: torch.Tensor) -> float:
    return float(torch.linalg.norm(spec_ref - spec_hyp) / torch.linalg.norm(spec_ref).clamp_min(1e-9))
