"""Exact low-rank deltas on Linear, Conv1d and ConvTranspose1d, weight-norm aware.

A LoRA is attached to an existing module in place: the module keeps its class,
its parameters and its state-dict names, and gains two parameters,
``lora_A [r, prod(W.shape[1:])]`` and ``lora_B [W.shape[0], r]``, plus a forward
hook that adds the low-rank path to the output.  Keeping the module in place is
what lets the adapter keys be ``<official module name>.lora_A`` and lets the base
still load an official RVC state dict.

The delta is defined on the *effective* weight ``W`` (after weight norm, legacy
``weight_g/weight_v`` or ``parametrizations.weight_norm`` alike)::

    ΔW = scaling · (B @ A).reshape(W.shape)

so for ``ConvTranspose1d`` (weight ``[in, out, k]``) B is ``[in, r]`` and A is
``[r, out·k]``.  The unmerged forward never builds ΔW: it runs the base's own
conv with A as a rank-r weight (same stride/padding/dilation/padding_mode) and
B as a 1×1 mixing, which is exactly ``conv(x, ΔW)`` up to float rounding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .lora_errors import LoraConfigError, LoraModuleError

SUPPORTED = (nn.Linear, nn.Conv1d, nn.ConvTranspose1d)


@dataclass(frozen=True)
class LoRAConfig:
    """Shape and strength of one adapter: ``scaling = alpha/rank`` (``alpha/√rank`` with rslora)."""

    rank: int = 8
    alpha: float = 16.0
    rslora: bool = False
    dropout: float = 0.0

    def __post_init__(self):
        if self.rank < 1:
            raise LoraConfigError(f"LoRA rank must be >= 1, got {self.rank}")
        if not 0.0 <= self.dropout < 1.0:
            raise LoraConfigError(f"LoRA dropout must be in [0, 1), got {self.dropout}")

    @property
    def scaling(self) -> float:
        return scaling_for(self.rank, self.alpha, self.rslora)


def scaling_for(rank: int, alpha: float, rslora: bool) -> float:
    return alpha / math.sqrt(rank) if rslora else alpha / rank


# --------------------------------------------------------------------------- weight norm


def weight_norm_of(module: nn.Module) -> tuple[str, int] | None:
    """``("legacy"|"parametrization", dim)`` when ``module.weight`` is weight-normed, else None."""
    for hook in module._forward_pre_hooks.values():
        # legacy torch.nn.utils.weight_norm registers a WeightNorm object as pre-hook
        if type(hook).__name__ == "WeightNorm" and getattr(hook, "name", None) == "weight":
            return "legacy", hook.dim
    if parametrize.is_parametrized(module, "weight"):
        plist = module.parametrizations.weight
        if len(plist) == 1 and type(plist[0]).__name__ == "_WeightNorm":
            return "parametrization", plist[0].dim
        raise LoraModuleError(f"{type(module).__name__}: only weight_norm parametrizations are supported")
    return None


def effective_weight(module: nn.Module) -> Tensor:
    """The weight the module convolves with, recomputed from g and v when weight-normed.

    (Legacy weight norm caches ``module.weight`` only at the next forward, so after
    ``load_state_dict`` it is stale; recomputing avoids that.)"""
    wn = weight_norm_of(module)
    if wn and wn[0] == "legacy":
        return torch._weight_norm(module.weight_v, module.weight_g, wn[1])
    return module.weight


def _stored_weight(module: nn.Module) -> Tensor:
    """The stored tensor with the weight's shape, dtype and device (v under weight
    norm), without recomputing the effective weight."""
    wn = weight_norm_of(module)
    if wn and wn[0] == "legacy":
        return module.weight_v
    if wn:
        return module.parametrizations.weight.original1
    return module.weight


def weight_shape(module: nn.Module) -> torch.Size:
    return _stored_weight(module).shape


def lora_shapes(module: nn.Module, rank: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(A shape, B shape)`` for a module at a rank."""
    shape = weight_shape(module)
    return (rank, math.prod(shape[1:])), (shape[0], rank)


# --------------------------------------------------------------------------- attach / detach


def has_lora(module: nn.Module) -> bool:
    return hasattr(module, "lora_A") and hasattr(module, "_lora_hook")


