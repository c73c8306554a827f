"""The user's pitch choices, shared by every command and the panel: f0 methods, what
`auto` means, and how far a voice may be transposed.

Kept free of heavy imports so option parsers and settings can use it cheaply.
"""

from __future__ import annotations

import os
from pathlib import Path

F0_METHODS = ("auto", "rmvpe", "pm", "fcpe")
# Transpose range in semitones: two octaves either way, beyond which RVC's coarse
# pitch (50–1100 Hz) clips for any human voice.
PITCH_SHIFT_RANGE = (-24.0, 24.0)


def resolve_f0_method(method: str, rmvpe_path: str | os.PathLike | None) -> str:
    """`auto` → rmvpe when the rmvpe.pt at `rmvpe_path` exists, else pm; other methods unchanged."""
    if method != "auto":
        return method
    return "rmvpe" if rmvpe_path is not None and Path(rmvpe_path).is_file() else "pm"
