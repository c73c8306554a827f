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

from ..errors import FileFormatError
from .limiter import LimiterConfig, LimiterState, limit
from .output_file import check_output_path, staged_output

# What `write_audio` writes, by suffix (libsndfile's formats with a usable default encoding).
OUTPUT_SUFFIXES = (".wav", ".flac", ".ogg")
# The longest input a file conversion takes: it is held in memory whole (with its
# resampled copies and the output), so a longer one is refused before it is decoded.
MAX_INPUT_SECONDS = 3600.0


class AudioError(FileFormatError):
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


def check_input_length(path: str | os.PathLike, max_seconds: float = MAX_INPUT_SECONDS) -> None:
    """Refuse (one-line AudioError) an input longer than `max_seconds`, from its header alone.
    A file whose header cannot be read passes: `read_audio` then says what is wrong with it."""
    try:
        with _decoder_stderr():
            info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError):
        return
    if info.samplerate > 0 and info.frames / info.samplerate > max_seconds:
        hours = info.frames / info.samplerate / 3600
        raise AudioError(
            f"{path}: {hours:.1f} hours of audio; at most {max_seconds / 3600:g} hour(s) are converted at a time "
            f"(the whole file is held in memory); split it first, e.g. ffmpeg -i IN -f segment -segment_time 3600 part%02d.flac"
        )


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


def finish_audio(audio: np.ndarray, sr: int, ceiling_db: float | None = -1.0) -> tuple[np.ndarray, LimiterState]:
    """What every output file gets before it is written: refused if any sample is NaN or
    infinite (one-line AudioError), then a true-peak limiter at `ceiling_db` dBTP (None: off)."""
    audio = np.asarray(audio, dtype=np.float32)
    if not np.isfinite(audio).all():
        bad = int(np.count_nonzero(~np.isfinite(audio)))
        raise AudioError(f"the converted audio has {bad} NaN or infinite samples (a broken voice or adapter?); nothing was written")
    if ceiling_db is None or audio.size == 0:
        return audio, LimiterState()
    config = LimiterConfig(ceiling_db=ceiling_db)
    if audio.ndim == 1:
        return limit(audio, sr, config)
    channels = [limit(audio[:, c], sr, config) for c in range(audio.shape[1])]
    state = max((st for _, st in channels), key=lambda st: st.max_gain_reduction_db)
    return np.stack([ch for ch, _ in channels], axis=1), state


def write_audio(
    path: str | os.PathLike, audio: np.ndarray, sr: int, *, overwrite: bool = True, ceiling_db: float | None = -1.0
) -> Path:
    """Write float audio; the format follows the suffix (wav/flac/ogg). Non-finite audio is
    refused and peaks are limited to `ceiling_db` dBTP (see `finish_audio`; None: written as
    given). The file appears only once completely written (see `staged_output`)."""
    path = check_audio_output(path, overwrite=overwrite)
    audio, _ = finish_audio(audio, sr, ceiling_db)
    subtype = "FLOAT" if path.suffix.lower() == ".wav" else None
    try:
        with staged_output(path, overwrite=overwrite) as tmp:
            sf.write(str(tmp), np.clip(audio, -1.0, 1.0), sr, subtype=subtype)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AudioError(first if first.startswith(str(path)) else f"{path}: cannot write ({first})") from None
    return path
