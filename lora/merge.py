"""Merge LoRA deltas into base weights exactly, undo it, blend adapters, hot-swap.

Merging a weight-normed module must change g and v (peft adds ΔW to ``.weight``,
which weight norm recomputes from g and v, so the delta is silently lost).  Two
exact ways, both here:

* keep weight norm (default, what an official RVC ``.pth`` needs):
  ``W' = W_eff + ΔW``, ``v ← W'``, ``g ← ‖W'‖`` over every dim but the norm dim
  (dim 0: per output channel for Conv1d, per *input* channel for ConvTranspose1d,
  whose weight is ``[in, out, k]``);
* fold: remove weight norm (plain ``weight = W_eff``), then ``weight += ΔW``.

Merging keeps the original tensors (non-persistent ``lora_base_*`` buffers, so
they follow ``.to()`` but never reach a state dict) and unmerging copies them
back bit for bit: repeated hot-swaps never drift.  The cost is one extra copy of
each adapted weight while merged.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize

from .adapter_file import Adapter
from .inject import EXTRA_PREFIX, canonical_key, lora_modules
from .layers import LoRAConfig, add_lora, effective_weight, remove_lora, set_lora, weight_norm_of
from .lora_errors import LoraKeyError


def _wn_params(module: nn.Module, kind: str) -> tuple[nn.Parameter, nn.Parameter]:
    if kind == "legacy":
        return module.weight_g, module.weight_v
    plist = module.parametrizations.weight
    return plist.original0, plist.original1


def _save(module: nn.Module, name: str, value: torch.Tensor) -> None:
    module.register_buffer("lora_base_" + name, value.detach().clone(), persistent=False)


def _own_class(module: nn.Module) -> None:
    """Give a parametrized module a private copy of its dynamic class.

    ``copy.deepcopy`` shares that class between original and copy, and
    ``remove_parametrizations`` deletes the ``weight`` property from it, which
    would break the other module; with a private class only this one changes."""
    cls = type(module)
    body = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    module.__class__ = type(cls.__name__, cls.__bases__, body)


def _add_delta_(weight: torch.Tensor, module: nn.Module) -> None:
    """``weight += scaling · (B @ A).reshape(weight.shape)`` in one fused addmm."""
    if module.lora_A.shape[0]:
        weight.view(weight.shape[0], -1).addmm_(module.lora_B, module.lora_A, alpha=module.lora_scaling)


def merge_module(module: nn.Module, *, fold_weight_norm: bool = False) -> None:
    """Add the module's ΔW into its base weights (no-op when already merged)."""
    if module.lora_merged:
        return
    with torch.no_grad():
        wn = weight_norm_of(module)
        if wn is None:
            _save(module, "weight", module.weight)
            _add_delta_(module.weight, module)
        else:
            kind, dim = wn
            g, v = _wn_params(module, kind)
            _save(module, "g", g)
            _save(module, "v", v)
            module._lora_wn_dim = dim
            if fold_weight_norm:
                trainable = v.requires_grad
                if kind == "legacy":
                    torch.nn.utils.remove_weight_norm(module)
                else:
                    _own_class(module)
                    parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
                _add_delta_(module.weight, module)
                module.weight.requires_grad_(trainable)
                module._lora_folded = (kind, dim)
            else:
                w = effective_weight(module)  # a fresh tensor: computed from g, v
                _add_delta_(w, module)
                v.copy_(w)
                g.copy_(torch.norm_except_dim(w, 2, dim))
                if kind == "legacy":  # refresh the cached .weight, else stale until the next forward
                    module.weight = w
    module.lora_merged = True


def unmerge_module(module: nn.Module) -> None:
    """Restore the exact base tensors saved by :func:`merge_module`."""
    if not module.lora_merged:
        return
    with torch.no_grad():
        folded = module.__dict__.pop("_lora_folded", None)
        if folded is not None:
            kind, dim = folded
            trainable = module.weight.requires_grad
            if kind == "legacy":
                torch.nn.utils.weight_norm(module, "weight", dim=dim)
            else:
                parametrizations.weight_norm(module, "weight", dim=dim)
            for p in _wn_params(module, kind):
                p.requires_grad_(trainable)
        wn = weight_norm_of(module)
        if wn is None and "lora_base_weight" in module._buffers:
            module.weight.copy_(module.lora_base_weight)
            del module.lora_base_weight
        elif wn is None:  # weight norm folded elsewhere (e.g. remove_weight_norm) while merged
            g0, v0 = module.lora_base_g, module.lora_base_v
            module.weight.copy_(torch._weight_norm(v0, g0, module.__dict__.pop("_lora_wn_dim")))
            del module.lora_base_g, module.lora_base_v
        else:
            g, v = _wn_params(module, wn[0])
            g.copy_(module.lora_base_g)
            v.copy_(module.lora_base_v)
            del module.lora_base_g, module.lora_base_v
            module.__dict__.pop("_lora_wn_dim", None)
            if wn[0] == "legacy":
                module.weight = torch._weight_norm(v, g, wn[1])
    module.lora_merged = False


def merge(model: nn.Module, *, fold_weight_norm: bool = False) -> None:
    """Merge every adapted module: zero inference overhead, same output (≤1e-5 fp32)."""
    for m in lora_modules(model).values():
        merge_module(m, fold_weight_norm=fold_weight_norm)


