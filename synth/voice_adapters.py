"""LoRA adapters on a loaded voice: the base description and the checked loading every caller needs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..lora import Adapter, AdapterError, BaseInfo, check_adapter, load_adapter, model_fingerprint
from .voice_file import Voice

AdapterSpec = tuple[str | os.PathLike, float]


def base_info(voice: Voice) -> BaseInfo:
    """What an adapter must have been made for to apply to this voice."""
    return BaseInfo(voice.version, voice.sr, voice.f0, model_fingerprint(voice.model))


def load_checked_adapters(voice: Voice, specs: Sequence[AdapterSpec], *, force: bool = False) -> list[tuple[Adapter, float]]:
    """Load `[(path, weight), …]`, refusing any adapter made for another base (one-line AdapterError)."""
    base = base_info(voice)
    loaded = []
    for path, weight in specs:
        adapter = load_adapter(path)
        check_adapter(adapter, voice.model, base, force=force)
        loaded.append((adapter, float(weight)))
    return loaded


def parse_adapter_spec(spec: str) -> tuple[Path, float]:
    """`A.safetensors` or `A.safetensors:0.5` → (path, weight); a bare path weighs 1."""
    path, sep, weight = spec.rpartition(":")
    if sep and path and not weight.startswith(("/", "\\")):
        try:
            return Path(path), float(weight)
        except ValueError:
            raise AdapterError(f"adapter '{spec}': the weight after ':' must be a number, e.g. {path}:0.5") from None
    return Path(spec), 1.0
