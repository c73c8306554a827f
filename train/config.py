"""Settings of a training run, as frozen dataclasses (hashable, so they can key caches).

Defaults are RVC's (its configs/v2/*.json and infer/modules/train/) unless a comment says why not.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class PreprocessConfig:
    """How raw recordings become training segments (RVC's preprocess.py recipe)."""

    highpass_hz: float = 48.0  # Butterworth order 5, causal lfilter (RVC: filtfilt pre-rings)
    # Silence slicer (RVC's Slicer: -42 dB, 1.5 s min, 0.4 s min gap, 15 ms hop, 0.5 s kept)
    threshold_db: float = -42.0
    min_length: float = 1.5
    min_interval: float = 0.4
    hop: float = 0.015
    max_sil_kept: float = 0.5
    # Segments: 3.7 s every 3.4 s (0.3 s overlap); a remainder up to 4.0 s stays whole.
    per: float = 3.7
    overlap: float = 0.3
    tail: float = 4.0
    # Normalisation: x/peak * (0.9*0.75) + 0.25*x; chunks with |peak| > 2.5 are broken data.
    max_peak: float = 0.9
    alpha: float = 0.75
    reject_peak: float = 2.5
    # File checks (ours; RVC has none and silently trains on garbage).
    min_seconds: float = 0.5  # shorter files cannot give one training slice with context
    silence_dbfs: float = -60.0  # a file whose peak is below this is silence or a dead mic
    clip_level: float = 0.999  # |x| at or above this counts as a clipped sample...
    clip_fraction: float = 0.01  # ...and more than 1 % of samples in clipped runs rejects a file

    def key(self) -> str:
        return _digest(asdict(self))


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation: what trains, how long, how hard, and when to look at validation."""

    # LoRA (ignored with full=True).  Rank 4 on every target: 1.08 MB for a full-size v2
    # model, against 2.17 MB at rank 8, at the same validation quality in
    # benchmarks/train_quality.py (alpha/rank stays 2, as at rank 8 with alpha 16).
    rank: int = 4
    alpha: float = 8.0
    rslora: bool = False
    targets: str = "all"
    unfreeze: tuple[str, ...] = ()
    full: bool = False  # full fine-tune of the generator, for comparison with LoRA
    # Schedule
    epochs: int = 20  # RVC WebUI default
    max_steps: int | None = None
    batch_size: int = 4  # the global batch: segments per step, over all processes
    # Segments per forward pass (None: the batch shared evenly by the processes).  The
    # random draws of a step depend on it, not on the number of processes.
    micro_batch: int | None = None
    lr: float | None = None  # None: 1e-4 (RVC) for full, 5e-4 for LoRA (B starts at zero)
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.8, 0.99)
    eps: float = 1e-9
    lr_decay: float = 0.999875  # ExponentialLR, stepped once per epoch as RVC does
    # Objective (RVC: mel x45, KL x1, feature matching x2, LSGAN x1)
    c_mel: float = 45.0
    c_kl: float = 1.0
    c_fm: float = 2.0
    # Bookkeeping
    seed: int = 1234  # RVC's seed
    fp16: bool = False  # the old switch for precision="fp16"
    # Memory (see train.memory): "auto" = bf16 on GPUs that have it, else fp16 with loss
    # scaling, fp32 on the CPU; None = on in LoRA mode, off with full (RVC's behaviour).
    precision: str = "auto"
    checkpointing: bool | None = None
    # The discriminator: "full" (RVC) trains all of it, "light" only gains, biases and the
    # output layers; "auto" = light for a LoRA run on a pretrained D, else full.
    train_d: str = "auto"
    save_every: int = 200
    keep_checkpoints: int = 2
    eval_every: int = 200
    patience: int = 10  # evaluations without a better val mel loss; 0 = never stop early
    val_fraction: float = 0.1
    max_val_segments: int = 16
    segment_frames: int | None = None  # training slice (frames); None = the model's config
    log_every: int = 10

    @property
    def generator_lr(self) -> float:
        return self.lr if self.lr is not None else (1e-4 if self.full else 5e-4)

    def to_json(self) -> dict:
        return asdict(self)


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def digest(obj: object) -> str:
    """Short stable hash of a JSON-able object (cache keys)."""
    return _digest(obj)


__all__ = ["PreprocessConfig", "TrainConfig", "digest", "field"]
