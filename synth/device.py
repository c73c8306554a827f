"""Choosing the torch device and precision from user options.

One pure function, `choose_compute`, decides from a small frozen description of the
device (`DeviceInfo`: backend, name, compute capability); `probe` is the only place
that asks torch what is here, so tests fake the queries and check every kind of
device. Rules:

- `--device auto`: CUDA (ROCm builds of torch present AMD GPUs as CUDA), then MPS
  on Apple silicon, else the CPU.
- `--precision auto`: fp32 where fp16 is slow or broken (compute capability 6.1 —
  GTX 10xx, Tesla P4/P40 run fp16 at 1/64 rate —, anything below 6.0, and the
  GTX 16xx cards, whose fp16 RVC inference gives NaN/silence), fp16 on other CUDA
  and ROCm GPUs, fp32 on MPS (as RVC does: several ops fall back to the CPU there)
  and on the CPU. bf16 is never chosen by `auto`: RVC weights ship as fp16, whose
  10-bit mantissa keeps them exactly, and bf16 is no faster on tensor cores; it is
  available on request where the GPU runs it natively (capability 8.0+, or ROCm).
- CUDA graphs only on NVIDIA CUDA: ROCm's graph capture is not relied on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ComputeDeviceError

BACKENDS = ("cuda", "rocm", "mps", "cpu")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_LABELS = {"cuda": "CUDA", "rocm": "ROCm", "mps": "MPS", "cpu": "CPU"}


class DeviceError(ComputeDeviceError):
    """The requested device or precision is not available here."""


@dataclass(frozen=True)
class DeviceInfo:
    """What the choice depends on: backend (cuda/rocm/mps/cpu), GPU name, compute capability."""

    backend: str = "cpu"
    name: str = ""
    capability: tuple[int, int] | None = None

    @property
    def torch_type(self) -> str:
        """The torch device type: ROCm builds present their GPUs as `cuda`."""
        return "cuda" if self.backend == "rocm" else self.backend


@dataclass(frozen=True)
class Compute:
    """What runs: device type, precision, whether CUDA graphs may be used."""

    backend: str
    precision: str
    graphs: bool = False
    name: str = ""

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.precision]

    @property
    def label(self) -> str:
        """What the panel and `rvclora run` show, e.g. "CUDA fp16 (NVIDIA GeForce RTX 3060)"."""
        text = f"{_LABELS[self.backend]} {self.precision}"
        return f"{text} ({self.name})" if self.name else text


def fp16_is_slow(info: DeviceInfo) -> bool:
    """GPUs where RVC should stay in fp32: capability 6.1 or below 6.0, and GTX 16xx (by name)."""
    if info.backend != "cuda":
        return False
    cap = info.capability
    if cap is not None and (cap == (6, 1) or cap < (6, 0)):
        return True
    return "GTX 16" in info.name.upper()


def auto_precision(info: DeviceInfo) -> str:
    if info.backend in ("mps", "cpu") or fp16_is_slow(info):
        return "fp32"
    return "fp16"


def choose_compute(info: DeviceInfo, precision: str = "auto") -> Compute:
    """The device and precision to run on `info` (a pure function: no torch queries)."""
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision '{precision}'; use {', '.join(PRECISIONS)}")
    chosen = auto_precision(info) if precision == "auto" else precision
    if chosen == "fp16" and info.backend == "cpu":
        raise DeviceError("fp16 runs on a GPU only; use --precision fp32 on the CPU")
    if chosen == "bf16" and not (info.backend == "rocm" or (info.capability or (0, 0)) >= (8, 0)):
        raise DeviceError(f"bf16 needs a GPU that runs it natively (NVIDIA compute capability 8.0+ or ROCm); "
                          f"{info.name or info.backend} does not: use --precision fp16 or fp32")
    return Compute(info.backend, chosen, graphs=info.backend == "cuda", name=info.name)


# --------------------------------------------------------------------------- the queries


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def probe(name: str = "auto") -> DeviceInfo:
    """Ask torch what `--device name` means here (the only function that queries the hardware)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device '{name}'; use auto, cpu, cuda or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device '{name}' requested but no CUDA or ROCm GPU is usable here; use --device cpu")
        backend = "rocm" if getattr(torch.version, "hip", None) else "cuda"
        return DeviceInfo(backend, torch.cuda.get_device_name(dev), tuple(torch.cuda.get_device_capability(dev)))  # type: ignore[arg-type]
    if dev.type == "mps":
        if not _mps_available():
            raise DeviceError("device 'mps' requested but Apple's Metal backend is not usable here; use --device cpu")
        return DeviceInfo("mps", "Apple GPU")
    if dev.type != "cpu":
        raise DeviceError(f"device '{name}' is not supported; use auto, cpu, cuda or mps")
    return DeviceInfo("cpu")


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA (or ROCm) when a GPU is usable, then MPS, else the CPU."""
    info = probe(name)
    return torch.device(name) if ":" in name else torch.device(info.torch_type)


def resolve_compute(device: str = "auto", precision: str = "auto") -> tuple[torch.device, Compute]:
    """The torch device and what runs on it, from the user's --device and --precision."""
    dev = resolve_device(device)
    return dev, choose_compute(probe(str(dev)), precision)


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """`auto` is fp16 on CUDA/ROCm GPUs that run it fast, fp32 elsewhere (see the module docstring)."""
    return choose_compute(probe(str(device)), precision).dtype


def compute_label(device: torch.device, dtype: torch.dtype) -> str:
    """What runs, for the panel and `rvclora run`: e.g. "CUDA fp16 (NVIDIA GeForce RTX 3060)", "CPU fp32"."""
    precision = {v: k for k, v in DTYPES.items()}.get(dtype, str(dtype).removeprefix("torch."))
    info = probe(str(device))
    return Compute(info.backend, precision, name=info.name).label


def live_cpu_threads(cores: int | None) -> int:
    """Torch threads for live inference on a machine with `cores` CPU cores: half of them, at most 4.

    Torch's default (every core) makes each small op wait for all threads: on a 2-core
    machine busy with other work a 60 ms block measured ~10× slower with 2 threads than
    with 1. The other half stays free for the audio callbacks, the panel and the apps
    being streamed; past 4 threads the per-block ops are too small to gain."""
    return max(1, min(4, (cores or 1) // 2))


def set_live_threads(threads: int | None = None) -> int:
    """Set torch's CPU threads for live inference (`threads`, else `live_cpu_threads`); returns the count."""
    n = threads or live_cpu_threads(os.cpu_count())
    torch.set_num_threads(n)
    return n


def runs_on(source: Any) -> str:
    """What a loaded voice runs on, for the run's first line: "CPU fp32", "CUDA fp16 (…)", "… , ONNX Runtime"."""
    if not hasattr(source, "device"):
        return "CPU (built-in voice)"
    label = compute_label(source.device, source.dtype)
    return f"{label}, ONNX Runtime" if getattr(source, "backend", "torch") == "onnx" else label
