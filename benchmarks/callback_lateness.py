"""Does the converting worker starve audio callbacks in its process (the interpreter lock)?

An audio callback stand-in wakes every 5 ms in its own thread and copies a 5 ms block
(as a PortAudio callback does through its ring), recording how late it ran. Three
conditions, alternated round by round so machine load hits each alike:
- idle: nothing else runs in this process;
- worker thread: the tiny RVC voice converts blocks back to back in a thread of this
  process (shares the lock with the callback, as in the engine);
- child process: the same conversion in another process (same CPU load, no shared lock).
If the lock starved the callback, "worker thread" would be later than "child process".
Prints JSON: p50/p99/max lateness in ms per condition.

    python benchmarks/callback_lateness.py [--rounds 3] [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import threading
import time
from pathlib import Path

import _repo  # noqa: F401 — puts the repository root on sys.path for `tests`
import numpy as np
import torch

from rvclora.realtime.bench import speechlike
from rvclora.realtime.block_converter import load_rvc_source
from rvclora.realtime.block_processor import BlockProcessor
from rvclora.realtime.settings import EngineSettings
from tests.hubert_fixtures import tiny_hubert_config, write_hubert_file
from tests.rvc_fixtures import make_voice_file

PERIOD = 0.005


def build() -> tuple[BlockProcessor, np.ndarray]:
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp())
    model = make_voice_file(tmp)
    hubert = write_hubert_file(tmp / "hubert.pt", tiny_hubert_config("v2"))
    source = load_rvc_source(model, hubert=hubert, device="cpu", precision="fp32")
    return BlockProcessor(source, EngineSettings(f0_method="pm")), speechlike(30.0, 16000)


def convert_until(stop, ready, proc: BlockProcessor | None = None, signal: np.ndarray | None = None) -> None:
    if proc is None or signal is None:
        proc, signal = build()
    n, k = proc.block_in, 0
    with torch.inference_mode():
        while not stop.is_set():
            i = k % (len(signal) // n - 1)
            proc.process(signal[i * n : (i + 1) * n])
            k += 1
            if k == 3:
                ready.set()


def callback_lateness(seconds: float) -> list[float]:
    ring, out = np.zeros(48000, np.float32), np.zeros(240, np.float32)
    late, due = [], time.perf_counter() + PERIOD
    end = due + seconds
    while due < end:
        time.sleep(max(0.0, due - time.perf_counter()))
        late.append(1000 * (time.perf_counter() - due))
        np.copyto(out, ring[:240])  # what a callback does with its ring
        due += PERIOD
    return late


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    proc, signal = build()
    conditions = ("idle", "worker thread", "child process")
    late: dict[str, list[float]] = {c: [] for c in conditions}
    for r in range(args.rounds):
        for cond in conditions if r % 2 == 0 else conditions[::-1]:
            if cond == "idle":
                late[cond] += callback_lateness(args.seconds)
                continue
            if cond == "worker thread":
                stop, ready = threading.Event(), threading.Event()
                runner: threading.Thread | mp.Process = threading.Thread(
                    target=convert_until, args=(stop, ready, proc, signal))
            else:
                stop, ready = mp.Event(), mp.Event()  # type: ignore[assignment]
                runner = mp.Process(target=convert_until, args=(stop, ready))
            runner.start()
            ready.wait(120)
            late[cond] += callback_lateness(args.seconds)
            stop.set()
            runner.join()
            print(f"round {r + 1} {cond}: p99 {np.percentile(late[cond], 99):.2f} ms", file=sys.stderr)
    result = {c: {"p50": round(float(np.median(v)), 2), "p99": round(float(np.percentile(v, 99)), 2),
                  "max": round(float(np.max(v)), 2), "wakeups": len(v)} for c, v in late.items()}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
