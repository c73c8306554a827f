"""One optimisation step of RVC's GAN objective over a global batch split into micro-batches.

RVC's order: the generator converts; the discriminator learns real vs generated
(LSGAN); then the generator learns from mel L1 (x45) + KL (x1) + feature matching
(x2) + LSGAN against the updated discriminator.  Only the generator's trainable
tensors move (the adapter, in LoRA mode); the discriminator trains fully.

A global batch is cut into micro-batches of `micro_batch` segments; each process
runs its share of them (see `distributed`), and the step's gradients are the mean
over all micro-batches.  Each micro-batch seeds the random draws of its forward
pass (slice starts, posterior noise, NSF phases, dropout) from (seed, step, its
index in the batch), so a step computes the same numbers whether one process
runs every micro-batch or several processes share them.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import torch

from ..synth.synthesizer import slice_segments
from .config import TrainConfig
from .dataset import Batch
from .discriminators import MultiPeriodDiscriminator
from .distributed import World, average_gradients
from .generator import GeneratorSetup
from .losses import discriminator_loss, feature_loss, generator_loss, kl_loss, mel_l1
from .mel import SpecConfig, mel_spectrogram, spec_to_mel

LOSS_NAMES = ("loss_d", "loss_g", "mel", "kl", "fm", "gen")


def micro_seed(seed: int, step: int, index: int) -> int:
    """The seed of micro-batch `index` of step `step` (0-based step about to run)."""
    return ((seed * 1_000_003 + step) * 1_009 + index) % 2**62


def split_batch(indices: Sequence[int], micro_batch: int) -> list[list[int]]:
    return [list(indices[i : i + micro_batch]) for i in range(0, len(indices), micro_batch)]


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Mixed precision for the forward passes (None: full fp32)."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def train_step(
    setup: GeneratorSetup,
    d: MultiPeriodDiscriminator,
    micro: Batch | Sequence[Batch],
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    cfg: TrainConfig,
    spec: SpecConfig,
    device: torch.device,
    *,
    seeds: Sequence[int | None] | None = None,
    n_micro: int | None = None,
    world: World | None = None,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """One step on this process's micro-batches (`seeds`: one per micro-batch, None = no
    reseeding); `n_micro` counts the micro-batches of the whole step over all processes."""
    world = world or World()
    micro = [micro] if isinstance(micro, Batch) else list(micro)
    seeds = list(seeds) if seeds is not None else [None] * len(micro)
    n_total = n_micro if n_micro is not None else len(micro)
    g = setup.model
    seg, hop = g.segment_size, spec.hop
    totals = torch.zeros(len(LOSS_NAMES), dtype=torch.float64, device=device)
    kept = []
    d_params = [p for p in d.parameters() if p.requires_grad]  # all of D, or its light part

    opt_d.zero_grad(set_to_none=True)
    for batch, seed in zip(micro, seeds, strict=True):
        if seed is not None:
            torch.manual_seed(seed)
        sid = torch.zeros(batch.phone.shape[0], dtype=torch.long, device=device)
        f0 = setup.voice.f0
        with autocast(device, amp_dtype):
            y_hat, ids, _, y_mask, (_, z_p, m_p, logs_p, _, logs_q) = g(
                batch.phone, batch.lengths, batch.pitch if f0 else None, batch.pitchf if f0 else None,
                batch.spec, batch.lengths, sid,
            )
            y = slice_segments(batch.wav, ids * hop, seg * hop)
            real, fake, _, _ = d(y, y_hat.detach())
        loss_d = discriminator_loss(real, fake)
        scaler.scale(loss_d).backward()
        totals[0] += loss_d.detach().double()
        kept.append((batch, y, y_hat, ids, y_mask, z_p, m_p, logs_p, logs_q))
    average_gradients(world, d_params, n_total)
    scaler.step(opt_d)

    opt_g.zero_grad(set_to_none=True)
    for p in d_params:  # the G step needs gradients through D, not of D
        p.requires_grad_(False)
    try:
        for batch, y, y_hat, ids, y_mask, z_p, m_p, logs_p, logs_q in kept:
            mel = spec_to_mel(slice_segments(batch.spec, ids, seg), spec)
            mel_hat = mel_spectrogram(y_hat.squeeze(1).float(), spec)
            with autocast(device, amp_dtype):
                _, fake, fmap_real, fmap_fake = d(y, y_hat)
            loss_mel = mel_l1(mel, mel_hat) * cfg.c_mel
            loss_kl = kl_loss(z_p, logs_q, m_p, logs_p, y_mask) * cfg.c_kl
            loss_fm = feature_loss(fmap_real, fmap_fake) * cfg.c_fm
            loss_gen = generator_loss(fake)
            loss_g = loss_gen + loss_fm + loss_mel + loss_kl
            scaler.scale(loss_g).backward()
            for i, v in enumerate((loss_g, loss_mel / cfg.c_mel, loss_kl, loss_fm, loss_gen), start=1):
                totals[i] += v.detach().double()
    finally:
        for p in d_params:
            p.requires_grad_(True)
    del kept
    average_gradients(world, list(setup.trainable().values()), n_total)
    scaler.step(opt_g)
    scaler.update()
    world.sum_(totals)
    return dict(zip(LOSS_NAMES, (totals / n_total).tolist(), strict=True))
