"""rvclora's home folder: shared model assets, voices and settings.

Layout::

    <home>/assets/hubert_base.pt
    <home>/assets/rmvpe.pt
    <home>/assets/pretrained_v2/{f0,}{G,D}{32k,40k,48k}.pth   (RVC's repo layout)
    <home>/voices/<name>/...
    <home>/settings.json

The home is `RVCLORA_HOME` when set, else the platform's user data folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import platformdirs

from ..errors import UsageError

__all__ = ["HOME_ENV", "Home", "SampleRate"]

HOME_ENV = "RVCLORA_HOME"
SampleRate = Literal["32k", "40k", "48k"]
_SAMPLE_RATES = ("32k", "40k", "48k")


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Home:
        """`RVCLORA_HOME` if set (and not empty), else the user data dir; read at call time."""
        env = os.environ if env is None else env
        value = env.get(HOME_ENV, "").strip()
        root = Path(value).expanduser() if value else Path(platformdirs.user_data_dir("rvclora", appauthor=False))
        return cls(root.absolute())

    @property
    def assets(self) -> Path:
        return self.root / "assets"

    @property
    def voices(self) -> Path:
        return self.root / "voices"

    @property
    def settings_file(self) -> Path:
        return self.root / "settings.json"

    @property
    def hubert(self) -> Path:
        """Content encoder weights (fairseq `hubert_base.pt` / ContentVec)."""
        return self.assets / "hubert_base.pt"

    @property
    def rmvpe(self) -> Path:
        return self.assets / "rmvpe.pt"

    def pretrained(self, kind: Literal["G", "D"], sr: SampleRate = "40k", *, f0: bool = True) -> Path:
        """A v2 pretrained base, e.g. `pretrained("G", "40k")` -> assets/pretrained_v2/f0G40k.pth."""
        if kind not in ("G", "D"):
            raise ValueError(f"kind must be 'G' or 'D', got {kind!r}")
        if sr not in _SAMPLE_RATES:
            raise ValueError(f"sr must be one of {_SAMPLE_RATES}, got {sr!r}")
        return self.assets / "pretrained_v2" / f"{'f0' if f0 else ''}{kind}{sr}.pth"

    def voice_dir(self, name: str) -> Path:
        # A voice name is a single folder name: refuse anything that could escape voices/.
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise UsageError(f"invalid voice name: {name!r}")
        return self.voices / name

    def ensure(self) -> Home:
        """Create the home, assets and voices folders if missing; returns self."""
        for folder in (self.root, self.assets, self.voices):
            folder.mkdir(parents=True, exist_ok=True)
        return self
