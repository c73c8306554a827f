"""Voice sources: what is loaded once for a voice, and makes a converter per block shape.

- `RVCSource`: an RVC model (torch or a streaming ONNX export) with its content
  encoder, pitch estimators, optional index and LoRA adapters; its converter is
  `rvc_converter.RVCBlockConverter` (RVC on a rolling 16 kHz window).
- `BuiltinSource`: a built-in DSP voice (no model files); its converter's output is
  continuous by itself, so it returns exactly one block and needs no crossfade.

Both satisfy `voice_source.VoiceSource`, the only interface the engine calls.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import FileFormatError, MissingAssetError, UsageError
from ..export.live_manifest import is_live_set
from ..library.embedders import content_encoder_path
from ..library.home import Home
from ..lora import apply_adapters, remove_adapters
from ..synth.content_encoder import load_content_encoder
from ..synth.device import resolve_device, resolve_dtype
from ..synth.index import FeatureIndex
from ..synth.onnx_backend import OnnxSynthesizer
from ..synth.pitch import make_pitch_estimator
from ..synth.pitch_options import resolve_f0_method
from ..synth.voice_adapters import base_info, load_adapters_for
from ..synth.voice_file import load_voice
from .builtin_voices import make_builtin_voice
from .denoise_models import check_available
from .onnx_source import load_live_stages
from .rvc_converter import BlockShape, RVCBlockConverter, f0_tail_length
from .settings import EngineSettings
from .voice_source import BlockConverter, VoiceSource

# --------------------------------------------------------------------------- RVC models


def check_denoise(settings: EngineSettings) -> None:
    """Refuse to turn on a denoiser whose package is missing (one-line ValueError)."""
    if settings.denoise_input or settings.denoise_output:
        check_available()


@dataclass
class RVCSource:
    """Everything loaded once for an RVC voice: synthesizer, content encoder, pitch, index.

    `synth` is anything with `Synthesizer.infer`'s signature (the torch model, or the
    ONNX Runtime backend's `OnnxSynthesizer`). Pitch estimators are built on first
    use per method, so switching f0 method live costs one load, once.
    """

    synth: Any
    encoder: Any  # ContentEncoder: wav [1, N] → [1, frames, C]
    version: str
    f0: bool
    sr: int
    device: torch.device
    dtype: torch.dtype
    index: Any = None  # FeatureIndex or None
    rmvpe_path: Path | None = None
    backend: str = "torch"
    name: str = "voice"
    base_info: Any = None  # lora.BaseInfo of the loaded weights (adapters are checked against it)
    adapters: list = field(default_factory=list)  # [(Adapter, weight)] currently applied
    n_speakers: int = 1
    embedder: str | None = None  # content encoder named by the voice file (None: ContentVec)
    _estimators: dict = field(default_factory=dict, repr=False)

    def make_converter(self, settings: EngineSettings, *, naive: bool = False) -> RVCBlockConverter:
        self.check_settings(settings)
        return RVCBlockConverter(self, BlockShape.from_settings(settings), naive=naive)

    def check_settings(self, settings: EngineSettings) -> None:
        """Refuse settings this voice cannot honour (one-line ValueError)."""
        if self.backend == "onnx" and settings.formant and not getattr(self.synth, "formant", False):
            raise UsageError("formant shift needs the torch backend or an ONNX export with a return_length2 input "
                             "(rvclora export --live)")
        if settings.speaker >= self.n_speakers:
            raise UsageError(f"speaker {settings.speaker}: this voice has speakers 0–{self.n_speakers - 1}")
        check_denoise(settings)

    def resolve_f0_method(self, method: str) -> str:
        return resolve_f0_method(method, self.rmvpe_path)

    def estimator(self, method: str):
        """The pitch estimator for `method` (auto/rmvpe/pm/fcpe), loaded on first use."""
        method = self.resolve_f0_method(method)
        if method not in self._estimators:
            self._estimators[method] = make_pitch_estimator(
                method, rmvpe_path=self.rmvpe_path, device=self.device, dtype=self.dtype
            )
        return self._estimators[method]

    def prepare(self, settings: EngineSettings) -> None:
        """Load the chosen and the `auto` pitch estimators now, not in the worker's first block."""
        if self.f0:
            for method in {settings.f0_method, "auto"}:
                self.estimator(method)

    def prepared(self, settings: EngineSettings) -> bool:
        return not self.f0 or self.resolve_f0_method(settings.f0_method) in self._estimators

    def load_adapters(
        self, specs: Sequence[tuple[str | os.PathLike, float]], *, force: bool = False
    ) -> list[tuple[Any, float]]:
        return load_checked_adapters(self, specs, force=force)

    def apply_adapters(self, adapters: Sequence[tuple[Any, float]]) -> None:
        """Hot-swap / re-weight LoRA adapters (already checked). Call between blocks."""
        if self.backend != "torch":
            raise UsageError("adapters can only be changed live on the torch backend; export a merged ONNX model instead")

        if adapters:
            # Merged: the decoder then runs at plain speed; unmerging is an exact copy-back.
            apply_adapters(self.synth, list(adapters), merged=True)
        else:
            remove_adapters(self.synth)
        self.adapters = list(adapters)


