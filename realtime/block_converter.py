"""Per-block voice conversion: what the engine's worker runs once per block.

A converter takes one block of input (at its `input_sr`) and returns the audio the
engine crossfades into the output. Two kinds share that interface:

- `RVCBlockConverter`: RVC inference on a rolling 16 kHz window
  `[context | crossfade | search | block]` (research/rvc-reference.md §1.2–1.4):
  the content encoder sees the bounded window, pitch is estimated only on the new
  tail and kept in a rolling cache, the index blend touches only non-context frames,
  and the synthesizer runs its text encoder over the window but its flow and decoder
  only on the last `block + crossfade + search` frames (`skip_head`, §2.5). It returns
  those frames' audio (`uses_sola`): the engine's SOLA crossfader keeps `block` of it.
  `naive=True` runs the whole window through every stage instead (RVC's 2023 loop
  without `skip_head`), for the benchmark's comparison.
- `DSPBlockConverter`: a built-in DSP voice (no model files); its output is
  continuous by itself, so it returns exactly one block and needs no crossfade.

A voice source (`RVCSource`, `BuiltinSource`) owns what is loaded once (models,
index, adapters) and makes converters for a given block shape.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..synth.pitch_options import resolve_f0_method
from .settings import EngineSettings

SR_16K = 16000
HOP_16K = 160  # one synthesizer frame (10 ms) at 16 kHz
F0_TAIL_EXTRA = 800  # RVC analyses block + 50 ms of pitch: the estimator needs some left context
RMVPE_UNIT = 5120  # rmvpe tail = 5120k − 160 samples → exactly 32k mel frames (no padding seam)
PITCH_CACHE_FRAMES = 1024


# --------------------------------------------------------------------------- interfaces


class BlockConverter(Protocol):
    """One block in, audio to crossfade out. Called from the engine's worker only."""

    input_sr: int
    output_sr: int
    uses_sola: bool  # True: returns block+crossfade+search for SOLA; False: exactly one block
    latency_s: float  # extra delay the converter itself adds (DSP look-ahead), seconds

    def convert(self, block: np.ndarray, settings: EngineSettings) -> np.ndarray: ...

    def reset(self) -> None: ...

    def continue_from(self, old: BlockConverter) -> None:
        """Take over `old`'s input history where compatible (a live voice switch)."""
        ...


class VoiceSource(Protocol):
    """What a user picked as a voice; makes converters for a settings' block shape."""

    name: str

    def make_converter(self, settings: EngineSettings) -> BlockConverter: ...


@dataclass(frozen=True)
class BlockShape:
    """A settings' lengths in 16 kHz samples (each a multiple of 160)."""

    block: int
    crossfade: int
    search: int
    context: int

    @classmethod
    def from_settings(cls, s: EngineSettings) -> BlockShape:
        per_ms = SR_16K // 1000
        return cls(s.block_ms * per_ms, s.crossfade_ms * per_ms, s.search_ms * per_ms, s.context_ms * per_ms)

    @property
    def window(self) -> int:
        return self.context + self.crossfade + self.search + self.block

    @property
    def frames(self) -> int:
        return self.window // HOP_16K

    @property
    def skip_head(self) -> int:
        """Context frames: the synthesizer's attention sees them, flow and decoder skip them."""
        return self.context // HOP_16K

    @property
    def return_length(self) -> int:
        """Frames the decoder produces: block + crossfade + search."""
        return (self.block + self.crossfade + self.search) // HOP_16K


def f0_tail_length(block16: int, method: str) -> int:
    """Samples of the window's tail the pitch estimator sees (RVC: block + 50 ms; rmvpe: 5120k − 160)."""
    n = block16 + F0_TAIL_EXTRA
    if method == "rmvpe":
        n = math.ceil((n + HOP_16K) / RMVPE_UNIT) * RMVPE_UNIT - HOP_16K
    return n


