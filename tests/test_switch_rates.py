"""A live switch between voices of different output rates (40 kHz ⇄ 48 kHz) crossfades
like a same-rate switch instead of cutting.

The voices are pure tones that run through the whole chain as an RVC voice's output
does (SOLA's `block + crossfade + search` per block, the output port's resampler to
the device rate): the old one a sine, the new one a phase-shifted one that starts
half a unit away from where the old one is at the switch, so a cut is a step of
≈ 0.5 and a crossfade is as smooth as the tones themselves. The engine is pumped
by hand, 10 ms periods, on a virtual clock: no devices, no threads.
"""

from __future__ import annotations

import numpy as np
import pytest

from rvclora.realtime.engine import Engine
from rvclora.realtime.settings import EngineSettings
from tests.engine_sim import VoiceStub

SR_IN, SR_OUT = 16000, 48000
SETTINGS = EngineSettings(block_ms=60, crossfade_ms=20, search_ms=10, buffer_ms=60)
TONE_HZ = 50.0  # whole periods per block: the old voice is at phase 0 at every block edge


class Tone(VoiceStub):
    """A voice whose output is `0.5·sin(2π f t + phase)` at its own rate (t from its first block)."""

    def __init__(self, sr: int, phase: float) -> None:
        self.sr, self.phase = sr, phase

    @property
    def name(self) -> str:
        return f"tone {self.sr}"


    def make_converter(self, settings, *, naive=False):
        voice = self

        class Conv:
            input_sr, output_sr, uses_sola, latency_s = SR_IN, voice.sr, True, 0.0
            blocks = 0

            def convert(self, block, s):
                per_ms = voice.sr // 1000
                n = (s.block_ms + s.crossfade_ms + s.search_ms) * per_ms
                t = (self.blocks * s.block_ms * per_ms + np.arange(n)) / voice.sr
                self.blocks += 1
                return (0.5 * np.sin(2 * np.pi * TONE_HZ * t + voice.phase)).astype(np.float32)

            def reset(self): self.blocks = 0
            def continue_from(self, old): pass

        return Conv()


def _play(first: Tone, second: Tone, seconds: float = 1.2, switch_at: float = 0.6) -> np.ndarray:
    clock = [0.0]
    engine = Engine(first, SETTINGS)
    pipe = engine.attach(SR_IN, SR_OUT, threaded=False, clock=lambda: clock[0])
    out, heard = np.zeros(SR_OUT // 100, np.float32), []
    for i in range(int(seconds * 100)):
        if i == int(switch_at * 100):
            engine.switch_voice(second)
        clock[0] += 0.01
        pipe.on_input(np.zeros(SR_IN // 100, np.float32))
        engine.pump()
        pipe.out.read(out)
        heard.append(out.copy())
    assert engine.source is second and pipe.out.underflows == 0
    return np.concatenate(heard)


@pytest.mark.parametrize("old_sr, new_sr", [(40000, 48000), (48000, 40000)])
def test_a_switch_to_another_rate_crossfades(old_sr, new_sr):
    heard = _play(Tone(old_sr, 0.0), Tone(new_sr, -np.pi / 2))  # the new tone starts at −0.5
    playing = heard[np.flatnonzero(np.abs(heard) > 1e-3)[0] :]  # from the first sound on
    steps = np.abs(np.diff(playing))
    own = 0.5 * 2 * np.pi * TONE_HZ / SR_OUT  # the tones' own largest step at the device rate
    # The switch happened inside (the new voice is heard) and nothing stepped: a sin² crossfade
    # between two tones adds at most its own slope, well under half the tones' step here.
    assert steps.max() <= 1.5 * own, (steps.max(), own, int(np.argmax(steps)) / SR_OUT)
