"""Offline voice conversion: a whole recording through content encoder, pitch, index and synthesizer.

Follows RVC's offline pipeline (infer/modules/vc/pipeline.py) so that a voice sounds
the same here as in RVC: 48 Hz high-pass, reflect padding, long inputs cut at quiet
points, HuBERT per segment, index blend before the ×2 upsampling, `protect`, and the
padding trimmed off again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from scipy import signal

from ..errors import FileFormatError
from .constants import HOP_16K, NOISE_SCALE, SR_16K
from .content_encoder import ContentEncoder
from .features import blend_with_index, to_synth_frames
from .index import FeatureIndex, apply_protect
from .pitch import PitchEstimator, f0_to_coarse, shift_f0
from .voice_file import Voice


@dataclass(frozen=True)
class ConvertSettings:
    pitch: float = 0.0  # semitones
    index_rate: float = 0.75
    protect: float = 0.33  # 0.5 turns protection off
    noise_scale: float = NOISE_SCALE
    speaker: int = 0
    seed: int | None = None
    # Segmenting, in seconds (RVC's fp32 values): padding each side, search radius for a
    # quiet cut, cut spacing, and the longest input converted in one pass.
    pad: float = 1.0
    query: float = 6.0
    center: float = 38.0
    max_len: float = 41.0


def highpass_48hz(audio: np.ndarray, sr: int = SR_16K) -> np.ndarray:
    """Zero-phase 5th-order Butterworth high-pass at 48 Hz: removes rumble and DC."""
    sos = signal.butter(5, 48, btype="high", fs=sr, output="sos")
    return signal.sosfiltfilt(sos, audio).astype(np.float32)


def quiet_cut_points(audio: np.ndarray, center: int, query: int, window: int = HOP_16K) -> list[int]:
    """Sample positions near every `center` samples where the signal is quietest (±query)."""
    if len(audio) <= center:
        return []
    padded = np.pad(np.abs(audio), (window // 2, window // 2), mode="reflect")
    energy = np.convolve(padded, np.ones(window, dtype=np.float32), mode="valid")[: len(audio)]
    cuts = []
    for t in range(center, len(audio), center):
        lo, hi = max(t - query, 0), min(t + query, len(audio))
        cuts.append(lo + int(np.argmin(energy[lo:hi])))
    return cuts


@contextlib.contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Seed torch's generators for reproducible noise without disturbing the caller's."""
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class VoiceConverter:
    """Converts whole recordings with one voice; the models are loaded once."""

    def __init__(
        self,
        voice: Voice,
        content_encoder: ContentEncoder,
        pitch_estimator: PitchEstimator | None,
        index: FeatureIndex | None = None,
    ) -> None:
        if voice.f0 and pitch_estimator is None:
            raise ValueError("a voice with pitch needs a pitch estimator")
        self.voice = voice
        self.encoder = content_encoder
        self.encoder.version = voice.version
        self.pitch_estimator = pitch_estimator
        self.index = index
        param = next(voice.model.parameters())
        self.device, self.dtype = param.device, param.dtype

    @property
    def sr(self) -> int:
        return self.voice.sr

    @torch.inference_mode()
    def convert(
        self,
        audio16k: np.ndarray,
        settings: ConvertSettings = ConvertSettings(),
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Convert mono 16 kHz float audio; returns mono float32 audio at the voice's rate."""
        if audio16k.ndim != 1 or len(audio16k) < HOP_16K * 4:
            raise FileFormatError("input is shorter than 40 ms of audio; nothing to convert")
        if not np.isfinite(audio16k).all():
            raise FileFormatError("input audio contains NaN or infinite samples")
        audio = highpass_48hz(audio16k.astype(np.float32))
        t_pad = int(SR_16K * settings.pad)
        t_pad_tgt = int(self.sr * settings.pad)
        # np.pad's reflect needs the pad shorter than the signal: repeat reflecting for very short inputs.
        audio_pad = np.pad(audio, (t_pad, t_pad), mode="reflect" if len(audio) > t_pad else "symmetric")
        cuts = []
        if len(audio_pad) > SR_16K * settings.max_len:
            cuts = quiet_cut_points(audio_pad, int(SR_16K * settings.center), int(SR_16K * settings.query))
        p_len = len(audio_pad) // HOP_16K

        pitch = pitchf = None
        if self.voice.f0:
            f0 = self.pitch_estimator(audio_pad)  # type: ignore[misc]  # set together with voice.f0; None only for voices without pitch
            f0 = np.pad(f0, (0, max(0, p_len - len(f0))))[:p_len]
            f0 = shift_f0(f0, settings.pitch)
            pitch = torch.as_tensor(f0_to_coarse(f0), device=self.device).unsqueeze(0)
            pitchf = torch.as_tensor(f0, dtype=torch.float32, device=self.device).unsqueeze(0)

        # Segments overlap by 2·pad so that each one's trimmed output joins the next.
        bounds, start = [], 0
        for cut in cuts:
            cut = cut // HOP_16K * HOP_16K
            bounds.append((start, cut + 2 * t_pad + HOP_16K))
            start = cut
        bounds.append((start, len(audio_pad)))

        out = []
        with _seeded(settings.seed, self.device):
            for i, (s, e) in enumerate(bounds):
                seg_pitch = pitch[:, s // HOP_16K : e // HOP_16K] if pitch is not None else None
                seg_pitchf = pitchf[:, s // HOP_16K : e // HOP_16K] if pitchf is not None else None
                wav = self._convert_segment(audio_pad[s:e], seg_pitch, seg_pitchf, settings)
                out.append(wav[t_pad_tgt : len(wav) - t_pad_tgt])
                if progress:
                    progress(i + 1, len(bounds))
        result = np.concatenate(out).astype(np.float32)
        peak = float(np.abs(result).max(initial=0.0))
        if peak > 0.99:  # only ever scale down, as RVC does
            result *= 0.99 / peak
        return result

    def _convert_segment(
        self,
        audio: np.ndarray,
        pitch: torch.Tensor | None,
        pitchf: torch.Tensor | None,
        settings: ConvertSettings,
    ) -> np.ndarray:
        wav = torch.as_tensor(audio, device=self.device, dtype=self.dtype).unsqueeze(0)
        feats = self.encoder(wav)  # [1, T50, C]
        feats_orig = to_synth_frames(feats)
        feats = to_synth_frames(blend_with_index(feats, self.index, settings.index_rate))
        p_len = min(len(audio) // HOP_16K, feats.shape[1])
        feats, feats_orig = feats[:, :p_len], feats_orig[:, :p_len]
        if pitch is not None and pitchf is not None:
            pitch, pitchf = pitch[:, :p_len], pitchf[:, :p_len]
            if settings.protect < 0.5:
                feats = apply_protect(feats, feats_orig, pitchf, settings.protect)
        lengths = torch.tensor([p_len], device=self.device)
        sid = torch.tensor([settings.speaker], device=self.device)
        audio_out = self.voice.model.infer(
            feats.to(self.dtype),
            lengths,
            pitch,
            pitchf.to(self.dtype) if pitchf is not None else None,
            sid,
            noise_scale=settings.noise_scale,
        )
        return audio_out[0, 0].float().cpu().numpy()
