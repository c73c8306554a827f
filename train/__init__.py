"""rvclora.train: `rvclora-train` — recordings to a LoRA voice adapter with RVC's full objective.

Modules, one job each: `config` (settings), `slicer` and `preprocess` (raw audio to
segments), `feature_cache` (content/pitch/spectrogram per file hash), `dataset`
(split, batches), `mel`, `losses`, `discriminators`, `metrics`, `generator` (what
trains), `state` (checkpoints), `loop` (the GAN step, validation, early stopping),
`report`, `session` (one run end to end) and `cli`.
"""

from .config import PreprocessConfig, TrainConfig
from .discriminators import MultiPeriodDiscriminator, load_discriminator, save_discriminator
from .session import TrainOptions, train_voice

__all__ = [
    "MultiPeriodDiscriminator", "PreprocessConfig", "TrainConfig", "TrainOptions",
    "load_discriminator", "save_discriminator", "train_voice",
]
