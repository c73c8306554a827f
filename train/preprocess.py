"""Raw recordings -> clean training segments (RVC's preprocess recipe, plus file checks).

Per file: decode (any rate, any channel count), mix to mono, reject files that are
too short, silent or clipped, resample to the model rate, 48 Hz high-pass (causal,
as RVC: a zero-phase filter pre-rings), slice at pauses, cut ~3.7 s overlapping
segments, peak-normalise each, and make a 16 kHz copy for the content encoder and
pitch estimator.  A file that cannot be used is reported with its reason, never
silently dropped and never fatal on its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from ..errors import TrainingError
from ..synth.audio_io import AudioError, read_audio, resample, to_mono
from ..synth.constants import SR_16K
from .config import PreprocessConfig
from .slicer import segment, slice_on_silence

# What libsndfile can decode (mp3 since libsndfile 1.1; a build without it reports the file).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")


class FileRejected(TrainingError):
    """This file gives no training data; the message is the reason shown in the report."""


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


@dataclass
class Segment:
    """One training segment: audio at the model rate and at 16 kHz."""

    chunk: int  # which slicer chunk of its file (segments of one chunk overlap)
    index: int
    wav: np.ndarray  # float32, model rate
    wav16k: np.ndarray  # float32, 16 kHz


def find_audio_files(root: str | os.PathLike, *, exclude: Path | None = None) -> list[Path]:
    """Audio files under `root`, recursively, in a stable order; hidden folders and
    `exclude` (the work dir, if it lies inside the data) are skipped."""
    root = Path(root)
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (exclude is None or (here / d).resolve() != exclude.resolve()))
        out += [here / f for f in sorted(filenames) if Path(f).suffix.lower() in AUDIO_SUFFIXES and not f.startswith(".")]
    return out


def highpass(audio: np.ndarray, sr: int, hz: float) -> np.ndarray:
    b, a = signal.butter(5, hz, btype="high", fs=sr)
    return signal.lfilter(b, a, audio).astype(np.float32)


def clipped_fraction(audio: np.ndarray, level: float) -> float:
    """Share of samples inside flat tops: runs of >= 3 samples at |x| >= level x peak
    (full-scale clipping, and clipping that was scaled down afterwards)."""
    peak = float(np.max(np.abs(audio)))
    if peak <= 0:
        return 0.0
    hot = np.abs(audio) >= level * peak
    if not hot.any():
        return 0.0
    edges = np.flatnonzero(np.diff(np.concatenate(([0], hot.astype(np.int8), [0]))))
    runs = edges[1::2] - edges[::2]
    return float(runs[runs >= 3].sum()) / len(audio)


def check_recording(audio: np.ndarray, sr: int, cfg: PreprocessConfig) -> None:
    """Raise FileRejected when a mono recording is too short, silent or clipped."""
    seconds = len(audio) / sr
    if seconds < cfg.min_seconds:
        raise FileRejected(f"too short ({seconds:.2f} s; need at least {cfg.min_seconds:g} s)")
    peak = float(np.max(np.abs(audio)))
    if peak <= 10 ** (cfg.silence_dbfs / 20):
        level = 20 * np.log10(peak) if peak > 0 else float("-inf")
        raise FileRejected(f"silent (peak {level:.0f} dBFS)")
    frac = clipped_fraction(audio, cfg.clip_level)
    if frac > cfg.clip_fraction:
        raise FileRejected(f"clipped ({100 * frac:.1f}% of samples in flat tops); record at a lower gain")


def normalise(x: np.ndarray, cfg: PreprocessConfig) -> np.ndarray | None:
    """RVC's loudness normalisation: mostly peak-normalised to 0.9, a quarter of the
    original kept (so level differences between phrases survive a little). None for
    a chunk whose peak says the data is broken (|x| > 2.5)."""
    peak = float(np.max(np.abs(x)))
    if peak > cfg.reject_peak or peak <= 0:
        return None
    return (x / peak * (cfg.max_peak * cfg.alpha) + (1 - cfg.alpha) * x).astype(np.float32)


def preprocess_file(path: Path, sr: int, cfg: PreprocessConfig = PreprocessConfig(), *, min_samples: int = 0) -> list[Segment]:
    """Segments of one file at model rate `sr` (and 16 kHz); raises FileRejected.

    `min_samples`: drop segments shorter than this (the training slice plus margin)."""
    try:
        audio, file_sr = read_audio(path)
    except AudioError as e:
        raise FileRejected(_reason(str(e), path)) from None
    except (OSError, MemoryError) as e:
        raise FileRejected(f"unreadable ({e.__class__.__name__}: {e})") from None
    mono = to_mono(audio)
    check_recording(mono, file_sr, cfg)
    wav = highpass(resample(mono, file_sr, sr), sr, cfg.highpass_hz)
    chunks = slice_on_silence(wav, sr, cfg)
    if not chunks:
        raise FileRejected(f"silent (nothing above {cfg.threshold_db:g} dBFS)")
    out: list[Segment] = []
    for c, (start, end) in enumerate(chunks):
        for start_s, end_s in segment(start, end, sr, cfg):
            x = wav[start_s:end_s]
            if len(x) < max(min_samples, 1):
                continue
            x = normalise(x, cfg)
            if x is None:
                continue
            out.append(Segment(c, len(out), x, resample(x, sr, SR_16K)))
    if not out:
        raise FileRejected(f"too short once pauses are removed (need segments of at least {max(min_samples, 1) / sr:.2f} s)")
    return out


def _reason(message: str, path: Path) -> str:
    # audio_io's messages start with the path; the report already shows it.
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message
