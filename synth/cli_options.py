"""Command-line option groups several commands share (convert, run, bench, train, export and the
training job the panel starts), declared once and handed to argparse as `parents`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def _adapters(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("adapters")
    g.add_argument("--adapter", "-a", action="append", default=[], metavar="FILE[:WEIGHT]",
                   help="LoRA adapter on top of the voice, weight 1 by default; repeat to blend several. "
                   "A voice.json beside the first adapter (as `rvclora train` writes) supplies defaults")
    g.add_argument("--force", action="store_true", help="accept adapters made on a base with a different fingerprint, "
                   "or without one (made by another tool); shapes are still checked")


def _device(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    g = p.add_argument_group("compute")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda (NVIDIA, or AMD with a ROCm build of torch) or mps (Apple); "
                   "auto = the GPU when one is usable, else the CPU (default auto)")
    return g


def _compute(p: argparse.ArgumentParser) -> None:
    g = _device(p)
    g.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), default="auto",
                   help="auto = fp16 on GPUs that run it fast, fp32 on GTX 10xx/16xx (compute capability 6.1), "
                   "Apple MPS and the CPU; bf16 on request (compute capability 8.0+ or ROCm)")


def _assets(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model files (default: the shared assets in RVCLORA_HOME)")
    g.add_argument("--hubert", type=Path, help="content encoder: hubert_base.pt or a Hugging Face folder")
    g.add_argument("--rmvpe", type=Path, help="pitch model rmvpe.pt")


SHARED: dict[str, Callable[[argparse.ArgumentParser], object]] = {
    "adapters": _adapters,  # --adapter/-a, --force
    "device": _device,  # --device
    "compute": _compute,  # --device, --precision
    "assets": _assets,  # --hubert, --rmvpe
}


def parents(names: tuple[str, ...]) -> list[argparse.ArgumentParser]:
    """Parent parsers holding the shared groups `names`, for `add_parser(parents=...)`."""
    out = []
    for name in names:
        p = argparse.ArgumentParser(add_help=False)
        SHARED[name](p)
        out.append(p)
    return out
