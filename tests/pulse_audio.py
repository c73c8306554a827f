"""A private PulseAudio server for tests that need real audio devices.

CI machines have no sound card. A PulseAudio daemon with a mono float32 null sink
``vsink`` and a source ``vmic`` remapped from its monitor gives PortAudio (through
the ALSA "pulse" plugin) a playback and a capture device joined by a loopback:
whatever is played to vsink is recorded from vmic.

The daemon runs in a private XDG_RUNTIME_DIR under a temporary directory and is
reached through PULSE_SERVER=unix:<that dir>/pulse/native, so it never touches a
desktop user's own session; it is stopped by its PID on teardown.

conftest registers this module as a plugin: a test asks for `pulse` by name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import sounddevice as sd

SINK, SOURCE, RATE = "vsink", "vmic", 48000
_ENV_KEYS = ("XDG_RUNTIME_DIR", "PULSE_SERVER", "PULSE_SINK", "PULSE_SOURCE", "PULSE_RUNTIME_PATH")


@dataclass(frozen=True)
class PulseServer:
    runtime_dir: Path
    server: str          # PULSE_SERVER value
    pid: int
    sink: str = SINK
    source: str = SOURCE
    rate: int = RATE

    def pactl(self, *args: str) -> str:
        res = subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=10,
                             env=dict(os.environ, LC_ALL="C"))
        if res.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)}: {res.stderr.strip()}")
        return res.stdout


def _reinit_portaudio() -> None:
    # PortAudio enumerates devices once, at initialisation: restart it so the ALSA
    # "pulse"/"default" devices of the server that just came up (or went) are seen.
    sd._terminate()
    sd._initialize()


@contextlib.contextmanager
def pulse_server(tmp_dir: str | os.PathLike):
    """Start a private PulseAudio daemon; yield a PulseServer; stop it by PID."""
    missing = [exe for exe in ("pulseaudio", "pactl") if shutil.which(exe) is None]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not installed: `make test` installs the pulseaudio and "
                    "pulseaudio-utils apt packages these device tests need", pytrace=False)
    runtime = Path(tmp_dir) / "xdg-runtime"
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    saved = {k: os.environ.get(k) for k in _ENV_KEYS}
    server = f"unix:{runtime}/pulse/native"
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    os.environ["PULSE_RUNTIME_PATH"] = str(runtime / "pulse")
    os.environ["PULSE_SERVER"] = server
    for k in ("PULSE_SINK", "PULSE_SOURCE"):
        os.environ.pop(k, None)
    pid = None
    try:
        cmd = [
            "pulseaudio", "--daemonize=yes", "-n", "--exit-idle-time=-1", "--use-pid-file=yes",
            f"--log-target=file:{runtime}/pulse.log",
            "--load=module-native-protocol-unix auth-anonymous=1",
            f"--load=module-null-sink sink_name={SINK} format=float32le rate={RATE} channels=1 "
            "channel_map=mono sink_properties=device.description=VirtualSink",
            f"--load=module-remap-source master={SINK}.monitor source_name={SOURCE} "
            "source_properties=device.description=VirtualMic",
        ]
        # HOME too: the daemon writes its cookie and state under $HOME/.config/pulse.
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=20,
                             env=dict(os.environ, HOME=str(runtime)))
        if res.returncode != 0:
            log = (runtime / "pulse.log").read_text(errors="replace")[-800:] if (runtime / "pulse.log").exists() else ""
            pytest.fail(f"pulseaudio did not start: {res.stderr.strip()} {log}", pytrace=False)
        pid_file = runtime / "pulse" / "pid"
        deadline = time.monotonic() + 10
        ready = False
        while time.monotonic() < deadline:
            if pid is None and pid_file.exists():
                with contextlib.suppress(ValueError):
                    pid = int(pid_file.read_text().strip())
            ok = subprocess.run(["pactl", "info"], capture_output=True, timeout=5).returncode == 0
            if ok and pid is not None:
                ready = True
                break
            time.sleep(0.1)
        if not ready:
            pytest.fail("private pulseaudio server did not answer `pactl info` within 10 s", pytrace=False)
        srv = PulseServer(runtime, server, pid)
        srv.pactl("set-default-sink", SINK)
        srv.pactl("set-default-source", SOURCE)
        _reinit_portaudio()
        yield srv
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            # Reap-free wait: the daemon is not our child (it double-forked).
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                if _is_zombie(pid):
                    break
                time.sleep(0.05)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        with contextlib.suppress(Exception):
            _reinit_portaudio()


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture(scope="session")
def pulse():
    """Session-wide private PulseAudio server with sink ``vsink`` and source ``vmic``."""
    with tempfile.TemporaryDirectory(prefix="rvclora-pulse-") as tmp, pulse_server(tmp) as srv:
        yield srv
