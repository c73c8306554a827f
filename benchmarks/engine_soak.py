"""Soak: the live engine on PulseAudio test devices for half an hour (not CI).

Two engines run one after the other (or one, with --voice), each in its own process on
its own private PulseAudio server (tests/pulse_audio.py): a built-in voice ("deep") and
a tiny random-weight RVC voice (tests/rvc_fixtures.py). Each engine listens to a null
sink's monitor and plays back into the same sink, 20 dB down (a stable loop), while a
test client (one duplex stream) plays quiet noise into that sink and records its
monitor, with a train of clicks shortly after the start and another before the end.
So one recording holds each click and, one engine delay later, its echo through the
engine: their distance is the delay, on one clock, with no stream offsets to calibrate.
Each echo is looked for within ECHO_SPAN_MS of the median of its train's strongest
echo-like peaks; a click whose own strongest peak lies farther off (an underflow's
fade-in, the engine's output of the noise) is counted as "far" instead of widening
the spread by seconds.
The clicks are placed on the client's own timeline and the run waits until it has
played and recorded them (under load a stream loses time to xruns, so clicks placed by
the wall clock near the end were never played). After each click train the engine's
own `measure_latency()` (probe bursts through the engine's path) runs, retried while
invalid.

Printed once a minute: the shown estimate, compute, underflows, skipped input, trimmed
output, drift ppm, the load average. At the end: delay at start and end by click echo
and by probe, the estimate shown meanwhile, and the counters. Default settings, except
the output gain (−20 dB, for the loop) and, for the random-weight RVC voice,
rms_mix_rate 0 (so its output follows the input's loudness and the echoes can be found)
and the pm pitch estimator (no rmvpe.pt in a test); --rvc-block-ms / --rvc-context-ms
for a block it keeps up with.

    python benchmarks/engine_soak.py --minutes 30 [--voice builtin|rvc]
"""

from __future__ import annotations

import argparse
import contextlib
import os
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
CLICKS = 10
CLICK_EVERY_S = 2.5  # room for an echo up to 2.3 s late (a loaded machine's delay) before the next click
WINDOW_S = CLICK_EVERY_S
ECHO_SPAN_MS = 150  # an echo is looked for this close to the median of the train's echoes