# --------------------------------------------------------------------------- RVC models


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
        if self.backend == "onnx" and settings.formant:
            raise ValueError("formant shift needs the torch backend (ONNX exports have no return_length2 input)")
        if settings.speaker >= getattr(self, "n_speakers", settings.speaker + 1):
            raise ValueError(f"speaker {settings.speaker}: this voice has speakers 0–{self.n_speakers - 1}")

    def resolve_f0_method(self, method: str) -> str:
        return resolve_f0_method(method, self.rmvpe_path)

    def estimator(self, method: str):
        """The pitch estimator for `method` (auto/rmvpe/pm/fcpe), loaded on first use."""
        from ..synth.pitch import make_pitch_estimator

        method = self.resolve_f0_method(method)
        if method not in self._estimators:
            self._estimators[method] = make_pitch_estimator(
                method, rmvpe_path=self.rmvpe_path, device=self.device, dtype=self.dtype
            )
        return self._estimators[method]

    def apply_adapters(self, adapters: Sequence[tuple[Any, float]]) -> None:
        """Hot-swap / re-weight LoRA adapters (already checked). Call between blocks."""
        if self.backend != "torch":
            raise ValueError("adapters can only be changed live on the torch backend; export a merged ONNX model instead")
        from ..lora import apply_adapters, remove_adapters

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
    from ..synth.content_encoder import load_content_encoder
    from ..synth.device import resolve_device, resolve_dtype
    from ..synth.errors import MissingAssetError
    from ..synth.home import Home

    home = Home.from_env()
    dev = resolve_device(device)
    dtype = resolve_dtype(precision, dev)
    hubert_path = Path(hubert) if hubert is not None else home.hubert
    if hubert is not None and not hubert_path.exists():
        raise MissingAssetError(f"content encoder not found at {hubert_path}; run `rvclora assets download` or pass --hubert")
    rmvpe_path = Path(rmvpe) if rmvpe is not None else home.rmvpe
    path = Path(model)
    if backend == "onnx" or path.suffix.lower() == ".onnx":
        source = _load_onnx_synth(path, dev, dtype)
    elif backend == "torch":
        source = _load_torch_synth(path, dev, dtype)
    else:
        raise ValueError(f"backend {backend!r}: choose torch or onnx")
    if hubert is None:  # the encoder the voice was trained on (Applio's embedder_model), else ContentVec
        from ..synth.voice_meta import content_encoder_path

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
        from ..synth.index import FeatureIndex

        source.index = FeatureIndex.load(index)
        source.index.check_dim(source.encoder.out_dim)
    if adapters:
        source.apply_adapters(load_checked_adapters(source, adapters, force=force))
    return source


def _load_torch_synth(path: Path, dev: torch.device, dtype: torch.dtype) -> RVCSource:
    from ..lora import BaseInfo, model_fingerprint
    from ..synth.voice_file import load_voice

    voice = load_voice(path, device=dev, dtype=dtype)
    # The fingerprint is of the official (weight-normed) weights the adapters were made on;
    # folding weight norm afterwards only changes how the same weights are stored.
    base = BaseInfo(voice.version, voice.sr, voice.f0, model_fingerprint(voice.model))
    voice.model.remove_weight_norm()
    return RVCSource(
        synth=voice.model, encoder=None, version=voice.version, f0=voice.f0, sr=voice.sr,
        device=dev, dtype=dtype, backend="torch", name=path.stem, base_info=base, n_speakers=voice.n_speakers,
        embedder=voice.meta.embedder,
    )


def _load_onnx_synth(path: Path, dev: torch.device, dtype: torch.dtype) -> RVCSource:
    try:
        from ..export import backend as onnx_backend  # written alongside; optional
    except ImportError:
        raise ValueError("the ONNX backend is not available in this build; use --backend torch") from None
    synth = onnx_backend.OnnxSynthesizer(path, device=dev.type)
    if not synth.streaming:
        raise ValueError(f"{path.name} was exported without --streaming; re-export it with `rvclora-export --streaming` for live use")
    return RVCSource(
        synth=synth, encoder=None, version=synth.version, f0=bool(synth.f0), sr=int(synth.sr),
        device=dev, dtype=torch.float32, backend="onnx", name=path.stem,
    )


