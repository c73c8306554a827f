"""Transformer encoder of RVC's text (content) encoder.

A VITS-style post-norm encoder: self-attention with relative position embeddings
(window ±10, shared by all heads) and a convolutional FFN. Parameter names match
RVC's state dict (`conv_q`, `emb_rel_k`, `norm_layers_1.i.gamma`, ...).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm(nn.Module):
    """LayerNorm over the channel axis of [B, C, T] tensors (params `gamma`/`beta`)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.transpose(1, -1), (self.channels,), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


def _relative_index(length: int, window: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """For query i and key j: index of the embedding for offset j-i, and whether |j-i| <= window."""
    pos = torch.arange(length, device=device)
    offset = pos[None, :] - pos[:, None]  # [T_q, T_k]
    inside = offset.abs() <= window
    return (offset + window).clamp(0, 2 * window), inside


class MultiHeadAttention(nn.Module):
    """Self-attention with relative position embeddings for offsets within ±window.

    Offsets beyond the window get no relative term (VITS pads the embedding table
    with zeros), which is what `inside` masks below.
    """

    def __init__(self, channels: int, out_channels: int, n_heads: int, p_dropout: float = 0.0, window_size: int = 10) -> None:
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels ({channels}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.k_channels = channels // n_heads
        self.window_size = window_size
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, out_channels, 1)
        self.drop = nn.Dropout(p_dropout)
        std = self.k_channels**-0.5
        self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
        self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
        for conv in (self.conv_q, self.conv_k, self.conv_v):
            nn.init.xavier_uniform_(conv.weight)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        # [B, C, T] -> [B, H, T, D]
        q = self.conv_q(x).view(b, self.n_heads, self.k_channels, t).transpose(2, 3)
        k = self.conv_k(x).view(b, self.n_heads, self.k_channels, t).transpose(2, 3)
        v = self.conv_v(x).view(b, self.n_heads, self.k_channels, t).transpose(2, 3)
        q = q / math.sqrt(self.k_channels)

        idx, inside = _relative_index(t, self.window_size, x.device)
        scores = q @ k.transpose(-2, -1)
        rel_logits = q @ self.emb_rel_k.transpose(-2, -1).unsqueeze(0)  # [B, H, T, 2W+1]
        scores = scores + rel_logits.gather(-1, idx.expand(b, self.n_heads, t, t)) * inside
        scores = scores.masked_fill(attn_mask == 0, -1e4)
        p_attn = self.drop(F.softmax(scores, dim=-1))

        out = p_attn @ v
        # Relative values: weight of offset o for query i is p_attn[i, i+o] (0 outside the sequence).
        w = self.window_size
        p_pad = F.pad(p_attn, (w, w))  # [B, H, T, T+2W]
        band = torch.arange(t, device=x.device)[:, None] + torch.arange(2 * w + 1, device=x.device)[None, :]
        rel_weights = p_pad.gather(-1, band.expand(b, self.n_heads, t, 2 * w + 1))
        out = out + rel_weights @ self.emb_rel_v.unsqueeze(0)
        out = out.transpose(2, 3).reshape(b, c, t)
        return self.conv_o(out)


class FFN(nn.Module):
    """Conv -> ReLU -> conv with "same" padding, masked before each conv."""

    def __init__(self, in_channels: int, out_channels: int, filter_channels: int, kernel_size: int, p_dropout: float = 0.0) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.conv_1 = nn.Conv1d(in_channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, out_channels, kernel_size)
        self.drop = nn.Dropout(p_dropout)

    def _pad(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        return F.pad(x * x_mask, ((k - 1) // 2, k // 2))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        x = self.drop(torch.relu(self.conv_1(self._pad(x, x_mask))))
        return self.conv_2(self._pad(x, x_mask)) * x_mask


class Encoder(nn.Module):
    """Post-norm transformer: x = LN(x + attn(x)); x = LN(x + ffn(x))."""

    def __init__(
        self,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int = 1,
        p_dropout: float = 0.0,
        window_size: int = 10,
    ) -> None:
        super().__init__()
        self.drop = nn.Dropout(p_dropout)
        self.attn_layers = nn.ModuleList(
            MultiHeadAttention(hidden_channels, hidden_channels, n_heads, p_dropout, window_size) for _ in range(n_layers)
        )
        self.norm_layers_1 = nn.ModuleList(LayerNorm(hidden_channels) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(
            FFN(hidden_channels, hidden_channels, filter_channels, kernel_size, p_dropout) for _ in range(n_layers)
        )
        self.norm_layers_2 = nn.ModuleList(LayerNorm(hidden_channels) for _ in range(n_layers))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        attn_mask = x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)  # [B, 1, T, T]
        x = x * x_mask
        for attn, norm1, ffn, norm2 in zip(self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2):
            x = norm1(x + self.drop(attn(x, attn_mask)))
            x = norm2(x + self.drop(ffn(x, x_mask)))
        return x * x_mask
