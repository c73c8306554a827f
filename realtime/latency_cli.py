"""`rvclora latency`: end-to-end latency measured through the live engine's own path."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ..errors import AudioDeviceError, UsageError
from .settings import EngineSettings

_D = EngineSettings()


def latency_arg(text: str) -> str | float:
    if text in ("auto", "low", "high"):
        return text
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--latency {text!r}: use auto, low, high or a number of seconds") from None
    if not 0 < value < 2:
        raise UsageError(f"--latency {text}: must be between 0 and 2 seconds")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `rvclora latency`; its one-line help is in the front door's command table."""
    p.description = (
        "Start the live engine between INPUT and OUTPUT (same streams, rings, safety margin and drift "
        "correction as `rvclora run`), play probe bursts through it in place of the voice, find them in what INPUT "
        "records, and print the measured delay beside the engine's own estimate. Loop the output back to the input "
        "first (a cable, or a virtual sink and its monitor)."
    )
    p.add_argument("--input", "-i", help="device that hears the probe (default: system default input)")
    p.add_argument("--output", "-o", help="device that plays the probe (default: system default output)")
    p.add_argument("--samplerate", type=int, help="open both devices at this rate (default: each device's own)")
    p.add_argument("--latency", default="auto", help="device buffer size as for `rvclora run` (default auto)")
    p.add_argument("--builtin", default="passthrough", metavar="NAME",
                   help="the voice whose timing is measured (default passthrough; the probe replaces its sound)")
    p.add_argument("--tries", type=int, default=1, help="valid measurements (4 bursts each; up to 3 disturbed ones are "
                   "taken again); the median is reported (default 1)")
    p.add_argument("--json", action="store_true", help="print JSON")
    for name in ("block_ms", "crossfade_ms", "search_ms", "buffer_ms"):
        flag = "--" + name.replace("_", "-")
        p.add_argument(flag, type=int, default=getattr(_D, name), help=f"(default {getattr(_D, name)})")
    p.set_defaults(func=cmd_latency)


def cmd_latency(args: argparse.Namespace) -> int:
    from .block_converter import BuiltinSource
    from .engine import Engine, EngineDevices

    if args.tries < 1:
        raise UsageError("--tries must be at least 1")
    settings = EngineSettings(block_ms=args.block_ms, crossfade_ms=args.crossfade_ms, search_ms=args.search_ms,
                              buffer_ms=args.buffer_ms)
    devices = EngineDevices(args.input, args.output, None, args.samplerate, latency_arg(args.latency))
    engine = Engine(BuiltinSource(args.builtin), settings, devices)
    engine.start()
    try:
        deadline = time.monotonic() + 10.0
        while engine.stats.state == "running" and engine.pipeline.out.played == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        # A try is invalid when audio was skipped or starved meanwhile (a busy machine): up to three more.
        results: list[Any] = []  # LatencyMeasurement (the engine module loads only when the command runs)
        while sum(m.valid for m in results) < args.tries and len(results) < args.tries + 3:
            results.append(engine.measure_latency())
        st = engine.stats
    finally:
        engine.stop()
    valid = [m for m in results if m.valid]
    if not valid:
        raise AudioDeviceError(results[-1].summary())
    best = sorted(valid, key=lambda m: m.measured_ms)[len(valid) // 2]
    tries = [t for m in valid for t in m.tries_ms]
    if args.json:
        print(json.dumps({"ms": best.measured_ms, "estimated_ms": best.estimated_ms, "jitter_ms": best.jitter_ms,
                          "snr_db": best.snr_db, "tries": tries, "path": "engine",
                          "xruns": st.input_xruns + st.output_xruns, "underflows": st.underflows}))
    else:
        print(f"end-to-end latency {best.measured_ms:.1f} ms through the engine (estimated {best.estimated_ms:.1f} ms, "
              f"jitter {best.jitter_ms:.1f} ms, SNR {best.snr_db:.0f} dB, {len(tries)} bursts)")
    return 0
