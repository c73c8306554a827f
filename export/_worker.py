"""One export in a fresh process: ``python -m rvclora.export._worker JOB.json REPLY.json``.

torch's exporters keep state between exports in one process (the dynamo
exporter freezes dynamic axes on a second export of a GRU model), so every
export runs here.  User errors (bad files, adapters for another base) come back
as a one-line error; anything else (a bug) with its type name and `bug` set, which
the parent raises as an internal error.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from ..errors import ModelFileError, UserError
from .in_process import run_job
from .jobs import ExportJob, WorkerReply


def main(argv: list[str]) -> int:
    job_file, reply_file = Path(argv[0]), Path(argv[1])
    # Tracing is serial and the checks run small inputs: one thread avoids OpenMP
    # spin-waits that make small ops very slow on a busy machine.
    torch.set_num_threads(int(os.environ.get("RVCLORA_EXPORT_THREADS", "1")))
    try:
        reply = WorkerReply(outcome=run_job(ExportJob.read(job_file)))
    except Exception as e:  # noqa: BLE001 — not swallowed: carried to the parent, which raises it again
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        user = isinstance(e, UserError)
        reply = WorkerReply(error=msg if user else f"{type(e).__name__}: {msg}", bad_file=isinstance(e, ModelFileError),
                            bug=not user)
    reply.write(reply_file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
