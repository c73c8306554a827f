"""The built-in voices' presets: names, pitch and formant shifts, descriptions.

Numpy-free, so the command line lists them in `--help` without loading the DSP.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinPreset:
    name: str
    pitch: float    # semitones
    formant: float  # semitones the spectral envelope moves
    description: str


BUILTIN_VOICES: dict[str, BuiltinPreset] = {
    p.name: p for p in (
        BuiltinPreset("passthrough", 0.0, 0.0, "your own voice, unchanged (same latency as the others)"),
        BuiltinPreset("deep", -5.0, -2.0, "lower and darker"),
        BuiltinPreset("high", 6.0, 2.0, "higher and lighter"),
        BuiltinPreset("bright", 3.0, 4.0, "slightly higher, much brighter timbre"),
        BuiltinPreset("chipmunk", 12.0, 12.0, "an octave up, formants too (sped-up tape)"),
        BuiltinPreset("giant", -9.0, -6.0, "far lower, with a bigger 'body'"),
    )
}
