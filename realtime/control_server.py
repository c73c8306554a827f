"""A local control socket for a running panel or `rvclora run`, and its client.

No network port: a Unix stream socket in the user's runtime directory (a folder of
mode 0700, the socket 0600), so only the same user can reach it; on top of the file
modes, every connection's peer is checked with SO_PEERCRED and another user's is
refused. Hand-written on the standard library's `socket` because the protocol is one
JSON line each way (`{"command": ..., "arg": ...}` → `{"ok": ..., "message": ...}`)
and a server framework would add a dependency for nothing.

The engine host gives the server a handler `(command, arg) -> message`; a handler's
ValueError/OSError/RuntimeError is sent back as a one-line refusal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import stat
import struct
import threading
from collections.abc import Callable
from pathlib import Path

from ..errors import AudioDeviceError

COMMANDS = ("start", "stop", "toggle", "voice", "preset", "pitch", "bypass", "mute", "status")
SOCKET_ENV = "RVCLORA_CONTROL_SOCKET"
SOCKET_NAME = "control.sock"
MAX_REQUEST = 4096
CLIENT_TIMEOUT_S = 30.0  # a voice switch loads a model before it answers

log = logging.getLogger(__name__)

Handler = Callable[[str, str], str]


class ControlError(AudioDeviceError):
    """The control socket cannot be set up or reached; one line for the user."""


def default_socket_path(env: dict[str, str] | None = None) -> Path:
    """$RVCLORA_CONTROL_SOCKET, else $XDG_RUNTIME_DIR/rvclora/control.sock, else /tmp/rvclora-UID/control.sock."""
    env = dict(os.environ) if env is None else env
    if env.get(SOCKET_ENV):
        return Path(env[SOCKET_ENV])
    runtime = env.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "rvclora" if runtime else Path("/tmp") / f"rvclora-{os.geteuid()}"
    return base / SOCKET_NAME


def peer_uid(conn: socket.socket) -> int:
    """The user id of the process at the other end (Linux SO_PEERCRED)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _private_dir(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.stat()
    if st.st_uid != os.geteuid():
        raise ControlError(f"{folder} belongs to another user; set {SOCKET_ENV} to a path of your own")
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(folder, 0o700)


class ControlServer:
    """Serves `handler` on a Unix socket from a daemon thread until `close()`."""

    def __init__(self, handler: Handler, path: Path | None = None, *, allowed_uid: int | None = None) -> None:
        self.handler = handler
        self.path = Path(path) if path is not None else default_socket_path()
        self.allowed_uid = os.geteuid() if allowed_uid is None else allowed_uid
        self.refused = 0  # connections from other users
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()

    def start(self) -> ControlServer:
        _private_dir(self.path.parent)
        if self.path.exists() or self.path.is_symlink():
            if _answers(self.path):
                raise ControlError(f"another rvclora is already listening on {self.path}; "
                                   f"stop it or set {SOCKET_ENV} to another path")
            self.path.unlink()  # left by a process that died
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is born 0600: no window where others could connect
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        sock.listen(8)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="rvclora-control", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def __enter__(self) -> ControlServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        while not self._closing.is_set():
            sock = self._sock
            if sock is None:
                return
            try:
                conn, _ = sock.accept()
            except OSError:
                return  # closed
            with conn:
                self._one(conn)

    def _one(self, conn: socket.socket) -> None:
        conn.settimeout(5.0)
        try:
            uid = peer_uid(conn)
            if uid != self.allowed_uid:
                self.refused += 1
                log.warning("control socket: refused a connection from user id %d", uid)
                _send(conn, False, "refused: this rvclora belongs to another user")
                return
            request = _read_line(conn)
            try:
                data = json.loads(request)
                command, arg = str(data["command"]), str(data.get("arg") or "")
            except (ValueError, KeyError, TypeError):
                _send(conn, False, 'bad request: send one JSON line {"command": ..., "arg": ...}')
                return
            try:
                message = self.handler(command, arg)
            except (ValueError, OSError, RuntimeError) as e:
                _send(conn, False, _one_line(e))
                return
            _send(conn, True, message)
        except OSError as e:  # the client went away mid-answer: nothing to tell anyone
            log.debug("control socket: %s", e)


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _read_line(conn: socket.socket) -> str:
    data = b""
    while b"\n" not in data and len(data) < MAX_REQUEST:
        piece = conn.recv(MAX_REQUEST)
        if not piece:
            break
        data += piece
    return data.split(b"\n", 1)[0].decode("utf-8", "replace")


def _send(conn: socket.socket, ok: bool, message: str) -> None:
    conn.sendall((json.dumps({"ok": ok, "message": message}) + "\n").encode())


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def send_command(command: str, arg: str = "", path: Path | None = None,
                 timeout: float = CLIENT_TIMEOUT_S) -> tuple[bool, str]:
    """Send one command to the running rvclora; returns (ok, message). ControlError when none runs."""
    path = Path(path) if path is not None else default_socket_path()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except FileNotFoundError:
            raise ControlError(f"no rvclora panel or `rvclora run` is running (no control socket at {path})") from None
        except ConnectionRefusedError:
            raise ControlError(f"no rvclora is listening on {path} (left by a process that ended)") from None
        except PermissionError:
            raise ControlError(f"{path} belongs to another user: only its owner can control that rvclora") from None
        # Refused before the request was read: the refusal is still waiting to be read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall((json.dumps({"command": command, "arg": arg}) + "\n").encode())
        reply = _read_line(sock)
    except TimeoutError:
        raise ControlError(f"rvclora did not answer within {timeout:g} s") from None
    finally:
        sock.close()
    try:
        data = json.loads(reply)
        return bool(data["ok"]), str(data["message"])
    except (ValueError, KeyError, TypeError):
        raise ControlError(f"unexpected answer from {path}: {reply[:80]!r}") from None
