"""A training run started by the panel: a child process that outlives the panel.

    python -m rvclora.train.job JOB_DIR NAME -- <rvclora-train arguments without --out>

The adapter and voice.json go to JOB_DIR/voice/NAME.safetensors, checkpoints and
logs to JOB_DIR/work.  The job rewrites JOB_DIR/state.json (atomically) as it goes;
that file is the whole contract with the panel, which may close and reopen at any
time and simply reads it again:

    {"pid", "name", "data", "base", "phase": "preprocessing" | "training" | "finishing" | "done" | "failed" | "cancelled",
     "step", "total", "loss", "mel", "elapsed_s", "eta_s", "preprocess_report", "error", "voice"}

SIGTERM cancels: the current step is checkpointed and the job stops ("cancelled");
the same command with --resume continues it.  When training succeeds the voice
folder moves into the voice library (RVCLORA_HOME/voices/NAME): it is there for
the panel to select whether or not a panel is open.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..library.home import Home
from ..library.voice_library import VoiceLibraryError, check_name
from ..synth.cli_options import parents
from ..synth.heap import return_freed_memory
from ..synth.output_file import replaced_atomically
from .cli import add_arguments, options_from_args
from .loop import TrainingCancelled
from .session import Hooks, train_voice

STATE = "state.json"
FINAL_PHASES = ("done", "failed", "cancelled")


def voice_out(job_dir: Path, name: str) -> Path:
    return job_dir / "voice" / f"{name}.safetensors"


def write_state(job_dir: Path, state: dict[str, Any]) -> None:
    with replaced_atomically(job_dir / STATE) as tmp:
        tmp.write_text(json.dumps(state))


def read_state(job_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((job_dir / STATE).read_text())
    except (OSError, ValueError):
        return None


class Job:
    """The state of one run, written on every change."""

    def __init__(self, job_dir: Path, name: str) -> None:
        self.dir = job_dir
        self.state: dict[str, Any] = {
            "pid": os.getpid(), "name": name, "phase": "preprocessing", "step": 0, "total": 0, "loss": None, "mel": None,
            "elapsed_s": 0.0, "eta_s": None, "preprocess_report": "", "error": "", "voice": None,
        }
        self.cancel = False
        self._t0: float | None = None
        self._first_step = 0
        self.save()

    def save(self, **changes: Any) -> None:
        self.state.update(changes)
        write_state(self.dir, self.state)

    def preprocessed(self, text: str) -> None:
        self.save(preprocess_report=text, phase="training")

    def step(self, step: int, total: int, losses: dict[str, float]) -> None:
        now = time.monotonic()
        if self._t0 is None:  # time left from the steps of this process (a resumed run starts late)
            self._t0, self._first_step = now, step - 1
        done = step - self._first_step
        per_step = (now - self._t0) / max(done, 1)
        self.save(step=step, total=total, loss=losses["loss_g"], mel=losses["mel"], elapsed_s=now - self._t0,
                  eta_s=per_step * (total - step), phase="training")


def _into_library(home: Home, job_dir: Path, name: str) -> Path:
    target = home.voice_dir(name)
    if target.exists():
        raise VoiceLibraryError(f"a voice named '{name}' appeared in the library meanwhile; the new one stays in {job_dir / 'voice'}")
    home.voices.mkdir(parents=True, exist_ok=True)
    shutil.move(str(job_dir / "voice"), str(target))
    return target


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 3 or argv[2] != "--":
        print("usage: python -m rvclora.train.job JOB_DIR NAME -- <rvclora-train arguments>", file=sys.stderr)
        return 2
    job_dir, name = Path(argv[0]), check_name(argv[1])
    job_dir.mkdir(parents=True, exist_ok=True)
    parser = argparse.ArgumentParser(prog="rvclora train", parents=parents(("device", "assets")))
    add_arguments(parser)
    args = parser.parse_args([*argv[3:], "--out", str(voice_out(job_dir, name)), "--work-dir", str(job_dir / "work"), "--no-progress"])
    job = Job(job_dir, name)
    job.save(data=str(args.data), base=str(args.base), total=args.max_steps or 0)  # for a panel that reattaches

    def on_term(_signum, _frame) -> None:
        job.cancel = True  # checked after every step: checkpoint, then stop

    signal.signal(signal.SIGTERM, on_term)
    home = Home.from_env()
    try:
        if home.voice_dir(name).exists():
            raise VoiceLibraryError(f"a voice named '{name}' is already in the library; choose another name")
        return_freed_memory()  # this child process trains (see synth.heap)
        report = train_voice(
            options_from_args(args), say=lambda m: print(m, flush=True),
            hooks=Hooks(on_preprocessed=job.preprocessed, on_step=job.step, should_stop=lambda: job.cancel),
        )
        job.save(phase="finishing")
        folder = _into_library(home, job_dir, name)
    except TrainingCancelled as e:
        job.save(phase="cancelled", error=str(e))
        return 0
    except UserError as e:
        job.save(phase="failed", error=str(e).splitlines()[0] if str(e) else type(e).__name__)
        return 2
    except BaseException as e:
        job.save(phase="failed", error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        raise
    if report is not None:
        print(report.summary(), flush=True)
    job.save(phase="done", voice=str(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
