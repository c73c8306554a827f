"""One export in a fresh process: ``python -m rvclora.export._worker JOB.json RESULT.json``.

torch's exporters keep state between exports in one process (the dynamo
exporter freezes dynamic axes on a second export of a GRU model), so every
export runs here.  Expected failures (bad files, adapters for another base)
come back as ``{"error": one line}``; anything else too, with its type name.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..synth.errors import ModelFileError


def main(argv: list[str]) -> int:
    job_file, result_file = Path(argv[0]), Path(argv[1])
    try:
        import torch  # noqa: PLC0415 — inside the try: a broken install reports through the result file

        # Tracing is serial and the checks run small inputs: one thread avoids OpenMP
        # spin-waits that make small ops very slow on a busy machine.
        torch.set_num_threads(int(os.environ.get("RVCLORA_EXPORT_THREADS", "1")))
        from .onnx_export import run_job  # noqa: PLC0415 — inside the try: a broken install reports through the result file

        result = run_job(json.loads(job_file.read_text()))
    except (ValueError, OSError, RuntimeError) as e:  # our errors are ValueErrors with one line
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        result = {"error": msg if isinstance(e, ValueError) else f"{type(e).__name__}: {msg}"}
        result["bad_file"] = isinstance(e, ModelFileError)
    result_file.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
