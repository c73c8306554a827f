"""Concurrent `rvclora virtual-mic create` runs make one virtual microphone, never two."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from rvclora.realtime.virtual_mic import remove_virtual_mic

# Each process imports everything, then waits for the go-file so the three check-then-create
# sequences really overlap (process start-up alone would spread them apart).
_CREATE = """
import os, sys, time
from rvclora.realtime.virtual_mic import create_virtual_mic
open(sys.argv[1] + "." + str(os.getpid()), "w").close()  # ready
while not os.path.exists(sys.argv[1]):
    time.sleep(0.001)
create_virtual_mic(sys.argv[2])
"""


def _count(pulse, name):
    modules = pulse.pactl("list", "short", "modules").splitlines()
    sinks = sum("module-null-sink" in m and f"sink_name={name}_sink" in m for m in modules)
    sources = sum("module-remap-source" in m and f"source_name={name} " in m + " " for m in modules)
    return sinks, sources


def test_three_concurrent_creates_make_one_device(pulse, tmp_path):
    name = "rvcrace"
    for attempt in range(3):
        go = tmp_path / f"go{attempt}"
        procs = [subprocess.Popen([sys.executable, "-c", _CREATE, str(go), name], env=dict(os.environ),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
        t_end = time.monotonic() + 120
        while len(list(tmp_path.glob(f"go{attempt}.*"))) < 3:  # all three imported and waiting
            assert time.monotonic() < t_end and all(p.poll() is None for p in procs)
            time.sleep(0.01)
        go.touch()
        for p in procs:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
        assert _count(pulse, name) == (1, 1), f"attempt {attempt}"
        sinks = [ln.split("\t")[1] for ln in pulse.pactl("list", "short", "sinks").splitlines()]
        assert sinks.count(f"{name}_sink") == 1
        assert remove_virtual_mic(name)
        assert _count(pulse, name) == (0, 0)
