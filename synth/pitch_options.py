"""The user's pitch choices, shared by every command and the panel: f0 methods, what
`auto` means, how far a voice may be transposed, and the error when pitch cannot run.

Kept free of heavy imports so option parsers and settings can use it cheaply.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError

ESTIMATORS = ("rmvpe", "pm", "fcpe")  # what rvclora.synth.pitch can build
F0_METHODS = ("auto", *ESTIMATORS)  # what a user may choose
# Transpose range in semitones: two octaves either way, beyond which RVC's coarse
# pitch (50–1100 Hz) clips for any human voice.
PITCH_SHIFT_RANGE = (-24.0, 24.0)


class PitchError(UserError, ValueError):
    """Pitch estimation cannot run; the message says why and what to do."""


def known_f0_method(method: object) -> str:
    """A stored choice (voice.json, settings) as a method name: itself when known, else `auto`."""
    return method if isinstance(method, str) and method in F0_METHODS else "auto"


def resolve_f0_method(method: str, rmvpe_path: str | os.PathLike | None) -> str:
    """`auto` → rmvpe when the rmvpe.pt at `rmvpe_path` exists, else pm; other methods unchanged."""
    if method != "auto":
        return method
    return "rmvpe" if rmvpe_path is not None and Path(rmvpe_path).is_file() else "pm"
