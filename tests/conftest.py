"""Shared fixtures: real speech shipped by pytest-audioeval (MIT-licensed, 16 kHz)."""

import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

# Fixtures of the private PulseAudio server (`pulse`), for tests with real audio devices.
pytest_plugins = ["rvclora.tests.pulse_audio"]


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
