"""The generator to train: the base synthesizer with a posterior encoder, adapters injected.

- A pretrained `G*.pth` carries RVC's posterior encoder (`enc_q`); in LoRA mode it
  stays frozen: it maps spectrograms to the latent space the base's decoder
  already speaks, which is what the adapters should keep.
- A released voice `.pth` has no `enc_q` (RVC deletes it).  A freshly initialised
  one is added and trained fully (it is not part of the adapter and is thrown away
  at the end); training then needs more steps, since the posterior starts from
  nothing.
- `full=True` trains every generator tensor, as RVC's own fine-tuning does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import UsageError
from ..lora import (
    BaseInfo,
    LoRAConfig,
    LoraConfigError,
    LoraKeyError,
    LoraModuleError,
    inject,
    model_fingerprint,
    unfreeze,
)
from ..synth.synthesizer import Synthesizer
from ..synth.voice_file import Voice, load_voice
from .config import TrainConfig


@dataclass
class GeneratorSetup:
    model: Synthesizer
    voice: Voice  # what the base file says (version, sr, f0, config)
    base: BaseInfo  # fingerprint taken before any training
    adapted: list[str]  # module names with a LoRA ([] in full mode)
    fresh_posterior: bool
    lora: LoRAConfig | None

    def trainable(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}


def _checkpointed(forward, *args, **kwargs):
    if torch.is_grad_enabled():
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)
    return forward(*args, **kwargs)


def checkpoint_decoder(model: Synthesizer) -> None:
    """Recompute each decoder resblock in the backward pass instead of keeping its
    activations: at 10-400x the frame rate they are most of the generator's memory."""
    for block in model.dec.resblocks:
        block.forward = functools.partial(_checkpointed, block.forward)


def build_generator(base_path: str | Path, cfg: TrainConfig, device: torch.device) -> GeneratorSetup:
    """Load the base and make only what `cfg` says trainable.  Deterministic for a seed."""
    voice = load_voice(base_path, device="cpu", dtype=torch.float32)
    model = voice.model
    fresh = not model.has_posterior
    if fresh:
        torch.manual_seed(cfg.seed)
        model = Synthesizer(voice.config, version=voice.version, f0=voice.f0, posterior=True)
        missing, unexpected = model.load_state_dict(voice.model.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("enc_q.") for k in missing), (missing, unexpected)
    if cfg.segment_frames is not None:
        model.segment_size = int(cfg.segment_frames)
    base = BaseInfo(voice.version, voice.sr, voice.f0, model_fingerprint(model))  # before training
    adapted: list[str] = []
    lora = None
    if cfg.full:
        model.requires_grad_(True)
    else:
        lora = LoRAConfig(rank=cfg.rank, alpha=cfg.alpha, rslora=cfg.rslora)
        gen = torch.Generator().manual_seed(cfg.seed)
        try:
            adapted = inject(model, cfg.targets, lora, generator=gen)
        except (ValueError, TypeError, LoraConfigError, LoraModuleError) as e:
            raise UsageError(f"--targets {cfg.targets}: {e}") from None
        try:
            unfreeze(model, cfg.unfreeze)
        except (KeyError, LoraKeyError) as e:
            raise UsageError(f"--unfreeze: {e.args[0]} (use state-dict names such as emb_g.weight)") from None
        if fresh:
            model.enc_q.requires_grad_(True)
    model.to(device).train()
    voice.model = model
    return GeneratorSetup(model, voice, base, adapted, fresh, lora)
