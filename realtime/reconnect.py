"""Is a lost device back? Asked of a short subprocess, never of the engine's own PortAudio.

PortAudio enumerates devices once, when it initialises, and cannot re-scan while
streams are open (and pactl's view must match what PortAudio would open). So while
the engine waits in its `reconnecting` state with the voice loaded, it runs
`python -m rvclora.realtime.reconnect SPEC…` every couple of seconds: a fresh
process lists the devices and answers, as JSON, which of the specs it can find.

    python -m rvclora.realtime.reconnect '[["input", "vmic"], ["output", "engine_out"]]'
    → [true, false]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from .devices import DeviceError, find_device
from .pulse_playback import PulsePlayback

CHECK_TIMEOUT_S = 15.0
WATCHDOG_S = 5.0  # output not called for this long (and at least 4 blocks) = device gone; a loaded
# machine can stall a Pulse stream for 2 s, and reopening costs more than waiting
RETRY_S = 2.0  # how often a lost device is looked for


def present(specs: list[tuple[str, int | str | None]], timeout: float = CHECK_TIMEOUT_S) -> list[bool]:
    """For each (kind, spec): can a fresh process find it? All False if the check itself fails."""
    cmd = [sys.executable, "-m", "rvclora.realtime.reconnect", json.dumps([list(s) for s in specs])]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        answer = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        answer = None
    if not isinstance(answer, list) or len(answer) != len(specs):
        return [False] * len(specs)
    return [bool(a) for a in answer]


class DeviceWatch:
    """The engine's half that notices a lost device and brings it back (runs in the worker), and
    says once when the output had blocks replaced by silence."""

    _open: Any
    pipeline: Any
    devices: Any
    _settings: Any
    _stop_flag: Any
    _wake: Any
    _last_output: float
    _warned_quiet: bool
    _lost: str | None
    _state: str
    _waiting_for: str

    _said_silenced = False
    _guard_muted = False  # a guard of ours muted a stream: the server's restore data may keep that mute

    def _post(self, kind: str, message: str) -> None: ...

    def _on_moved(self, message: str) -> None:
        """From the Pulse guard's thread: a stream left the device it was opened on (already muted)."""
        self._guard_muted = True
        if self._state == "running" and self._lost is None:
            self._lost = message
            self._wake.set()

    def _start_streams(self, opened: Any) -> None:
        opened.start(self._on_moved, unmute=self._guard_muted)
        guard = opened.guard
        if guard is not None and guard.error:
            self._post("warning", f"cannot watch where the sound server plays the output: {guard.error}")

    def _open_streams(self) -> Any: ...

    def _fail(self, message: str) -> None: ...

    def _watchdog(self) -> None:
        # A vanished device normally ends its stream (finished callback). Some drivers
        # just stop calling back instead. Input silence alone is only a warning: capture
        # through Pulse's ALSA plugin can take ~2 s to deliver its first period, and an
        # idle virtual source may deliver nothing; an output that stops asking, or a
        # stream PortAudio no longer calls active, is a lost device.
        if self._open is None or self.pipeline is None or self.pipeline.out.played == 0:
            return  # not before audio flowed once: Pulse may take ~2 s to start a stream
        if self._lost is not None:
            return  # a stream already said why (its sink is gone): keep that reason
        now = time.monotonic()
        limit = max(WATCHDOG_S, 4 * self._settings.block_ms / 1000)
        quiet_in = now - self.pipeline.last_input
        quiet_out = now - self._last_output
        # A pinned stream whose sink went says so itself (on_gone, then `gone`): not ours to report,
        # even when this check began before its message landed.
        ended = [s for s in self._open.streams if not s.active and not (isinstance(s, PulsePlayback) and s.gone)]
        if quiet_out > limit or ended:
            self._lost = f"the output device stopped asking for audio ({quiet_out:.1f} s; unplugged?)"
        elif quiet_in > 2 * limit and not self._warned_quiet:
            self._warned_quiet = True
            self._post("warning", f"no audio from the input device for {quiet_in:.1f} s")
        elif quiet_in <= limit:
            self._warned_quiet = False

    def _say_silenced(self) -> None:
        """Once per run: blocks with NaN/inf were replaced by silence (the stats count them)."""
        p = self.pipeline
        if self._said_silenced or p is None:
            return
        if p.proc.nonfinite or any(port.limiter.state.silenced_blocks for port in p.ports):
            self._said_silenced = True
            self._post("warning", "the voice produced invalid numbers (NaN/inf): those blocks were replaced by "
                                  "silence (counted as non-finite blocks)")

    def _reconnect(self) -> None:
        """Close the streams, keep the voice, look for the devices every RETRY_S, reopen them."""
        reason, self._lost = self._lost, None
        opened = self._open
        if opened is None:  # a driver of the caller's own (a file): nothing to reopen
            self._fail(reason or "the audio driver stopped")
            return
        names = opened.input.name, opened.output.name, opened.monitor.name if opened.monitor else None
        self._waiting_for = " / ".join(n for n in names if n)
        self._state = "reconnecting"  # before closing: closing ends the streams, which is no news now
        opened.close()
        self._post("reconnecting", f"{reason}; waiting for {self._waiting_for} (stop to cancel)")
        d = self.devices
        specs = [("input", d.input), ("output", d.output)] + ([("output", d.monitor)] if d.monitor is not None else [])
        while not self._stop_flag.is_set():
            if all(present(specs)):
                try:
                    fresh = self._open_streams()
                except DeviceError as e:
                    self._post("warning", str(e))
                else:
                    p = self.pipeline
                    p.in_ring.clear()
                    for port in p.ports:
                        port.restart()
                    self._open = fresh
                    self._state = "running"
                    self._waiting_for = ""
                    p.last_input = self._last_output = time.monotonic()
                    self._start_streams(fresh)
                    self._post("started", f"reconnected: {fresh.input.name} → {fresh.output.name}")
                    return
            self._stop_flag.wait(RETRY_S)



def _main(argv: list[str]) -> int:
    found = []
    for kind, spec in json.loads(argv[0]):
        try:
            find_device(spec, kind)
            found.append(True)
        except DeviceError:
            found.append(False)
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
