"""The training loop: steps over the epochs, validation, early stopping, checkpoints, logs.

With several processes (see `distributed`) every process runs this loop on its
share of each batch and of the validation set; they agree on every number, and
only rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import TrainingError
from ..synth.heap import trim
from .config import TrainConfig
from .dataset import SegmentData, epoch_batches
from .discriminators import MultiPeriodDiscriminator
from .distributed import World
from .generator import GeneratorSetup
from .mel import SpecConfig
from .state import list_checkpoints, load_latest, rng_state, save_checkpoint, set_rng_state
from .step import micro_seed, split_batch, train_step
from .train_log import Logger
from .validation import evaluate, quality_metrics

__all__ = ["LoopResult", "ResumeError", "quality_metrics", "run", "train_step"]


class DivergedError(TrainingError, FloatingPointError):
    """The losses became NaN/Inf; lowering the learning rate or resuming usually helps."""


class ResumeError(TrainingError):
    """A checkpoint that does not belong to this run's settings."""


class TrainingCancelled(TrainingError):
    """Stopped on request after writing a checkpoint of the current step (resume continues it)."""

    def __init__(self, step: int) -> None:
        super().__init__(f"cancelled at step {step}; the checkpoint is kept: resume to continue")
        self.step = step


@dataclass
class LoopResult:
    steps: int
    epochs_done: float
    stopped_early: bool
    best_step: int
    best_val_mel: float
    first_val_mel: float
    steps_per_s: float
    resumed_from: int
    history: list[dict] = field(default_factory=list)


def _any(world: World, flag: bool) -> bool:
    """True on every process when it is True on one (they must stop at the same step)."""
    return bool(world.sum_(torch.tensor([float(flag)]))[0] > 0) if world.distributed else flag


def micro_batch_size(cfg: TrainConfig, world: World) -> int:
    """Segments per forward pass: as given, else the global batch shared evenly by the processes."""
    return cfg.micro_batch if cfg.micro_batch is not None else max(1, math.ceil(cfg.batch_size / world.size))


def _structure(cfg: TrainConfig, setup: GeneratorSetup, n_train: int, micro: int) -> dict:
    """What a checkpoint must agree on to be resumed by this run (not the number of processes:
    a run may continue on more or fewer of them)."""
    return {"micro_batch": micro,
        "base_fingerprint": setup.base.fingerprint, "full": cfg.full, "rank": cfg.rank, "alpha": cfg.alpha,
        "rslora": cfg.rslora, "targets": cfg.targets, "unfreeze": list(cfg.unfreeze), "batch_size": cfg.batch_size,
        "seed": cfg.seed, "train_segments": n_train, "segment_frames": setup.model.segment_size,
    }


