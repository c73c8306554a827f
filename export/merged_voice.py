"""Write a voice with adapters merged in, as an official RVC voice `.pth`.

The result loads in RVC's own tools (and in rvclora without any adapter): weight
norm is kept (the merge re-derives ``weight_g``/``weight_v`` from ``W + Σ wᵢΔWᵢ``),
keys and config are the official ones, tensors fp16 like every released voice.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import OutputExistsError, UsageError
from ..lora import bake
from ..synth.voice_adapters import AdapterSpec, load_voice_with_adapters
from ..synth.voice_file import save_voice


def write_merged_voice(
    voice_path: str | os.PathLike,
    adapters: Sequence[AdapterSpec],
    out_path: str | os.PathLike,
    *,
    overwrite: bool = False,
    force: bool = False,
    info: str | None = None,
) -> Path:
    """Merge ``[(adapter.safetensors, weight), …]`` into the voice at ``voice_path``
    and write the official-format voice to ``out_path``; returns ``out_path``.

    Every adapter is checked against the voice first (version, sample rate, f0,
    shapes, fingerprint; ``force`` accepts a fingerprint-only mismatch).  Errors
    are one-line: ``AdapterError``, ``VoiceFileError``, ``FileExistsError``."""
    out_path = Path(out_path)
    if not adapters:
        raise UsageError("no adapters to merge")
    if out_path.exists() and not overwrite:
        raise OutputExistsError(f"{out_path} already exists; pass overwrite=True (--overwrite) to replace it")
    # fp32, weight norm kept: the merge is done in fp32
    voice = load_voice_with_adapters(voice_path, adapters, merged=True, force=force)
    bake(voice.model)
    if info is None:
        parts = ", ".join(f"{Path(p).name}×{float(w):g}" for p, w in adapters)
        info = f"{voice.info} + rvclora LoRA: {parts}".lstrip(" +")
    return save_voice(out_path, voice.model, config=voice.config, version=voice.version, f0=voice.f0, info=info)
