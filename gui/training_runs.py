"""The panel's side of a voice training: start the child process, find it again, cancel it.

The training runs in its own process (`python -m rvclora.train.job`), in its own
session, so it outlives the panel; everything the panel knows about it comes from
the job folder RVCLORA_HOME/training/NAME: `state.json`, which the job rewrites
as it goes (phase, step, total, loss, time left, preprocessing report, error),
and `log.txt`, its output.  Closing and reopening the panel just reads them again.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..library.home import Home

JOB_MODULE = "rvclora.train.job"
FINAL_PHASES = ("done", "failed", "cancelled")


def runs_root(home: Home) -> Path:
    return home.root / "training"


@dataclass(frozen=True)
class TrainingRun:
    name: str
    folder: Path
    state: dict[str, Any]

    @property
    def phase(self) -> str:
        return str(self.state.get("phase", "starting"))

    @property
    def finished(self) -> bool:
        return self.phase in FINAL_PHASES

    @property
    def running(self) -> bool:
        return not self.finished and _alive(int(self.state.get("pid", 0)))

    @property
    def resumable(self) -> bool:
        return any((self.folder / "work" / "checkpoints").glob("ckpt_*.pt"))

    @property
    def log_tail(self) -> str:
        try:
            lines = (self.folder / "log.txt").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a finished child of this very process stays a zombie until reaped
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def read_run(home: Home, name: str) -> TrainingRun | None:
    folder = runs_root(home) / name
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return TrainingRun(name, folder, state)


def active_runs(home: Home) -> list[TrainingRun]:
    """Runs still training (their process alive), oldest name first."""
    root = runs_root(home)
    runs = [read_run(home, p.name) for p in sorted(root.iterdir())] if root.is_dir() else []
    return [r for r in runs if r is not None and r.running]


def pretrained_discriminator(base: Path) -> Path | None:
    """RVC ships G and D side by side (f0G40k.pth, f0D40k.pth): the D that goes with a base."""
    m = re.fullmatch(r"(f0)?G(\d+k)\.pth", base.name)
    d = base.with_name(f"{m.group(1) or ''}D{m.group(2)}.pth") if m else None
    return d if d is not None and d.is_file() else None


def start_run(home: Home, name: str, data: Path, base: Path, *, steps: int, extra: tuple[str, ...] = ()) -> TrainingRun:
    """Start (or, when a cancelled run left a checkpoint, resume) a training of voice `name`."""
    folder = runs_root(home) / name
    previous = read_run(home, name)
    if previous is not None and previous.running:
        raise ValueError(f"voice '{name}' is already training; wait for it or cancel it")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "state.json").unlink(missing_ok=True)  # the old run's: the new job writes its own
    resume = previous is not None and previous.phase == "cancelled" and previous.resumable
    base_d = pretrained_discriminator(base)
    cmd = [
        sys.executable, "-m", JOB_MODULE, str(folder), name, "--", str(data), "--base", str(base),
        *(["--base-d", str(base_d)] if base_d else []), "--max-steps", str(steps), *(["--resume"] if resume else []), *extra,
    ]
    with open(folder / "log.txt", "ab") as log:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    state = {"pid": proc.pid, "name": name, "phase": "starting", "step": 0, "total": steps}
    try:  # until the job writes its own; never over one it already wrote
        fd = os.open(folder / "state.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return read_run(home, name) or TrainingRun(name, folder, state)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(state))
    return TrainingRun(name, folder, state)


def cancel_run(run: TrainingRun) -> None:
    """Ask the job to checkpoint its current step and stop."""
    if run.running:
        os.kill(int(run.state["pid"]), signal.SIGTERM)
