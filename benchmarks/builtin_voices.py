"""Built-in voices: pitch accuracy on real speech, CPU per block and delay, per preset.

For each preset and each test voice (pytest-audioeval speech played at 85, 104, 120
and 200 Hz, plus one 262 Hz speaker as recorded), the output's median f0 by Praat's
autocorrelation pitch against the target (the input's median f0 times the preset's
ratio); the CPU time of one 60 ms block at 48 kHz (this thread's CPU time, median and
95th percentile over all the speech); and the delay: the one the voice reports and the one measured from where
a tone burst's loudness envelope lands.

    python benchmarks/builtin_voices.py [--block-ms 60] [--rubberband]

``--rubberband`` runs the same measures on Rubber Band's real-time stretcher through
``pylibrb`` (GPL, not a dependency: install it by hand to compare).
"""

from __future__ import annotations

import argparse
import time

import _repo  # noqa: F401 — puts the repository root on sys.path for `tests`
import numpy as np
import soundfile as sf
import soxr

from rvclora.realtime.builtin_voices import BUILTIN_VOICES, make_builtin_voice
from tests.conftest import speech_path
from tests.speech_pitch import median_f0, speech_at

SR = 48000
VOICES = [
    (85.0, "pl/pangrama.wav"),
    (104.0, "en/quick_brown_fox.wav"),
    (120.0, "en/counting.wav"),
    (200.0, "en/quick_brown_fox.wav"),
    (None, "ja/pangrama.wav"),  # as recorded
]


def _speech(f0: float | None, name: str) -> tuple[np.ndarray, float]:
    if f0 is None:
        audio, sr = sf.read(speech_path(name), dtype="float32")
        audio = soxr.resample(audio, sr, SR).astype(np.float32)
        return audio, median_f0(audio, SR, 200.0)
    return speech_at(f0, SR, name)


def _run(process, x: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Output, and the CPU time of each block (this thread's, so other processes on a
    shared machine inflate it less than wall time)."""
    out, times = [], []
    for i in range(0, len(x), block):
        t = time.thread_time()
        out.append(process(x[i:i + block]))
        times.append(time.thread_time() - t)
    return np.concatenate(out), np.array(times)


def _measured_delay(make, block: int) -> int:
    """Lag (samples) at which the output's loudness envelope best matches a 220 Hz burst's."""
    x = np.zeros(SR, np.float32)
    n = SR // 4
    x[n: 2 * n] = 0.5 * np.sin(2 * np.pi * 220.0 * np.arange(n) / SR)
    y, _ = _run(make().process, x, block)

    def env(z):
        return np.sqrt(np.convolve(z.astype(np.float64) ** 2, np.ones(480) / 480, "same"))

    ex, ey = env(x), env(y)
    lags = np.arange(0, SR // 5)
    return int(lags[np.argmax([np.dot(ex[: len(ex) - k], ey[k:]) for k in lags])])


class _RubberBand:
    """pylibrb's real-time stretcher behind the same process() as a built-in voice:
    output held back by ``latency`` samples, the most the stretcher was ever behind
    on a probe run (so it never runs dry on the same material)."""

    def __init__(self, pitch: float, formant: float, latency: int = 0):
        import pylibrb  # noqa: PLC0415 — optional comparison: the benchmark runs without it
        from pylibrb import Option  # noqa: PLC0415 — optional comparison: the benchmark runs without it

        opts = (Option.PROCESS_REALTIME | Option.ENGINE_FASTER | Option.PitchHighConsistency
                | Option.FORMANT_PRESERVED | Option.THREADING_NEVER)
        self._s = pylibrb.RubberBandStretcher(SR, 1, opts, 1.0, 2 ** (pitch / 12))
        if formant != 0.0:
            self._s.formant_scale = 2 ** (formant / 12)
        pad = self._s.get_preferred_start_pad()
        self._s.process(np.zeros((1, pad), np.float32))
        self._drop = self._s.get_start_delay()
        self._made: list[np.ndarray] = []
        self._n_in = self._n_out = 0
        self.latency = latency
        self.behind = 0

    def process(self, block: np.ndarray) -> np.ndarray:
        self._s.process(block[None, :].astype(np.float32))
        got = self._s.available()
        if got > 0:
            y = self._s.retrieve(got)[0]
            k = min(self._drop, len(y))
            self._drop -= k
            self._made.append(y[k:])
            self._n_out += len(y) - k
        start = self._n_in - self.latency
        self._n_in += len(block)
        self.behind = max(self.behind, self._n_in - self._n_out)
        made = np.concatenate(self._made) if self._made else np.zeros(0, np.float32)
        self._made = [made]
        out = np.zeros(len(block), np.float32)
        lo, hi = max(start, 0), min(start + len(block), len(made))
        if hi > lo:
            out[lo - start: hi - start] = made[lo:hi]
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--block-ms", type=float, default=60.0)
    ap.add_argument("--rubberband", action="store_true", help="also measure Rubber Band (needs pylibrb)")
    args = ap.parse_args()
    block = int(SR * args.block_ms / 1000)
    voices = [_speech(f0, name) for f0, name in VOICES]
    print(f"block {block} samples ({args.block_ms:g} ms) at {SR} Hz; f0 error = Praat median / target - 1")
    print("voices: " + ", ".join(f"{name} at {f_in:.0f} Hz" for (_, name), (_, f_in) in zip(VOICES, voices)))

    engines = [("ours", lambda p: make_builtin_voice(p, SR))]
    if args.rubberband:
        def rubber(p):
            preset = BUILTIN_VOICES[p]
            probe = _RubberBand(preset.pitch, preset.formant)
            _run(probe.process, voices[0][0], block)
            return _RubberBand(preset.pitch, preset.formant, latency=probe.behind)
        engines.append(("rubberband", rubber))

    for label, make in engines:
        print(f"\n== {label}")
        print(f"{'preset':12s} {'st':>5s}  " + "  ".join(f"{f_in:>5.0f}Hz: target  got    err " for _, f_in in voices)
              + "  cpu med/p95 ms  delay reported/measured ms")
        for name, preset in BUILTIN_VOICES.items():
            cells, times = [], []
            for x, f_in in voices:
                target = f_in * 2 ** (preset.pitch / 12)
                y, t = _run(make(name).process, x, block)
                got = median_f0(y, SR, target)
                times.append(t)
                cells.append(f"{target:13.1f} {got:6.1f} {100 * (got / target - 1):+5.1f}%")
            t = np.concatenate(times) * 1e3
            v = make(name)
            delay = _measured_delay(lambda make=make, name=name: make(name), block)
            print(f"{name:12s} {preset.pitch:+5.0f}  " + "  ".join(cells)
                  + f"  {np.median(t):5.2f}/{np.quantile(t, 0.95):5.2f}"
                  + f"  {1e3 * v.latency / SR:6.1f}/{1e3 * delay / SR:6.1f}")


if __name__ == "__main__":
    main()
