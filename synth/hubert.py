"""A native PyTorch HuBERT-base (also ContentVec), for inference only.

This mirrors fairseq's `HubertModel.extract_features(source, padding_mask=None,
output_layer=L)` for post-LN ("base") models: a 7-layer conv feature extractor,
a feature LayerNorm and projection, a weight-normed positional convolution, an
encoder LayerNorm applied *before* the layers, then post-LN transformer layers.
Dropout, masking and the training heads are left out: RVC only reads features.

The module's own parameter names are ours; `content_encoder.py` maps fairseq and
Hugging Face checkpoints onto them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ConvSpec = tuple[tuple[int, int, int], ...]  # (channels, kernel, stride) per layer

# fairseq's default `conv_feature_layers`: "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"
BASE_CONV_LAYERS: ConvSpec = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2


@dataclass(frozen=True)
class HubertConfig:
    """Architecture numbers; the defaults are HuBERT-base / ContentVec-base."""

    conv_layers: ConvSpec = BASE_CONV_LAYERS
    conv_bias: bool = False
    # "default": GroupNorm (one group per channel) on the first conv only;
    # "layer_norm": a LayerNorm over channels after every conv.
    extractor_mode: str = "default"
    embed_dim: int = 768
    num_layers: int = 12
    num_heads: int = 12
    ffn_dim: int = 3072
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    final_dim: int = 256  # final_proj output size; 0 when the checkpoint has none
    feature_layer_norm: bool = True  # LayerNorm on conv features before projection
    layer_norm_eps: float = 1e-5
    normalize: bool = False  # layer-norm the waveform first (fairseq task.normalize)

    def __post_init__(self) -> None:
        if self.extractor_mode not in ("default", "layer_norm"):
            raise ValueError(f"extractor_mode must be 'default' or 'layer_norm', got {self.extractor_mode!r}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.embed_dim % self.pos_conv_groups:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by pos_conv_groups {self.pos_conv_groups}")
        if not self.conv_layers:
            raise ValueError("conv_layers is empty")

    @property
    def hop(self) -> int:
        """Input samples per output frame (320 for base: 20 ms at 16 kHz)."""
        return math.prod(stride for _, _, stride in self.conv_layers)

    @property
    def feature_dim(self) -> int:
        return self.conv_layers[-1][0]

    def num_frames(self, num_samples: int) -> int:
        """Frames the conv stack yields for `num_samples` input samples (0 if too short)."""
        n = num_samples
        for _, kernel, stride in self.conv_layers:
            if n < kernel:
                return 0
            n = (n - kernel) // stride + 1
        return n

    @property
    def min_samples(self) -> int:
        """The shortest input that gives one frame (the conv stack's receptive field)."""
        n = 1
        for _, kernel, stride in reversed(self.conv_layers):
            n = (n - 1) * stride + kernel
        return n


class _ConvBlock(nn.Module):
    """Conv1d → optional norm → GELU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, bias: bool, norm: str | None, eps: float):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, bias=bias)
        self.norm_kind = norm
        self.eps = eps
        if norm is not None:  # both kinds have a per-channel affine weight and bias
            self.norm_weight = nn.Parameter(torch.ones(c_out))
            self.norm_bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.norm_kind is not None:
            # Normalise in fp32 (as fairseq's Fp32GroupNorm / Fp32LayerNorm): the
            # statistics run over thousands of samples and would lose precision or
            # overflow in fp16.
            y = x.float()
            w, b = self.norm_weight.float(), self.norm_bias.float()
            if self.norm_kind == "group":
                y = F.group_norm(y, y.shape[1], w, b, self.eps)
            else:
                y = F.layer_norm(y.transpose(1, 2), (y.shape[1],), w, b, self.eps).transpose(1, 2)
            x = y.to(x.dtype)
        return F.gelu(x)


class ConvFeatureExtractor(nn.Module):
    """Waveform [B, N] → features [B, C, frames]."""

    def __init__(self, cfg: HubertConfig):
        super().__init__()
        blocks = []
        c_in = 1
        for i, (c_out, kernel, stride) in enumerate(cfg.conv_layers):
            if cfg.extractor_mode == "layer_norm":
                norm: str | None = "layer"
            else:
                norm = "group" if i == 0 else None
            blocks.append(_ConvBlock(c_in, c_out, kernel, stride, cfg.conv_bias, norm, cfg.layer_norm_eps))
            c_in = c_out
        self.conv_layers = nn.ModuleList(blocks)

    def forward(self, wav: Tensor) -> Tensor:
        x = wav.unsqueeze(1)
        for block in self.conv_layers:
            x = block(x)
        return x


class PositionalConv(nn.Module):
    """Relative position information from a wide grouped conv over the sequence.

    Checkpoints store it weight-normed (g, v with dim=2); the loader folds that
    into a plain weight once, since nothing here trains it.
    """

    def __init__(self, dim: int, kernel: int, groups: int):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups)
        # "SamePad": with an even kernel, padding k//2 on both sides yields one
        # frame too many; drop the last one.
        self.trim = 1 if kernel % 2 == 0 else 0

    def forward(self, x: Tensor) -> Tensor:  # x: [B, T, C]
        y = self.conv(x.transpose(1, 2))
        if self.trim:
            y = y[:, :, : -self.trim]
        return F.gelu(y).transpose(1, 2)


def fold_weight_norm(g: Tensor, v: Tensor, dim: int) -> Tensor:
    """w = g · v / ‖v‖, the norm taken over every axis except `dim` (torch's weight_norm)."""
    axes = [d for d in range(v.dim()) if d != dim]
    norm = v.float().pow(2).sum(dim=axes, keepdim=True).sqrt()
    return (g.float() * v.float() / norm).to(v.dtype)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:  # x: [B, T, C]
        b, t, c = x.shape

        def split(y: Tensor) -> Tensor:
            return y.view(b, t, self.heads, c // self.heads).transpose(1, 2)

        # No mask: RVC passes an all-False padding mask, which masks nothing.
        y = F.scaled_dot_product_attention(split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x)))
        return self.out_proj(y.transpose(1, 2).reshape(b, t, c))


class EncoderLayer(nn.Module):
    """Post-LN transformer layer (fairseq layer_norm_first=False)."""

    def __init__(self, cfg: HubertConfig):
        super().__init__()
        self.self_attn = SelfAttention(cfg.embed_dim, cfg.num_heads)
        self.self_attn_layer_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.layer_norm_eps)
        self.fc1 = nn.Linear(cfg.embed_dim, cfg.ffn_dim)
        self.fc2 = nn.Linear(cfg.ffn_dim, cfg.embed_dim)
        self.final_layer_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.layer_norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        x = self.self_attn_layer_norm(x + self.self_attn(x))
        return self.final_layer_norm(x + self.fc2(F.gelu(self.fc1(x))))


