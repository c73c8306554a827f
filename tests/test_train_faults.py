"""Training against faults: two runs into one output, a killed run resumed, a disk that fills up."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rvclora.cli.main import train_main as main
from rvclora.lora import load_adapter
from rvclora.train import loop, state
from rvclora.train.run_lock import lock_path_for_output, lock_path_for_work
from tests.train_kit import args, read_log


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("RVCLORA_HOME", str(tmp_path / "home"))


def start_training(argv: list[str], tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "RVCLORA_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    code = "import sys; from rvclora.cli.main import train_main as main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    t_end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < t_end, f"{path} did not appear"
        time.sleep(0.05)


def test_a_second_training_into_the_same_output_is_refused(kit, tmp_path, capsys):
    out = tmp_path / "voice" / "a.safetensors"
    first = start_training(args(kit, out, "--max-steps", "3", "--eval-every", "3", "--no-progress"), tmp_path)
    try:
        work_lock = lock_path_for_work(out.parent / "a.train")  # taken last: then both locks are held
        wait_for(work_lock, first)
        t_end = time.monotonic() + 60
        while f'"pid": {first.pid}' not in work_lock.read_text():  # the holder's record is written
            assert first.poll() is None and time.monotonic() < t_end, first.communicate()
            time.sleep(0.01)
        # the first run holds its locks, paused, however slowly the refusals below start on a loaded machine
        first.send_signal(signal.SIGSTOP)
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
        first.send_signal(signal.SIGCONT)
        _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    train, _ = read_log(out.parent / "a.train")
    assert [r["step"] for r in train] == list(range(1, 4))  # one run's log, not two mixed
    load_adapter(out)  # the first run's adapter, whole
    assert not lock_path_for_output(out).exists() and not lock_path_for_work(out.parent / "a.train").exists()


def test_a_killed_runs_lock_is_taken_over_by_resume(kit, tmp_path):
    out = tmp_path / "a.safetensors"
    common = ("--max-steps", "4", "--save-every", "2", "--eval-every", "2", "--no-progress")
    first = start_training(args(kit, out, *common), tmp_path)
    work = tmp_path / "a.train"
    wait_for(work / "checkpoints" / "ckpt_00000002.pt", first)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert lock_path_for_work(work).exists()  # the dead run's record is still there
    assert main(args(kit, out, *common, "--resume")) == 0
    train, _ = read_log(work)
    assert [r["step"] for r in train] == list(range(1, 5))
    load_adapter(out)


@pytest.fixture
def full_disk(tmp_path):
    """A 64 MB tmpfs mounted where the run in `tmp_path/a.train` keeps its checkpoints; `fill(leave)`
    then takes all its space but `leave` bytes."""
    folder = tmp_path / "a.train" / "checkpoints"
    folder.mkdir(parents=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}); needs root")

    def fill(leave: int) -> None:
        size = shutil.disk_usage(folder).free - leave
        fd = os.open(folder / "filler.bin", os.O_WRONLY | os.O_CREAT)
        try:
            os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)

    yield folder, fill
    subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill_after_first_checkpoint(monkeypatch, fill, leave: int) -> list:
    saved = []
    real = loop.save_checkpoint

    def save(folder, step, payload, keep):
        if saved:  # the disk fills up after the first checkpoint
            fill(leave)
        path = real(folder, step, payload, keep)
        saved.append((path, path.read_bytes()))
        return path

    monkeypatch.setattr(loop, "save_checkpoint", save)
    return saved


@pytest.mark.parametrize("when", ["while writing", "before writing"])
def test_a_full_disk_at_a_checkpoint_is_one_line_and_leaves_no_junk(kit, tmp_path, capsys, monkeypatch, full_disk, when):
    folder, fill = full_disk
    if when == "while writing":  # the check before writing saw room (it is fooled here): the write itself fails
        monkeypatch.setattr(state, "_SPACE_MARGIN", -(2**40))
    saved = _fill_after_first_checkpoint(monkeypatch, fill, leave=64 * 1024)
    out = tmp_path / "a.safetensors"
    assert main(args(kit, out, "--max-steps", "3", "--save-every", "1", "--eval-every", "3", "--no-progress")) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert ("the disk is full" if when == "while writing" else "not enough free space") in err, err
    assert "ckpt_00000001.pt) is kept" in err and "--resume" in err, err
    assert sorted(p.name for p in folder.iterdir()) == ["ckpt_00000001.pt", "filler.bin"]  # no .tmp left
    (first, first_bytes), = saved
    assert first.read_bytes() == first_bytes
    torch.load(first, map_location="cpu", weights_only=True)  # and it still loads
    assert not out.exists()
