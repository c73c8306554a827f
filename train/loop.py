"""The training loop: RVC's GAN step, validation, early stopping, checkpoints, logs.

One step (RVC's train.py order): generator forward on a random slice; the
discriminator learns real vs generated (LSGAN); then the generator learns from
mel L1 (x45) + KL (x1) + feature matching (x2) + LSGAN.  Only the generator's
trainable tensors move (the adapter, in LoRA mode); the discriminator trains
fully.  Validation converts each held-out segment through the inference path
(prior encoder -> reverse flow -> decoder, fixed noise) and compares its mel to
the recording's, which is what a user will hear.
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

import numpy as np
import torch

from ..errors import TrainingError
from ..synth.audio_io import resample
from ..synth.constants import SR_16K
from ..synth.synthesizer import slice_segments
from .config import TrainConfig
from .dataset import Batch, SegmentData, epoch_batches
from .discriminators import MultiPeriodDiscriminator
from .generator import GeneratorSetup
from .losses import discriminator_loss, feature_loss, generator_loss, kl_loss, mel_l1
from .mel import SpecConfig, linear_spectrogram, mel_spectrogram, spec_to_mel
from .metrics import f0_correlation, mel_cepstral_distortion, spectral_convergence
from .state import list_checkpoints, load_latest, rng_state, save_checkpoint, set_rng_state

VAL_SEED = 20_240_601  # validation noise: the same every evaluation, independent of training


class DivergedError(TrainingError, FloatingPointError):
    """The losses became NaN/Inf; lowering the learning rate or resuming usually helps."""


class ResumeError(TrainingError):
    """A checkpoint that does not belong to this run's settings."""


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


def _amp(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.float16, enabled=enabled)


def train_step(
    setup: GeneratorSetup,
    d: MultiPeriodDiscriminator,
    batch: Batch,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    cfg: TrainConfig,
    spec: SpecConfig,
    device: torch.device,
) -> dict[str, float]:
    g = setup.model
    seg, hop = g.segment_size, spec.hop
    sid = torch.zeros(batch.phone.shape[0], dtype=torch.long, device=device)
    f0 = setup.voice.f0
    amp = cfg.fp16
    with _amp(device, amp):
        y_hat, ids, _, y_mask, (_, z_p, m_p, logs_p, _, logs_q) = g(
            batch.phone, batch.lengths, batch.pitch if f0 else None, batch.pitchf if f0 else None,
            batch.spec, batch.lengths, sid,
        )
        y = slice_segments(batch.wav, ids * hop, seg * hop)
        real, fake, _, _ = d(y, y_hat.detach())
    loss_d = discriminator_loss(real, fake)
    opt_d.zero_grad(set_to_none=True)
    scaler.scale(loss_d).backward()
    scaler.step(opt_d)

    mel = spec_to_mel(slice_segments(batch.spec, ids, seg), spec)
    mel_hat = mel_spectrogram(y_hat.squeeze(1).float(), spec)
    d.requires_grad_(False)  # the G step needs gradients through D, not of D
    with _amp(device, amp):
        _, fake, fmap_real, fmap_fake = d(y, y_hat)
    d.requires_grad_(True)
    loss_mel = mel_l1(mel, mel_hat) * cfg.c_mel
    loss_kl = kl_loss(z_p, logs_q, m_p, logs_p, y_mask) * cfg.c_kl
    loss_fm = feature_loss(fmap_real, fmap_fake) * cfg.c_fm
    loss_gen = generator_loss(fake)
    loss_g = loss_gen + loss_fm + loss_mel + loss_kl
    opt_g.zero_grad(set_to_none=True)
    scaler.scale(loss_g).backward()
    scaler.step(opt_g)
    scaler.update()
    return {
        "loss_d": loss_d.item(), "loss_g": loss_g.item(), "mel": loss_mel.item() / cfg.c_mel,
        "kl": loss_kl.item(), "fm": loss_fm.item(), "gen": loss_gen.item(),
    }


@torch.no_grad()
def convert_item(setup: GeneratorSetup, sample: dict, device: torch.device) -> torch.Tensor:
    """Inference path on one cached segment with fixed noise -> audio [N] (float32, CPU)."""
    g = setup.model
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(VAL_SEED)  # SineGen draws from the global generator
        phone = torch.from_numpy(sample["phone"])[None].to(device)
        n = phone.shape[1]
        noise = torch.randn(1, g.config.inter_channels, n, generator=torch.Generator().manual_seed(VAL_SEED)).to(device)
        f0 = setup.voice.f0
        audio = g.infer(
            phone, torch.tensor([n], device=device),
            torch.from_numpy(sample["pitch"])[None].to(device) if f0 else None,
            torch.from_numpy(sample["pitchf"])[None].to(device) if f0 else None,
            torch.zeros(1, dtype=torch.long, device=device), noise=noise,
        )
    return audio[0, 0].float().cpu()


def evaluate(setup: GeneratorSetup, val: SegmentData, spec: SpecConfig, device: torch.device, *, keep: int = 0):
    """Mean mel L1 over the validation segments, and the first `keep` (audio, mel, ref mel)."""
    g = setup.model
    was_training = g.training
    g.eval()
    losses, shown = [], []
    for i in range(len(val)):
        s = val.load(i)
        audio = convert_item(setup, s, device)
        ref = spec_to_mel(torch.from_numpy(s["spec"]), spec)
        hyp = mel_spectrogram(audio, spec)[:, : ref.shape[1]]
        losses.append(float(mel_l1(ref[:, : hyp.shape[1]], hyp)))
        if len(shown) < keep:
            shown.append((audio, hyp, ref))
    g.train(was_training)
    return float(np.mean(losses)), shown