def add_lora(module: nn.Module, config: LoRAConfig, *, generator: torch.Generator | None = None) -> nn.Module:
    """Attach a fresh LoRA: A uniform(±1/√fan_in) (kaiming-uniform with a=√5, as
    nn.Linear and loralib), B zero, so the output is unchanged until B trains."""
    if not isinstance(module, SUPPORTED):
        raise LoraModuleError(f"LoRA supports Linear, Conv1d, ConvTranspose1d, not {type(module).__name__}")
    if getattr(module, "groups", 1) != 1:
        raise LoraModuleError(f"LoRA supports groups=1 convolutions only (got groups={module.groups})")
    if has_lora(module):
        raise LoraModuleError("module already has a LoRA; remove_lora it first")
    ref = _stored_weight(module)  # also raises on unsupported parametrizations
    (r, fan), (out, _) = lora_shapes(module, config.rank)
    a = torch.empty(r, fan, dtype=ref.dtype, device=ref.device)
    bound = 1.0 / math.sqrt(fan)
    with torch.no_grad():
        a.uniform_(-bound, bound, generator=generator)
    set_lora(module, a, torch.zeros(out, r, dtype=ref.dtype, device=ref.device), config.scaling)
    module.lora_dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
    module.lora_merged = False
    module._lora_hook = module.register_forward_hook(_lora_forward_hook, with_kwargs=True)
    return module


def set_lora(module: nn.Module, a: Tensor, b: Tensor, scaling: float, *, trainable: bool = True) -> None:
    """Replace a module's A, B and scaling (any rank, 0 included: a zero delta).

    Same-shape replacements copy in place so tensors keep their identity (optimizers,
    CUDA graphs); a new rank registers new parameters."""
    (_, fan), (out, _) = lora_shapes(module, a.shape[0])
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != fan or b.shape[0] != out or b.shape[1] != a.shape[0]:
        raise ValueError(
            f"LoRA shapes A{tuple(a.shape)} B{tuple(b.shape)} do not fit a weight of shape "
            f"{tuple(weight_shape(module))} (expected A [r, {fan}], B [{out}, r])"
        )
    if getattr(module, "lora_merged", False):
        raise LoraModuleError("cannot change a merged LoRA; unmerge first")
    ref = _stored_weight(module)
    for name, value in (("lora_A", a), ("lora_B", b)):
        value = value.detach().to(dtype=ref.dtype, device=ref.device)
        current = getattr(module, name, None)
        if isinstance(current, nn.Parameter) and current.shape == value.shape:
            with torch.no_grad():
                current.copy_(value)
            current.requires_grad_(trainable)
        else:
            setattr(module, name, nn.Parameter(value.clone(), requires_grad=trainable))
    module.lora_scaling = float(scaling)


def remove_lora(module: nn.Module) -> None:
    """Drop the LoRA tensors and hook.  A merged delta stays in the weights (bake);
    an unmerged one simply disappears."""
    if not has_lora(module):
        return
    module._lora_hook.remove()
    for name in ("_lora_hook", "lora_A", "lora_B", "lora_dropout", "lora_scaling", "lora_merged"):
        if hasattr(module, name):
            delattr(module, name)
    for name in [n for n in module._buffers if n.startswith("lora_base_")]:
        delattr(module, name)
    module.__dict__.pop("_lora_folded", None)
    module.__dict__.pop("_lora_wn_dim", None)


# --------------------------------------------------------------------------- math


def lora_delta(module: nn.Module) -> Tensor:
    """``ΔW = scaling · (B @ A).reshape(W.shape)`` in the module's dtype."""
    return (module.lora_scaling * (module.lora_B @ module.lora_A)).reshape(weight_shape(module))


def _lora_forward_hook(module: nn.Module, args: tuple, kwargs: dict, output: Tensor) -> Tensor:
    if module.lora_merged or module.lora_A.shape[0] == 0:
        return output
    x = module.lora_dropout(args[0] if args else kwargs["input"])
    a, b, s = module.lora_A, module.lora_B, module.lora_scaling
    r = a.shape[0]
    if isinstance(module, nn.Linear):
        return output + s * F.linear(F.linear(x, a), b)
    if isinstance(module, nn.ConvTranspose1d):
        # ΔW[i, o, k] = s Σ_r B[i, r] A[r, o, k]: mix in→r with B first, then a rank-r transposed conv
        out_size = args[1] if len(args) > 1 else kwargs.get("output_size")
        out_pad = module._output_padding(
            x, out_size, module.stride, module.padding, module.kernel_size, 1, module.dilation
        )
        h = torch.einsum("ir,...it->...rt", b, x)
        low = F.conv_transpose1d(
            h, a.reshape(r, -1, module.kernel_size[0]), None,
            module.stride, module.padding, out_pad, 1, module.dilation,
        )
        return output + s * low
    # Conv1d: A as a rank-r conv with the base's own geometry and padding mode, B as 1×1
    h = module._conv_forward(x, a.reshape(r, -1, module.kernel_size[0]), None)
    return output + s * torch.einsum("or,...rt->...ot", b, h)
