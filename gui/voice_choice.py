"""Which voice the user picked: one of rvclora's built-in voices or a voice from their library."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["builtin", "library"]


@dataclass(frozen=True)
class VoiceChoice:
    kind: Kind
    name: str

    @property
    def key(self) -> str:
        """A stable string for settings.json; library names may contain ':' so split only once."""
        return f"{self.kind}:{self.name}"

    @property
    def is_builtin(self) -> bool:
        return self.kind == "builtin"

    @classmethod
    def from_key(cls, key: str | None) -> VoiceChoice | None:
        if not key or ":" not in key:
            return None
        kind, name = key.split(":", 1)
        if kind not in ("builtin", "library") or not name:
            return None
        return cls(kind, name)  # type: ignore[arg-type]  # kind checked against the Literal's values just above


# What a drop or an import does with a file, by suffix.
MODEL_SUFFIXES = (".pth", ".onnx", ".zip")  # .zip: a bundle; the library imports every voice in it
INDEX_SUFFIXES = (".index",)
ADAPTER_SUFFIXES = (".safetensors",)
IMPORTABLE_SUFFIXES = MODEL_SUFFIXES + INDEX_SUFFIXES + ADAPTER_SUFFIXES
