"""Soak: the live engine on PulseAudio test devices for half an hour (not CI).

Two engines run one after the other, each in its own process on its own private PulseAudio
server (tests/pulse_audio.py): a built-in voice ("deep") and a tiny random-weight RVC
voice (tests/rvc_fixtures.py). Each engine listens to a null sink's monitor and
plays back into the same sink, 20 dB down (a stable loop), while a test client (one
duplex stream) plays quiet noise with bursts of clicks at the start and at the end
into that sink and records its monitor. So one recording holds each click and, one
engine delay later, its echo through the engine: their distance is the delay, on one
clock, with no stream offsets to calibrate. The engine's own `measure_latency()`
(probe bursts through the engine's path) runs 30 s in and 45 s before the end.

Printed once a minute: the shown estimate, compute, underflows, skipped input,
trimmed output, drift ppm. At the end: probe-measured vs shown latency at start and
end, click-echo delay at start and end. Default settings, except the output gain
(−20 dB, for the loop) and, for the random-weight RVC voice, rms_mix_rate 0 (so its
output follows the input's loudness and the echoes can be found) with 100 ms blocks
and 300 ms context (see RVC_SETTINGS).

    python benchmarks/engine_soak.py --minutes 30
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _repo  # noqa: F401 — puts the repository root on sys.path for `tests`
import numpy as np
import sounddevice as sd

from rvclora.realtime import devices as D
from rvclora.realtime.block_converter import BuiltinSource, load_rvc_source
from rvclora.realtime.engine import Engine, EngineDevices
from rvclora.realtime.settings import EngineSettings
from tests.hubert_fixtures import tiny_hubert_config, write_hubert_file
from tests.pulse_audio import _reinit_portaudio, pulse_server
from tests.rvc_fixtures import make_voice_file

SR = 48000
# The RVC voice at the settings the device tests use: on a shared 2-core CPU the tiny model
# cannot keep up with 60 ms blocks and 1 s of context (pass --rvc-defaults to try).
RVC_SETTINGS = dict(block_ms=100, context_ms=300)
CLICKS = 10
CLICK_EVERY_S = 1.0


def burst(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = SR // 50  # 20 ms
    return (0.6 * rng.standard_normal(n) * np.hanning(n)).astype(np.float32)


class Client:
    """One duplex stream: plays `signal` (looping noise + scheduled clicks) into `sink`, records `source`."""

    def __init__(self, sink: str, source: str, seconds: float, click_times: list[float]) -> None:
        self.seconds = seconds
        self.n = int(seconds * SR)
        rng = np.random.default_rng(1)
        self.noise = (0.01 * rng.standard_normal(SR * 3)).astype(np.float32)
        self.clicks = {int(t * SR): burst(i) for i, t in enumerate(click_times)}
        self.rec: dict[int, np.ndarray] = {}  # recorded windows around the clicks only
        self.windows = [(s, s + int(1.5 * SR)) for s in self.clicks]
        self.buf = {s: np.zeros(e - s, np.float32) for s, e in self.windows}
        self.pos = 0
        self.times: list[tuple[float, float]] = []  # per callback: (ADC time, DAC time) − position/SR
        dev = D.find_device("pulse", "output")
        with D.temporary_env(D.pulse_device_env(sink=sink, source=source)):
            self.stream = sd.Stream(device=(dev.index, dev.index), samplerate=SR, channels=1, dtype="float32",
                                    callback=self._cb, latency="high")

    def _cb(self, indata, outdata, frames, t, status) -> None:
        p = self.pos
        self.times.append((t.inputBufferAdcTime - p / SR, t.outputBufferDacTime - p / SR))
        idx = np.arange(p, p + frames)
        out = self.noise[idx % len(self.noise)].copy()
        for s, b in self.clicks.items():
            if s < p + frames and s + len(b) > p:
                a = max(s, p)
                e = min(s + len(b), p + frames)
                out[a - p : e - p] += b[a - s : e - s]
        outdata[:, 0] = out
        for s, e in self.windows:
            if s < p + frames and e > p:
                a = max(s, p)
                z = min(e, p + frames)
                self.buf[s][a - s : z - s] = indata[a - p : z - p, 0]
        self.pos += frames

    def delays_ms(self, which: list[int]) -> list[float]:
        """For each click (by index): time from the click to its echo through the engine, both
        found in the one recording of the input sink's monitor (one clock, no offsets)."""
        out = []
        starts = sorted(self.clicks)
        for i in which:
            s = starts[i]
            rec = self.buf[s].astype(np.float64)
            if not rec.any():
                continue
            ref = self.clicks[s].astype(np.float64)
            win = np.ones(48) / 48
            env = np.sqrt(np.convolve(rec**2, win, "same"))
            renv = np.sqrt(np.convolve(ref**2, win, "same"))
            corr = np.correlate(env - np.median(env), renv - renv.mean(), "valid")
            direct = int(np.argmax(corr[: SR // 5]))  # the click itself, within the sink's own hop
            lo, hi = direct + SR // 25, min(len(corr), direct + int(0.9 * SR))  # before the next click
            if hi <= lo:
                continue
            echo = lo + int(np.argmax(corr[lo:hi]))
            out.append(1000.0 * (echo - direct) / SR)
        return out


def run_one(voice: str, seconds: float) -> None:
    """One voice on its own private Pulse server (own process: no shared GIL with the other voice)."""
    with tempfile.TemporaryDirectory(prefix="rvclora-soak-") as tmp, pulse_server(tmp) as srv:
        for name in ("inA", "outA"):
            srv.pactl("load-module", "module-null-sink", f"sink_name={name}", "format=float32le", f"rate={SR}",
                      "channels=1", "channel_map=mono")
        _reinit_portaudio()
        if voice == "builtin":
            label, source, settings = "builtin deep", BuiltinSource("deep"), EngineSettings()
        else:
            d = Path(tmp)
            model = make_voice_file(d, version="v1", sr=40000, f0=True)
            hubert = write_hubert_file(d / "hubert.pt", tiny_hubert_config("v1"))
            source = load_rvc_source(model, hubert=hubert, rmvpe=d / "absent.pt")
            label, settings = "tiny RVC", EngineSettings(rms_mix_rate=0.0, f0_method="pm", **RVC_SETTINGS)
        print(f"{label}: settings {settings}", flush=True)
        start_clicks = [5.0 + i * CLICK_EVERY_S for i in range(CLICKS)]
        end_clicks = [seconds - 15.0 + i * CLICK_EVERY_S for i in range(CLICKS)]
        client = Client("inA", "inA.monitor", seconds + 5, start_clicks + end_clicks)
        # The engine plays back into the sink it listens to (20 dB down: the loop stays stable), so
        # its own latency probe and the clicks' echoes both go round one loop.
        settings = settings.replace(output_gain_db=-20.0)
        engine = Engine(source, settings, EngineDevices(input="inA.monitor", output="inA", samplerate=SR))
        client.stream.start()
        time.sleep(0.5)
        engine.start()
        t0 = time.monotonic()
        shown_start = None
        probes = []
        time.sleep(30.0)
        probes.append(engine.measure_latency())
        print(f"{label} at start: {probes[-1].summary()}", flush=True)
        while time.monotonic() - t0 < seconds - 45:
            time.sleep(min(60.0, seconds - 45 - (time.monotonic() - t0)))
            el = time.monotonic() - t0
            st = engine.stats
            if shown_start is None:
                shown_start = st.latency_ms
            print(f"[{el / 60:5.1f} min] {label:12s} shown {st.latency_ms:6.1f} ms | p50 {st.compute_ms_p50:5.1f} "
                  f"p95 {st.compute_ms_p95:5.1f} ms | underflows {st.underflows} skipped {st.skipped_input} "
                  f"trimmed {st.trimmed_output} | ppm {st.drift_ppm:+.1f} corr {st.drift_corrections} | "
                  f"xruns {st.input_xruns}/{st.output_xruns} | {st.state}{' duplex' if st.duplex else ''}", flush=True)
        probes.append(engine.measure_latency())
        print(f"{label} at end: {probes[-1].summary()}", flush=True)
        time.sleep(max(0.0, seconds + 3.0 - (time.monotonic() - t0)))
        st = engine.stats
        engine.stop()
        client.stream.stop()
        client.stream.close()
        events = [(e.kind, e.message[:90]) for e in engine.drain_events() if e.kind not in ("started", "stopped")]
        first = [x for x in client.delays_ms(list(range(CLICKS)))]
        last = [x for x in client.delays_ms(list(range(CLICKS, 2 * CLICKS)))]
        med = lambda v: float(np.median(v)) if v else float("nan")  # noqa: E731 — a one-line helper local to this function
        spread = lambda v: float(np.ptp(v)) if v else float("nan")  # noqa: E731 — a one-line helper local to this function
        m0, m1 = probes
        print(f"SUMMARY {label}: probe through the engine path: start {m0.measured_ms:.1f} ms "
              f"(jitter {m0.jitter_ms:.1f}, shown {m0.estimated_ms:.1f}, {'valid' if m0.valid else m0.reason}), "
              f"end {m1.measured_ms:.1f} ms (jitter {m1.jitter_ms:.1f}, shown {m1.estimated_ms:.1f}, "
              f"{'valid' if m1.valid else m1.reason})", flush=True)
        print(f"SUMMARY {label}: click echoes: delay at start {med(first):.1f} ms (spread {spread(first):.1f}, {len(first)} clicks), "
              f"at end {med(last):.1f} ms (spread {spread(last):.1f}, {len(last)} clicks); "
              f"shown at 1 min {shown_start or float('nan'):.1f} ms, at end {st.latency_ms:.1f} ms; "
              f"underflows {st.underflows}, skipped {st.skipped_input}, trimmed {st.trimmed_output}, "
              f"ppm {st.drift_ppm:+.1f}, corrections {st.drift_corrections}, blocks {st.blocks}, "
              f"compute p50/p95 {st.compute_ms_p50:.1f}/{st.compute_ms_p95:.1f} ms, xruns "
              f"{st.input_xruns}/{st.output_xruns}, events: {events}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--voice", choices=("both", "builtin", "rvc"), default="both")
    ap.add_argument("--rvc-defaults", action="store_true", help="run the RVC voice at default block/context too")
    args = ap.parse_args()
    if args.rvc_defaults:
        RVC_SETTINGS.clear()
    if args.voice != "both":
        run_one(args.voice, args.minutes * 60)
        return
    # Each voice in its own process, one after the other: on a shared 2-core machine two
    # engines at once measure the CPU scheduler, not the engine.
    cmd = [sys.executable, __file__, "--minutes", str(args.minutes)] + (["--rvc-defaults"] if args.rvc_defaults else [])
    for v in ("builtin", "rvc"):
        subprocess.run(cmd + ["--voice", v], check=False)


if __name__ == "__main__":
    main()
