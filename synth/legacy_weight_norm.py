"""Legacy weight norm, on purpose.

RVC's files store weight-normed layers as `weight_g` / `weight_v`, the names of the
legacy `torch.nn.utils.weight_norm`; the newer parametrization would rename them. Torch
warns that the legacy function is deprecated on every call, which says nothing to a user.
"""

from __future__ import annotations

import warnings

from torch import nn
from torch.nn.utils import weight_norm as _weight_norm


def weight_norm(module: nn.Module, name: str = "weight", dim: int = 0) -> nn.Module:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*weight_norm.* is deprecated", category=FutureWarning)
        return _weight_norm(module, name, dim)
