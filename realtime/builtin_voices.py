"""Built-in voices: pitch and formant presets that need no model files.

A new user should hear something on the first run, before any RVC model is
installed. These voices run a streaming phase-vocoder pitch shifter with a fixed
latency of one analysis window (~21 ms at 48 kHz).

Why not pedalboard's PitchShift (pedalboard 0.9.26, Rubber Band): measured here,
streaming use (``process(..., reset=False)`` block by block) returns variable-length
output withheld for about 1 s and then only zeros (spotify/pedalboard#415, fix
pending in #486); ``pedalboard.time_stretch`` is one-shot and costs 23 ms (HQ) to
60–77 ms (with a formant-preserving stretch) per 0.1–0.2 s window, too slow for
20–40 ms blocks on two cores. So the shifter is ours, small and numpy-only:

- STFT, periodic Hann analysis and synthesis windows, hop = n_fft/4;
- each bin's true frequency from its phase advance; bins moved to k·α with their
  frequencies scaled by α, phases accumulated (the classic bin-shifting vocoder);
- formants: a cepstral spectral envelope E; after shifting, bins are re-weighted by
  E(j/β)/E(j/α), so the envelope moves by β = 2^(formant/12) whatever the pitch does
  (β = α is the "chipmunk" resampling sound, β = 1 keeps the speaker's formants).

Latency is exactly ``n_fft`` samples for every setting, including passthrough (the
identity path reconstructs the input exactly), so switching presets or moving the
pitch live never shifts the timing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .ring_buffer import RingBuffer


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


def _fft_size(sr: int) -> int:
    # ~20 ms or a bit more: long enough to resolve a low voice's harmonics
    # (47 Hz bins at 48 kHz), short enough to keep the latency small.
    return 1 << math.ceil(math.log2(sr * 0.02))


class DSPVoice:
    """Streaming pitch/formant shifter; mono float32 blocks of any length in, same length out.

    ``pitch`` and ``formant`` (semitones, live via ``set_pitch``/``set_formant``) are
    added to the preset's own values.
    """

    def __init__(self, name: str, sr: int, pitch: float = 0.0, formant: float = 0.0):
        if name not in BUILTIN_VOICES:
            raise ValueError(f"unknown built-in voice {name!r}; choose one of: {', '.join(BUILTIN_VOICES)}")
        self.name = name
        self.preset = BUILTIN_VOICES[name]
        self.sr = int(sr)
        self.n_fft = _fft_size(self.sr)
        self.hop = self.n_fft // 4
        self.latency = self.n_fft  # samples, fixed
        self.pitch = float(pitch)
        self.formant = float(formant)

        n, nb = self.n_fft, self.n_fft // 2 + 1
        self._win = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n))
        # Hann analysis × Hann synthesis at hop n/4 overlap-adds to 1.5.
        self._ola_gain = 1.0 / 1.5
        self._bins = np.arange(nb, dtype=np.float64)
        self._expected = 2 * np.pi * self.hop * self._bins / n  # phase advance per hop of each bin centre
        self._n_cep = max(8, int(self.sr * 0.0015))  # lifter: envelope detail coarser than a 1.5 ms period
        self._in = np.zeros(n)
        self._acc = np.zeros(n)
        self._last_phase = np.zeros(nb)
        self._sum_phase = np.zeros(nb)
        self._frame_out = np.zeros(self.hop, np.float32)
        self._fifo = RingBuffer(4 * self.hop)
        self.reset()

    # -- settings ----------------------------------------------------------------
    @property
    def effective_pitch(self) -> float:
        return self.preset.pitch + self.pitch

    @property
    def effective_formant(self) -> float:
        return self.preset.formant + self.formant

    def set_pitch(self, semitones: float) -> None:
        self.pitch = float(semitones)

    def set_formant(self, semitones: float) -> None:
        self.formant = float(semitones)

    def reset(self) -> None:
        self._in[:] = 0.0
        self._acc[:] = 0.0
        self._last_phase[:] = 0.0
        self._sum_phase[:] = 0.0
        self._pending = 0
        self._fifo.clear()
        # One hop of silence up front: with it every call can return as many samples
        # as it got, and the delay is exactly n_fft (n_fft − hop of window + one hop).
        self._fifo.write(np.zeros(self.hop, np.float32))

    # -- streaming ---------------------------------------------------------------
    def process(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block, dtype=np.float32).reshape(-1)
        out = np.empty(len(x), np.float32)
        n, hop = self.n_fft, self.hop
        pos = 0
        while pos < len(x):
            take = min(hop - self._pending, len(x) - pos)
            start = n - hop + self._pending
            self._in[start:start + take] = x[pos:pos + take]
            self._pending += take
            if self._pending == hop:
                self._frame()
                self._pending = 0
            self._fifo.read_into(out[pos:pos + take])
            pos += take
        return out

    def _envelope(self, mag: np.ndarray) -> np.ndarray:
        """Log spectral envelope by cepstral liftering."""
        cep = np.fft.irfft(np.log(mag + 1e-9), self.n_fft)
        cep[self._n_cep: self.n_fft - self._n_cep + 1] = 0.0
        return np.fft.rfft(cep).real

    def _frame(self) -> None:
        n, hop = self.n_fft, self.hop
        spec = np.fft.rfft(self._in * self._win)
        phase = np.angle(spec)
        alpha = 2.0 ** (self.effective_pitch / 12.0)
        beta = 2.0 ** (self.effective_formant / 12.0)
        if alpha == 1.0 and beta == 1.0:
            # Exact path: the windowed frames overlap-add back to the input.
            out_spec = spec
            self._sum_phase[:] = phase  # a later shift continues from the true phases
        else:
            mag = np.abs(spec)
            dphi = phase - self._last_phase - self._expected
            dphi -= 2 * np.pi * np.round(dphi / (2 * np.pi))
            true_bin = self._bins + dphi * n / (2 * np.pi * hop)
            nb = len(mag)
            target = np.rint(self._bins * alpha).astype(np.intp)
            ok = target < nb
            smag = np.bincount(target[ok], weights=mag[ok], minlength=nb)
            sfreq = np.zeros(nb)
            sfreq[target[ok]] = true_bin[ok] * alpha
            if beta != alpha:
                env = self._envelope(mag)
                # Shifting moved the envelope with the harmonics (to j/α); put it at j/β.
                gain = np.interp(self._bins / beta, self._bins, env) - np.interp(self._bins / alpha, self._bins, env)
                smag *= np.exp(np.clip(gain, -4.6, 2.3))  # at most -40/+20 dB: no blow-ups in noise
            self._sum_phase += 2 * np.pi * hop / n * sfreq
            np.mod(self._sum_phase, 2 * np.pi, out=self._sum_phase)
            out_spec = smag * np.exp(1j * self._sum_phase)
        self._last_phase[:] = phase
        frame = np.fft.irfft(out_spec, n) * self._win
        self._acc += frame * self._ola_gain
        self._frame_out[:] = self._acc[:hop]
        self._fifo.write(self._frame_out)
        # Slide the analysis window and the overlap-add accumulator by one hop.
        self._in[:-hop] = self._in[hop:]
        self._acc[:-hop] = self._acc[hop:]
        self._acc[-hop:] = 0.0


def make_builtin_voice(name: str, sr: int, pitch: float = 0.0, formant: float = 0.0) -> DSPVoice:
    """A built-in voice by preset name; ``pitch``/``formant`` add to the preset's."""
    return DSPVoice(name, sr, pitch=pitch, formant=formant)
