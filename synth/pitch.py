"""Pitch (f0) estimators and the f0 → synthesizer-input conversions.

Every estimator takes 16 kHz mono audio and returns f0 in Hz on RVC's grid:
100 frames/s, exactly `len(audio)//160 + 1` frames, frame i centred on sample
i·160, unvoiced = 0.0.

Non-finite samples (NaN/inf) raise PitchError rather than being read as silence:
they mean something upstream is broken, and a silent guess would hide it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from .constants import HOP_16K, SR_16K
from .pitch_options import ESTIMATORS, PitchError
from .rmvpe import load_rmvpe
from .rmvpe_net import RMVPE

SAMPLE_RATE = SR_16K
HOP = HOP_16K
F0_MIN = 50.0  # coarse-pitch range of RVC's pitch embedding
F0_MAX = 1100.0
_RMVPE_HINT = "run `rvclora assets download` or pass --rmvpe PATH (or use the pm pitch method)"


@runtime_checkable
class PitchEstimator(Protocol):
    """16 kHz mono audio → f0 in Hz, `len//160 + 1` frames, 0.0 = unvoiced."""

    name: str

    def __call__(self, audio16k: np.ndarray) -> np.ndarray: ...


def n_frames(n_samples: int) -> int:
    """Frames an estimator returns for `n_samples` of 16 kHz audio."""
    return n_samples // HOP + 1


def check_audio(audio16k: np.ndarray) -> np.ndarray:
    """Validate estimator input; returns a 1-D float array (no copy if already one)."""
    audio = np.asarray(audio16k)
    if audio.ndim == 2 and 1 in audio.shape:
        audio = audio.reshape(-1)
    if audio.ndim != 1:
        raise PitchError(f"pitch estimation needs mono audio, got an array of shape {audio.shape}")
    if audio.size == 0:
        raise PitchError("pitch estimation got empty audio")
    if not np.issubdtype(audio.dtype, np.floating):
        raise PitchError(f"pitch estimation needs float audio in [-1, 1], got dtype {audio.dtype}")
    if not np.all(np.isfinite(audio)):
        raise PitchError("audio contains NaN or infinite samples")
    return audio


# ---------------------------------------------------------------------------
# f0 post-processing
# ---------------------------------------------------------------------------


def shift_f0(f0: np.ndarray, semitones: float) -> np.ndarray:
    """Transpose by `semitones` (f0 · 2^(s/12)); unvoiced 0 stays 0."""
    return np.asarray(f0) * 2.0 ** (semitones / 12.0)


def _mel(f: float | np.ndarray) -> float | np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)


_MEL_MIN = float(_mel(F0_MIN))
_MEL_MAX = float(_mel(F0_MAX))


def f0_to_coarse(f0: np.ndarray) -> np.ndarray:
    """f0 (Hz) → RVC's coarse pitch index in [1, 255] (int64) for `nn.Embedding(256, …)`.

    Voiced frames map linearly in mel from 50 Hz → 1 to 1100 Hz → 255, clipped
    and rounded half-to-even (np.rint, like RVC); unvoiced (≤ 0 Hz) → 1.
    """
    f = np.asarray(f0, dtype=np.float64)
    mel = _mel(np.maximum(f, 0.0))
    scaled = np.where(mel > 0, (mel - _MEL_MIN) * 254.0 / (_MEL_MAX - _MEL_MIN) + 1.0, 1.0)
    return np.rint(np.clip(scaled, 1.0, 255.0)).astype(np.int64)


def shift_f0_torch(f0: torch.Tensor, semitones: float) -> torch.Tensor:
    """Torch twin of `shift_f0`."""
    return f0 * (2.0 ** (semitones / 12.0))


def f0_to_coarse_torch(f0: torch.Tensor) -> torch.Tensor:
    """Torch twin of `f0_to_coarse` (int64 on f0's device)."""
    mel = 1127.0 * torch.log1p(f0.float().clamp(min=0.0) / 700.0)
    scaled = torch.where(mel > 0, (mel - _MEL_MIN) * 254.0 / (_MEL_MAX - _MEL_MIN) + 1.0, torch.ones_like(mel))
    return torch.round(scaled.clamp(1.0, 255.0)).long()


def _fit_length(f0: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad to exactly n frames."""
    if len(f0) >= n:
        return f0[:n]
    return np.pad(f0, (0, n - len(f0)))


# ---------------------------------------------------------------------------
# Estimators
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PMPitch:
    """Praat autocorrelation pitch (RVC's "pm"), resampled onto the 10 ms grid.

    Praat places its frames symmetrically inside the signal, not on our grid, so
    we pad with enough silence that every grid time has a Praat frame around it
    and read each grid frame off Praat's frames by their actual times.
    """

    pitch_floor: float = 50.0  # RVC offline; its realtime path uses 65
    pitch_ceiling: float = 1100.0
    voicing_threshold: float = 0.6
    name: str = "pm"

    def __call__(self, audio16k: np.ndarray) -> np.ndarray:
        import parselmouth  # noqa: PLC0415 — pm pitch only (praat-parselmouth is GPL; kept off the import path of the other methods)

        audio = check_audio(audio16k).astype(np.float64)
        n_out = n_frames(len(audio))
        # Half an analysis window (1.5 periods of the floor) plus a frame of slack.
        pad = math.ceil(1.5 / self.pitch_floor * SAMPLE_RATE) + HOP
        padded = np.pad(audio, (pad, pad))
        sound = parselmouth.Sound(padded, sampling_frequency=SAMPLE_RATE)
        pitch = sound.to_pitch_ac(
            time_step=HOP / SAMPLE_RATE,
            voicing_threshold=self.voicing_threshold,
            pitch_floor=self.pitch_floor,
            pitch_ceiling=self.pitch_ceiling,
        )
        values = np.nan_to_num(pitch.selected_array["frequency"], nan=0.0)
        grid = (np.arange(n_out) * HOP + pad) / SAMPLE_RATE
        return resample_frames(values, pitch.t1, pitch.dt, grid)


def resample_frames(values: np.ndarray, t1: float, dt: float, times: np.ndarray) -> np.ndarray:
    """Read an f0 track with frames at t1 + k·dt at arbitrary `times`.

    Linear between two voiced neighbours; otherwise the nearer frame (so voicing
    edges move by at most half a frame); 0 outside the track.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return np.zeros(len(times))
    pos = (np.asarray(times) - t1) / dt
    lo = np.clip(np.floor(pos).astype(np.int64), 0, len(values) - 1)
    hi = np.clip(lo + 1, 0, len(values) - 1)
    frac = np.clip(pos - lo, 0.0, 1.0)
    a, b = values[lo], values[hi]
    linear = a + (b - a) * frac
    nearest = np.where(frac < 0.5, a, b)
    out = np.where((a > 0) & (b > 0), linear, nearest)
    out[(pos < -0.5) | (pos > len(values) - 0.5)] = 0.0
    return out


class RMVPEPitch:
    """RMVPE on an already loaded model (see `load_rmvpe`)."""

    name = "rmvpe"

    def __init__(self, model: RMVPE, threshold: float = 0.03) -> None:
        self.model = model
        self.threshold = threshold

    def __call__(self, audio16k: np.ndarray) -> np.ndarray:
        audio = check_audio(audio16k)
        return self.model.infer_from_audio(audio, threshold=self.threshold)


class FCPEPitch:
    """FCPE through `torchfcpe` and its bundled weights, when it imports.

    torchfcpe imports torchaudio, which has no build for CPU-only torch here, so
    this usually raises PitchError at construction.
    """

    name = "fcpe"

    # RVC passes 0.006, but then white noise reads as ~94% voiced; 0.03 keeps noise
    # and silence unvoiced while clean tones stay fully voiced.
    def __init__(self, *, device: str | torch.device = "cpu", threshold: float = 0.03) -> None:
        try:
            import torchfcpe  # noqa: PLC0415 — optional pitch method, not a dependency
        except Exception as e:  # noqa: BLE001 — ImportError, or OSError from torchaudio's native library
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise PitchError(
                f"fcpe is unavailable: torchfcpe could not be imported ({reason}); use the rmvpe or pm pitch method"
            ) from None
        self.device = torch.device(device)
        self.threshold = threshold
        self.model = torchfcpe.spawn_bundled_infer_model(device=str(self.device))

    def __call__(self, audio16k: np.ndarray) -> np.ndarray:
        audio = check_audio(audio16k)
        wav = torch.as_tensor(audio, dtype=torch.float32, device=self.device).reshape(1, -1, 1)
        with torch.inference_mode():
            f0 = self.model.infer(wav, sr=SAMPLE_RATE, decoder_mode="local_argmax", threshold=self.threshold)
        f0 = np.nan_to_num(f0.reshape(-1).float().cpu().numpy().astype(np.float64), nan=0.0)
        return _fit_length(np.maximum(f0, 0.0), n_frames(len(audio)))


def make_pitch_estimator(
    method: str,
    *,
    rmvpe_path: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> PitchEstimator:
    """Build the estimator for "rmvpe", "pm" or "fcpe" (case-insensitive)."""
    key = method.strip().lower()
    if key == "pm":
        return PMPitch()
    if key == "fcpe":
        return FCPEPitch(device=device)
    if key == "rmvpe":
        if rmvpe_path is None:
            raise PitchError(f"rmvpe needs rmvpe.pt: {_RMVPE_HINT}")
        path = Path(rmvpe_path)
        if not path.is_file():
            raise PitchError(f"{path}: rmvpe.pt not found: {_RMVPE_HINT}")
        return RMVPEPitch(load_rmvpe(path, device=device, dtype=dtype))
    raise PitchError(f"unknown pitch method {method!r}: choose one of {', '.join(ESTIMATORS)}")
