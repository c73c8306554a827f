"""Data-parallel training: two CPU processes on gloo against one process, same seed and global batch."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from rvclora.cli.main import train_main as main
from rvclora.lora import load_adapter
from tests.train_kit import REFERENCE as COMMON
from tests.train_kit import args, read_log


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("RVCLORA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # two processes on a shared machine


def _close(a: list[dict], b: list[dict]) -> None:
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        for k, v in ra.items():
            if isinstance(v, float):
                assert rb[k] == pytest.approx(v, rel=1e-4, abs=1e-6), (ra["step"], k)


def test_two_processes_match_one_and_resume_exactly(kit, reference_run, tmp_path):
    ref_out = reference_run  # one process

    out = tmp_path / "two" / "a.safetensors"
    first = list(COMMON)
    first[1] = "4"
    assert main(args(kit, out, *first, "--nproc-per-node", "2")) == 0
    work = out.parent / "a.train"
    report = json.loads((work / "report.json").read_text())
    assert report["processes"] == 2
    before_resume = read_log(work)
    # as if killed between steps 2 and 4: continue from the step-2 checkpoint, still on two processes
    (work / "checkpoints" / "ckpt_00000004.pt").unlink()
    assert main(args(kit, out, *COMMON, "--resume", "--nproc-per-node", "2")) == 0

    ref_train, ref_val = read_log(ref_out.parent / "a.train")
    train, val = read_log(work)
    assert [r["step"] for r in train] == list(range(1, 7))  # one writer: each step logged once
    # the resumed run recomputed steps 3-4 exactly as the first two-process run did
    assert train[2:4] == before_resume[0][2:4] and val[:3] == before_resume[1][:3]
    _close(ref_train, train)  # the same loss curve as one process
    _close(ref_val, val)
    a, b = load_adapter(ref_out), load_adapter(out)
    assert set(a.lora) == set(b.lora)
    for name, (ra, rb) in a.lora.items():
        assert float(rb.abs().max()) > 0
        torch.testing.assert_close(b.lora[name][0], ra, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(b.lora[name][1], rb, rtol=1e-4, atol=1e-6)
    assert sorted(p.name for p in (work / "checkpoints").glob("*.pt")) == ["ckpt_00000004.pt", "ckpt_00000006.pt"]
    shutil.rmtree(work / "checkpoints")


def test_bad_process_count_is_one_line(kit, tmp_path, capsys):
    assert main(args(kit, tmp_path / "a.safetensors", "--nproc-per-node", "0", "--no-progress")) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--nproc-per-node 0: must be at least 1" in err
