"""What the engine needs from a voice, as two protocols: nothing else is called.

A `VoiceSource` is what a user picked (an RVC model with its encoder, pitch
estimators, index and adapters; or a built-in DSP voice). It loads what the
settings need before audio flows (`prepare`), refuses settings it cannot honour
(`check_settings`), makes a `BlockConverter` per block shape, and takes adapter
changes between two blocks. A `BlockConverter` turns one block into audio for the
crossfader; it is called from the engine's worker only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from .settings import EngineSettings


class BlockConverter(Protocol):
    """One block in, audio to crossfade out. Called from the engine's worker only."""

    input_sr: int
    output_sr: int
    uses_sola: bool  # True: returns block+crossfade+search for SOLA; False: exactly one block
    latency_s: float  # extra delay the converter itself adds (DSP look-ahead), seconds

    def convert(self, block: np.ndarray, settings: EngineSettings) -> np.ndarray: ...

    def reset(self) -> None: ...

    def continue_from(self, old: BlockConverter) -> None:
        """Take over `old`'s input history where compatible (a live voice switch)."""
        ...


class VoiceSource(Protocol):
    """What a user picked as a voice; see the module docstring."""

    @property
    def name(self) -> str: ...

    def check_settings(self, settings: EngineSettings) -> None:
        """Refuse settings this voice cannot honour (one-line ValueError)."""
        ...

    def make_converter(self, settings: EngineSettings, *, naive: bool = False) -> BlockConverter: ...

    def prepare(self, settings: EngineSettings) -> None:
        """Load every model `settings` can use (the chosen and the `auto` pitch estimator…). Slow; not in the worker."""
        ...

    def prepared(self, settings: EngineSettings) -> bool:
        """True when `prepare(settings)` would load nothing."""
        ...

    def load_adapters(
        self, specs: Sequence[tuple[str | os.PathLike, float]], *, force: bool = False
    ) -> list[tuple[Any, float]]:
        """Read and check adapter files (one-line error); the result goes to `apply_adapters`."""
        ...

    def apply_adapters(self, adapters: Sequence[tuple[Any, float]]) -> None:
        """Swap adapters in (already checked). Called between two blocks."""
        ...
