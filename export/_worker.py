"""One export in a fresh process: ``python -m rvclora.export._worker JOB.json RESULT.json``.

torch's exporters keep state between exports in one process (the dynamo
exporter freezes dynamic axes on a second export of a GRU model), so every
export runs here.  User errors (bad files, adapters for another base) come back
as ``{"error": one line}``; anything else (a bug) as ``{"error": "Type: line", "bug": true}``,
which the parent raises as an internal error.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..errors import ModelFileError, UserError


def main(argv: list[str]) -> int:
    job_file, result_file = Path(argv[0]), Path(argv[1])
    try:
        import torch  # noqa: PLC0415 — inside the try: a broken install reports through the result file

        # Tracing is serial and the checks run small inputs: one thread avoids OpenMP
        # spin-waits that make small ops very slow on a busy machine.
        torch.set_num_threads(int(os.environ.get("RVCLORA_EXPORT_THREADS", "1")))
        from .onnx_export import run_job  # noqa: PLC0415 — inside the try: a broken install reports through the result file

        result = run_job(json.loads(job_file.read_text()))
    except Exception as e:  # noqa: BLE001 — not swallowed: carried to the parent, which raises it again
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        user = isinstance(e, UserError)
        result = {"error": msg if user else f"{type(e).__name__}: {msg}", "bug": not user,
                  "bad_file": isinstance(e, ModelFileError)}
    result_file.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
