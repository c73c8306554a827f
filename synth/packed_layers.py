"""Linear and 1-d conv layers with their weights pre-packed for oneDNN, for repeated CPU inference.

A live block runs the same layers on the same shapes every 60 ms: most of a CPU block is
the content encoder's linears (~50 rows) and the decoder's convs. Reordering each weight
into oneDNN's blocked layout once, instead of on every call, measured 12–25 % less CPU per
linear (54 rows, 768/3072 wide) and 5–35 % per decoder conv (one thread). The result is
the same sums in another order (differences at float rounding, ~1e-6 relative).

Hand-written because torch exposes the packed kernels only as operators
(`torch.ops.mkldnn._linear_pointwise` / `_convolution_pointwise`), not as modules. Packing
changes a layer's class in place, so the module keeps its identity, hooks, LoRA tensors
and state dict; the packed copy is remade when the weight is replaced or changed in place
(an adapter merge). Off the CPU, in another dtype, with gradients wanted, or on shapes
where torch itself would not use oneDNN, a layer runs its plain forward.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# Below this many input values torch's own conv heuristic prefers its native kernel (small convs).
CONV_MIN_VALUES = 20480


def packing_available() -> bool:
    return bool(torch.backends.mkldnn.is_available()) and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")


def _plain_cpu_fp32(weight: torch.Tensor, x: torch.Tensor) -> bool:
    if x.device.type != "cpu" or x.dtype != torch.float32 or weight.device.type != "cpu" or weight.dtype != torch.float32:
        return False
    return not (torch.is_grad_enabled() and (weight.requires_grad or x.requires_grad))


def _packed(module: Any, make) -> Any:
    """The module's packed weight, remade when its weight was replaced or changed in place."""
    w = module.weight
    key = (w.data_ptr(), w._version, tuple(w.shape))
    if module.__dict__.get("_packed_key") != key:
        with torch.no_grad():
            module.__dict__["_packed_weight"] = make(w.detach())
        module.__dict__["_packed_key"] = key
    return module.__dict__["_packed_weight"]


class _Packed:
    """Copies and pickles leave the packed weight behind (oneDNN's opaque tensors cannot be
    copied); the copy packs its own on first use."""

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_packed_weight", None)
        state.pop("_packed_key", None)
        return state


class PackedLinear(_Packed, nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _plain_cpu_fp32(self.weight, x):
            return F.linear(x, self.weight, self.bias)
        rows = max(1, x.numel() // max(1, x.shape[-1]))
        w = _packed(self, lambda w: torch.ops.mkldnn._reorder_linear_weight(w, rows))
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), w, self.bias, "none", [], "")


class PackedConv1d(_Packed, nn.Conv1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (not _plain_cpu_fp32(self.weight, x) or x.dim() != 3 or self.padding_mode != "zeros"
                or isinstance(self.padding, str) or x.shape[1] * x.shape[2] <= CONV_MIN_VALUES):
            return super().forward(x)
        # As a conv2d of height 1: oneDNN's packed conv takes 2-d and 3-d convolutions.
        pad, stride, dil = [0, self.padding[0]], [1, self.stride[0]], [1, self.dilation[0]]
        shape = [x.shape[0], x.shape[1], 1, x.shape[2]]
        w = _packed(self, lambda w: torch.ops.mkldnn._reorder_convolution_weight(
            w.unsqueeze(2), pad, stride, dil, self.groups, shape))
        y = torch.ops.mkldnn._convolution_pointwise(
            x.contiguous().unsqueeze(2), w, self.bias, pad, stride, dil, self.groups, "none", [], "")
        return y.squeeze(2)


_PACKED = {nn.Linear: PackedLinear, nn.Conv1d: PackedConv1d}


def pack_layers(model: nn.Module, kinds: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d)) -> int:
    """Make every CPU fp32 layer of `kinds` in `model` pack its weight (idempotent); returns how many changed."""
    if not packing_available():
        return 0
    changed = 0
    for module in model.modules():
        cls = type(module)
        if (cls in kinds and cls in _PACKED and module.weight.device.type == "cpu" and module.weight.dtype == torch.float32
                # A weight norm still applied remakes the weight before every call: nothing to keep packed.
                and not module._forward_pre_hooks and not hasattr(module, "parametrizations")):
            module.__class__ = _PACKED[cls]
            changed += 1
    return changed