def burst(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = SR // 50  # 20 ms
    return (0.6 * rng.standard_normal(n) * np.hanning(n)).astype(np.float32)


class Client:
    """One duplex stream: plays `signal` (looping noise + scheduled clicks) into `sink`, records `source`."""

    def __init__(self, sink: str, source: str) -> None:
        rng = np.random.default_rng(1)
        self.noise = (0.01 * rng.standard_normal(SR * 3)).astype(np.float32)
        self.clicks: dict[int, np.ndarray] = {}  # start (client samples) → click
        self.windows: list[tuple[int, int]] = []
        self.buf: dict[int, np.ndarray] = {}  # recorded windows around the clicks only
        self.pos = 0
        self.xruns = 0
        self.restarts = 0
        self.sink, self.source = sink, source
        self._seen = (0, time.monotonic())
        self.stream = self._open()

    def _open(self) -> sd.Stream:
        dev = D.find_device("pulse", "output")
        with D.temporary_env(D.pulse_device_env(sink=self.sink, source=self.source)):
            return sd.Stream(device=(dev.index, dev.index), samplerate=SR, channels=1, dtype="float32",
                             callback=self._cb, latency="high")

    def revive(self) -> None:
        """Reopen the stream if it stopped moving for a second. PortAudio's ALSA poll sometimes fails
        on the pulse plugin's capture side and ends the stream's thread (the server then shows both
        halves corked); without this the clicks after it were never played."""
        pos, then = self._seen
        now = time.monotonic()
        if self.pos != pos:
            self._seen = (self.pos, now)
        elif now - then > 1.0:
            with contextlib.suppress(sd.PortAudioError):
                self.stream.close()
            self.stream = self._open()
            self.stream.start()
            self.restarts += 1
            self._seen = (self.pos, now)

    def schedule(self, first_in_s: float, count: int = CLICKS) -> list[int]:
        """Clicks every CLICK_EVERY_S from `first_in_s` after the client's current position. On its own
        timeline: under load the stream loses time to xruns, so the wall clock runs ahead of it (which
        is why clicks placed at wall-clock times near the end of a run were never played)."""
        base = self.pos + int(first_in_s * SR)
        starts = [base + int(i * CLICK_EVERY_S * SR) for i in range(count)]
        for i, st in enumerate(starts):
            self.buf[st] = np.zeros(int(WINDOW_S * SR), np.float32)
            self.clicks[st] = burst(len(self.clicks) + i)
            self.windows.append((st, st + int(WINDOW_S * SR)))
        return starts

    def wait_past(self, starts: list[int], timeout: float) -> bool:
        """Wait until the client has recorded the windows of `starts`; False on timeout."""
        end = max(starts) + int(WINDOW_S * SR)
        deadline = time.monotonic() + timeout
        while self.pos < end and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.pos >= end

    def _cb(self, indata, outdata, frames, t, status) -> None:
        p = self.pos
        if status:
            self.xruns += 1
        idx = np.arange(p, p + frames)
        out = self.noise[idx % len(self.noise)].copy()
        for s, b in list(self.clicks.items()):
            if s < p + frames and s + len(b) > p:
                a = max(s, p)
                e = min(s + len(b), p + frames)
                out[a - p : e - p] += b[a - s : e - s]
        outdata[:, 0] = out
        for s, e in list(self.windows):
            if s < p + frames and e > p:
                a = max(s, p)
                z = min(e, p + frames)
                self.buf[s][a - s : z - s] = indata[a - p : z - p, 0]
        self.pos += frames

    def delays_ms(self, starts: list[int]) -> tuple[list[float], int]:
        """For each click: time from the click to its echo through the engine, both found in the
        one recording of the input sink's monitor (one clock, no offsets). Returns the delays and
        how many clicks had their strongest echo-like peak far (over ECHO_SPAN_MS) from the others'
        median: such a peak is something else (an underflow's fade-in, the engine's output of the
        noise), so each echo is taken within ECHO_SPAN_MS of that median instead."""
        found = []  # (correlation from the click on, the click's index in it)
        for s in starts:
            rec = self.buf[s].astype(np.float64)
            if not rec.any():
                continue
            ref = self.clicks[s].astype(np.float64)
            win = np.ones(48) / 48
            env = np.sqrt(np.convolve(rec**2, win, "same"))
            renv = np.sqrt(np.convolve(ref**2, win, "same"))
            corr = np.correlate(env - np.median(env), renv - renv.mean(), "valid")
            # The click itself is the strongest (its echo comes back 20 dB down); the client's own
            # capture may lag under load, so it is looked for anywhere in the window.
            direct = int(np.argmax(corr))
            if len(corr) > direct + SR // 25:
                found.append((corr[direct:], direct))
        free = [SR // 25 + int(np.argmax(c[SR // 25 :])) for c, _ in found]
        if not free:
            return [], 0
        middle = float(np.median(free))
        span = int(ECHO_SPAN_MS * SR / 1000)
        out, far = [], 0
        for (c, _), lag in zip(found, free):
            lo, hi = max(SR // 25, int(middle) - span), min(len(c), int(middle) + span)
            if abs(lag - middle) > span:
                far += 1
            if hi > lo:
                out.append(1000.0 * (lo + int(np.argmax(c[lo:hi]))) / SR)
        return out, far


def probe(engine: Engine, tries: int = 3):
    """The engine's own latency measurement; retried (up to `tries`) while it comes back invalid."""
    for _ in range(tries):
        m = engine.measure_latency()
        if m.valid:
            break
    return m


def click_train(client: Client, engine: Engine, timeout: float) -> tuple[list[float], list[float], int]:
    """CLICKS clicks from 1 s ahead on the client's timeline; returns (their echo delays, the shown
    estimate sampled meanwhile, how many echoes were far from the others). Empty delays when the
    client could not play them in `timeout`."""
    starts = client.schedule(1.0)
    shown = []
    deadline = time.monotonic() + timeout
    while client.pos < max(starts) + int(WINDOW_S * SR) and time.monotonic() < deadline:
        shown.append(engine.stats.latency_ms)
        time.sleep(0.5)
        client.revive()
    done = client.wait_past(starts, 0.1)
    delays, far = client.delays_ms(starts) if done else ([], 0)
    return delays, shown, far


def med(v) -> float:
    return float(np.median(v)) if len(v) else float("nan")


def spread(v) -> float:
    return float(np.ptp(v)) if len(v) else float("nan")


def run_one(voice: str, seconds: float, rvc_settings: dict, duplex: bool = True) -> None:
    """One voice on its own private Pulse server (own process: no shared GIL with the other voice)."""
    with tempfile.TemporaryDirectory(prefix="rvclora-soak-") as tmp, pulse_server(tmp) as srv:
        srv.pactl("load-module", "module-null-sink", "sink_name=inA", "format=float32le", f"rate={SR}",
                  "channels=1", "channel_map=mono")
        _reinit_portaudio()
        if voice == "builtin":
            label, source, settings = "builtin deep", BuiltinSource("deep"), EngineSettings()
        else:
            d = Path(tmp)
            model = make_voice_file(d, version="v1", sr=40000, f0=True)
            hubert = write_hubert_file(d / "hubert.pt", tiny_hubert_config("v1"))
            source = load_rvc_source(model, hubert=hubert, rmvpe=d / "absent.pt")
            label = f"tiny RVC {rvc_settings.get('block_ms', EngineSettings().block_ms)} ms"
            settings = EngineSettings(rms_mix_rate=0.0, f0_method="pm", **rvc_settings)
        # The engine plays back into the sink it listens to (20 dB down: the loop stays stable), so
        # its own latency probe and the clicks' echoes both go round one loop.
        settings = settings.replace(output_gain_db=-20.0)
        label += "" if duplex else " separate"
        print(f"{label}: {settings}; load average {os.getloadavg()}", flush=True)
        client = Client("inA", "inA.monitor")
        engine = Engine(source, settings, EngineDevices(input="inA.monitor", output="inA", samplerate=SR, duplex=duplex))
        client.stream.start()
        time.sleep(0.5)
        engine.start()
        t0 = time.monotonic()
        loads = [os.getloadavg()[0]]
        while engine.pipeline.out.played == 0 and time.monotonic() - t0 < 20:
            time.sleep(0.1)
        time.sleep(5.0)  # settle (Pulse adjusts its buffers in the first seconds)
        first, shown_first, far_first = click_train(client, engine, 90)
        m0 = probe(engine)
        st0 = engine.stats
        print(f"{label} at start: clicks {med(first):.1f} ms (spread {spread(first):.1f}, {len(first)}, "
              f"{far_first} far), shown "
              f"{med(shown_first):.1f}; probe: {m0.summary()}", flush=True)
        next_line = 60.0
        while time.monotonic() - t0 < seconds - 40:
            time.sleep(1.0)
            client.revive()
            el = time.monotonic() - t0
            if el < next_line:
                continue
            next_line += 60.0
            loads.append(os.getloadavg()[0])
            st = engine.stats
            out = engine.pipeline.out
            books = f"seg {out.books.segments} "
            room = f"room {1000 * out.drift.lag / out.sr:.0f} ms | "  # the upstream queue's peak the target keeps
            print(f"[{el / 60:5.1f} min] {label:12s} shown {st.latency_ms:6.1f} ms | p50 {st.compute_ms_p50:5.1f} "
                  f"p95 {st.compute_ms_p95:5.1f} ms | underflows {st.underflows} skipped {st.skipped_input} "
                  f"trimmed {st.trimmed_output} | ppm {st.drift_ppm:+.1f} {books}corr {st.drift_corrections} | {room}"
                  f"xruns {st.input_xruns}/{st.output_xruns} client {client.xruns}/{client.restarts} restarts | {st.state}"
                  f"{' duplex' if st.duplex else ''} | load {loads[-1]:.1f}", flush=True)
        last, shown_last, far_last = click_train(client, engine, 90)
        m1 = probe(engine)
        st = engine.stats
        loads.append(os.getloadavg()[0])
        engine.stop()
        client.stream.stop()
        client.stream.close()
        events = [(e.kind, e.message[:90]) for e in engine.drain_events()
                  if e.kind not in ("started", "stopped", "latency")]
        minutes = (time.monotonic() - t0) / 60

        def verdict(m) -> str:
            return (f"{m.measured_ms:.1f} ms (jitter {m.jitter_ms:.1f}, shown {m.estimated_ms:.1f})" if m.valid
                    else f"invalid: {m.reason}")

        print(f"SUMMARY {label} ({minutes:.1f} min): delay at start: clicks {med(first):.1f} ms (spread {spread(first):.1f}, "
              f"{len(first)} clicks, {far_first} far), probe {verdict(m0)}, shown {med(shown_first):.1f} ms during the clicks; "
              f"at end: clicks {med(last):.1f} ms (spread {spread(last):.1f}, {len(last)} clicks, {far_last} far), probe {verdict(m1)}, "
              f"shown {med(shown_last):.1f} ms", flush=True)
        print(f"SUMMARY {label}: underflows {st.underflows}, skipped {st.skipped_input} samples "
              f"({1000 * st.skipped_input / SR:.0f} ms), trimmed {st.trimmed_output} samples, ppm {st.drift_ppm:+.1f}, "
              f"corrections {st.drift_corrections}, blocks {st.blocks} (at start {st0.blocks}), compute p50/p95 "
              f"{st.compute_ms_p50:.1f}/{st.compute_ms_p95:.1f} ms per {st.block_ms:.0f} ms block, overruns "
              f"{st.overruns}, device xruns {st.input_xruns}/{st.output_xruns}, client xruns {client.xruns} (stream reopened {client.restarts}×), "
              f"duplex {st.duplex}; 1-min load average min/median/max {min(loads):.1f}/{med(loads):.1f}/"
              f"{max(loads):.1f} on {os.cpu_count()} CPUs; events: {events}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--voice", choices=("both", "builtin", "rvc"), default="both")
    ap.add_argument("--rvc-block-ms", type=int, help="RVC voice: block length (default: the engine's default)")
    ap.add_argument("--rvc-context-ms", type=int, help="RVC voice: context (default: the engine's default)")
    ap.add_argument("--separate", action="store_true", help="separate input and output streams even where one "
                    "duplex stream could open (the engine's default is duplex)")
    args = ap.parse_args()
    rvc = {k: v for k, v in (("block_ms", args.rvc_block_ms), ("context_ms", args.rvc_context_ms)) if v}
    if args.voice != "both":
        run_one(args.voice, args.minutes * 60, rvc, duplex=not args.separate)
        return
    # Each voice in its own process, one after the other: on a shared 2-core machine two
    # engines at once measure the CPU scheduler, not the engine.
    cmd = [sys.executable, __file__, "--minutes", str(args.minutes)]
    cmd += [a for k, v in rvc.items() for a in (f"--rvc-{k.replace('_', '-')}", str(v))]
    cmd += ["--separate"] if args.separate else []
    for v in ("builtin", "rvc"):
        subprocess.run(cmd + ["--voice", v], check=False)


if __name__ == "__main__":
    main()
