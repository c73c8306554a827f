"""RVC's feature preparation: content-encoder output → the synthesizer's `phone` input.

Shared by offline conversion (synth.pipeline) and the live converter: the content
features (50 per second) are blended with the voice's feature index at the index
rate, then each frame is repeated to the synthesizer's 100 frames per second.
"""

from __future__ import annotations

import torch

from .index import FeatureIndex


def blend_with_index(feats: torch.Tensor, index: FeatureIndex | None, rate: float, *, start: int = 0) -> torch.Tensor:
    """Features [1, T, C] with frames `start`… blended with `index` at `rate` (RVC's index rate);
    `feats` itself when there is no index or the rate is 0."""
    if index is None or rate <= 0:
        return feats
    blended = index.search_blend(feats[0, start:].float().cpu().numpy(), rate)
    out = feats.clone()
    out[0, start:] = torch.from_numpy(blended).to(feats.device, feats.dtype)
    return out


def to_synth_frames(feats: torch.Tensor) -> torch.Tensor:
    """50 Hz content frames [B, T, C] → 100 Hz synthesizer frames [B, 2T, C] (each repeated)."""
    return feats.repeat_interleave(2, dim=1)
