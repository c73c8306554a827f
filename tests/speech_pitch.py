"""Real speech at a chosen pitch, and its median f0 as Praat measures it.

Used by the built-in voice tests and benchmarks/builtin_voices.py. The speech is
pytest-audioeval's (MIT-licensed, 16 kHz); its speakers sit at 170–290 Hz, so a low
voice is made by playing a recording slower (resampling), as a tape would.
"""

from __future__ import annotations

import numpy as np
import parselmouth
import soundfile as sf
import soxr

from .conftest import speech_path


def praat_f0(audio: np.ndarray, sr: int, floor: float, ceiling: float) -> np.ndarray:
    """Praat's autocorrelation pitch (``To Pitch (ac)``) every 10 ms; 0 where unvoiced."""
    sound = parselmouth.Sound(np.asarray(audio, dtype=np.float64), sampling_frequency=sr)
    return sound.to_pitch_ac(time_step=0.01, pitch_floor=floor, pitch_ceiling=ceiling).selected_array["frequency"]


def median_f0(audio: np.ndarray, sr: int, around: float) -> float:
    """Median f0 of the voiced frames, searched from around/2.2 to around·2.2.

    The range follows the expected pitch, as Praat's manual advises for each speaker:
    a fixed wide range makes Praat itself read a perfectly resampled voice 2–4 % high
    at 60 Hz and 400 Hz. The floor stays below half the expected pitch, so a voice
    stuck an octave low (a subharmonic) is still found and fails.
    """
    f0 = praat_f0(audio, sr, around / 2.2, around * 2.2)
    voiced = f0[f0 > 0]
    if len(voiced) == 0:
        raise AssertionError("Praat found no voiced frame")
    return float(np.median(voiced))


def speech_at(f0: float, sr: int, name: str = "en/quick_brown_fox.wav") -> tuple[np.ndarray, float]:
    """A recording played at the speed that puts its median f0 near ``f0``; (audio at ``sr``, its measured median f0)."""
    audio, file_sr = sf.read(speech_path(name), dtype="float32")
    own = median_f0(audio, file_sr, 180.0)
    out = soxr.resample(audio, file_sr * f0 / own, sr).astype(np.float32)
    return out, median_f0(out, sr, f0)
