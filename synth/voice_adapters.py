"""LoRA adapters on a loaded voice: the base description and the checked loading every caller needs.

Every command that puts an adapter on a voice (convert, run, rvclora-export, export
verification, the library's import) loads and checks it here: made for this base (`check_adapter`) and of a sane
size for it (`check_adapter_scale`), so a broken file is refused before it can make
a file of NaNs or a deafening voice.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..lora import (
    Adapter,
    AdapterError,
    BaseInfo,
    apply_adapters,
    base_state_dict,
    check_adapter,
    effective_weight,
    load_adapter,
    model_fingerprint,
)
from .voice_file import Voice, load_voice

AdapterSpec = tuple[str | os.PathLike, float]

# The largest change an adapter may make to one tensor, as a multiple of that tensor's own
# (Frobenius) norm.  Trained adapters change a layer by a fraction of it (the tests' training
# runs and fixture adapters stay below 1×); 100× is a ruined voice, never a real adapter.
MAX_DELTA_RATIO = 100.0


def base_info(voice: Voice) -> BaseInfo:
    """What an adapter must have been made for to apply to this voice."""
    return BaseInfo(voice.version, voice.sr, voice.f0, model_fingerprint(voice.model))


def _lora_delta_norm(adapter: Adapter, name: str) -> float:
    """‖scaling·B@A‖_F, exactly, from the r×r Gram matrices (no out×fan product is formed)."""
    a, b = adapter.lora[name]
    a, b = a.detach().cpu().double(), b.detach().cpu().double()
    squared = float((a @ a.T * (b.T @ b)).sum())
    return abs(adapter.scaling) * math.sqrt(max(squared, 0.0)) if math.isfinite(squared) else math.inf


def _reference_norm(weight: torch.Tensor) -> float:
    """The tensor's own norm, at least that of a freshly initialised layer of its shape (√out):
    a zero-initialised layer still admits a real adapter."""
    w = weight.detach().cpu().double()
    return max(float(w.norm()), math.sqrt(w.shape[0]) if w.ndim >= 2 else 1.0)


def check_adapter_scale(adapter: Adapter, model: nn.Module) -> None:
    """Refuse (one-line AdapterError) an adapter that would change any tensor of `model` by more
    than MAX_DELTA_RATIO times that tensor's own norm (finite factors whose product overflows
    included; non-finite values are refused when the file is read).

    Call after `check_adapter` (the names and shapes must fit); `force` never skips this."""
    modules = dict(model.named_modules())
    sizes = [(name, _lora_delta_norm(adapter, name), _reference_norm(effective_weight(modules[name])))
             for name in adapter.lora]
    if adapter.extras:
        state = base_state_dict(model)
        for name, t in adapter.extras.items():
            if not t.is_floating_point():
                continue
            size = float(t.detach().cpu().double().norm())
            sizes.append((name, size if math.isfinite(size) else math.inf, _reference_norm(state[name])))
    for name, size, ref in sizes:
        if size > MAX_DELTA_RATIO * ref:
            raise AdapterError(
                f"{adapter.source}: {name} would change the voice's weights by {size / ref:.3g}× their own size "
                f"(at most {MAX_DELTA_RATIO:g}× is accepted); the file is broken or not an adapter for this voice"
            )


def check_adapter_on(adapter: Adapter, model: nn.Module, base: BaseInfo, *, force: bool = False) -> None:
    """Made for this base (shapes, version, fingerprint unless `force`) and of a sane size for it."""
    check_adapter(adapter, model, base, force=force)
    check_adapter_scale(adapter, model)


def load_adapters_for(
    model: nn.Module, base: BaseInfo, specs: Sequence[AdapterSpec], *, force: bool = False
) -> list[tuple[Adapter, float]]:
    """Load `[(path, weight), …]` for `model` (described by `base`), refusing any adapter made
    for another base or of absurd size (one-line AdapterError)."""
    loaded = []
    for path, weight in specs:
        adapter = load_adapter(path)
        check_adapter_on(adapter, model, base, force=force)
        loaded.append((adapter, float(weight)))
    return loaded


def load_checked_adapters(voice: Voice, specs: Sequence[AdapterSpec], *, force: bool = False) -> list[tuple[Adapter, float]]:
    """`load_adapters_for` a loaded voice."""
    return load_adapters_for(voice.model, base_info(voice), specs, force=force)


def load_voice_with_adapters(
    path: str | os.PathLike,
    specs: Sequence[AdapterSpec],
    *,
    merged: bool,
    force: bool = False,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Voice:
    """A voice file with its adapters checked and applied: `merged` into the weights (plain
    speed; what convert and the exporters run) or as live LoRA layers (the independent
    reference that export verification compares with)."""
    voice = load_voice(path, device=device, dtype=dtype)
    loaded = load_checked_adapters(voice, specs, force=force)
    if loaded:
        apply_adapters(voice.model, loaded, merged=merged)
    return voice


def parse_adapter_spec(spec: str) -> tuple[Path, float]:
    """`A.safetensors` or `A.safetensors:0.5` → (path, weight); a bare path weighs 1."""
    path, sep, weight = spec.rpartition(":")
    if sep and path and not weight.startswith(("/", "\\")):
        try:
            return Path(path), float(weight)
        except ValueError:
            raise AdapterError(f"adapter '{spec}': the weight after ':' must be a number, e.g. {path}:0.5") from None
    return Path(spec), 1.0
