"""Shared fixtures: real speech shipped by pytest-audioeval (MIT-licensed, 16 kHz).

Also the suite's markers at work: a test on the private PulseAudio server is marked
`devices` here (it asks for `pulse`); `make test` refuses to start without the independent
references the `reference` tests compare against, while `make test-fast`
(RVCLORA_TEST_FAST=1) lets those tests skip.
"""

import importlib.util
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

# Fixtures of the private PulseAudio server (`pulse`), for tests with real audio devices; the training
# tests' kit (`kit`, `reference_run`), built once per session.
pytest_plugins = ["tests.pulse_audio", "tests.train_kit"]

# Independent references the `reference` tests compare against (installed by `make setup-test`).
REFERENCES = {"rvc": "rvc==0.3.5 (pip install --no-deps rvc==0.3.5)", "transformers": "transformers",
              "librosa": "librosa"}


def pytest_configure(config):
    if os.environ.get("RVCLORA_TEST_FAST") or "not reference" in (config.getoption("markexpr") or ""):
        return
    missing = [f"{name} ({how})" for name, how in REFERENCES.items() if importlib.util.find_spec(name) is None]
    if missing:
        raise pytest.UsageError(f"reference package missing: {', '.join(missing)}; `make setup-test` installs it "
                                "(or run `make test-fast`, which skips the reference tests)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "pulse" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.devices)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # The suite's models are small: intra-op threads gain little and, on a shared CPU,
    # OpenMP spin-waiting makes tiny ops orders of magnitude slower.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def speech_path(name: str = "en/quick_brown_fox.wav") -> Path:
    return Path(str(resources.files("pytest_audioeval") / "samples" / "audio" / name))


@pytest.fixture(scope="session")
def speech() -> tuple[np.ndarray, int]:
    """About 3 s of English speech, mono float32 at 16 kHz."""
    audio, sr = sf.read(speech_path(), dtype="float32")
    return audio, sr


@pytest.fixture(scope="session")
def speech_file() -> Path:
    return speech_path()


@pytest.fixture(autouse=True)
def _private_control_socket(monkeypatch):
    # Panels and `rvclora run` open a control socket; each test gets its own (short: AF_UNIX paths are
    # limited to 107 bytes), so tests running in parallel never meet one another's.
    folder = tempfile.mkdtemp(prefix="rvc-ctl-")
    monkeypatch.setenv("RVCLORA_CONTROL_SOCKET", os.path.join(folder, "control.sock"))
    yield
    shutil.rmtree(folder, ignore_errors=True)
