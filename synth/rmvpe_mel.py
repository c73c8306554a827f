"""RMVPE's front end: 16 kHz audio → log-mel [128, N//160 + 1], in float32.

The settings are fixed by the trained weights: 1024-point STFT, 10 ms hop, 128
HTK-mel bands from 30 Hz to 8 kHz, log of the mel energy clamped at 1e-5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch.nn.functional as F
from torch import Tensor, nn

from .constants import HOP_16K, SR_16K
from .pitch_options import PitchError
from .spectrogram import STFT, LogMel
from .spectrogram import mel_filterbank as _filterbank

SAMPLE_RATE = SR_16K
HOP = HOP_16K  # 10 ms frames
N_MELS = 128


@dataclass(frozen=True)
class MelConfig:
    """RMVPE's log-mel settings (fixed by the trained weights)."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = HOP
    n_mels: int = N_MELS
    fmin: float = 30.0
    fmax: float = 8000.0
    clamp: float = 1e-5



def mel_filterbank(config: MelConfig = MelConfig()) -> np.ndarray:
    """RMVPE's filters: HTK mel with Slaney area normalisation, [n_mels, n_fft//2 + 1] float32
    (librosa.filters.mel(htk=True, norm="slaney"))."""
    return _filterbank(config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax, htk=True)


class MelFrontEnd(nn.Module):
    """Log-mel of 16 kHz audio; window and filterbank are buffers that follow the module's device."""

    def __init__(self, config: MelConfig = MelConfig()) -> None:
        super().__init__()
        self.config = config
        self.stft = STFT(config.n_fft, config.hop_length, config.win_length, centred=True)
        self.mel = LogMel(mel_filterbank(config), config.clamp)

    def forward(self, audio: Tensor) -> Tensor:
        """audio [N] or [B, N]; returns [n_mels, N//hop + 1] or [B, n_mels, N//hop + 1].

        Frame i is centred on sample i·hop (centre=True, reflect padding).
        """
        squeeze = audio.dim() == 1
        x = audio.unsqueeze(0) if squeeze else audio
        if x.dim() != 2:
            raise PitchError(f"mel_spectrogram expects audio [N] or [B, N], got shape {tuple(audio.shape)}")
        x = x.float()
        n = x.shape[-1]
        half = self.config.n_fft // 2
        if n <= half:
            # Reflect padding needs more than n_fft/2 samples: extend very short clips with
            # silence, then keep the frame count that the original length implies.
            x = F.pad(x, (0, half + 1 - n))
        magnitude = self.stft(x)[..., : n // self.config.hop_length + 1]
        mel = self.mel(magnitude)
        return mel.squeeze(0) if squeeze else mel


def mel_spectrogram(audio: Tensor, config: MelConfig = MelConfig()) -> Tensor:
    """Log-mel spectrogram of 16 kHz audio (a one-off front end on the audio's device)."""
    return MelFrontEnd(config).to(audio.device)(audio)
