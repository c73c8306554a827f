"""What a run does to fit in memory: precision, activation checkpointing, how much of D trains.

In LoRA mode the generator's trainable tensors are a few MB, so a step's memory is
(a) the activations kept for the backward pass, mostly in the decoder's resblocks
and the discriminators' feature maps, and (b) the discriminator's gradients and
AdamW moments (3 x 71 M fp32 values for RVC's v2 D).  Activation checkpointing
trades (a) for a second forward pass; light discriminator training removes (b).
(c) Legacy weight norm keeps each layer's last computed weight between forwards:
a second copy of nearly all of G and D (29 M + 71 M values for v2); it is dropped
after each forward.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils.weight_norm import WeightNorm

from ..errors import UsageError
from .config import TrainConfig

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
D_MODES = ("auto", "full", "light")


def precision_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (None: fp32 throughout); fp16 also turns loss scaling on."""
    p = "fp16" if cfg.fp16 else cfg.precision
    if p not in PRECISIONS:
        raise UsageError(f"--precision {p}: choose one of {', '.join(PRECISIONS)}")
    if p == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if p == "fp16" and device.type != "cuda":
        raise UsageError("--fp16 needs a CUDA GPU (mixed precision); on the CPU train in fp32 (leave --fp16 off)")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[p]


def uses_checkpointing(cfg: TrainConfig) -> bool:
    return cfg.checkpointing if cfg.checkpointing is not None else not cfg.full


def discriminator_mode(cfg: TrainConfig, pretrained: bool) -> str:
    """"full" or "light"; a fresh (random) discriminator always trains fully."""
    if cfg.train_d not in D_MODES:
        raise UsageError(f"--train-d {cfg.train_d}: choose one of {', '.join(D_MODES)}")
    if cfg.train_d == "auto":
        return "light" if pretrained and not cfg.full else "full"
    if cfg.train_d == "light" and not pretrained:
        raise UsageError("--train-d light needs a pretrained discriminator (--base-d D*.pth); a fresh one must train fully")
    return cfg.train_d


def _drop_cached_weight(module: nn.Module, args, output, *, name: str):
    vars(module).pop(name, None)
    return None


def drop_weight_norm_caches(model: nn.Module) -> Callable[[], None]:
    """Legacy weight norm recomputes a layer's weight (g * v / |v|) before each forward and
    keeps it as a plain attribute until the next one: a full copy of every weight-normed
    tensor that stays resident between steps, and during the backward pass beside the
    copy a checkpointed layer recomputes.  Drop it after each forward (and now); the
    pre-hook computes it again before the next, so results do not change.  Returns
    `restore`: removes the hooks and computes the attribute again (`remove_weight_norm`
    and other readers outside a forward expect it)."""
    watched, handles = [], []
    for m in model.modules():
        for hook in list(m._forward_pre_hooks.values()):
            if isinstance(hook, WeightNorm):
                vars(m).pop(hook.name, None)
                handles.append(m.register_forward_hook(functools.partial(_drop_cached_weight, name=hook.name)))
                watched.append((m, hook))

    def restore() -> None:
        for h in handles:
            h.remove()
        with torch.no_grad():
            for m, hook in watched:
                setattr(m, hook.name, hook.compute_weight(m))

    return restore
