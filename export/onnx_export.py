"""ONNX export of merged voices, the content encoder and RMVPE: the parent side.

`export_onnx` checks everything it can before any work (component, opset, files,
adapters against the voice, the output path), then runs the export in a fresh
process (``python -m rvclora.export._worker``): torch's exporters keep state
between exports, and a fresh process also frees the exporter's memory. The job
and its outcome cross the boundary as the typed records of `jobs`. After the
export the parent checks that every time axis is symbolic, and the file appears
only once everything passed.

The graph contract is `rvclora.synth.onnx_contract`; the traced modules are in
`graphs`, the export itself in `in_process`, the comparison with torch in `verify`.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ExportError, ModelFileError
from ..synth.onnx_contract import COMPONENTS, DEFAULT_OPSET, EMBEDDER_LAYERS, EMBEDDERS, MAX_OPSET, MIN_OPSET
from ..synth.output_file import check_output_path, staged_output
from ..synth.voice_adapters import load_checked_adapters
from ..synth.voice_file import load_voice
from .jobs import ExportJob, ExportOutcome, WorkerReply


class ExportFileError(ModelFileError):
    """The export process refused an input model file (its one-line message)."""


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and how it checked out."""

    path: Path
    component: str
    max_abs_diff: float | None  # ORT vs torch, worst over the verified lengths (None: not verified)
    lengths: tuple[int, ...]  # time lengths run in the check (≥ 2: T proven dynamic)
    metadata: dict[str, str]
    seconds: float


def check_inputs(model_path: str | os.PathLike, adapters: Sequence[tuple[str, float]], *, force: bool = False) -> None:
    """The voice loads and every adapter fits it (one-line errors), before any process starts."""
    load_checked_adapters(load_voice(model_path), adapters, force=force)


def dynamic_axes_of(path: str | os.PathLike) -> dict[str, list[str | int]]:
    """Each graph input/output's shape: a str for a symbolic dim, an int for a fixed one."""
    import onnx  # noqa: PLC0415 — optional extra (onnx)

    proto = onnx.load(str(path), load_external_data=False)
    out = {}
    for value in list(proto.graph.input) + list(proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        out[value.name] = [d.dim_param if d.dim_param else d.dim_value for d in dims]
    return out


_EXPECTED_DYNAMIC = {
    "synth": {"phone": 1, "pitch": 1, "pitchf": 1, "rnd": 2, "audio": 2},
    "content": {"wav": 1, "feats": 1},
    "pitch": {"mel": 2, "salience": 1},
}


def check_dynamic(path: str | os.PathLike, component: str) -> None:
    """Raise ExportError unless every time axis of the exported graph is symbolic."""
    shapes = dynamic_axes_of(path)
    for name, axis in _EXPECTED_DYNAMIC[component].items():
        if name in shapes and not isinstance(shapes[name][axis], str):
            raise ExportError(f"export produced a fixed length {shapes[name][axis]} for {name} axis {axis}; report this bug")


def _run_worker(job: ExportJob) -> ExportOutcome:
    with tempfile.TemporaryDirectory(prefix="rvclora-export-") as tmp:
        job_file, reply_file = Path(tmp) / "job.json", Path(tmp) / "reply.json"
        job.write(job_file)
        proc = subprocess.run(
            [sys.executable, "-m", "rvclora.export._worker", str(job_file), str(reply_file)],
            capture_output=True, text=True,
        )
        if reply_file.exists():
            reply = WorkerReply.read(reply_file)
            if reply.outcome is not None:
                return reply.outcome
            if reply.bug:  # not the user's input: an internal error, with the child's type name
                raise RuntimeError(f"the export process failed: {reply.error}")
            raise (ExportFileError if reply.bad_file else ExportError)(reply.error or "export failed without a message")
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        raise ExportError(f"export process failed (exit {proc.returncode}): {lines[-1] if lines else 'no message'}")


def export_onnx(
    model: str | os.PathLike,
    out: str | os.PathLike,
    *,
    component: str = "synth",
    adapters: Sequence[tuple[str | os.PathLike, float]] = (),
    streaming: bool = False,
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
    overwrite: bool = False,
    force: bool = False,
    embedder: str = "hubert_base",
    version: str = "v2",
) -> ExportResult:
    """Export ``component`` of ``model`` to the ONNX file ``out`` in a fresh process.

    - ``synth``: the voice ``model`` (.pth) with ``adapters`` ``[(file, weight), …]``
      merged in; ``streaming`` adds ``skip_head``/``return_length`` inputs.
    - ``content``: a HuBERT/ContentVec file, ``version`` v1 (256-d) or v2 (768-d) features.
    - ``pitch``: an ``rmvpe.pt``.
    ``verify`` runs ONNX Runtime and torch on the same inputs at two lengths and
    raises ExportError above the tolerance (1e-4 fp32).  The file appears only
    after everything passed; an existing ``out`` is kept unless ``overwrite``.
    """
    start = time.perf_counter()
    if component not in COMPONENTS:
        raise ExportError(f"unknown component {component!r}; choose one of {', '.join(COMPONENTS)}")
    if not MIN_OPSET <= int(opset) <= MAX_OPSET:
        raise ExportError(f"opset {opset} is not supported; use {MIN_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET})")
    if embedder not in EMBEDDERS:
        raise ExportError(f"unknown embedder {embedder!r}; choose one of {', '.join(EMBEDDERS)}")
    if version not in EMBEDDER_LAYERS:
        raise ExportError(f"unknown version {version!r}; choose v1 or v2")
    if component != "synth" and (adapters or streaming):
        raise ExportError(f"--adapter and --streaming apply to the synthesizer, not to --component {component}")
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ExportError(f"{out}: an ONNX export needs a .onnx file name")
    for path in [model, *(p for p, _ in adapters)]:
        if not Path(path).is_file():
            raise ExportError(f"{path}: file not found")
    check_output_path(out, overwrite=overwrite)
    specs = tuple((str(p), float(w)) for p, w in adapters)
    if component == "synth":
        check_inputs(model, specs, force=force)
    with staged_output(out, overwrite=overwrite) as tmp:
        job = ExportJob(
            component=component, model=str(model), tmp_out=str(tmp), adapters=specs, streaming=streaming,
            fp16=fp16, opset=int(opset), verify=verify, force=force, embedder=embedder, version=version,
        )
        outcome = _run_worker(job)
        check_dynamic(tmp, component)
        if verify and outcome.failed_verification:
            raise ExportError(
                f"verification failed: ONNX Runtime and torch differ by {outcome.max_abs_diff:.3g} "
                f"(> {outcome.tolerance:g}); the file was not written"
            )
    return ExportResult(
        path=out, component=component, max_abs_diff=outcome.max_abs_diff, lengths=outcome.lengths,
        metadata=dict(outcome.metadata), seconds=time.perf_counter() - start,
    )
