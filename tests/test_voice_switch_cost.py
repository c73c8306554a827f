"""A live voice switch leaves the worker's CPU to the worker.

The engine runs threaded on a tiny RVC voice, fed in real time. Every conversion,
the worker's blocks and any warm-up alike, calls the content encoder that all voices
share, so wrapping it shows who converted what, and when. An adapter switch runs no
conversion outside the worker; a base switch's warm-up takes the worker's idle time,
one block after each of the worker's. Run flat out beside
the worker, that background work starved the output on a loaded 2-core machine.
"""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest

from rvclora.realtime.engine import Engine
from rvclora.realtime.settings import EngineSettings
from rvclora.realtime.voice_pool import PoolConfig, VoicePool, VoiceSpec, VoiceSwitcher
from tests.hubert_fixtures import tiny_hubert_config, write_hubert_file
from tests.rvc_fixtures import make_adapter_file, make_voice_file

SR = 16000
SETTINGS = EngineSettings(block_ms=100, context_ms=100, f0_method="pm", buffer_ms=300)
WORKER = "rvclora-engine"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("switch_cost")
    base = make_voice_file(d, version="v1", sr=48000, f0=True, seed=0, name="base.pth")
    return {
        "base": base,
        "other": make_voice_file(d, version="v1", sr=48000, f0=True, seed=1, name="other.pth"),
        "a1": make_adapter_file(base, d / "a1.safetensors", seed=3),
        "a2": make_adapter_file(base, d / "a2.safetensors", seed=4),
        "hubert": write_hubert_file(d / "hubert_v1.pt", tiny_hubert_config("v1")),
    }


def _spec(files, model, *adapters):
    return VoiceSpec(model=str(files[model]), adapters=tuple((str(files[a]), 1.0) for a in adapters),
                     name="+".join((model,) + adapters))


class Running:
    """An engine on a real-time feed (noise, 10 ms periods), its encoder calls recorded as
    (thread name, worker conversions so far)."""

    def __init__(self, files, spec):
        self.pool = VoicePool(PoolConfig(hubert=str(files["hubert"]), rmvpe=str(files["hubert"].parent / "absent.pt")))
        source = self.pool.source(spec)
        self.engine = Engine(source, SETTINGS)
        self.calls: list[tuple[str, int]] = []
        self.worker_calls = 0
        encoder = source.encoder  # one object, shared by every voice on this content encoder
        forward = encoder.forward

        def recorded(*args, **kwargs):
            name = threading.current_thread().name
            if name == WORKER:
                self.worker_calls += 1
            self.calls.append((name, self.worker_calls))
            return forward(*args, **kwargs)

        encoder.forward = recorded
        self.pipe = self.engine.attach(SR, SR, threaded=True)
        self.events: list[tuple[str, str]] = []
        self.switcher = VoiceSwitcher(self.pool, lambda kind, message: self.events.append((kind, message)),
                                      current=source)
        self._stop = threading.Event()
        self._feed = threading.Thread(target=self._feeding, daemon=True)
        self._feed.start()

    def _feeding(self):
        rng = np.random.default_rng(0)
        period = SR // 100
        out = np.zeros(period, np.float32)
        t = time.monotonic()
        while not self._stop.is_set():
            t += period / SR
            time.sleep(max(0.0, t - time.monotonic()))
            self.pipe.on_input((0.1 * rng.standard_normal(period)).astype(np.float32))
            self.engine.wake()
            self.pipe.out.read(out)

    def wait_for_voice(self, name, timeout=30.0):
        deadline = time.monotonic() + timeout
        while self.engine.source.name != name:
            assert time.monotonic() < deadline, f"{name} was not swapped in; events: {self.events}"
            time.sleep(0.01)

    def wait_blocks(self, n, timeout=30.0):
        deadline = time.monotonic() + timeout
        target = self.worker_calls + n
        while self.worker_calls < target:
            assert time.monotonic() < deadline, "the worker stopped converting"
            time.sleep(0.01)

    def close(self):
        self._stop.set()
        self._feed.join(5)
        self.engine.stop()


@pytest.fixture
def running(files):
    runs = []

    def start(spec):
        runs.append(Running(files, spec))
        return runs[-1]

    yield start
    for r in runs:
        r.close()


def test_adapter_switches_convert_nothing_beside_the_worker(files, running):
    """Same base: the copy with other adapters runs the playing voice's (warm) shapes and code
    paths, so nothing is converted outside the worker; each swap lands between two blocks."""
    run = running(_spec(files, "base", "a1"))
    run.wait_blocks(3)
    start = len(run.calls)
    for adapter in ("a2", "a1", "a2"):
        assert run.switcher.switch(run.engine, _spec(files, "base", adapter)) == "adapters"
        run.wait_for_voice(f"base+{adapter}")
        run.wait_blocks(2)
    outside = [c for c in run.calls[start:] if c[0] != WORKER]
    assert not outside, f"{len(outside)} conversions outside the worker during adapter switches: {outside[:3]}"
    assert not run.events
    # The voices' objects are frozen out of the garbage collector's passes: a full pass over them
    # (100–350 ms holding the interpreter lock) in the worker starved the output after a switch.
    tracked = {id(o) for o in gc.get_objects()}
    playing = run.engine.source.synth
    assert id(playing) not in tracked and not any(id(m) in tracked for m in playing.modules())


def test_base_switch_warms_up_in_the_workers_idle_time(files, running):
    """Another base loads and warms up in the background, one warm-up block after each of the
    worker's blocks (never back to back); the old voice plays meanwhile."""
    run = running(_spec(files, "base", "a1"))
    run.wait_blocks(3)
    start = len(run.calls)
    assert run.switcher.switch(run.engine, _spec(files, "other")) == "loading"
    run.wait_for_voice("other")
    background = [c for c in run.calls[start:] if c[0] != WORKER]
    assert len(background) >= 7, background  # the new voice's warm-up: every path the settings can take
    # Each warm-up block waits for a worker step that converted, so the worker converted about as
    # many blocks as the warm-up took (a warm-up block may still overlap a worker block on a loaded
    # machine: count the blocks, not their order). Run flat out, the warm-up takes a few blocks' time.
    between = np.diff([c[1] for c in background])
    assert background[-1][1] - background[0][1] >= len(background) - 3, f"worker blocks between warm-up blocks: {between.tolist()}"
    assert not run.events