def unmerge(model: nn.Module) -> None:
    for m in lora_modules(model).values():
        unmerge_module(m)


def is_merged(model: nn.Module) -> bool:
    return any(m.lora_merged for m in lora_modules(model).values())


# --------------------------------------------------------------------------- extras


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    """Module and attribute holding the tensor an official state-dict name refers to."""
    for key in model.state_dict(keep_vars=True):
        if canonical_key(key) == name:
            owner, _, leaf = key.rpartition(".")
            return (model.get_submodule(owner) if owner else model), leaf
    raise LoraKeyError(f"no tensor named {name!r} in the model")


def _restore_extras(model: nn.Module) -> None:
    with torch.no_grad():
        for module in model.modules():
            for buf in [b for b in module._buffers if b.startswith(EXTRA_PREFIX)]:
                getattr(module, buf[len(EXTRA_PREFIX):]).copy_(module._buffers[buf])
                delattr(module, buf)


def _apply_extras(model: nn.Module, adapters: Sequence[tuple[Adapter, float]]) -> None:
    """Extra tensors blend as deltas against the base: ``E = E₀ + Σ wᵢ (Eᵢ − E₀)``
    (one adapter at weight 1 gives exactly Eᵢ; an adapter without the tensor
    contributes nothing)."""
    names = sorted({n for ad, _ in adapters for n in ad.extras})
    with torch.no_grad():
        for name in names:
            module, leaf = _owner(model, name)
            target = getattr(module, leaf)
            module.register_buffer(EXTRA_PREFIX + leaf, target.detach().clone(), persistent=False)
            users = [(ad.extras[name], w) for ad, w in adapters if name in ad.extras]
            if len(users) == 1 and len(adapters) == 1 and users[0][1] == 1.0:
                value = users[0][0].to(target.dtype)
            else:
                base = target.double()
                value = base + sum(w * (e.double().to(base.device) - base) for e, w in users)
            target.copy_(value.to(target.device, target.dtype))


# --------------------------------------------------------------------------- blend / hot-swap


def apply_adapters(
    model: nn.Module,
    adapters: Sequence[tuple[Adapter, float]],
    *,
    merged: bool = False,
    fold_weight_norm: bool = False,
    trainable: bool = False,
) -> None:
    """Make the model compute ``W + Σ wᵢ·ΔWᵢ`` for every module named by any adapter,
    the plain base everywhere else: the hot-swap / re-weight entry point.

    The base is never reloaded: merged modules are unmerged (exact copy-back), extra
    tensors restored, then each adapted module gets one LoRA whose rank is the sum
    of the adapters' ranks, ``A = [A₁; A₂; …]``, ``B = [w₁s₁B₁ | w₂s₂B₂ | …]``,
    scaling 1 — the exact blend, not an approximation.  A single adapter at weight 1
    keeps its own A, B and scaling (so training can resume from a file).  Modules
    that already have a LoRA but appear in no adapter get rank 0 (no delta).  Same
    ranks as last time → tensors are updated in place.  ``merged=True`` then merges.

    Call :func:`check_adapter` on each adapter first: this trusts the shapes.  It
    changes weights in place: call it from the inference thread, between blocks."""
    unmerge(model)
    _restore_extras(model)
    modules = dict(model.named_modules())
    live = lora_modules(model)
    wanted = sorted({n for ad, _ in adapters for n in ad.lora})
    for name in wanted:
        module = modules[name]
        pairs = [(ad.lora[name], w, ad.scaling) for ad, w in adapters if name in ad.lora]
        if name not in live:
            add_lora(module, LoRAConfig(rank=1))  # placeholder, replaced just below
        if len(adapters) == 1 and adapters[0][1] == 1.0:
            (a, b), _, s = pairs[0]
            set_lora(module, a, b, s, trainable=trainable)
        else:
            a = torch.cat([a.float() for (a, _), _, _ in pairs], 0)
            b = torch.cat([w * s * b.float() for (_, b), w, s in pairs], 1)
            set_lora(module, a, b, 1.0, trainable=trainable)
    for name, module in live.items():
        if name not in wanted:
            a, b = module.lora_A, module.lora_B
            set_lora(module, a.new_zeros(0, a.shape[1]), b.new_zeros(b.shape[0], 0), 1.0)
    _apply_extras(model, adapters)
    if merged:
        merge(model, fold_weight_norm=fold_weight_norm)


def remove_adapters(model: nn.Module) -> None:
    """Back to the plain base, bit for bit: unmerge, restore extras, drop every LoRA."""
    unmerge(model)
    _restore_extras(model)
    for m in lora_modules(model).values():
        remove_lora(m)


def bake(model: nn.Module, *, fold_weight_norm: bool = False) -> None:
    """Merge and drop the adapters (and the saved originals): a plain model whose
    weights include the deltas and whose state dict has only official keys."""
    merge(model, fold_weight_norm=fold_weight_norm)
    for module in model.modules():
        for buf in [b for b in module._buffers if b.startswith(EXTRA_PREFIX)]:
            delattr(module, buf)
    for m in lora_modules(model).values():
        remove_lora(m)
