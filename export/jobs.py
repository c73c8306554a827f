"""What crosses the process boundary of an export: the job and its outcome, typed and frozen.

The parent writes an `ExportJob` as JSON, the worker process reads it back, runs it
and writes an `ExportOutcome` (or a one-line error). JSON keeps the boundary
inspectable; the dataclasses keep both sides agreeing on every field.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class ExportJob:
    """One export, as `export_onnx` checked it."""

    component: str  # "synth", "content" or "pitch"
    model: str
    tmp_out: str  # where the worker writes the graph (the parent renames it into place)
    adapters: tuple[tuple[str, float], ...]
    streaming: bool
    fp16: bool
    opset: int
    verify: bool
    force: bool
    embedder: str
    version: str

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def read(cls, path: Path) -> ExportJob:
        data = json.loads(path.read_text())
        data["adapters"] = tuple((str(p), float(w)) for p, w in data.get("adapters", ()))
        return cls(**data)


@dataclass(frozen=True)
class ExportOutcome:
    """What the worker reports: the metadata written and, when verified, the worst difference."""

    metadata: dict[str, str]
    max_abs_diff: float | None = None  # ORT vs torch (None: not verified)
    lengths: tuple[int, ...] = ()
    tolerance: float | None = None

    @property
    def failed_verification(self) -> bool:
        return self.max_abs_diff is not None and self.tolerance is not None and self.max_abs_diff > self.tolerance


@dataclass(frozen=True)
class WorkerReply:
    """The worker's answer: an outcome, or a one-line error (`bad_file`: an input model refused;
    `bug`: not the user's input, so the parent raises it as an internal error)."""

    outcome: ExportOutcome | None = None
    error: str | None = None
    bad_file: bool = False
    bug: bool = False

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def read(cls, path: Path) -> WorkerReply:
        data = json.loads(path.read_text())
        outcome = data.get("outcome")
        if outcome is not None:
            outcome = ExportOutcome(
                metadata=dict(outcome["metadata"]), max_abs_diff=outcome.get("max_abs_diff"),
                lengths=tuple(outcome.get("lengths", ())), tolerance=outcome.get("tolerance"),
            )
        return cls(outcome=outcome, error=data.get("error"), bad_file=bool(data.get("bad_file")), bug=bool(data.get("bug")))
