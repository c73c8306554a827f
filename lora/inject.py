"""Put LoRAs into a model, freeze the base, and read the adapter tensors back out."""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from .layers import LoRAConfig, add_lora, has_lora
from .lora_errors import LoraKeyError
from .targets import select_modules

# parametrizations.weight_norm stores g, v as original0, original1; the official
# RVC names (legacy weight_norm) are weight_g, weight_v.
_PARAMETRIZED = {".parametrizations.weight.original0": ".weight_g", ".parametrizations.weight.original1": ".weight_v"}
EXTRA_PREFIX = "lora_extra_"  # non-persistent buffer holding an extra tensor's base value


def canonical_key(key: str) -> str:
    """State-dict key as the official RVC file names it."""
    for long, short in _PARAMETRIZED.items():
        if key.endswith(long):
            return key[: -len(long)] + short
    return key


def inject(
    model: nn.Module,
    targets: str | Iterable[str] = "all",
    config: LoRAConfig = LoRAConfig(),
    *,
    extras: Iterable[str] = (),
    generator: torch.Generator | None = None,
) -> list[str]:
    """Freeze every base parameter, attach a fresh LoRA to each targeted module, and
    make trainable the named extra tensors (state-dict names, e.g. ``emb_g.weight``).

    Returns the adapted module names."""
    names = select_modules(model, targets)
    freeze(model)
    for name in names:
        add_lora(model.get_submodule(name), config, generator=generator)
    unfreeze(model, extras)
    return names


def freeze(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def unfreeze(model: nn.Module, names: Iterable[str]) -> None:
    params = {canonical_key(n): p for n, p in model.named_parameters()}
    for name in names:
        if name not in params:
            raise LoraKeyError(f"no parameter named {name!r} to unfreeze")
        params[name].requires_grad_(True)


def lora_modules(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if has_lora(m)}


def lora_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """``<module>.lora_A`` / ``<module>.lora_B`` for every adapted module."""
    out = {}
    for name, m in lora_modules(model).items():
        out[f"{name}.lora_A"] = m.lora_A.detach()
        out[f"{name}.lora_B"] = m.lora_B.detach()
    return out


def base_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The base's state dict under official names: adapter tensors left out, extra
    tensors shown at their base value (before an adapter replaced them).

    Merged weights are shown as they are (merge only touches weights, which
    :func:`rvclora.lora.fingerprint` does not hash)."""
    sd = {}
    for key, value in model.state_dict().items():
        if key.endswith((".lora_A", ".lora_B")):
            continue
        owner, _, leaf = key.rpartition(".")
        module = model.get_submodule(owner) if owner else model
        saved = module._buffers.get(EXTRA_PREFIX + leaf)
        sd[canonical_key(key)] = saved if saved is not None else value
    return sd


def trainable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    return {canonical_key(n): p for n, p in model.named_parameters() if p.requires_grad}


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """``(adapter parameters, base parameters)``."""
    lora = sum(t.numel() for t in lora_state_dict(model).values())
    total = sum(p.numel() for p in model.parameters())
    return lora, total - lora
