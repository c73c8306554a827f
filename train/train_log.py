"""Training logs: TensorBoard (when it imports) plus losses.jsonl in the work dir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch


class Logger:
    """TensorBoard (when it imports) plus a JSON-lines log of every step in the work dir."""

    def __init__(self, folder: Path, resume_step: int) -> None:
        self.jsonl = folder / "losses.jsonl"
        if resume_step and self.jsonl.exists():  # drop what a killed run logged after its checkpoint
            kept = [ln for ln in self.jsonl.read_text().splitlines() if ln and json.loads(ln)["step"] <= resume_step]
            self.jsonl.write_text("".join(ln + "\n" for ln in kept))
        elif self.jsonl.exists():
            self.jsonl.unlink()
        self._file = open(self.jsonl, "a")  # noqa: SIM115 - open for the whole run, closed by close()
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 - optional: tensorboard may be missing

            self.tb: Any = SummaryWriter(str(folder / "tensorboard"), purge_step=resume_step + 1 if resume_step else None)
        except Exception:  # noqa: BLE001 - tensorboard missing or broken: keep training
            self.tb = None

    def scalars(self, step: int, values: dict[str, float], prefix: str) -> None:
        self._file.write(json.dumps({"step": step, "kind": prefix, **values}) + "\n")
        self._file.flush()
        if self.tb is not None:
            for k, v in values.items():
                if v is not None and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"{prefix}/{k}", v, step)

    def samples(self, step: int, shown, sr: int) -> None:
        if self.tb is None:
            return
        for i, (audio, hyp, ref) in enumerate(shown):
            self.tb.add_audio(f"val/{i}/audio", audio.clamp(-1, 1)[None], step, sample_rate=sr)
            self.tb.add_image(f"val/{i}/mel_generated", _mel_image(hyp), step, dataformats="HW")
            self.tb.add_image(f"val/{i}/mel_recording", _mel_image(ref), step, dataformats="HW")

    def close(self) -> None:
        self._file.close()
        if self.tb is not None:
            self.tb.close()


def _mel_image(mel: torch.Tensor) -> np.ndarray:
    m = mel.float().numpy()
    lo, hi = np.log(1e-5), max(float(m.max()), np.log(1e-5) + 1)
    return np.flipud(np.clip((m - lo) / (hi - lo), 0, 1)).copy()  # low frequencies at the bottom