def run(
    setup: GeneratorSetup,
    d: MultiPeriodDiscriminator,
    train: SegmentData,
    val: SegmentData,
    cfg: TrainConfig,
    spec: SpecConfig,
    device: torch.device,
    work: Path,
    *,
    resume: bool = False,
    progress: Callable[..., Any] | None = None,
    say: Callable[[str], None] = print,
    world: World | None = None,
    amp_dtype: torch.dtype | None = None,
    on_step: Callable[[int, int, dict[str, float]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> LoopResult:
    """Train until max steps / epochs or early stop; leaves the best weights in `setup.model`."""
    world = world or World()
    params = setup.trainable()
    d.to(device).train()
    micro = micro_batch_size(cfg, world)
    opt_g = torch.optim.AdamW(list(params.values()), cfg.generator_lr, betas=cfg.betas, eps=cfg.eps)
    d_params = [p for p in d.parameters() if p.requires_grad]  # all of D, or its light part
    opt_d = torch.optim.AdamW(d_params, cfg.lr_d, betas=cfg.betas, eps=cfg.eps)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    ckpt_dir = work / "checkpoints"
    structure = {**_structure(cfg, setup, len(train), micro), "d_trainable": sum(p.numel() for p in d_params)}

    spe = math.ceil(len(train) / cfg.batch_size)  # steps per epoch
    total = cfg.epochs * spe if cfg.max_steps is None else min(cfg.max_steps, cfg.epochs * spe)
    step, best, best_step, first_val, bad = 0, math.inf, 0, math.nan, 0
    best_tensors = {n: p.detach().clone() for n, p in params.items()}
    if resume:
        ck = load_latest(ckpt_dir)
        if ck is None:
            raise ResumeError(f"--resume: no checkpoint in {ckpt_dir}; start without --resume")
        diff = {k: (ck["structure"].get(k), v) for k, v in structure.items() if ck["structure"].get(k) != v}
        if diff:
            k, (was, now) = next(iter(diff.items()))
            raise ResumeError(f"--resume: the checkpoint was made with {k}={was}, this run has {now}; use the same settings or a new --work-dir")
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(ck["trainable"][n])
        d.load_state_dict(ck["discriminator"])
        opt_g.load_state_dict(ck["opt_g"])
        opt_d.load_state_dict(ck["opt_d"])
        scaler.load_state_dict(ck["scaler"])
        step, best, best_step, first_val, bad = ck["step"], ck["best"], ck["best_step"], ck["first_val"], ck["bad_evals"]
        best_tensors = ck["best_tensors"]
        set_rng_state(ck["rng"])
        say(f"resuming at step {step} from {ckpt_dir}")
    elif world.main:
        stale = list_checkpoints(ckpt_dir)
        if stale:  # a new run: an older run's checkpoints here must not be mixed with ours
            say(f"starting afresh: removing {len(stale)} old checkpoint(s) in {ckpt_dir} (use --resume to continue instead)")
            for p in stale:
                p.unlink()
    if not resume:
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
    world.broadcast_([*params.values(), *d.parameters()])  # every process starts from rank 0's tensors
    resumed_from = step
    log = Logger(work, step) if world.main else None

    def checkpoint() -> None:
        if not world.main:
            return
        save_checkpoint(ckpt_dir, step, {
            "step": step, "structure": structure, "trainable": {n: p.detach().cpu() for n, p in params.items()},
            "discriminator": d.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
            "scaler": scaler.state_dict(), "best": best, "best_step": best_step, "first_val": first_val,
            "bad_evals": bad, "best_tensors": {n: t.cpu() for n, t in best_tensors.items()}, "rng": rng_state(),
            "config": json.dumps(cfg.to_json()),
        }, cfg.keep_checkpoints)

    def validate() -> bool:
        nonlocal best, best_step, first_val, bad
        val_mel, shown = evaluate(setup, val, spec, device, keep=2, world=world)
        if math.isnan(first_val):
            first_val = val_mel
        if log is not None:
            log.scalars(step, {"mel": val_mel}, "val")
            log.samples(step, shown, spec.sr)
        if val_mel < best:
            best, best_step, bad = val_mel, step, 0
            for n, p in params.items():
                best_tensors[n] = p.detach().clone()
        else:
            bad += 1
        return cfg.patience > 0 and bad >= cfg.patience

    if step == 0:
        validate()  # the starting point, so the report can say how far training moved
    stopped = False
    t0, steps_timed = time.perf_counter(), 0
    while step < total and not stopped:
        epoch = step // spe
        lr_scale = cfg.lr_decay ** epoch  # RVC's ExponentialLR, one decay per epoch
        for opt, lr in ((opt_g, cfg.generator_lr), (opt_d, cfg.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * lr_scale
        batches = epoch_batches(len(train), cfg.batch_size, cfg.seed, epoch)
        bar = progress(total=spe, initial=step % spe, desc=f"epoch {epoch + 1}/{math.ceil(total / spe)}") if progress else None
        for bi in range(step % spe, spe):
            parts = split_batch(batches[bi], micro)
            mine = world.share(range(len(parts)))  # this process reads only its micro-batches
            losses = train_step(
                setup, d, [train.batch(parts[j]).to(device) for j in mine], opt_g, opt_d, scaler, cfg, spec, device,
                seeds=[micro_seed(cfg.seed, step, j) for j in mine], n_micro=len(parts), world=world, amp_dtype=amp_dtype,
            )
            trim()  # the step's small freed blocks leave the heap instead of piling up step after step
            step += 1
            steps_timed += 1
            if not all(math.isfinite(v) for v in losses.values()):
                raise DivergedError(f"training diverged at step {step} (loss is NaN/Inf); lower --lr or resume from a checkpoint")
            if log is not None:
                log.scalars(step, {**losses, "lr": opt_g.param_groups[0]["lr"]}, "train")
            if bar is not None:
                rate = steps_timed / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(loss=f"{losses['loss_g']:.3f}", mel=f"{losses['mel']:.3f}", sps=f"{rate:.2f}", refresh=False)
                bar.update(1)
            if step % cfg.eval_every == 0 or step == total:
                stopped = validate()
            if on_step is not None:
                on_step(step, total, losses)
            cancel = should_stop is not None and step < total and _any(world, should_stop())
            if step % cfg.save_every == 0 or step == total or stopped or cancel:
                checkpoint()
            if cancel:
                if log is not None:
                    log.close()
                raise TrainingCancelled(step)
            if step >= total or stopped:
                break
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - t0
    if log is not None:
        log.close()
    with torch.no_grad():  # leave the best weights in the model
        for n, p in params.items():
            p.copy_(best_tensors[n].to(p.device))
    if stopped:
        say(f"early stop at step {step}: validation mel loss did not improve for {cfg.patience} evaluations")
    return LoopResult(
        steps=step, epochs_done=step / spe, stopped_early=stopped, best_step=best_step, best_val_mel=best,
        first_val_mel=first_val, steps_per_s=steps_timed / elapsed if elapsed > 0 and steps_timed else 0.0,
        resumed_from=resumed_from,
    )