def quality_metrics(setup: GeneratorSetup, val: SegmentData, spec: SpecConfig, device: torch.device, pitch=None) -> dict[str, Any]:
    """MCD, F0 correlation and spectral convergence over the validation segments."""
    g = setup.model
    was_training = g.training
    g.eval()
    mcd, sc, f0c = [], [], []
    for i in range(len(val)):
        s = val.load(i)
        audio = convert_item(setup, s, device)
        ref_spec = torch.from_numpy(s["spec"])
        hyp_spec = linear_spectrogram(audio, spec)
        n = min(ref_spec.shape[1], hyp_spec.shape[1])
        mcd.append(mel_cepstral_distortion(spec_to_mel(ref_spec[:, :n], spec), spec_to_mel(hyp_spec[:, :n], spec)))
        sc.append(spectral_convergence(ref_spec[:, :n], hyp_spec[:, :n]))
        if pitch is not None and setup.voice.f0:
            c = f0_correlation(s["pitchf"], pitch(resample(audio.numpy(), spec.sr, SR_16K)))
            if c is not None:
                f0c.append(c)
    g.train(was_training)
    return {
        "mcd_db": float(np.mean(mcd)),
        "f0_correlation": float(np.mean(f0c)) if f0c else None,
        "spectral_convergence": float(np.mean(sc)),
    }


class Logger:
    """TensorBoard (when it imports) plus a JSON-lines log of every step in the work dir."""

    def __init__(self, folder: Path, resume_step: int) -> None:
        self.jsonl = folder / "losses.jsonl"
        if resume_step and self.jsonl.exists():  # drop what a killed run logged after its checkpoint
            kept = [ln for ln in self.jsonl.read_text().splitlines() if ln and json.loads(ln)["step"] <= resume_step]
            self.jsonl.write_text("".join(ln + "\n" for ln in kept))
        elif self.jsonl.exists():
            self.jsonl.unlink()
        self._file = open(self.jsonl, "a")  # noqa: SIM115 — held for the whole run; close() closes it
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 — tensorboard is optional at run time: training goes on without it

            self.tb = SummaryWriter(str(folder / "tensorboard"), purge_step=resume_step + 1 if resume_step else None)
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


def _structure(cfg: TrainConfig, setup: GeneratorSetup, n_train: int) -> dict:
    """What a checkpoint must agree on to be resumed by this run."""
    return {
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
) -> LoopResult:
    """Train until max steps / epochs or early stop; leaves the best weights in `setup.model`."""
    params = setup.trainable()
    d.to(device).train()
    opt_g = torch.optim.AdamW(list(params.values()), cfg.generator_lr, betas=cfg.betas, eps=cfg.eps)
    opt_d = torch.optim.AdamW(d.parameters(), cfg.lr_d, betas=cfg.betas, eps=cfg.eps)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.fp16)
    ckpt_dir = work / "checkpoints"
    structure = _structure(cfg, setup, len(train))

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
    else:
        stale = list_checkpoints(ckpt_dir)
        if stale:  # a new run: an older run's checkpoints here must not be mixed with ours
            say(f"starting afresh: removing {len(stale)} old checkpoint(s) in {ckpt_dir} (use --resume to continue instead)")
            for p in stale:
                p.unlink()
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
    resumed_from = step
    log = Logger(work, step)

    def checkpoint() -> None:
        save_checkpoint(ckpt_dir, step, {
            "step": step, "structure": structure, "trainable": {n: p.detach().cpu() for n, p in params.items()},
            "discriminator": d.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
            "scaler": scaler.state_dict(), "best": best, "best_step": best_step, "first_val": first_val,
            "bad_evals": bad, "best_tensors": {n: t.cpu() for n, t in best_tensors.items()}, "rng": rng_state(),
            "config": json.dumps(cfg.to_json()),
        }, cfg.keep_checkpoints)

    def validate() -> bool:
        nonlocal best, best_step, first_val, bad
        val_mel, shown = evaluate(setup, val, spec, device, keep=2)
        if math.isnan(first_val):
            first_val = val_mel
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
            batch = train.batch(batches[bi]).to(device)
            losses = train_step(setup, d, batch, opt_g, opt_d, scaler, cfg, spec, device)
            step += 1
            steps_timed += 1
            if not all(math.isfinite(v) for v in losses.values()):
                raise DivergedError(f"training diverged at step {step} (loss is NaN/Inf); lower --lr or resume from a checkpoint")
            log.scalars(step, {**losses, "lr": opt_g.param_groups[0]["lr"]}, "train")
            if bar is not None:
                rate = steps_timed / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(loss=f"{losses['loss_g']:.3f}", mel=f"{losses['mel']:.3f}", sps=f"{rate:.2f}", refresh=False)
                bar.update(1)
            if step % cfg.eval_every == 0 or step == total:
                stopped = validate()
            if step % cfg.save_every == 0 or step == total or stopped:
                checkpoint()
            if step >= total or stopped:
                break
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - t0
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
