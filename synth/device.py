"""Choosing the torch device and precision from user options."""

from __future__ import annotations

import torch

from ..errors import ComputeDeviceError


class DeviceError(ComputeDeviceError):
    """The requested device or precision is not available here."""


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when a GPU is usable, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"device '{name}' requested but no CUDA GPU is usable here; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device '{name}'; use auto, cpu or cuda") from None


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """`auto` is fp16 on CUDA (as RVC does on capable GPUs) and fp32 on the CPU."""
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if precision == "fp16":
        if device.type != "cuda":
            raise DeviceError("fp16 runs on CUDA only; use --precision fp32 on the CPU")
        return torch.float16
    if precision == "fp32":
        return torch.float32
    raise DeviceError(f"unknown precision '{precision}'; use auto, fp32 or fp16")
