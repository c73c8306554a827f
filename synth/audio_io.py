"""Reading, writing and resampling audio files for offline conversion.

Decoders inside libsndfile (mpg123 for mp3) print notes and errors straight to
the process's stderr, below Python; reads therefore run with file descriptor 2
pointed at a temporary file, so the user sees one line from us, not decoder noise.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .output_file import check_output_path, staged_output

# What `write_audio` writes, by suffix (libsndfile's formats with a usable default encoding).
OUTPUT_SUFFIXES = (".wav", ".flac", ".ogg")


class AudioError(ValueError):
    """An audio file could not be used; the message says why and what to do."""


@contextlib.contextmanager
def _decoder_stderr() -> Iterator[list[str]]:
    """Hold what native decoders write to stderr; yields a list filled with its lines afterwards."""
    lines: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded, closed): nothing to hide
        yield lines
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(ln.strip() for ln in sink.read(4096).decode("utf-8", "replace").splitlines() if ln.strip())


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read any file libsndfile decodes (wav, flac, ogg, mp3).

    Returns float32 samples shaped [frames, channels] and the file's sample rate.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    with _decoder_stderr() as noise:
        try:
            audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
            error = None
        except (sf.LibsndfileError, RuntimeError, TypeError) as e:
            error = str(e)
    if error is not None:
        # libsndfile words an unrecognised file as "does not exist"; the file is there, so say what we know
        why = next((ln for ln in noise if "error" in ln.lower()), noise[0] if noise else "")
        if not why and "does not exist" not in error:
            why = error.splitlines()[0].split(": ", 1)[-1]
        detail = f" ({why.removeprefix('Note: ').rstrip('.')})" if why else ""
        raise AudioError(f"{path}: cannot decode this file as audio{detail}; convert it to wav, flac or ogg")
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


def check_audio_output(path: str | os.PathLike, *, overwrite: bool) -> Path:
    """Refuse, before any work, an output `write_audio` could not write (one-line AudioError)."""
    try:
        return check_output_path(path, overwrite=overwrite, suffixes=OUTPUT_SUFFIXES, what="output audio file")
    except ValueError as e:
        raise AudioError(str(e)) from None


def write_audio(path: str | os.PathLike, audio: np.ndarray, sr: int, *, overwrite: bool = True) -> Path:
    """Write float audio; the format follows the suffix (wav/flac/ogg). The file appears
    only once completely written (see `staged_output`)."""
    path = check_audio_output(path, overwrite=overwrite)
    subtype = "FLOAT" if path.suffix.lower() == ".wav" else None
    try:
        with staged_output(path, overwrite=overwrite) as tmp:
            sf.write(str(tmp), np.clip(audio, -1.0, 1.0), sr, subtype=subtype)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AudioError(first if first.startswith(str(path)) else f"{path}: cannot write ({first})") from None
    return path
