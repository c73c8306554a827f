"""Built-in voices: pitch and formant presets that need no model files.

A new user should hear something on the first run, before any RVC model is
installed. These voices run the streaming pitch/formant shifter of
``pitch_shifter`` with a fixed delay of one analysis window (32 ms at 48 kHz),
the same for every preset, passthrough included, so switching presets or moving
the pitch live never shifts the timing.

Why not pedalboard's PitchShift (pedalboard 0.9.26, Rubber Band): measured here,
streaming use (``process(..., reset=False)`` block by block) returns variable-length
output withheld for about 1 s and then only zeros (spotify/pedalboard#415, fix
pending in #486). Rubber Band itself (``pylibrb``) streams, but with 2–3× the
delay, and it is GPL (more in ``pitch_shifter``).
"""

from __future__ import annotations

import numpy as np

from ..errors import UsageError
from .builtin_presets import BUILTIN_VOICES
from .pitch_shifter import PitchShifter


class DSPVoice:
    """A preset on the streaming shifter; mono float32 blocks of any length in, same length out.

    ``pitch`` and ``formant`` (semitones, live via ``set_pitch``/``set_formant``) are
    added to the preset's own values. ``latency`` is the fixed delay in samples.
    """

    def __init__(self, name: str, sr: int, pitch: float = 0.0, formant: float = 0.0):
        if name not in BUILTIN_VOICES:
            raise UsageError(f"unknown built-in voice {name!r}; choose one of: {', '.join(BUILTIN_VOICES)}")
        self.name = name
        self.preset = BUILTIN_VOICES[name]
        self.sr = int(sr)
        self.pitch = float(pitch)
        self.formant = float(formant)
        self._shifter = PitchShifter(self.sr)
        self.n_fft = self._shifter.n_fft
        self.hop = self._shifter.hop
        self.latency = self._shifter.latency  # samples, fixed
        self._apply()

    # -- settings ----------------------------------------------------------------
    @property
    def effective_pitch(self) -> float:
        return self.preset.pitch + self.pitch

    @property
    def effective_formant(self) -> float:
        return self.preset.formant + self.formant

    def set_pitch(self, semitones: float) -> None:
        self.pitch = float(semitones)
        self._apply()

    def set_formant(self, semitones: float) -> None:
        self.formant = float(semitones)
        self._apply()

    def _apply(self) -> None:
        self._shifter.ratio = 2.0 ** (self.effective_pitch / 12.0)
        self._shifter.formant_ratio = 2.0 ** (self.effective_formant / 12.0)

    def reset(self) -> None:
        self._shifter.reset()

    # -- streaming ---------------------------------------------------------------
    def process(self, block: np.ndarray) -> np.ndarray:
        return self._shifter.process(block)


def make_builtin_voice(name: str, sr: int, pitch: float = 0.0, formant: float = 0.0) -> DSPVoice:
    """A built-in voice by preset name; ``pitch``/``formant`` add to the preset's."""
    return DSPVoice(name, sr, pitch=pitch, formant=formant)
