"""The modules torch traces into ONNX: the synthesizer under RVC's contract, the content
encoder and RMVPE, each adjusted only where tracing needs it.

- **Decoder randomness.**  RVC's NSF source draws Gaussian noise (and random
  overtone phases) on every call; the exported graph keeps that
  (``RandomNormalLike``), as RVC's export does.  The draw is multiplied by the
  graph input ``dec_noise`` (default 1, stored in the file as an overridable
  initializer): tools that feed only RVC's six inputs get RVC's behaviour, and
  verification feeds 0 to make the graph deterministic, against a torch model
  given ``dec_noise=0`` the same way.
- **Formant stretch as an input.**  Streaming graphs take ``return_length2``: the
  decoder always resizes its latent (and the NSF source) to that many frames.  A
  linear resize to the same length is the identity, so its stored default 0 (read
  as ``return_length``) gives the unstretched decoder torch runs without a formant
  shift, and callers that feed only ``skip_head``/``return_length`` work as before.
- **A portable sine source.**  RVC's SineGen finds phase wraps with exact float
  comparisons of a linearly interpolated phase and then cumsums over every output
  sample; ONNX Runtime's Resize rounds differently, finds spurious wraps in
  unvoiced stretches, and its float32 CumSum then drifts (measured 0.05–0.09 abs
  error on a tiny model).  The graph instead computes the same sum in closed form
  per frame, ``S[f,k] = upp·Σ_{j<f} rad[j] + (k+1)·rad[f]`` (frame-level cumsum in
  float64, wrapped to [0,1)), which equals RVC's running phase up to whole cycles.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..synth.generator import LRELU_SLOPE
from ..synth.onnx_contract import DEC_NOISE, FORMANT_INPUT, STREAM_INPUTS, SYNTH_INPUTS
from ..synth.synthesizer import FLOW_CONTEXT, Synthesizer


class PortableSineGen(nn.Module):
    """Drop-in for RVC's SineGen that exports to ONNX with RVC's numbers.

    Same outputs as ``synth.generator.SineGen`` (sine·uv + noise, uv), computed
    without sample-level wrap detection (see the module docstring).  ``noise_gain``
    (the graph's ``dec_noise`` input) scales every random draw: 1 = RVC,
    0 = deterministic (no noise, overtones start at phase 0).
    """

    def __init__(self, src: nn.Module) -> None:
        super().__init__()
        self.sampling_rate = int(src.sampling_rate)
        self.dim = int(src.dim)
        self.sine_amp = float(src.sine_amp)
        self.noise_std = float(src.noise_std)
        self.voiced_threshold = float(src.voiced_threshold)

    def forward(self, f0: Tensor, upp: int, noise_gain: float | Tensor = 1.0) -> tuple[Tensor, Tensor]:
        gain = noise_gain
        f0 = f0.float().unsqueeze(-1)  # [B, T, 1]
        b, t = f0.shape[0], f0.shape[1]
        harmonics = torch.arange(1, self.dim + 1, device=f0.device, dtype=f0.dtype)
        rad = (f0 * harmonics / self.sampling_rate) % 1  # cycles per sample, per frame [B, T, dim]
        if self.dim > 1:  # random start phase for the overtones only (RVC adds it to frame 0)
            phase0 = torch.rand(b, self.dim - 1, device=f0.device) * gain
            phase0 = torch.cat([torch.zeros(b, 1, device=f0.device), phase0], 1)
            rad = torch.cat([rad[:, :1] + phase0[:, None, :], rad[:, 1:]], dim=1)
        # Phase at the start of each frame, wrapped: upp·(sum of earlier frames' rad).
        per_frame = (rad.double() * upp) % 1
        start = (torch.cumsum(per_frame, 1) - per_frame) % 1  # exclusive cumsum, float64
        k = torch.arange(1, upp + 1, device=f0.device, dtype=torch.float64).reshape(1, 1, upp, 1)
        phase = (start.unsqueeze(2) + rad.double().unsqueeze(2) * k) % 1  # [B, T, upp, dim]
        sine = torch.sin(phase.float().reshape(b, t * upp, self.dim) * (2 * math.pi)) * self.sine_amp
        uv = (f0 > self.voiced_threshold).float()
        uv = uv.unsqueeze(2).expand(b, t, upp, 1).reshape(b, t * upp, 1)  # nearest upsampling
        noise_amp = uv * self.noise_std + (1 - uv) * self.sine_amp / 3
        noise = noise_amp * torch.randn_like(sine) * gain
        return sine * uv + noise, uv


class SynthesizerGraph(nn.Module):
    """The exported function: RVC's ONNX contract around a (merged) Synthesizer.

    ``forward(*inputs)`` takes the tensors named by ``input_names`` in that order.
    The wrapped model is changed in place (weight norm folded, portable sine source).
    """

    def __init__(self, model: Synthesizer, *, streaming: bool = False) -> None:
        super().__init__()
        if model.has_weight_norm:
            model.remove_weight_norm()  # one constant weight per conv in the graph
        self.model = model.eval()
        self.streaming = streaming
        if model.f0:
            source = model.dec.m_source
            source.l_sin_gen = PortableSineGen(source.l_sin_gen)

    @property
    def input_names(self) -> tuple[str, ...]:
        names = SYNTH_INPUTS if self.model.f0 else tuple(n for n in SYNTH_INPUTS if n not in ("pitch", "pitchf"))
        return names + (STREAM_INPUTS + (FORMANT_INPUT,) if self.streaming else ()) + (DEC_NOISE,)

    def forward(self, *inputs: Tensor) -> Tensor:
        x = dict(zip(self.input_names, inputs))
        m = self.model
        dtype = m.emb_g.weight.dtype
        phone, lengths, ds, rnd = x["phone"].to(dtype), x["phone_lengths"], x["ds"], x["rnd"].to(dtype)
        pitch, pitchf = x.get("pitch"), x.get("pitchf")
        gain = x[DEC_NOISE]
        if not self.streaming:
            # rnd is already scaled (RVC's contract): noise_scale 1 inside the graph.
            audio = m.infer(phone, lengths, pitch, pitchf, ds, noise=rnd, noise_scale=1.0, dec_noise=gain)
        else:
            offsets = (x["skip_head"], x["return_length"], x[FORMANT_INPUT])
            audio = self._streaming(phone, lengths, pitch, pitchf, ds, rnd, *offsets, gain)
        return audio.float()

    def _streaming(self, phone, lengths, pitch, pitchf, ds, rnd, skip_head, return_length, return_length2, gain) -> Tensor:
        # Synthesizer.infer's skip_head/return_length path with tensor offsets, so the
        # offsets stay graph inputs (infer turns them into Python ints, which tracing
        # would freeze).  Attention sees all T frames; the flow runs from
        # skip_head - 24; the decoder only on [skip_head, skip_head + return_length).
        m = self.model
        g = m.emb_g(ds).unsqueeze(-1)
        m_p, logs_p, x_mask = m.enc_p(phone, pitch, lengths)
        head, length = skip_head.reshape(()), return_length.reshape(())
        flow_head = torch.clamp(head - FLOW_CONTEXT, min=0)
        keep = torch.arange(flow_head, m_p.shape[2], device=m_p.device)
        m_p, logs_p, x_mask, rnd = (t.index_select(2, keep) for t in (m_p, logs_p, x_mask, rnd))
        z = m.flow((m_p + torch.exp(logs_p) * rnd) * x_mask, x_mask, g=g, reverse=True)
        dec = torch.arange(head - flow_head, head - flow_head + length, device=z.device)
        z, x_mask = z.index_select(2, dec), x_mask.index_select(2, dec)
        if pitchf is not None:
            pitchf = pitchf.index_select(1, torch.arange(head, head + length, device=pitchf.device))
        # return_length2 ≤ 0 (its stored default): no stretch, the decoder's own length.
        stretch = return_length2.reshape(())
        stretch = torch.where(stretch > 0, stretch, length)
        return stretched_decode(m.dec, z * x_mask, pitchf, g, stretch, gain)


def stretched_decode(dec: Any, z: Tensor, pitchf: Tensor | None, g: Tensor, n_res: Tensor, gain: Tensor) -> Tensor:
    """``Generator(NSF).forward`` with the formant stretch to ``n_res`` frames always in the graph.

    torch skips the resize when ``n_res`` equals the frames; here it is a traced op
    (the identity then), since a Python comparison would freeze one branch."""
    if pitchf is not None:
        source = dec.m_source(pitchf, dec.upp, gain).transpose(1, 2)  # [B, 1, T·upp]
        source = F.interpolate(source, size=[n_res * dec.upp], mode="linear")
    x = dec._head(F.interpolate(z, size=[n_res], mode="linear"), g)  # type: ignore[list-item]  # traced size
    for i in range(dec.num_upsamples):
        x = dec.ups[i](F.leaky_relu(x, LRELU_SLOPE))
        if pitchf is not None:
            x = x + dec.noise_convs[i](source)
        x = dec._stage(i, x)
    return dec._tail(x)


class _FixedWidthNormBlock(nn.Module):
    """HuBERT's conv → fp32 norm → GELU block with the channel count as a Python int.

    The native block passes ``y.shape[1]`` as group_norm's group count, which the
    tracer turns into a graph value that ONNX's GroupNorm cannot take; same math."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block
        self.channels = int(block.conv.out_channels)

    def forward(self, x: Tensor) -> Tensor:
        blk = self.block
        x = blk.conv(x)
        y, w, b = x.float(), blk.norm_weight.float(), blk.norm_bias.float()
        if blk.norm_kind == "group":
            y = torch.nn.functional.group_norm(y, self.channels, w, b, blk.eps)
        else:
            y = torch.nn.functional.layer_norm(y.transpose(1, 2), (self.channels,), w, b, blk.eps).transpose(1, 2)
        return torch.nn.functional.gelu(y.to(x.dtype))


class ContentGraph(nn.Module):
    """wav [B, N] at 16 kHz → features [B, frames, 256|768] (the encoder's version decides)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder.eval()
        layers = encoder.model.feature_extractor.conv_layers
        for i, block in enumerate(layers):
            if getattr(block, "norm_kind", None) is not None:
                layers[i] = _FixedWidthNormBlock(block)

    def forward(self, wav: Tensor) -> Tensor:
        return self.encoder(wav).float()


class PitchGraph(nn.Module):
    """log-mel [B, 128, T] (T a multiple of 32) → RMVPE salience [B, T, 360]."""

    def __init__(self, rmvpe: nn.Module) -> None:
        super().__init__()
        self.rmvpe = rmvpe.eval()

    def forward(self, mel: Tensor) -> Tensor:
        return self.rmvpe(mel).float()