def load_checked_adapters(
    source: RVCSource, specs: Sequence[tuple[str | os.PathLike, float]], *, force: bool = False
) -> list[tuple[Any, float]]:
    """Read adapter files and check each against the voice (one-line AdapterError on a mismatch)."""
    from ..lora import load_adapter
    from ..synth.voice_adapters import check_adapter_on

    loaded = []
    for path, weight in specs:
        adapter = load_adapter(path)
        check_adapter_on(adapter, source.synth, source.base_info, force=force)
        loaded.append((adapter.to(device=source.device), float(weight)))
    return loaded


# --------------------------------------------------------------------------- RVC per block


class RVCBlockConverter:
    """RVC on a rolling 16 kHz window; see the module docstring."""

    input_sr = SR_16K
    uses_sola = True
    latency_s = 0.0

    def __init__(self, source: RVCSource, shape: BlockShape, *, naive: bool = False) -> None:
        from .pitch_cache import PitchCache

        self.source = source
        self.shape = shape
        self.naive = naive
        self.output_sr = source.sr
        self.hop = source.sr // 100  # output samples per synthesizer frame
        dev = source.device
        # Two window buffers, swapped each block: shifting into the other one needs no
        # allocation and no overlapping in-place copy.
        self._windows = [torch.zeros(shape.window, device=dev, dtype=torch.float32) for _ in range(2)]
        self._current = 0
        self._cache = PitchCache(PITCH_CACHE_FRAMES)
        self._lengths = torch.tensor([shape.frames], device=dev)
        self._sid_value = -1
        self._sid = torch.zeros(1, dtype=torch.long, device=dev)

    @property
    def window(self) -> torch.Tensor:
        return self._windows[self._current]

    def reset(self) -> None:
        for w in self._windows:
            w.zero_()
        self._cache.reset()

    def continue_from(self, old: BlockConverter) -> None:
        """Carry on from another voice's converter: its input window and pitch cache hold
        the recent audio and its pitch, which do not depend on the voice."""
        if isinstance(old, RVCBlockConverter) and old.shape == self.shape and old.window.device == self.window.device:
            self._windows, self._current, self._cache = old._windows, old._current, old._cache

    @torch.inference_mode()
    def convert(self, block: np.ndarray, settings: EngineSettings) -> np.ndarray:
        """16 kHz block (`shape.block` samples) → `return_length` frames of audio at the voice's rate."""
        shape = self.shape
        if block.shape[0] != shape.block:
            raise ValueError(f"block has {block.shape[0]} samples, expected {shape.block}")
        src, dst = self._windows[self._current], self._windows[1 - self._current]
        dst[: -shape.block].copy_(src[shape.block :])
        dst[-shape.block :].copy_(torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32)))
        self._current = 1 - self._current
        window = dst

        if settings.speaker != self._sid_value:
            self._sid.fill_(settings.speaker)
            self._sid_value = settings.speaker
        feats = self._content(window, settings)
        pitch = pitchf = None
        factor = 2.0 ** (settings.formant / 12.0)
        rl = shape.return_length
        if self.naive:
            n_res = math.ceil(shape.frames * factor) if settings.formant else None
        else:
            n_res = math.ceil(rl * factor) if settings.formant else None
        if self.source.f0:
            pitch, pitchf = self._pitch(window, settings)
            if n_res is not None:
                # The decoder stretches its source to n_res frames (lowering its pitch by
                # the factor) and the output is squeezed back below; pre-scale to cancel.
                pitchf = pitchf * (n_res / (shape.frames if self.naive else rl))

        synth_dtype = self.source.dtype
        kwargs: dict[str, Any] = dict(noise_scale=settings.noise_scale, return_length2=n_res)
        if not self.naive:
            kwargs.update(skip_head=shape.skip_head, return_length=rl)
        audio = self.source.synth.infer(
            feats.to(synth_dtype),
            self._lengths,
            pitch,
            pitchf.to(synth_dtype) if pitchf is not None else None,
            self._sid,
            **kwargs,
        )
        out = audio[0, 0].float().cpu().numpy()
        if n_res is not None:
            # Back to the nominal length: this squeeze is what moves the formants.
            n_frames = shape.frames if self.naive else rl
            out = _resample_to(out, n_frames * self.hop)
        if self.naive:
            out = out[-rl * self.hop :]
        return out

    # -- stages ----------------------------------------------------------------------------

    def _content(self, window: torch.Tensor, settings: EngineSettings) -> torch.Tensor:
        shape = self.shape
        feats = self.source.encoder(window.unsqueeze(0).to(self.source.dtype))  # [1, F50, C]
        # The encoder yields about N/320 − 1 frames: repeat the last one so ×2 covers the window.
        feats = torch.cat([feats, feats[:, -1:]], dim=1)
        index = self.source.index
        if index is not None and settings.index_rate > 0:
            # Only the frames the decoder will hear are worth a search (RVC: skip_head // 2 on).
            start = 0 if self.naive else shape.skip_head // 2
            part = feats[0, start:].float().cpu().numpy()
            blended = index.search_blend(part, settings.index_rate)
            feats = feats.clone()
            feats[0, start:] = torch.from_numpy(blended).to(feats.device, feats.dtype)
        feats = F.interpolate(feats.transpose(1, 2), scale_factor=2.0, mode="nearest").transpose(1, 2)
        feats = feats[:, : shape.frames]
        if feats.shape[1] < shape.frames:  # very short windows: pad by repeating the last frame
            feats = torch.cat([feats, feats[:, -1:].expand(-1, shape.frames - feats.shape[1], -1)], dim=1)
        return feats

    def _pitch(self, window: torch.Tensor, settings: EngineSettings) -> tuple[torch.Tensor, torch.Tensor]:
        from ..synth.pitch import f0_to_coarse_torch, shift_f0

        shape = self.shape
        method = self.source.resolve_f0_method(settings.f0_method)
        estimator = self.source.estimator(method)
        semitones = settings.pitch - settings.formant
        if self.naive:
            f0 = estimator(window.cpu().numpy())[: shape.frames]
            f0 = np.pad(f0, (0, max(0, shape.frames - len(f0))))
        else:
            n = min(f0_tail_length(shape.block, method), shape.window)
            f0_tail = self._estimate(estimator, method, window[-n:])
            # Frame i of the tail sits on window frame (window − n)/160 + i; the cache keeps
            # frames [3:-1] (edges have no context) at its end, aligned with the window's end.
            self._cache.push(shift_f0(f0_tail, semitones), shape.block // HOP_16K)
            f0 = self._cache.latest(shape.frames)
        if self.naive:
            f0 = shift_f0(f0, semitones)
        pitchf = torch.as_tensor(np.asarray(f0, dtype=np.float32), device=self.source.device).unsqueeze(0)
        return f0_to_coarse_torch(pitchf), pitchf

    def _estimate(self, estimator: Any, method: str, tail: torch.Tensor) -> np.ndarray:
        model = getattr(estimator, "model", None)
        if method == "rmvpe" and model is not None and hasattr(model, "infer"):
            # Stay on the device: RMVPE takes a tensor; only the f0 frames come back.
            return model.infer(tail, getattr(estimator, "threshold", 0.03)).cpu().numpy().astype(np.float64)
        return np.asarray(estimator(tail.cpu().numpy()), dtype=np.float64)


def _resample_to(audio: np.ndarray, n_out: int) -> np.ndarray:
    """Band-limited resampling of a whole block to exactly `n_out` samples."""
    import soxr

    if len(audio) == n_out:
        return audio
    out = soxr.resample(audio, len(audio), n_out, quality="HQ")
    if len(out) != n_out:
        out = np.pad(out, (0, max(0, n_out - len(out))))[:n_out]
    return out.astype(np.float32, copy=False)


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
        pass


class DSPBlockConverter:
    """A built-in voice; its output is continuous, so no SOLA."""

    uses_sola = False

    def __init__(self, name: str, sr: int, settings: EngineSettings) -> None:
        from .builtin_voices import make_builtin_voice

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
