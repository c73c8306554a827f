"""`rvclora ctl` and the control socket: end to end against a running `rvclora run --input-file`, and
another user refused (by the socket's file modes, and by the server's SO_PEERCRED check)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rvclora.cli.main import build_parser
from rvclora.library.home import Home
from rvclora.library.presets import Preset, PresetStore
from rvclora.realtime.control_server import (
    SOCKET_ENV,
    ControlError,
    ControlServer,
    send_command,
)

SR = 48000


def _ctl(*argv: str) -> int:
    args = build_parser("ctl").parse_args(["ctl", *argv])
    return args.func(args)


def _dominant_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), 8 * len(x)))
    return float(np.argmax(spec) * SR / (8 * len(x)))


def _status(path: Path) -> dict:
    ok, message = send_command("status", "", path)
    assert ok, message
    return json.loads(message)


def test_ctl_drives_a_running_file_engine_end_to_end(tmp_path, capsys, monkeypatch):
    t = np.arange(12 * SR) / SR
    sf.write(tmp_path / "in.wav", (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32), SR)
    home = tmp_path / "home"
    PresetStore.for_home(Home(home)).save(Preset("octave", {"pitch": 12.0}))
    sock = tmp_path / "run" / "control.sock"
    env = {**os.environ, "RVCLORA_HOME": str(home), SOCKET_ENV: str(sock), "OMP_NUM_THREADS": "1"}
    monkeypatch.setenv(SOCKET_ENV, str(sock))  # for the in-process `rvclora ctl`
    rvclora = Path(sys.executable).parent / "rvclora"
    proc = subprocess.Popen([str(rvclora), "run", "--builtin", "passthrough", "--input-file", str(tmp_path / "in.wav"),
                             "--output-file", str(tmp_path / "out.wav"), "--realtime"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if _status(sock)["state"] == "running":
                    break
            except ControlError:
                pass
            assert time.monotonic() < deadline, "the run never opened its control socket"
            time.sleep(0.2)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
        capsys.readouterr()
        time.sleep(1.0)  # a second at the voice's own pitch
        assert _ctl("preset", "octave") == 0
        assert _ctl("pitch", "-2") == 0
        assert capsys.readouterr().out.split("\n")[:2] == ["preset octave", "pitch +10"]
        st = _status(sock)
        assert (st["pitch"], st["preset"], st["bypass"]) == (10.0, "octave", False)
        assert _ctl("bypass", "on") == 0 and _status(sock)["bypass"] is True
        assert _ctl("bypass", "off") == 0 and _status(sock)["bypass"] is False
        assert _ctl("preset", "nope") == 2
        assert "no preset named 'nope'" in capsys.readouterr().err
        time.sleep(1.5)  # heard at the new pitch
        assert _ctl("stop") == 0
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert not sock.exists()  # the run removed its socket
    y, sr = sf.read(tmp_path / "out.wav", dtype="float32")
    assert sr == SR
    frames = np.sqrt(np.mean(y[: len(y) // 480 * 480].reshape(-1, 480) ** 2, axis=1))
    loud = np.flatnonzero(frames > 1e-3)  # the shifted sine is quieter; after the stop the output is silent
    assert len(loud) and loud[-1] < len(frames) - 100, "stop did not end the run before the file's end"
    first = y[int(0.2 * SR) : int(0.7 * SR)]
    last = y[(loud[-1] - 60) * 480 : (loud[-1] - 10) * 480]
    assert abs(_dominant_hz(first) - 220.0) < 5.0
    assert abs(_dominant_hz(last) - 220.0 * 2 ** (10 / 12)) < 8.0  # preset +12, then pitch −2


def test_ctl_says_in_one_line_when_nothing_runs(tmp_path):
    with pytest.raises(ControlError, match="no rvclora panel or `rvclora run` is running"):
        _ctl("--socket", str(tmp_path / "none.sock"), "status")


# --------------------------------------------------------------------------- another user

_CLIENT = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("connect-failed", type(e).__name__); sys.exit(0)
try:
    s.sendall(b'{"command": "pitch", "arg": "+5"}\\n')
except BrokenPipeError:
    pass  # refused before it read anything; the refusal is still there to read
print("reply", s.recv(4096).decode().strip())
"""


def _as_nobody(sock: Path) -> str:
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", _CLIENT, str(sock)]
    # A clean environment: the test run's own (its virtual environment, its home) is not the other user's.
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"}, cwd="/")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None or not Path("/usr/bin/python3").exists(),
                                reason="needs root and setpriv to run a client as another user")


@pytest.fixture
def shared_dir():
    # Outside pytest's private tmp (0700): the other user must be able to reach the folder itself.
    d = Path(tempfile.mkdtemp(prefix="rvclora-ctl-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@needs_root
def test_socket_refuses_another_user(shared_dir):
    calls = []
    with ControlServer(lambda c, a: calls.append((c, a)) or "ok", shared_dir / "run" / "control.sock") as server:
        # The folder (0700) and socket (0600) keep another user out before anything is read.
        assert _as_nobody(server.path) == "connect-failed PermissionError"
        # With the modes opened up by mistake, the server still refuses the other user's credentials.
        server.path.parent.chmod(0o777)
        server.path.chmod(0o777)
        reply = _as_nobody(server.path)
        assert reply.startswith("reply ") and json.loads(reply[6:]) == {
            "ok": False, "message": "refused: this rvclora belongs to another user"}
        assert server.refused == 1
        assert send_command("pitch", "+5", server.path) == (True, "ok")  # the owner still gets through
    assert calls == [("pitch", "+5")]


def test_second_server_on_a_live_socket_is_refused(tmp_path):
    path = tmp_path / "s" / "control.sock"
    with ControlServer(lambda c, a: "ok", path), pytest.raises(ControlError, match="already listening"):
        ControlServer(lambda c, a: "ok", path).start()
    # A socket left by a process that died is replaced.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    with ControlServer(lambda c, a: "fresh", path):
        assert send_command("status", "", path) == (True, "fresh")
