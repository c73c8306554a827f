"""`rvclora train DATA_DIR --base BASE.pth --out ADAPTER.safetensors` (alias `rvclora-train`):
recordings -> LoRA voice adapter. `--device`, `--hubert` and `--rmvpe` come from the front door's
shared option groups."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UsageError
from ..synth.heap import return_freed_memory
from ..synth.pitch_options import F0_METHODS
from .config import TrainConfig

DESCRIPTION = """\
Train a voice: turn a folder of recordings (5-30 minutes of one speaker) into a
LoRA adapter (about 1 MB at the default rank 4) on top of a shared RVC base model, with RVC's full
training objective (mel L1 x45, KL x1, feature matching x2, least-squares GAN
against RVC's multi-period discriminator).

BASE may be a pretrained G*.pth (it holds the posterior encoder enc_q, which then
stays frozen) or a released voice .pth (RVC strips enc_q from those: a freshly
initialised posterior encoder is added and trained fully; it is not saved, and
training needs more steps).

Outputs: the adapter, voice.json (per-voice defaults for `rvclora convert` and the
live engine) next to it, optionally a feature index; in --work-dir the feature
cache (reused by later runs), checkpoints, TensorBoard logs, losses.jsonl,
preprocess_report.txt and report.json.
"""

EPILOG = """\
examples:
  rvclora-train recordings/ --base assets/pretrained_v2/f0G40k.pth --base-d assets/pretrained_v2/f0D40k.pth --out alice.safetensors
  rvclora-train recordings/ --base f0G40k.pth --out alice.safetensors --resume      # continue a killed run
  rvclora-train recordings/ --base f0G40k.pth --out alice.safetensors --nproc-per-node 4   # 4 GPUs (or CPU processes)
  torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m rvclora.cli train recordings/ --base f0G40k.pth --out alice.safetensors
  tensorboard --logdir alice.train/tensorboard
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `rvclora train`, besides the shared --device, --hubert and --rmvpe."""
    p.description, p.epilog, p.formatter_class = DESCRIPTION, EPILOG, argparse.RawDescriptionHelpFormatter
    t = TrainConfig()
    p.add_argument("data", type=Path, metavar="DATA_DIR", help="folder of recordings, searched recursively: wav, flac, ogg (mp3 where libsndfile decodes it); any rate and channel count")
    io = p.add_argument_group("files")
    io.add_argument("--base", type=Path, required=True, help="base model: pretrained G*.pth (with enc_q) or a released voice .pth (see above)")
    io.add_argument("--out", type=Path, required=True, help="output adapter .safetensors (with --full: an RVC voice .pth)")
    io.add_argument("--base-d", type=Path, help="pretrained discriminator D*.pth matching the base (recommended; default: a fresh discriminator)")
    io.add_argument("--work-dir", type=Path, help="feature cache, checkpoints and logs (default: OUT without suffix + '.train', next to OUT)")
    io.add_argument("--cache-dir", type=Path, help="feature cache folder (default: WORK_DIR/cache); share one between runs and voices to never extract a file twice")
    io.add_argument("--index", action="store_true", help="also build a faiss feature index (OUT with suffix .index) for timbre retrieval")
    io.add_argument("--overwrite", action="store_true", help="replace existing output files (never done without this flag, except by --resume of the same run)")
    io.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the work dir, exactly where it stopped (same settings required)")

    lo = p.add_argument_group("what trains")
    lo.add_argument("--rank", type=int, default=t.rank, help=f"LoRA rank (default {t.rank})")
    lo.add_argument("--alpha", type=float, default=t.alpha, help=f"LoRA alpha; the delta is scaled by alpha/rank (default {t.alpha:g})")
    lo.add_argument("--rslora", action="store_true", help="scale by alpha/sqrt(rank) instead (rank-stabilised LoRA)")
    lo.add_argument("--targets", default=t.targets, help="where adapters go: presets encoder, flow, decoder, all, comma-separated, or module-name globs / re:regex (default all)")
    lo.add_argument("--unfreeze", default="", help="comma-separated base tensors to train fully and store in the adapter, e.g. emb_g.weight")
    lo.add_argument("--full", action="store_true", help="full fine-tune of every generator tensor instead of LoRA (for comparison; writes a voice .pth)")

    tr = p.add_argument_group("training")
    tr.add_argument("--epochs", type=int, default=t.epochs, help=f"passes over the training segments (default {t.epochs})")
    tr.add_argument("--max-steps", type=int, help="stop after this many steps in total, whatever --epochs says")
    tr.add_argument("--batch-size", type=int, default=t.batch_size, help=f"segments per step, over all processes (default {t.batch_size})")
    tr.add_argument("--micro-batch", type=int, help="segments per forward pass (default: the batch shared by the processes); fix it to get the same run on any number of processes")
    tr.add_argument("--nproc-per-node", type=int, default=1, help="training processes on this machine, one per GPU (default 1); several machines: start the same command with torchrun (see examples)")
    tr.add_argument("--lr", type=float, help="generator learning rate (default 5e-4 for LoRA, RVC's 1e-4 with --full)")
    tr.add_argument("--lr-d", type=float, default=t.lr_d, help=f"discriminator learning rate (default {t.lr_d:g})")
    tr.add_argument("--seed", type=int, default=t.seed, help=f"random seed: same seed and data give the same run (default {t.seed})")
    tr.add_argument("--f0-method", default="auto", choices=F0_METHODS, help="pitch estimator for the training data; auto = rmvpe if rmvpe.pt is present, else pm")
    tr.add_argument("--fp16", action="store_true", help="same as --precision fp16 (CUDA only)")
    tr.add_argument("--precision", default=t.precision, choices=("auto", "fp32", "bf16", "fp16"), help="auto (default): bf16 mixed precision on GPUs that support it, else fp16 with loss scaling; fp32 on the CPU")
    tr.add_argument("--checkpoint-activations", action=argparse.BooleanOptionalAction, default=None, help="recompute decoder and discriminator activations in the backward pass to save memory (default: on for LoRA, off with --full)")
    tr.add_argument("--train-d", default=t.train_d, choices=("auto", "full", "light"), help="discriminator: full, or light (only gains, biases and output layers train: much less memory); auto (default) = light for LoRA with --base-d, else full")
    tr.add_argument("--save-every", type=int, default=t.save_every, help=f"checkpoint every N steps (default {t.save_every})")
    tr.add_argument("--keep-checkpoints", type=int, default=t.keep_checkpoints, help=f"how many recent checkpoints to keep (default {t.keep_checkpoints})")
    tr.add_argument("--eval-every", type=int, default=t.eval_every, help=f"validate every N steps (default {t.eval_every})")
    tr.add_argument("--patience", type=int, default=t.patience, help=f"stop after N validations without a better mel loss; 0 = never (default {t.patience})")
    tr.add_argument("--val-fraction", type=float, default=t.val_fraction, help=f"share of segments held out for validation (default {t.val_fraction:g}, at most {t.max_val_segments})")
    tr.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    p.set_defaults(func=run)


def options_from_args(a: argparse.Namespace):
    from .session import TrainOptions

    cfg = TrainConfig(
        rank=a.rank, alpha=a.alpha, rslora=a.rslora, targets=a.targets,
        unfreeze=tuple(s.strip() for s in a.unfreeze.split(",") if s.strip()), full=a.full,
        epochs=a.epochs, max_steps=a.max_steps, batch_size=a.batch_size, micro_batch=a.micro_batch, lr=a.lr, lr_d=a.lr_d, seed=a.seed,
        fp16=a.fp16, precision=a.precision, checkpointing=a.checkpoint_activations, train_d=a.train_d, save_every=a.save_every, keep_checkpoints=a.keep_checkpoints, eval_every=a.eval_every,
        patience=a.patience, val_fraction=a.val_fraction,
    )
    return TrainOptions(
        data=a.data, base=a.base, out=a.out, base_d=a.base_d, work_dir=a.work_dir, cache_dir=a.cache_dir, f0_method=a.f0_method,
        device=a.device, index=a.index, resume=a.resume, overwrite=a.overwrite, hubert=a.hubert, rmvpe=a.rmvpe,
        progress=not a.no_progress, train=cfg,
    )


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc-per-node":
            skip = True
        elif not arg.startswith("--nproc-per-node="):
            out.append(arg)
    return out


def run(args: argparse.Namespace) -> int:
    from .distributed import launch, world_from_env
    from .session import check_options, train_voice

    world = world_from_env()
    if args.nproc_per_node < 1:
        raise UsageError(f"--nproc-per-node {args.nproc_per_node}: must be at least 1")
    options = options_from_args(args)
    if args.nproc_per_node > 1 and not world.distributed:
        check_options(options)  # refuse bad input before starting processes
        # every process runs this same command line through the front door, less --nproc-per-node
        return launch(_without_nproc(list(args.argv)), args.nproc_per_node, "rvclora.cli")
    # This process trains: freed activations go back to the OS rather than into a growing
    # heap (a process-wide allocator setting, so not in train_voice, which tests call in-process).
    return_freed_memory()
    try:
        report = train_voice(options, world=world)
    except KeyboardInterrupt:
        print("rvclora-train: interrupted; continue with --resume", file=sys.stderr)
        return 130
    if report is not None:
        print(report.summary())
    return 0
