#!/usr/bin/env python3
"""Soak: the real panel with the real engine for 15 minutes (not part of the test suite).

    .venv/bin/python benchmarks/panel_soak.py [--minutes 15] [--voice deep]

Starts a private PulseAudio server (the test suite's), plays real speech into a null
sink whose monitor is the panel's microphone, and runs `tests.panel_run` (the
real window offscreen, a built-in voice, the live engine) for the given time. Prints a
progress line a minute and then blocks converted, overruns, underflows, glitches,
restarts and the panel process's peak memory. Exit status 1 if the process died.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import _repo  # noqa: F401 — puts the repository root on sys.path for `tests`

from tests.conftest import speech_path
from tests.panel_run import run_panel_process, speech_sinks
from tests.pulse_audio import pulse_server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--voice", default="deep", help="built-in voice (default: deep)")
    args = parser.parse_args()

    seconds = args.minutes * 60
    t0 = time.monotonic()
    with (tempfile.TemporaryDirectory(prefix="rvclora-soak-") as tmp, pulse_server(tmp) as server,
          speech_sinks(server, Path(tmp), speech_path(), seconds=60) as (mic, out)):
        code, report, stderr = run_panel_process(seconds, mic, out, Path(tmp) / "home", voice=args.voice,
                                                 report_every=60, echo=True)
    wall = time.monotonic() - t0
    print(f"panel soak: {args.minutes:g} min requested, {report.get('running_s', 0):.0f} s running, {wall:.0f} s wall")
    print(f"  exit code {code}, alive at the end: {bool(report.get('alive'))}, engine {report.get('engine_state')}")
    print(f"  blocks {report.get('blocks')}, overruns {report.get('overruns')}, underflows {report.get('underflows')}, "
          f"glitches (xruns + underflows) {report.get('glitches')}, engine restarts {report.get('restarts')}")
    print(f"  peak memory of the panel process: {report.get('peak_rss_mb')} MB; "
          f"meters max in {report.get('input_db_max')} dB, out {report.get('output_db_max')} dB")
    if code != 0:
        print(f"  the panel process failed: {stderr}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
