"""The live converter keeps freed memory mapped, so repeated blocks stop faulting pages in."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from rvclora.realtime import rvc_converter
from rvclora.realtime.rvc_converter import BlockShape, RVCBlockConverter

# Allocates and touches four 8 MB buffers, then frees them, as each block's large tensors live
# together and go together; prints the minor page faults of the last 20 rounds. Run in a fresh
# process: the setting is process-wide.
PROBE = """
import resource, sys
import numpy as np
if sys.argv[1] == "retain":
    from rvclora.synth.heap import retain_freed_memory
    assert retain_freed_memory()
def block():
    live = [np.ones(2_000_000, np.float32) for _ in range(4)]
    return sum(float(a[::4096].sum()) for a in live)
for _ in range(3):
    block()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    block()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], check=True, capture_output=True, text=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_retained_heap_stops_refaulting_large_blocks():
    default, retained = faults("default"), faults("retain")
    # Default glibc hands the freed 32 MB back to the kernel each round: ~8000 faults per round.
    assert default > 10_000
    assert retained < default // 20


def test_the_rvc_converter_turns_it_on(monkeypatch):
    calls = []
    monkeypatch.setattr(rvc_converter, "retain_freed_memory", lambda: calls.append(1) or True)

    class Source:  # only what the constructor reads
        sr, device, encoder, synth = 40000, torch.device("cpu"), None, None

    RVCBlockConverter(Source(), BlockShape(960, 480, 160, 16000))  # type: ignore[arg-type]
    assert calls == [1]
