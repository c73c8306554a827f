"""RVC's prior ("text") encoder: content features (+ coarse pitch) -> (m_p, logs_p)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attentions import Encoder


def sequence_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """[B] lengths -> [B, T] bool mask, True on valid frames."""
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]


class TextEncoder(nn.Module):
    """`emb_phone(phone) [+ emb_pitch(pitch)]` -> transformer -> 1x1 `proj` to mean and log-std.

    `in_channels` is 256 for v1 models (HuBERT layer 9 + final_proj) and 768 for v2
    (layer 12). The coarse pitch embedding exists only in f0 models.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        p_dropout: float,
        f0: bool = True,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.hidden_channels = hidden_channels
        self.emb_phone = nn.Linear(in_channels, hidden_channels)
        if f0:
            self.emb_pitch = nn.Embedding(256, hidden_channels)  # coarse pitch 1..255
        self.encoder = Encoder(hidden_channels, filter_channels, n_heads, n_layers, kernel_size, float(p_dropout))
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)

    def forward(
        self,
        phone: torch.Tensor,
        pitch: torch.Tensor | None,
        lengths: torch.Tensor,
        skip_head: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """phone [B, T, C], pitch [B, T] long -> m_p, logs_p [B, out, T-skip_head], x_mask [B, 1, T-skip_head].

        Attention always runs over all T frames; `skip_head` only drops leading
        frames of the result (RVC's realtime path, which keeps them as context).
        """
        x = self.emb_phone(phone)
        if pitch is not None:
            x = x + self.emb_pitch(pitch)
        x = F.leaky_relu(x * math.sqrt(self.hidden_channels), 0.1).transpose(1, -1)  # [B, H, T]
        x_mask = sequence_mask(lengths, x.size(2)).unsqueeze(1).to(x.dtype)
        x = self.encoder(x * x_mask, x_mask)
        if skip_head:
            x, x_mask = x[:, :, skip_head:], x_mask[:, :, skip_head:]
        stats = self.proj(x) * x_mask
        m, logs = torch.split(stats, self.out_channels, dim=1)
        return m, logs, x_mask
