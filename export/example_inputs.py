"""Example inputs of the ONNX synthesizer contract: for tracing an export and for verifying it."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from ..synth.constants import NOISE_SCALE
from ..synth.onnx_contract import DEC_NOISE, EMBEDDER_LAYERS, FORMANT_INPUT
from ..synth.synthesizer import Synthesizer


def synth_inputs(
    model_or_meta: Synthesizer | Mapping[str, str],
    frames: int,
    *,
    seed: int = 0,
    streaming: tuple[int, ...] | None = None,
    dec_noise: float = 0.0,
) -> dict[str, Tensor]:
    """Random inputs of the contract for ``frames`` frames (speech-like pitch with unvoiced
    gaps); with ``streaming=(skip_head, return_length[, return_length2])`` the offsets too
    (``return_length2`` defaults to ``return_length``: no formant stretch)."""
    if isinstance(model_or_meta, Mapping):  # an export's metadata
        version, f0, inter = model_or_meta["version"], model_or_meta["f0"] == "1", int(model_or_meta["inter_channels"])
    else:
        version, f0, inter = model_or_meta.version, model_or_meta.f0, model_or_meta.config.inter_channels
    gen = torch.Generator().manual_seed(seed)
    dim = EMBEDDER_LAYERS[version][2]
    t = torch.arange(frames, dtype=torch.float32)
    pitchf = (150 + 70 * torch.sin(t / 7) + 10 * torch.rand(frames, generator=gen))[None]
    pitchf[:, (t.long() % 17) < 3] = 0.0  # unvoiced frames
    mel = 1127.0 * torch.log1p(pitchf / 700.0)
    lo, hi = 1127.0 * math.log1p(50 / 700), 1127.0 * math.log1p(1100 / 700)
    pitch = torch.where(mel > 0, (mel - lo) * 254 / (hi - lo) + 1, mel).clamp(1, 255).round().long()
    out = {
        "phone": torch.randn(1, frames, dim, generator=gen),
        "phone_lengths": torch.tensor([frames]),
        "pitch": pitch,
        "pitchf": pitchf,
        "ds": torch.tensor([0]),
        "rnd": torch.randn(1, inter, frames, generator=gen) * NOISE_SCALE,
    }
    if not f0:
        del out["pitch"], out["pitchf"]
    if streaming is not None:
        out["skip_head"], out["return_length"] = torch.tensor([streaming[0]]), torch.tensor([streaming[1]])
        out[FORMANT_INPUT] = torch.tensor([streaming[2] if len(streaming) > 2 else streaming[1]])
    out[DEC_NOISE] = torch.tensor([float(dec_noise)])
    return out
