"""Which ONNX Runtime execution providers to ask for, from `--device` and what this onnxruntime build has.

A pure function of the user's choice, the provider names the installed build lists
(`onnxruntime.get_available_providers()`) and the platform, so every machine kind is
tested without its hardware. `auto` prefers a GPU: CUDA (onnxruntime-gpu), ROCm,
DirectML (Windows, onnxruntime-directml: AMD, Intel and NVIDIA GPUs), CoreML (macOS,
in the standard wheel), then the CPU. The CPU provider always comes last, so ORT can
place the operators a GPU provider lacks. The caller still checks which providers the
session really uses: a listed provider can fail to load its libraries.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import errors

CUDA = "CUDAExecutionProvider"
ROCM = "ROCMExecutionProvider"
DML = "DmlExecutionProvider"
COREML = "CoreMLExecutionProvider"
CPU = "CPUExecutionProvider"

# device name → (provider, its name in messages, the platforms it exists on (None: any), how to install it)
PROVIDERS: dict[str, tuple[str, str, tuple[str, ...] | None, str]] = {
    "cuda": (CUDA, "CUDA", None, "install rvclora[gpu] (onnxruntime-gpu)"),
    "rocm": (ROCM, "ROCm", ("linux",), "install AMD's onnxruntime-rocm build"),
    "directml": (DML, "DirectML", ("win32",), "install rvclora[directml] (onnxruntime-directml, Windows)"),
    "coreml": (COREML, "CoreML", ("darwin",), "install rvclora[onnx] on macOS (its onnxruntime has CoreML)"),
}
# "mps" (torch's Apple GPU, when the rest of the voice runs there) lets ORT pick as `auto` does


class BackendError(errors.BackendError):
    """The ONNX backend cannot run as asked; the one-line message says why."""


ORT_DEVICES = ("auto", "cpu", "mps", *PROVIDERS)


def choose_providers(device: str, available: Sequence[str], platform: str) -> list[str]:
    """Providers to pass to `InferenceSession` for `device` (auto, cpu, mps, cuda, rocm, directml, coreml)."""
    if device not in ORT_DEVICES:
        raise BackendError(f"unknown device {device!r} for ONNX Runtime; choose {', '.join(ORT_DEVICES)}")
    if device == "cpu":
        return [CPU]

    def usable(name: str) -> bool:
        provider, _, platforms, _ = PROVIDERS[name]
        return provider in available and (platforms is None or any(platform.startswith(p) for p in platforms))

    if device in ("auto", "mps"):
        return [*(PROVIDERS[n][0] for n in PROVIDERS if usable(n))][:1] + [CPU]
    if not usable(device):
        _, label, _, install = PROVIDERS[device]
        raise BackendError(f"--device {device}: this onnxruntime has no {label} provider here; {install}, "
                           "or use --device cpu")
    return [PROVIDERS[device][0], CPU]
