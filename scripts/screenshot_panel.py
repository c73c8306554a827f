#!/usr/bin/env python3
"""Screenshots of the rvclora panel under a virtual X display, for the README and docs/.

    .venv/bin/python scripts/screenshot_panel.py docs/panel.png [--scene running] [--display 91]

Scenes:
  running   a built-in voice running on the real engine (the README picture)
  narrow    the same at the window's minimum size (fits beside a chat window)
  heavy     a voice too heavy for the computer: the notice and its one-click fix
            (a stand-in engine whose compute exceeds the block; no full-size model needed)
  refused   Start of your own voice while the content encoder is missing
  offline   Download while the Hub cannot be reached: a dialog with every file to fetch by hand
  download  Download in progress (a local stand-in Hub serving slowly): bytes and Cancel

Starts everything it needs and stops it again, by PID: Xvfb, for the audio scenes a
private PulseAudio server (the test suite's) with real speech looped into a null sink
whose monitor is the panel's microphone, and the panel in a child process with a
fresh RVCLORA_HOME. Needs the apt packages xvfb, pulseaudio and pulseaudio-utils.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import huggingface_hub.constants

from rvclora.gui.engine_link import EngineLink
from rvclora.gui.main_window import MainWindow
from rvclora.gui.voice_choice import VoiceChoice
from rvclora.library.assets import HUBERT, RMVPE
from rvclora.library.home import Home
from rvclora.library.voice_library import VoiceDefaults, VoiceLibrary

# The test fixtures live in the repository's tests/, which is not installed with the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from tests.conftest import speech_path
from tests.panel_run import speech_sinks
from tests.pulse_audio import pulse_server
from tests.rvc_fixtures import make_voice_file
from tests.stand_in_engines import SlowEngine
from tests.test_assets import FakeHub, make_handler

SCENES = ("running", "narrow", "heavy", "refused", "offline", "download")
AUDIO_SCENES = ("running", "narrow")


def free_display() -> int:
    for n in range(99, 160):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    raise SystemExit("screenshot_panel: no free X display number between :99 and :159")


@contextlib.contextmanager
def xvfb(display: int | None, size: str = "1366x768x24"):
    if shutil.which("Xvfb") is None:
        raise SystemExit("screenshot_panel: Xvfb is not installed (apt install xvfb)")
    display = free_display() if display is None else display
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("png", type=Path, help="where to save the screenshot")
    parser.add_argument("--scene", choices=SCENES, default="running")
    parser.add_argument("--voice", default="deep", help="built-in voice to run (default: deep)")
    parser.add_argument("--wait", type=float, default=6.0, help="seconds before the picture (default: 6)")
    parser.add_argument("--display", type=int, help="X display number for Xvfb (default: a free one from :99)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    args.png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rvclora-shot-") as tmp, xvfb(args.display) as display:
        home = Path(tmp) / "home"
        home.mkdir()
        cmd = [sys.executable, str(Path(__file__).resolve()), str(args.png.absolute()), "--child", "--scene", args.scene,
               "--voice", args.voice, "--wait", str(args.wait)]
        with contextlib.ExitStack() as stack:
            extra = {}
            if args.scene in AUDIO_SCENES:
                server = stack.enter_context(pulse_server(tmp))
                mic, out = stack.enter_context(speech_sinks(server, Path(tmp), speech_path(), seconds=120))
                extra = {"SHOT_MIC": mic, "SHOT_OUT": out}
            # Made now: the PulseAudio server put its address into this process's environment.
            env = dict(os.environ, DISPLAY=display, RVCLORA_HOME=str(home), QT_QPA_PLATFORM="xcb",
                       HF_HOME=str(Path(tmp) / "hf"), **extra)
            result = subprocess.run(cmd, env=env, timeout=args.wait + 90)
    if result.returncode != 0 or not args.png.is_file():
        print(f"screenshot_panel: the panel exited with {result.returncode}", file=sys.stderr)
        return 1
    print(f"screenshot_panel: saved {args.png}")
    return 0


# ------------------------------------------------------------------ the panel's side (child process)


def child(args) -> int:


    home = Home.from_env()
    app = QApplication([sys.argv[0]])
    app.setApplicationName("rvclora")
    app.setApplicationDisplayName("rvclora")
    link = None
    if args.scene == "heavy":
        link = EngineLink(SlowEngine)
    if args.scene in ("refused", "offline", "download"):
        setup_library_voice(home)
    hub = serve_hub(args.scene)
    window = MainWindow(home, link=link)
    window.show()
    if args.scene == "narrow":
        window.resize(window.minimumSizeHint())

    def begin() -> None:
        if args.scene in AUDIO_SCENES:
            names = {d.pulse: d.name for d in window.devices.devices}
            window.voice_list.select(VoiceChoice("builtin", args.voice))
            window.devices.input.setCurrentIndex(window.devices.input.findData(names[os.environ["SHOT_MIC"]]))
            window.devices.output.setCurrentIndex(window.devices.output.findData(names[os.environ["SHOT_OUT"]]))
            window.start_engine()
        elif args.scene == "heavy":
            window.voice_list.select(VoiceChoice("builtin", args.voice))
            window.start_engine()
        else:
            window.voice_list.select(VoiceChoice("library", "Alto"))
            if args.scene == "refused":
                window.start_engine()
            else:
                window.asset_bar.button.click()

    def shoot() -> None:
        if args.scene == "offline":  # the dialog is a window of its own: take the whole screen
            g = window.frameGeometry()
            ok = app.primaryScreen().grabWindow(0, g.x(), g.y(), g.width(), g.height()).save(str(args.png), "PNG")
        else:
            ok = window.grab().save(str(args.png), "PNG")
        print(f"screenshot_panel: {'saved' if ok else 'could not save'} {args.png}", file=sys.stderr)
        window.close()
        if hub is not None:
            hub.shutdown()
        app.exit(0 if ok else 1)

    def when_ready() -> None:  # after the first device scan
        if window.workers.busy:
            QTimer.singleShot(200, when_ready)
            return
        try:
            begin()
        except Exception as e:  # noqa: BLE001 - a scene that cannot be set up ends the child, not hangs it
            print(f"screenshot_panel: scene {args.scene} failed: {type(e).__name__}: {e}", file=sys.stderr)
            app.exit(1)
            return
        QTimer.singleShot(int(args.wait * 1000), shoot)

    QTimer.singleShot(300, when_ready)
    return app.exec()


def setup_library_voice(home) -> None:
    """One of the user's own voices (a tiny real-format model), imported with the default settings."""

    work = home.root / "made"
    work.mkdir(parents=True, exist_ok=True)
    model = make_voice_file(work, version="v2", sr=40000, seed=0, name="Alto.pth")
    VoiceLibrary(home).create(model, defaults=VoiceDefaults(f0_method="auto"))


def serve_hub(scene: str):
    """The Hub the panel downloads from: none that answers (offline), or a slow local stand-in."""
    if scene == "offline":
        with socket.socket() as sock:  # a port nothing listens on
            sock.bind(("127.0.0.1", 0))
            os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return None
    if scene != "download":
        return None



    # Scaled down 100x from the real sizes and served at about 200 KB/s in 64 KB chunks, so
    # the picture catches the first file on its way.
    huggingface_hub.constants.DOWNLOAD_CHUNK_SIZE = 64 * 1024
    fake = FakeHub({a.repo_path: b"w" * (a.size // 100) for a in (HUBERT, RMVPE)}, seconds_per_kb=0.005)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(fake))
    os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{server.server_address[1]}"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


if __name__ == "__main__":
    sys.exit(main())