class Hubert(nn.Module):
    """HuBERT-base feature extractor; see `extract`."""

    def __init__(self, cfg: HubertConfig):
        super().__init__()
        self.cfg = cfg
        self.feature_extractor = ConvFeatureExtractor(cfg)
        self.feature_layer_norm = (
            nn.LayerNorm(cfg.feature_dim, eps=cfg.layer_norm_eps) if cfg.feature_layer_norm else nn.Identity()
        )
        # fairseq omits this when the sizes agree; the loader then fills an identity.
        self.post_extract_proj = nn.Linear(cfg.feature_dim, cfg.embed_dim)
        self.pos_conv = PositionalConv(cfg.embed_dim, cfg.pos_conv_kernel, cfg.pos_conv_groups)
        self.encoder_layer_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.layer_norm_eps)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_layers))
        self.final_proj = nn.Linear(cfg.embed_dim, cfg.final_dim) if cfg.final_dim else None

    def extract(self, wav: Tensor, output_layer: int, project: bool = False) -> Tensor:
        """wav [B, N] → output of transformer layer `output_layer` (1-based), [B, frames, D].

        Runs only layers 1..output_layer. With `project`, applies final_proj
        (D = final_dim), as RVC v1 does on layer 9.
        """
        if not 1 <= output_layer <= self.cfg.num_layers:
            raise ValueError(f"output_layer must be in 1..{self.cfg.num_layers}, got {output_layer}")
        if project and self.final_proj is None:
            raise ValueError("this model has no final_proj, so it cannot project features")
        if self.cfg.normalize:
            wav = F.layer_norm(wav, wav.shape[-1:])
        x = self.feature_extractor(wav).transpose(1, 2)
        x = self.post_extract_proj(self.feature_layer_norm(x))
        x = self.encoder_layer_norm(x + self.pos_conv(x))
        for layer in self.layers[:output_layer]:
            x = layer(x)
        if project:
            assert self.final_proj is not None
            x = self.final_proj(x)
        return x
