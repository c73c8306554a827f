"""What the user can set on the live engine, validated once, in one frozen dataclass.

Every length is in milliseconds and a whole number of 10 ms synthesizer frames
(RVC's `zc` unit): the block, the crossfade and the search window are cut out of
the synthesizer's 100 frames/s output, and the context is skipped in whole frames
(`skip_head`), so a 65 ms block cannot exist. Errors are one line and name the
field, the value and the allowed range.

Nothing here needs the stream to restart. `LIVE_FIELDS` take effect at the next
block with no audible seam; `RESHAPE_FIELDS` change the size of the rolling
buffers, so the worker rebuilds them between two blocks (the pitch cache and the
crossfade restart, which may be heard as one short seam). Devices and the voice
model are not settings: changing them means a new stream or a new voice source.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .. import errors
from ..synth.constants import NOISE_SCALE
from ..synth.pitch_options import F0_METHODS, PITCH_SHIFT_RANGE

FRAME_MS = 10  # one synthesizer frame (RVC's zc) = 160 samples at 16 kHz
MAX_CROSSFADE_MS = 40  # RVC caps its real crossfade at 4 frames; longer only adds latency


class SettingsError(errors.SettingsError):
    """A setting is out of range; the message is one line for the user."""


@dataclass(frozen=True)
class EngineSettings:
    """Live-engine settings. Defaults: 100 ms algorithmic latency (60 + 30 + 10 ms)."""

    # Timing (see module docstring). Algorithmic latency = block + crossfade + search.
    block_ms: int = 60
    crossfade_ms: int = 30
    search_ms: int = 10
    context_ms: int = 1000  # left context the content encoder and attention see
    buffer_ms: int = 20  # output safety margin that absorbs compute jitter (adds latency)
    # Sound.
    threshold_db: float = -60.0  # noise gate: 10 ms frames quieter than this are muted; −60 = off (as RVC)
    pitch: float = 0.0  # semitones
    formant: float = 0.0  # semitones of formant (timbre) shift, independent of pitch
    index_rate: float = 0.0  # share of retrieved timbre from the voice's feature index
    f0_method: str = "auto"  # auto = rmvpe when rmvpe.pt is present, else pm
    rms_mix_rate: float = 1.0  # 1 = keep the model's loudness, 0 = follow the input's envelope
    input_gain_db: float = 0.0
    output_gain_db: float = 0.0
    monitor_gain_db: float = 0.0
    ceiling_db: float = -1.0  # true-peak limiter on every output: no peak above this (dBTP, -60…0)
    passthrough: bool = False  # send the input through unchanged (for checking levels and routing)
    noise_scale: float = NOISE_SCALE  # latent noise of the synthesizer (RVC's value); 0 = deterministic prior
    speaker: int = 0
    protect: float = 0.33  # voiceless frames keep this share of index-blended timbre (RVC's protect); 0.5 = off
    autotune: float = 0.0  # 0–1: how far f0 is pulled onto the nearest semitone
    auto_pitch: bool = False  # shift the user's median f0 towards the voice's typical f0 (on top of `pitch`)
    voice_f0: float = 0.0  # the voice's typical f0 in Hz (voice.json's typical_f0); 0 = unknown: auto_pitch waits
    # Neural noise suppression (optional extra `denoise`): before conversion and/or on the converted voice.
    denoise_input: bool = False
    denoise_output: bool = False
    denoise_strength: float = 1.0  # noise is lowered at most to (1 − strength) of its level; 1 = no limit

    def __post_init__(self) -> None:
        for name in ("block_ms", "crossfade_ms", "search_ms", "context_ms", "buffer_ms"):
            value = getattr(self, name)
            if isinstance(value, float) and value.is_integer():
                object.__setattr__(self, name, int(value))
        _check_frames("block_ms", self.block_ms, 20, 1000)
        _check_frames("crossfade_ms", self.crossfade_ms, 10, MAX_CROSSFADE_MS, hint="longer fades only add latency")
        _check_frames("search_ms", self.search_ms, 0, 50)
        _check_frames("context_ms", self.context_ms, 0, 10000)
        _check_range("buffer_ms", self.buffer_ms, 0, 1000)
        if self.crossfade_ms > self.block_ms:
            raise SettingsError(f"crossfade_ms {self.crossfade_ms}: must not be longer than block_ms ({self.block_ms})")
        _check_range("threshold_db", self.threshold_db, -60.0, 0.0)
        _check_range("pitch", self.pitch, *PITCH_SHIFT_RANGE)
        _check_range("formant", self.formant, -5.0, 5.0)
        _check_range("index_rate", self.index_rate, 0.0, 1.0)
        _check_range("rms_mix_rate", self.rms_mix_rate, 0.0, 1.0)
        for name in ("input_gain_db", "output_gain_db", "monitor_gain_db"):
            _check_range(name, getattr(self, name), -60.0, 24.0)
        _check_range("ceiling_db", self.ceiling_db, -60.0, 0.0)
        _check_range("noise_scale", self.noise_scale, 0.0, 2.0)
        _check_range("protect", self.protect, 0.0, 0.5)
        _check_range("autotune", self.autotune, 0.0, 1.0)
        _check_range("voice_f0", self.voice_f0, 0.0, 1100.0)
        _check_range("denoise_strength", self.denoise_strength, 0.0, 1.0)
        if self.f0_method not in F0_METHODS:
            raise SettingsError(f"f0_method {self.f0_method!r}: choose one of {', '.join(F0_METHODS)}")
        if not isinstance(self.speaker, int) or self.speaker < 0:
            raise SettingsError(f"speaker {self.speaker!r}: must be a speaker id ≥ 0")
        for name in ("passthrough", "auto_pitch", "denoise_input", "denoise_output"):
            if not isinstance(getattr(self, name), bool):
                raise SettingsError(f"{name} {getattr(self, name)!r}: must be true or false")

    # -- derived -----------------------------------------------------------------------------

    @property
    def algorithmic_latency_ms(self) -> int:
        """block + crossfade + search: how far the output lags the input before any device or buffer."""
        return self.block_ms + self.crossfade_ms + self.search_ms

    def replace(self, **changes: object) -> EngineSettings:
        """A validated copy with `changes`; unknown names are a one-line SettingsError."""
        unknown = sorted(set(changes) - FIELDS)
        if unknown:
            raise SettingsError(f"unknown setting {unknown[0]!r}; settings are: {', '.join(sorted(FIELDS))}")
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]  # names checked above; values by __post_init__

    def reshapes(self, other: EngineSettings) -> bool:
        """True when going from self to `other` changes buffer sizes (see RESHAPE_FIELDS)."""
        return any(getattr(self, f) != getattr(other, f) for f in RESHAPE_FIELDS)


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SettingsError(f"{name} {value!r}: must be a number from {lo:g} to {hi:g}")
    if not lo <= value <= hi:
        raise SettingsError(f"{name} {value:g}: must be from {lo:g} to {hi:g}")


def _check_frames(name: str, value: int, lo: int, hi: int, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(f"{name} {value!r}: must be a whole number of milliseconds, a multiple of {FRAME_MS}")
    if not lo <= value <= hi:
        extra = f" ({hint})" if hint else ""
        raise SettingsError(f"{name} {value}: must be from {lo} to {hi} ms{extra}")
    if value % FRAME_MS:
        raise SettingsError(f"{name} {value}: must be a multiple of {FRAME_MS} ms (the synthesizer's frame)")


FIELDS = frozenset(f.name for f in dataclasses.fields(EngineSettings))
# Buffer sizes depend on these: the worker rebuilds its buffers between two blocks.
RESHAPE_FIELDS = frozenset({"block_ms", "crossfade_ms", "search_ms", "context_ms"})
# Read afresh at every block: no rebuild, no seam.
LIVE_FIELDS = FIELDS - RESHAPE_FIELDS
