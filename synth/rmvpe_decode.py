"""RMVPE's salience decoding: salience [T, 360] → f0 in Hz, in numpy and in torch.

The pitch is the salience-weighted mean of cents over the argmax bin ± 4 (RVC's
`to_local_average_cents`); frames whose peak is at or below the threshold are unvoiced.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .pitch_options import PitchError

N_BINS = 360  # 20-cent pitch bins
# Cents of bin 0 (≈ 31.7 Hz); f0 = 10 · 2^(cents/1200).
CENTS_OFFSET = 1997.3794084376191
CENTS_PER_BIN = 20.0
DEFAULT_THRESHOLD = 0.03  # every RVC caller passes 0.03 (the function default 0.05 is unused)


def _padded_cents() -> np.ndarray:
    # Four zero-cent bins on each side so the ±4 window never leaves the array;
    # zero padding of the salience makes them weigh nothing.
    return np.pad(CENTS_PER_BIN * np.arange(N_BINS) + CENTS_OFFSET, (4, 4))


_CENTS = _padded_cents()
_WINDOW = np.arange(9)


def decode_salience(salience: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Salience [T, 360] → f0 in Hz [T] (float64); 0 where the peak is ≤ threshold.

    The pitch is the salience-weighted mean of cents over the argmax bin ± 4.
    """
    sal = np.asarray(salience)
    if sal.ndim != 2 or sal.shape[1] != N_BINS:
        raise PitchError(f"salience must be [frames, {N_BINS}], got shape {sal.shape}")
    if sal.shape[0] == 0:
        return np.zeros(0)
    padded = np.pad(sal, ((0, 0), (4, 4)))
    cols = np.argmax(sal, axis=1)[:, None] + _WINDOW[None, :]  # argmax-4 … argmax+4 in padded coords
    weights = np.take_along_axis(padded, cols, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cents = np.sum(weights * _CENTS[cols], axis=1) / np.sum(weights, axis=1)
    cents[np.max(sal, axis=1) <= threshold] = 0.0
    f0 = 10.0 * 2.0 ** (cents / 1200.0)
    f0[f0 == 10.0] = 0.0
    return f0


def decode_salience_torch(salience: Tensor, threshold: float = DEFAULT_THRESHOLD) -> Tensor:
    """Torch twin of `decode_salience` for [..., T, 360] on any device (float32 result)."""
    sal = salience.float()
    cents_table = torch.as_tensor(_CENTS, dtype=torch.float32, device=sal.device)
    padded = F.pad(sal, (4, 4))
    peak, arg = sal.max(dim=-1)
    cols = arg.unsqueeze(-1) + torch.arange(9, device=sal.device)
    weights = padded.gather(-1, cols)
    cents = (weights * cents_table[cols]).sum(-1) / weights.sum(-1)
    voiced = (peak > threshold) & torch.isfinite(cents)
    f0 = 10.0 * torch.pow(2.0, cents / 1200.0)
    return torch.where(voiced, f0, torch.zeros_like(f0))

