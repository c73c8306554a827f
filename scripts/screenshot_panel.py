#!/usr/bin/env python3
"""Screenshot of the rvclora panel running a built-in voice, for the README.

    .venv/bin/python scripts/screenshot_panel.py docs/panel.png [--voice deep] [--wait 6]

Starts everything it needs and stops it again, by PID: a virtual X display (Xvfb),
a private PulseAudio server (the test suite's: a null sink "vsink" standing in for
Discord's virtual microphone), a second null sink "talk" into which real speech is
played in a loop (its monitor is the panel's microphone), and then the panel itself
(`run_panel`, what `rvclora` runs) with `--start --screenshot`, in a fresh
RVCLORA_HOME whose settings pick those devices. Needs the apt packages xvfb,
pulseaudio and pulseaudio-utils (`make test` installs them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TALK_SINK = "talk"


def free_display() -> int:
    for n in range(99, 160):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    raise SystemExit("screenshot_panel: no free X display number between :99 and :159")


@contextlib.contextmanager
def xvfb(size: str = "1280x800x24"):
    if shutil.which("Xvfb") is None:
        raise SystemExit("screenshot_panel: Xvfb is not installed (apt install xvfb)")
    display = free_display()
    proc = subprocess.Popen(["Xvfb", f":{display}", "-screen", "0", size, "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):  # the socket appears when the server is ready
            if Path(f"/tmp/.X11-unix/X{display}").exists():
                break
            if proc.poll() is not None:
                raise SystemExit(f"screenshot_panel: Xvfb :{display} exited with {proc.returncode}")
            time.sleep(0.05)
        yield f":{display}"
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


@contextlib.contextmanager
def speech_loop(server, speech: Path):
    """A null sink "talk" with speech playing into it over and over; its monitor is a microphone."""
    module = server.pactl("load-module", "module-null-sink", f"sink_name={TALK_SINK}",
                          "sink_properties=device.description=Talk").strip()
    # One shell loop in its own process group, so stopping it stops the current paplay too.
    loop = subprocess.Popen(["bash", "-c", f'while true; do paplay --device={TALK_SINK} "$0" || exit 1; done', str(speech)],
                            start_new_session=True)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(loop.pid, signal.SIGTERM)
        loop.wait(5)
        with contextlib.suppress(Exception):
            server.pactl("unload-module", module)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("png", type=Path, help="where to save the screenshot")
    parser.add_argument("--voice", default="deep", help="built-in voice to run (default: deep)")
    parser.add_argument("--wait", type=float, default=6.0, help="seconds of running before the picture (default: 6)")
    args = parser.parse_args()

    from rvclora.tests.conftest import speech_path
    from rvclora.tests.pulse_audio import pulse_server

    args.png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rvclora-shot-") as tmp, xvfb() as display:
        # One long file rather than a loop of a short one: between two paplay runs a null
        # sink's monitor delivers nothing, which the engine rightly reports as a silent input.
        import numpy as np
        import soundfile as sf

        audio, sr = sf.read(speech_path(), dtype="float32")
        long_speech = Path(tmp) / "speech.wav"
        sf.write(long_speech, np.tile(audio, int(np.ceil(120 * sr / len(audio)))), sr)
        with pulse_server(tmp) as server, speech_loop(server, long_speech):
            from rvclora.realtime.devices import list_devices

            devices = list_devices()
            mic = next(d.name for d in devices if d.pulse == f"{TALK_SINK}.monitor")
            out = next(d.name for d in devices if d.pulse == server.sink)
            home = Path(tmp) / "home"
            home.mkdir()
            (home / "settings.json").write_text(json.dumps(
                {"panel": {"voice": f"builtin:{args.voice}", "input_device": mic, "output_device": out}}
            ))
            env = dict(os.environ, DISPLAY=display, RVCLORA_HOME=str(home), QT_QPA_PLATFORM="xcb")
            cmd = [sys.executable, "-m", "rvclora.gui.app", "--voice", args.voice, "--start",
                   "--screenshot", str(args.png.absolute()), "--wait", str(args.wait)]
            result = subprocess.run(cmd, env=env, timeout=args.wait + 60)
    if result.returncode != 0 or not args.png.is_file():
        print(f"screenshot_panel: the panel exited with {result.returncode}", file=sys.stderr)
        return 1
    print(f"screenshot_panel: saved {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