def load_rvc_source(
    model: str | os.PathLike,
    *,
    hubert: str | os.PathLike | None = None,
    rmvpe: str | os.PathLike | None = None,
    index: str | os.PathLike | None = None,
    adapters: Sequence[tuple[str | os.PathLike, float]] = (),
    device: str = "auto",
    precision: str = "auto",
    backend: str = "torch",
    force: bool = False,
    encoder_for: Any = None,
    estimators: dict | None = None,
) -> RVCSource:
    """Load a voice for live use. Missing assets and bad files raise one-line ValueErrors.

    `encoder_for` ((path, version) → a content encoder on the same device and dtype) and
    `estimators` (a pitch-estimator dict) let voices share what each would otherwise load."""

    home = Home.from_env()
    dev = resolve_device(device)
    dtype = resolve_dtype(precision, dev)
    hubert_path = Path(hubert) if hubert is not None else home.hubert
    if hubert is not None and not hubert_path.exists():
        raise MissingAssetError(f"content encoder not found at {hubert_path}; run `rvclora assets download` or pass --hubert")
    rmvpe_path = Path(rmvpe) if rmvpe is not None else home.rmvpe
    path = Path(model)
    if is_live_set(path) or backend == "onnx-int8":  # the whole chain in ONNX Runtime
        if adapters:
            raise UsageError("a live set has its adapters merged in; export it with them: rvclora export --live --adapter …")
        # ORT picks its own provider for `auto` (a CUDA torch does not mean a CUDA onnxruntime).
        ort_device = "auto" if device == "auto" else dev.type
        return _load_live_set(path, ort_device, content_int8=backend == "onnx-int8", index=index)
    if backend == "onnx" or path.suffix.lower() == ".onnx":
        source = _load_onnx_synth(path, dev, dtype)
    elif backend == "torch":
        source = _load_torch_synth(path, dev, dtype)
    else:
        raise UsageError(f"backend {backend!r}: choose torch or onnx")
    if hubert is None:  # the encoder the voice was trained on (Applio's embedder_model), else ContentVec

        hubert_path = content_encoder_path(home, source.embedder)
        if not hubert_path.exists():
            raise MissingAssetError(f"content encoder not found at {hubert_path}; run `rvclora assets download` or pass --hubert")
    source.rmvpe_path = rmvpe_path
    if estimators is not None:
        source._estimators = estimators
    if encoder_for is not None:
        source.encoder = encoder_for(hubert_path, source.version)
    else:
        source.encoder = load_content_encoder(hubert_path, version=source.version, device=dev, dtype=dtype)
    if index is not None:
        source.index = FeatureIndex.load(index)
        source.index.check_dim(source.encoder.out_dim)
    if adapters:
        source.apply_adapters(load_checked_adapters(source, adapters, force=force))
    return source


def _load_torch_synth(path: Path, dev: torch.device, dtype: torch.dtype) -> RVCSource:
    voice = load_voice(path, device=dev, dtype=dtype)
    # The fingerprint is of the official (weight-normed) weights the adapters were made on;
    # folding weight norm afterwards only changes how the same weights are stored.
    base = base_info(voice)
    voice.model.remove_weight_norm()
    return RVCSource(
        synth=voice.model, encoder=None, version=voice.version, f0=voice.f0, sr=voice.sr,
        device=dev, dtype=dtype, backend="torch", name=path.stem, base_info=base, n_speakers=voice.n_speakers,
        embedder=voice.meta.embedder,
    )


