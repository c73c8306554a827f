"""Reading, writing and resampling audio files for offline conversion."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


class AudioError(ValueError):
    """An audio file could not be used; the message says why and what to do."""


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read any file libsndfile decodes (wav, flac, ogg, mp3 where supported).

    Returns float32 samples shaped [frames, channels] and the file's sample rate.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"{path}: cannot decode audio ({str(e).splitlines()[0]}); use wav, flac or ogg") from None
    if audio.shape[0] == 0:
        raise AudioError(f"{path}: the file holds no audio samples")
    if not np.isfinite(audio).all():
        raise AudioError(f"{path}: the audio contains NaN or infinite samples (a broken recording); re-export it")
    return audio, int(sr)


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average channels: [frames, channels] -> [frames]."""
    return audio.mean(axis=1, dtype=np.float32) if audio.ndim == 2 else audio.astype(np.float32)


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality) of mono or [frames, channels] audio."""
    if sr_in == sr_out:
        return audio.astype(np.float32, copy=False)
    return soxr.resample(audio, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)


def load_mono(path: str | os.PathLike, sr: int) -> np.ndarray:
    """Read a file as mono float32 at `sr`."""
    audio, file_sr = read_audio(path)
    return resample(to_mono(audio), file_sr, sr)


def write_audio(path: str | os.PathLike, audio: np.ndarray, sr: int, *, overwrite: bool = True) -> Path:
    """Write float audio; the format follows the suffix (wav/flac/ogg)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise AudioError(f"{path}: already exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise AudioError(f"{path.parent}: output folder does not exist")
    fmt = sf.available_formats()
    if path.suffix.lstrip(".").upper() not in fmt:
        raise AudioError(f"{path}: unknown output format '{path.suffix}'; use .wav, .flac or .ogg")
    subtype = "FLOAT" if path.suffix.lower() == ".wav" else None
    try:
        sf.write(str(path), np.clip(audio, -1.0, 1.0), sr, subtype=subtype)
    except (sf.LibsndfileError, RuntimeError, PermissionError, OSError) as e:
        raise AudioError(f"{path}: cannot write ({str(e).splitlines()[0]})") from None
    return path
