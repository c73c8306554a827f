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

CHECK_TIMEOUT_S = 15.0


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


def _main(argv: list[str]) -> int:
    from .devices import DeviceError, find_device

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