def _load_onnx_synth(path: Path, dev: torch.device, dtype: torch.dtype) -> RVCSource:
    synth = OnnxSynthesizer(path, device=dev.type)
    if not synth.streaming:
        raise FileFormatError(f"{path.name} was exported without --streaming; re-export it with `rvclora-export --streaming` for live use")
    return RVCSource(
        synth=synth, encoder=None, version=synth.version, f0=bool(synth.f0), sr=int(synth.sr),
        device=dev, dtype=torch.float32, backend="onnx", name=path.stem,
    )


def _load_live_set(path: Path, device: str, *, content_int8: bool, index: str | os.PathLike | None) -> RVCSource:
    stages = load_live_stages(path, device=device, content_int8=content_int8)
    source = RVCSource(
        synth=stages.synth, encoder=stages.encoder, version=stages.synth.version, f0=stages.synth.f0,
        sr=stages.synth.sr, device=torch.device("cpu"), dtype=torch.float32, backend="onnx", name=stages.name,
        n_speakers=stages.n_speakers, embedder=stages.embedder, rmvpe_path=stages.pitch_path,
    )
    if stages.rmvpe is not None:  # `auto` resolves to rmvpe since pitch_path is a file
        source._estimators["rmvpe"] = stages.rmvpe
    if index is not None:
        source.index = FeatureIndex.load(index)
        source.index.check_dim(stages.encoder.out_dim)
    return source


def load_checked_adapters(
    source: RVCSource, specs: Sequence[tuple[str | os.PathLike, float]], *, force: bool = False
) -> list[tuple[Any, float]]:
    """Read adapter files and check each against the voice (one-line AdapterError on a mismatch),
    on the voice's device."""
    loaded = load_adapters_for(source.synth, source.base_info, specs, force=force)
    return [(adapter.to(device=source.device), weight) for adapter, weight in loaded]


# --------------------------------------------------------------------------- built-in voices


@dataclass
class BuiltinSource:
    """A built-in DSP voice (pitch/formant presets, passthrough): needs no model files."""

    voice_name: str
    sr: int = 48000

    @property
    def name(self) -> str:
        return self.voice_name

    def make_converter(self, settings: EngineSettings, *, naive: bool = False) -> DSPBlockConverter:
        return DSPBlockConverter(self.voice_name, self.sr, settings)

    def check_settings(self, settings: EngineSettings) -> None:
        check_denoise(settings)

    def prepare(self, settings: EngineSettings) -> None:
        pass  # nothing to load

    def prepared(self, settings: EngineSettings) -> bool:
        return True

    def load_adapters(
        self, specs: Sequence[tuple[str | os.PathLike, float]], *, force: bool = False
    ) -> list[tuple[Any, float]]:
        if specs:
            raise UsageError(f"built-in voice {self.voice_name!r} takes no adapters; pick an RVC voice for LoRA adapters")
        return []

    def apply_adapters(self, adapters: Sequence[tuple[Any, float]]) -> None:
        if adapters:
            raise UsageError(f"built-in voice {self.voice_name!r} takes no adapters")


class DSPBlockConverter:
    """A built-in voice; its output is continuous, so no SOLA."""

    uses_sola = False

    def __init__(self, name: str, sr: int, settings: EngineSettings) -> None:
        self.input_sr = self.output_sr = sr
        self._voice = make_builtin_voice(name, sr, pitch=settings.pitch, formant=settings.formant)
        self._pitch, self._formant = settings.pitch, settings.formant

    @property
    def latency_s(self) -> float:
        return float(self._voice.latency) / self.output_sr

    def convert(self, block: np.ndarray, settings: EngineSettings) -> np.ndarray:
        # The built-in presets add to the user's pitch/formant settings; they follow live.
        if settings.pitch != self._pitch:
            self._voice.set_pitch(settings.pitch)
            self._pitch = settings.pitch
        if settings.formant != self._formant:
            self._voice.set_formant(settings.formant)
            self._formant = settings.formant
        return self._voice.process(block)

    def reset(self) -> None:
        self._voice.reset()

    def continue_from(self, old: BlockConverter) -> None:
        pass  # a DSP voice's few ms of history refill within its first block


__all__ = ["BlockConverter", "BlockShape", "BuiltinSource", "DSPBlockConverter", "RVCSource", "VoiceSource",
           "f0_tail_length", "load_checked_adapters", "load_rvc_source"]
