"""RVC inference on one block: the rolling 16 kHz window the engine's worker converts.

The window is `[context | crossfade | search | block]`: the content encoder sees the
bounded window, pitch is estimated only on the new tail and kept in a rolling cache,
the index blend touches only non-context frames, and the synthesizer runs its text
encoder over the window but its flow and decoder only on the last
`block + crossfade + search` frames (`skip_head`). It returns those frames' audio
(`uses_sola`): the engine's SOLA crossfader keeps `block` of it. `naive=True` runs the
whole window through every stage instead (RVC's 2023 loop without `skip_head`), for
the benchmark's comparison.

`protect` works as in RVC's offline pipeline: where the pitch cache marks a frame
voiceless, the index-blended features are mixed back towards the encoder's own by
(1 − protect), so breaths and voiceless consonants keep the speaker's articulation.
Autotune and the automatic pitch shift reshape f0 before it enters the cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import soxr
import torch

from ..synth.constants import HOP_16K, SR_16K
from ..synth.features import blend_with_index, to_synth_frames
from ..synth.heap import retain_freed_memory
from ..synth.index import apply_protect
from ..synth.pitch import f0_to_coarse_torch, shift_f0
from .pitch_cache import PitchCache
from .pitch_shape import AutoPitch, autotune
from .settings import EngineSettings

if TYPE_CHECKING:
    from .block_converter import RVCSource

F0_TAIL_EXTRA = 800  # RVC analyses block + 50 ms of pitch: the estimator needs some left context
RMVPE_UNIT = 5120  # rmvpe tail = 5120k − 160 samples → exactly 32k mel frames (no padding seam)
PITCH_CACHE_FRAMES = 1024


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



# --------------------------------------------------------------------------- RVC per block


class RVCBlockConverter:
    """RVC on a rolling 16 kHz window; see the module docstring."""

    input_sr = SR_16K
    uses_sola = True
    latency_s = 0.0

    def __init__(self, source: RVCSource, shape: BlockShape, *, naive: bool = False) -> None:
        self.source = source
        self.shape = shape
        self.naive = naive
        # Each block frees and reallocates the same large tensors: keep their pages mapped.
        retain_freed_memory()
        self.output_sr = source.sr
        self.hop = source.sr // 100  # output samples per synthesizer frame
        dev = source.device
        # Two window buffers, swapped each block: shifting into the other one needs no
        # allocation and no overlapping in-place copy.
        self._windows = [torch.zeros(shape.window, device=dev, dtype=torch.float32) for _ in range(2)]
        self._current = 0
        self._cache = PitchCache(PITCH_CACHE_FRAMES)
        self._auto = AutoPitch()
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
        self._auto.reset()

    def continue_from(self, old: object) -> None:
        """Carry on from another voice's converter: its input window and pitch cache hold
        the recent audio and its pitch, which do not depend on the voice."""
        if isinstance(old, RVCBlockConverter) and old.shape == self.shape and old.window.device == self.window.device:
            self._windows, self._current, self._cache = old._windows, old._current, old._cache
        if isinstance(old, RVCBlockConverter):
            self._auto = old._auto  # the user's pitch history does not depend on the voice

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
        feats, feats_orig = self._content(window, settings)
        pitch = pitchf = None
        factor = 2.0 ** (settings.formant / 12.0)
        rl = shape.return_length
        if self.naive:
            n_res = math.ceil(shape.frames * factor) if settings.formant else None
        else:
            n_res = math.ceil(rl * factor) if settings.formant else None
        if self.source.f0:
            pitch, pitchf, voiced = self._pitch(window, settings)
            if feats_orig is not None and settings.protect < 0.5:
                feats = apply_protect(feats, feats_orig, voiced.to(feats.dtype).unsqueeze(0), settings.protect)
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

    def _content(self, window: torch.Tensor, settings: EngineSettings) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Features at 100 frames/s, and the encoder's own (before the index blend) when blended."""
        shape = self.shape
        feats = self.source.encoder(window.unsqueeze(0).to(self.source.dtype))  # [1, F50, C]
        # The encoder yields about N/320 − 1 frames: repeat the last one so ×2 covers the window.
        feats = torch.cat([feats, feats[:, -1:]], dim=1)
        blend = self.source.index is not None and settings.index_rate > 0
        # Only the frames the decoder will hear are worth a search (RVC: skip_head // 2 on).
        start = 0 if self.naive else shape.skip_head // 2
        blended = blend_with_index(feats, self.source.index, settings.index_rate, start=start)
        return self._upsample(blended), (self._upsample(feats) if blend else None)

    def _upsample(self, feats: torch.Tensor) -> torch.Tensor:
        """50 → 100 frames/s (as RVC), cut or padded to the window's frames."""
        frames = self.shape.frames
        feats = to_synth_frames(feats)[:, :frames]
        if feats.shape[1] < frames:  # very short windows: pad by repeating the last frame
            feats = torch.cat([feats, feats[:, -1:].expand(-1, frames - feats.shape[1], -1)], dim=1)
        return feats

    def _pitch(self, window: torch.Tensor, settings: EngineSettings) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(coarse pitch, f0 in Hz, voiced mask as 1/0) for the window's frames."""
        shape = self.shape
        method = self.source.resolve_f0_method(settings.f0_method)
        estimator = self.source.estimator(method)
        if self.naive:
            f0 = estimator(window.cpu().numpy())[: shape.frames]
            f0 = np.pad(f0, (0, max(0, shape.frames - len(f0))))
            self._auto.observe(f0[-(shape.block // HOP_16K):])
            f0 = self._shape_f0(f0, settings)
            voiced = f0 >= 1.0
        else:
            n = min(f0_tail_length(shape.block, method), shape.window)
            f0_tail = self._estimate(estimator, method, window[-n:])
            # Frame i of the tail sits on window frame (window − n)/160 + i; the cache keeps
            # frames [3:-1] (edges have no context) at its end, aligned with the window's end.
            self._auto.observe(f0_tail[3:-1][-(shape.block // HOP_16K):])
            self._cache.push(self._shape_f0(f0_tail, settings), shape.block // HOP_16K)
            f0 = self._cache.latest(shape.frames)
            voiced = self._cache.voiced(shape.frames)
        dev = self.source.device
        pitchf = torch.as_tensor(np.asarray(f0, dtype=np.float32), device=dev).unsqueeze(0)
        mask = torch.as_tensor(voiced.astype(np.float32), device=dev)
        return f0_to_coarse_torch(pitchf), pitchf, mask

    def _shape_f0(self, f0: np.ndarray, settings: EngineSettings) -> np.ndarray:
        """Pitch shift (+ the automatic shift), autotune on the pitch heard, then the formant pre-shift."""
        semitones = settings.pitch + (self._auto.shift(settings.voice_f0) if settings.auto_pitch else 0.0)
        f0 = shift_f0(f0, semitones)
        if settings.autotune > 0:
            f0 = autotune(f0, settings.autotune)
        # The formant shift raises the decoded pitch by its own factor (see `convert`); cancel it here.
        return shift_f0(f0, -settings.formant) if settings.formant else f0

    def _estimate(self, estimator: Any, method: str, tail: torch.Tensor) -> np.ndarray:
        model = getattr(estimator, "model", None)
        if method == "rmvpe" and model is not None and hasattr(model, "infer"):
            # Stay on the device: RMVPE takes a tensor; only the f0 frames come back.
            return model.infer(tail, getattr(estimator, "threshold", 0.03)).cpu().numpy().astype(np.float64)
        return np.asarray(estimator(tail.cpu().numpy()), dtype=np.float64)


def _resample_to(audio: np.ndarray, n_out: int) -> np.ndarray:
    """Band-limited resampling of a whole block to exactly `n_out` samples."""
    if len(audio) == n_out:
        return audio
    out = soxr.resample(audio, len(audio), n_out, quality="HQ")
    if len(out) != n_out:
        out = np.pad(out, (0, max(0, n_out - len(out))))[:n_out]
    return out.astype(np.float32, copy=False)
