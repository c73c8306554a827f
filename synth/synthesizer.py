"""The RVC synthesizer (VITS-style): one class for RVC's four model classes.

| RVC class                          | here                                        |
|------------------------------------|---------------------------------------------|
| SynthesizerTrnMs256NSFsid          | Synthesizer(cfg, version="v1", f0=True)     |
| SynthesizerTrnMs768NSFsid          | Synthesizer(cfg, version="v2", f0=True)     |
| SynthesizerTrnMs256NSFsid_nono     | Synthesizer(cfg, version="v1", f0=False)    |
| SynthesizerTrnMs768NSFsid_nono     | Synthesizer(cfg, version="v2", f0=False)    |

Submodule names give exactly RVC's state-dict keys (`enc_p.*`, `dec.*`,
`flow.flows.N.*`, `emb_g.weight`, and `enc_q.*` when `posterior=True`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import remove_weight_norm as _remove_wn
from torch.nn.utils.weight_norm import WeightNorm

from .configs import SynthConfig, content_dim
from .constants import NOISE_SCALE
from .flow import PosteriorEncoder, ResidualCouplingBlock
from .generator import Generator, GeneratorNSF
from .text_encoder import TextEncoder

# Receptive field of the flow: 4 couplings x 3 WN layers x +-2 frames (kernel 5).
FLOW_CONTEXT = 24


def _as_int(v: int | torch.Tensor | None) -> int | None:
    return None if v is None else int(v.item() if isinstance(v, torch.Tensor) else v)


def slice_segments(x: torch.Tensor, starts: torch.Tensor, size: int) -> torch.Tensor:
    """x[b, ..., starts[b] : starts[b]+size] along the last axis, per batch item."""
    return torch.stack([x[b, ..., int(s) : int(s) + size] for b, s in enumerate(starts)])


class Synthesizer(nn.Module):
    """RVC generator network: prior encoder, flow, decoder, speaker embedding (and posterior)."""

    def __init__(self, config: SynthConfig, *, version: str, f0: bool, posterior: bool = True) -> None:
        super().__init__()
        c = config
        self._config = config
        self._version = version
        self._f0 = bool(f0)
        self.segment_size = c.segment_size
        self.enc_p = TextEncoder(
            content_dim(version),
            c.inter_channels,
            c.hidden_channels,
            c.filter_channels,
            c.n_heads,
            c.n_layers,
            c.kernel_size,
            c.p_dropout,
            f0=self._f0,
        )
        dec_args = (
            c.inter_channels,
            c.resblock,
            c.resblock_kernel_sizes,
            c.resblock_dilation_sizes,
            c.upsample_rates,
            c.upsample_initial_channel,
            c.upsample_kernel_sizes,
        )
        self.dec: Generator = (
            GeneratorNSF(*dec_args, gin_channels=c.gin_channels, sr=c.sr) if self._f0 else Generator(*dec_args, gin_channels=c.gin_channels)
        )
        if posterior:
            self.enc_q = PosteriorEncoder(c.spec_channels, c.inter_channels, c.hidden_channels, 5, 1, 16, gin_channels=c.gin_channels)
        self.flow = ResidualCouplingBlock(c.inter_channels, c.hidden_channels, 5, 1, 3, gin_channels=c.gin_channels)
        self.emb_g = nn.Embedding(c.spk_embed_dim, c.gin_channels)

    @property
    def config(self) -> SynthConfig:
        return self._config

    @property
    def version(self) -> str:
        return self._version

    @property
    def f0(self) -> bool:
        return self._f0

    @property
    def has_posterior(self) -> bool:
        return hasattr(self, "enc_q")

    def _decode(
        self, z: torch.Tensor, pitchf: torch.Tensor | None, g: torch.Tensor, n_res: int | None = None,
        dec_noise: float | torch.Tensor = 1.0,
    ) -> torch.Tensor:
        if self._f0:
            if pitchf is None:
                raise ValueError("this voice model needs pitchf (f0 in Hz)")
            return self.dec(z, pitchf, g=g, n_res=n_res, noise_gain=dec_noise)
        return self.dec(z, g=g, n_res=n_res)

    def _check_pitch(self, pitch: torch.Tensor | None) -> torch.Tensor | None:
        if self._f0 and pitch is None:
            raise ValueError("this voice model needs pitch (coarse pitch, long)")
        return pitch if self._f0 else None

    def forward(
        self,
        phone: torch.Tensor,
        phone_lengths: torch.Tensor,
        pitch: torch.Tensor | None,
        pitchf: torch.Tensor | None,
        y: torch.Tensor,
        y_lengths: torch.Tensor,
        sid: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """Training pass (RVC's `forward`): spectrogram y -> z -> random slice -> audio.

        Returns `(o, ids_slice, x_mask, y_mask, (z, z_p, m_p, logs_p, m_q, logs_q))`,
        with `o` the decoded audio of a `segment_size`-frame slice starting at `ids_slice`.
        """
        if not self.has_posterior:
            raise RuntimeError("training needs the posterior encoder (build with posterior=True)")
        g = self.emb_g(sid).unsqueeze(-1)
        m_p, logs_p, x_mask = self.enc_p(phone, self._check_pitch(pitch), phone_lengths)
        z, m_q, logs_q, y_mask = self.enc_q(y, y_lengths, g=g)
        z_p = self.flow(z, y_mask, g=g)
        # Slice starts are drawn on the CPU generator (as RVC does), then moved.
        max_start = y_lengths - self.segment_size + 1
        ids_slice = (torch.rand([z.size(0)]).to(z.device) * max_start).to(torch.long)
        z_slice = slice_segments(z, ids_slice, self.segment_size)
        f0_slice = slice_segments(pitchf, ids_slice, self.segment_size) if self._f0 and pitchf is not None else None
        o = self._decode(z_slice, f0_slice, g)
        return o, ids_slice, x_mask, y_mask, (z, z_p, m_p, logs_p, m_q, logs_q)

    def infer(
        self,
        phone: torch.Tensor,
        phone_lengths: torch.Tensor,
        pitch: torch.Tensor | None,
        pitchf: torch.Tensor | None,
        sid: torch.Tensor,
        *,
        noise_scale: float = NOISE_SCALE,
        noise: torch.Tensor | None = None,
        skip_head: int | torch.Tensor | None = None,
        return_length: int | torch.Tensor | None = None,
        return_length2: int | torch.Tensor | None = None,
        dec_noise: float | torch.Tensor = 1.0,
    ) -> torch.Tensor:
        """Convert: phone [B,T,C], lengths [B], pitch [B,T] long, pitchf [B,T] Hz, sid [B] -> audio [B,1,samples].

        - `noise`: standard normal latent noise [B, inter, T'] (T' = T, or T - flow_head
          when `skip_head` is set); None draws `randn_like` at the same point as RVC.
        - `skip_head`/`return_length` (realtime, RVC 2024): attention sees all T frames,
          the flow runs from `flow_head = max(skip_head - 24, 0)` (24 frames of context),
          and the decoder only on frames `[skip_head, skip_head + return_length)`.
        - `return_length2` (formant shift): the decoder stretches latent and source to
          that many frames, giving `return_length2 * hop` samples.
        - `dec_noise`: gain of the NSF source's random draws (1: RVC; 0: deterministic).
        """
        skip = _as_int(skip_head)
        length = _as_int(return_length)
        n_res = _as_int(return_length2)
        dtype = self.emb_g.weight.dtype
        phone = phone.to(dtype)
        pitch = self._check_pitch(pitch)
        g = self.emb_g(sid).unsqueeze(-1)

        flow_head = max(skip - FLOW_CONTEXT, 0) if skip is not None else 0
        m_p, logs_p, x_mask = self.enc_p(phone, pitch, phone_lengths, skip_head=flow_head)
        if noise is None:
            noise = torch.randn_like(m_p)
        else:
            noise = noise.to(m_p.dtype)
            if noise.shape[-1] != m_p.shape[-1] and flow_head:
                noise = noise[..., flow_head:]  # noise was given for all T frames
        z_p = (m_p + torch.exp(logs_p) * noise * noise_scale) * x_mask
        z = self.flow(z_p, x_mask, g=g, reverse=True)

        if skip is not None or length is not None:
            head = skip or 0
            dec_head = head - flow_head  # z starts at flow_head
            z = z[:, :, dec_head : None if length is None else dec_head + length]
            x_mask = x_mask[:, :, dec_head : None if length is None else dec_head + length]
            if pitchf is not None:
                pitchf = pitchf[:, head : None if length is None else head + length]
        return self._decode(z * x_mask, pitchf, g, n_res=n_res, dec_noise=dec_noise)

    def remove_weight_norm(self) -> Synthesizer:
        """Fold every weight norm into a plain `weight` (inference speed; keys change to `*.weight`)."""
        for module in self.modules():
            if any(isinstance(h, WeightNorm) for h in module._forward_pre_hooks.values()):
                _remove_wn(module)
        return self

    @property
    def has_weight_norm(self) -> bool:
        return any(isinstance(h, WeightNorm) for m in self.modules() for h in m._forward_pre_hooks.values())
