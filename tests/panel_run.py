"""Run the real panel with the real engine for a while, in its own process, and report.

    python -m tests.panel_run --seconds 120 --input-pulse talk.monitor --output-pulse out

The window is the one `rvclora` opens (`MainWindow`, offscreen), the voice a built-in
one, the devices PulseAudio devices picked by their sink/source names. It starts the
voice changer and keeps it running for `--seconds`, painting the window every second
(the meters and the chart draw through QPainter: the path that aborted the process
under a broken Qt binding), and prints one JSON line per `--report-every` seconds and
a last line {"final": true, ...}: blocks converted, overruns, glitches, the meters'
highest levels, restarts, the process's peak memory. Used by the 120 s panel test and
by `benchmarks/panel_soak.py`; `speech_sinks` sets up their devices.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from rvclora.gui.main_window import MainWindow
from rvclora.gui.voice_choice import VoiceChoice
from rvclora.library.home import Home

TALK_SINK, OUT_SINK = "panel_talk", "panel_out"


def peak_rss_mb() -> float:
    """The process's peak resident memory (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.contextmanager
def speech_sinks(server, workdir: Path, speech: Path, seconds: float = 60.0) -> Iterator[tuple[str, str]]:
    """Two null sinks on `server`: TALK_SINK with real speech playing into it without pause
    (its monitor is the panel's microphone) and OUT_SINK for the panel's output. Yields
    (input source, output sink). The speech is one long file, looped: between two paplay
    runs a null sink's monitor goes quiet, which the engine would rightly report."""
    audio, sr = sf.read(speech, dtype="float32")
    long_speech = workdir / "speech_long.wav"
    sf.write(long_speech, np.tile(audio, int(np.ceil(seconds * sr / len(audio)))), sr)
    modules = [
        server.pactl("load-module", "module-null-sink", f"sink_name={name}", f"sink_properties=device.description={name}").strip()
        for name in (TALK_SINK, OUT_SINK)
    ]
    loop = subprocess.Popen(["bash", "-c", f'while true; do paplay --device={TALK_SINK} "$0" || sleep 0.1; done',
                             str(long_speech)], start_new_session=True)
    deadline = time.monotonic() + 10
    while "protocol-native" not in server.pactl("list", "short", "sink-inputs") and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"{TALK_SINK}.monitor", OUT_SINK
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(loop.pid, signal.SIGTERM)  # the loop and its current paplay, by PID
        loop.wait(5)
        for module in modules:
            with contextlib.suppress(Exception):
                server.pactl("unload-module", module)


def run_panel_process(seconds: float, input_pulse: str, output_pulse: str, home: Path, *,
                      voice: str = "deep", report_every: float = 10.0, echo: bool = False) -> tuple[int, dict, str]:
    """Run this module as a child process; returns (exit code, its last report, its stderr tail)."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", RVCLORA_HOME=str(home))
    cmd = [sys.executable, "-m", "tests.panel_run", "--seconds", str(seconds), "--voice", voice,
           "--input-pulse", input_pulse, "--output-pulse", output_pulse, "--report-every", str(report_every)]
    # run from the repository root: `tests` is a folder there, not an installed package
    proc = subprocess.Popen(cmd, env=env, cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last: dict = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("{"):
            last = json.loads(line)
            if echo:
                print(line.rstrip(), flush=True)
    stderr = proc.stderr.read() if proc.stderr else ""
    return proc.wait(), last, stderr[-3000:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--voice", default="deep")
    parser.add_argument("--input-pulse", required=True)
    parser.add_argument("--output-pulse", required=True)
    parser.add_argument("--report-every", type=float, default=10.0)
    args = parser.parse_args(argv)



    app = QApplication.instance() or QApplication(["rvclora"])
    window = MainWindow(Home.from_env())
    window.show()
    t0 = time.monotonic()
    report = {"blocks": 0, "overruns": 0, "glitches": 0, "underflows": None, "input_db_max": -120.0,
              "output_db_max": -120.0, "restarts": 0, "chart_samples_max": 0, "paints": 0, "running_s": 0.0,
              "status": "", "peak_rss_mb": 0.0}
    carried = {"blocks": 0, "overruns": 0, "glitches": 0, "underflows": 0}  # from runs before a restart
    phase = {"name": "devices", "run_started": None, "last_report": t0}

    def raw_underflows() -> int | None:
        engine = getattr(window.link, "engine", None)
        stats = getattr(engine, "stats", None) if engine is not None else None
        return getattr(stats, "underflows", None)

    def tick() -> None:
        now = time.monotonic()
        if phase["name"] == "devices":
            if window.workers.busy or not window.devices.devices:
                if now - t0 > 60:
                    finish(2, "the device scan found nothing in 60 s")
                return
            names = {d.pulse: d.name for d in window.devices.devices}
            if args.input_pulse not in names or args.output_pulse not in names:
                finish(2, f"devices {args.input_pulse!r}/{args.output_pulse!r} not found among {sorted(map(str, names))}")
                return
            window.voice_list.select(VoiceChoice("builtin", args.voice))
            window.devices.input.setCurrentIndex(window.devices.input.findData(names[args.input_pulse]))
            window.devices.output.setCurrentIndex(window.devices.output.findData(names[args.output_pulse]))
            window.start_engine()
            phase["name"], phase["run_started"] = "running", now
            return
        state = window.engine_state
        if state == "stopped":
            # The engine stopped by itself (a starved capture thread on a loaded machine): count it, go on.
            report["restarts"] += 1
            for key in ("blocks", "overruns", "glitches"):
                carried[key] = report[key]
            carried["underflows"] = report["underflows"] or 0
            report["status"] = window.status_label.text()
            window.start_engine()
        elif state == "running":
            stats = window.link.stats()
            if stats is not None:
                report["blocks"] = carried["blocks"] + stats.blocks
                report["overruns"] = carried["overruns"] + stats.overruns
                report["glitches"] = carried["glitches"] + stats.glitches
                under = raw_underflows()
                if under is not None:
                    report["underflows"] = carried["underflows"] + under
            report["input_db_max"] = max(report["input_db_max"], window.in_meter.level_db)
            report["output_db_max"] = max(report["output_db_max"], window.out_meter.level_db)
            report["chart_samples_max"] = max(report["chart_samples_max"], len(window.chart.samples))
        window.grab()  # paint every widget now, meters and chart included
        report["paints"] += 1
        report["running_s"] = round(now - phase["run_started"], 1)
        report["peak_rss_mb"] = round(peak_rss_mb(), 1)
        if now - phase["last_report"] >= args.report_every:
            phase["last_report"] = now
            print(json.dumps(report), flush=True)
        if report["running_s"] >= args.seconds:
            finish(0, None)

    def finish(code: int, problem: str | None) -> None:
        timer.stop()
        report.update(final=True, alive=True, engine_state=window.engine_state, problem=problem,
                      status=window.status_label.text() if problem is None else report["status"])
        print(json.dumps(report), flush=True)
        window.close()
        app.exit(code)

    timer = QTimer(interval=1000, timeout=tick)
    timer.start()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
