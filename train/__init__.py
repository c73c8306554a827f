"""rvclora.train: `rvclora-train` — recordings to a LoRA voice adapter with RVC's full objective.

Modules, one job each: `config` (settings), `slicer` and `preprocess` (raw audio to
segments), `feature_cache` (content/pitch/spectrogram per file hash), `dataset`
(split, batches), `mel`, `losses`, `discriminators`, `metrics`, `generator` (what
trains), `state` (checkpoints), `loop` (the GAN step, validation, early stopping),
`report`, `session` (one run end to end) and `cli`.

This package imports nothing itself, so the command line loads `train.cli` without torch.
"""
