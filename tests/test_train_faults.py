"""Training against faults: two runs into one output, a killed run resumed, a disk that fills up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rvclora.lora import load_adapter
from rvclora.tests.test_train_run import args, kit, read_log  # noqa: F401 - kit is a fixture
from rvclora.train.cli import main
from rvclora.train.run_lock import lock_path_for_output, lock_path_for_work


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("RVCLORA_HOME", str(tmp_path / "home"))


def start_training(argv: list[str], tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "RVCLORA_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    code = "import sys; from rvclora.train.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    t_end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < t_end, f"{path} did not appear"
        time.sleep(0.05)


def test_a_second_training_into_the_same_output_is_refused(kit, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "voice" / "a.safetensors"
    first = start_training(args(kit, out, "--max-steps", "12", "--eval-every", "12", "--no-progress"), tmp_path)
    try:
        wait_for(lock_path_for_work(out.parent / "a.train"), first)
        # the same --out (even with --overwrite), and another --out in the same --work-dir
        for argv in (args(kit, out, "--max-steps", "2", "--no-progress", "--overwrite"),
                     args(kit, tmp_path / "b.safetensors", "--work-dir", str(out.parent / "a.train"), "--max-steps", "2"),
                     args(kit, out, "--max-steps", "2", "--no-progress", "--work-dir", str(tmp_path / "w2"))):
            assert main(argv) == 2
            err = capsys.readouterr().err.strip()
            assert "\n" not in err and f"pid {first.pid}, started" in err and "in use by another training" in err, err
        assert not (tmp_path / "w2").exists() or not any((tmp_path / "w2").iterdir())
        assert not (tmp_path / "b.safetensors").exists()
    finally:
        _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    train, _ = read_log(out.parent / "a.train")
    assert [r["step"] for r in train] == list(range(1, 13))  # one run's log, not two mixed
    load_adapter(out)  # the first run's adapter, whole
    assert not lock_path_for_output(out).exists() and not lock_path_for_work(out.parent / "a.train").exists()


def test_a_killed_runs_lock_is_taken_over_by_resume(kit, tmp_path):  # noqa: F811
    out = tmp_path / "a.safetensors"
    common = ("--max-steps", "6", "--save-every", "2", "--eval-every", "2", "--no-progress")
    first = start_training(args(kit, out, *common), tmp_path)
    work = tmp_path / "a.train"
    wait_for(work / "checkpoints" / "ckpt_00000002.pt", first)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert lock_path_for_work(work).exists()  # the dead run's record is still there
    assert main(args(kit, out, *common, "--resume")) == 0
    train, _ = read_log(work)
    assert [r["step"] for r in train] == list(range(1, 7))
    load_adapter(out)
