"""Loading RVC's `rmvpe.pt`: checked before it is trusted, strict once it is.

A file that is not RMVPE weights is refused with one line naming what is wrong
(missing or unexpected keys, a shape, a tensor that is not float). A reduced
layout (fewer blocks or channels, as the tests build) loads by its shapes for export.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ModelFileError
from .checkpoint import BUDGET_SLACK, load_checkpoint, memory_budget
from .pitch_options import PitchError
from .rmvpe_net import RMVPE, RMVPEConfig


class RMVPEFileError(PitchError, ModelFileError):
    """rmvpe.pt is not RMVPE weights (a pitch error and a model-file error)."""


def _state_dict_of(obj: Any, label: str) -> dict[str, Tensor]:
    # rmvpe.pt is a plain state dict; tolerate the common {"model": …} wrappers too.
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise RMVPEFileError(f"{label}: not an RMVPE checkpoint (expected a state dict of tensors)")
    return obj


def load_rmvpe(
    path: str | os.PathLike, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> RMVPE:
    """Load RVC's `rmvpe.pt` (strict) into an eval-mode RMVPE on `device`/`dtype`.

    Raises CheckpointError (missing, corrupt or unsafe file) or PitchError (a file
    that is not RMVPE weights), both ValueErrors with a one-line message.
    """
    label = str(path)
    with torch.device("meta"):  # skip random init of 90 M parameters that the file replaces
        model = RMVPE()
    # The architecture is fixed, so its own size bounds what the file's tensors may describe.
    model_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    size = Path(path).stat().st_size if Path(path).is_file() else 0
    state = _state_dict_of(load_checkpoint(path, map_location="cpu",
                                           max_tensor_bytes=max(memory_budget(size), model_bytes + BUDGET_SLACK)), label)
    not_float = [k for k, v in state.items() if not v.is_floating_point() and not k.endswith("num_batches_tracked")]
    if not_float:
        raise RMVPEFileError(f"{label}: not an RMVPE checkpoint: {not_float[0]} holds {state[not_float[0]].dtype}, not floats")
    missing, unexpected = _key_mismatch(model, state)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        raise RMVPEFileError(f"{label}: not an RMVPE checkpoint: {', '.join(parts)}")
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:
        detail = next((ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln), "shape mismatch")
        raise RMVPEFileError(f"{label}: not an RMVPE checkpoint: {detail.rstrip('.')}") from None
    return model.to(device=device, dtype=dtype).eval()


def _key_mismatch(model: nn.Module, state: dict[str, Tensor]) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    got = set(state)
    return sorted(expected - got), sorted(got - expected)


def _infer_rmvpe_config(state: Mapping[str, Tensor]) -> RMVPEConfig | None:
    """RMVPE layout from a state dict's keys, so reduced test models load too."""
    def count(prefix: str) -> int:
        idx = {k[len(prefix):].split(".", 1)[0] for k in state if k.startswith(prefix)}
        return len([i for i in idx if i.isdigit()])

    first = state.get("unet.encoder.layers.0.conv.0.conv.0.weight")
    if first is None:
        return None
    n_gru = len({k for k in state if k.startswith("fc.0.gru.weight_ih_l") and not k.endswith("_reverse")})
    return RMVPEConfig(
        n_blocks=count("unet.encoder.layers.0.conv."),
        n_gru=n_gru,
        en_de_layers=count("unet.encoder.layers."),
        inter_layers=count("unet.intermediate.layers."),
        base_channels=int(first.shape[0]),
    )


def load_pitch_model(path: str | os.PathLike) -> RMVPE:
    """rmvpe.pt through the strict official loader; a reduced layout (tests) by its shapes."""
    state = load_checkpoint(path, map_location="cpu")
    state = state.get("model", state) if isinstance(state, dict) else state
    config = _infer_rmvpe_config(state) if isinstance(state, dict) else None
    if config is None or config == RMVPEConfig():
        return load_rmvpe(path)
    model = RMVPE(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        raise PitchError(f"{path}: not an RMVPE checkpoint (keys or shapes do not fit)") from None
    return model.eval()
