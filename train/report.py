"""What a user reads at the end: the preprocessing report and the training report."""

from __future__ import annotations

import json
import resource
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .preprocess import Skipped


def peak_memory_mb(device: torch.device) -> float:
    """Peak resident memory of this process (CPU), or peak allocated tensor memory (CUDA)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20  # macOS reports bytes


def write_preprocess_report(path: Path, files: int, skipped: list[Skipped], segments: int) -> str:
    """Text report of which files were used and which were skipped and why; returns it."""
    lines = [f"{files} audio file(s) found, {files - len(skipped)} used, {len(skipped)} skipped; {segments} training segment(s)"]
    lines += [f"  skipped {s.path}: {s.reason}" for s in skipped]
    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


@dataclass
class TrainReport:
    adapter: str
    adapter_bytes: int
    index: str | None
    voice_json: str
    mode: str  # "lora" or "full"
    trainable_parameters: int
    steps: int
    epochs: float
    stopped_early: bool
    best_step: int
    val_mel_start: float
    val_mel_best: float
    mcd_db: float
    f0_correlation: float | None
    spectral_convergence: float
    steps_per_s: float
    peak_memory_mb: float
    train_segments: int
    val_segments: int
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    processes: int = 1  # data-parallel training processes

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def summary(self) -> str:
        f0 = "n/a" if self.f0_correlation is None else f"{self.f0_correlation:.3f}"
        size = self.adapter_bytes / 2**20
        lines = [
            f"wrote {self.adapter} ({size:.2f} MB, {self.mode}, {self.trainable_parameters:,} trained parameters)",
            f"steps {self.steps} ({self.epochs:.1f} epochs){', stopped early' if self.stopped_early else ''}; "
            f"best at step {self.best_step}; {self.steps_per_s:.2f} steps/s; peak memory {self.peak_memory_mb:.0f} MB",
            f"validation ({self.val_segments} segments): mel L1 {self.val_mel_start:.3f} -> {self.val_mel_best:.3f}, "
            f"MCD {self.mcd_db:.2f} dB, F0 correlation {f0}, spectral convergence {self.spectral_convergence:.3f}",
        ]
        if self.index:
            lines.append(f"index {self.index}")
        lines.append(f"voice defaults {self.voice_json}")
        if self.skipped_files:
            lines.append(f"{len(self.skipped_files)} file(s) skipped (see the preprocessing report)")
        return "\n".join(lines)
