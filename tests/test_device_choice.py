"""`--device auto` and `--precision auto` pick what runs well on each kind of device (queries faked)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from rvclora.errors import BackendError
from rvclora.gui.engine_link import EngineLink
from rvclora.realtime.voice_pool import PoolConfig, VoiceSpec
from rvclora.synth import device as device_mod
from rvclora.synth.device import (
    DeviceError,
    DeviceInfo,
    choose_compute,
    live_cpu_threads,
    resolve_compute,
    resolve_dtype,
    runs_on,
    set_live_threads,
)
from rvclora.synth.ort_providers import COREML, CPU, CUDA, DML, ROCM, choose_providers


def fake_machine(monkeypatch, *, gpu: str | None = None, cap=(0, 0), hip: str | None = None, mps: bool = False) -> None:
    """Make torch report this machine: a CUDA/ROCm GPU by name and capability, Apple MPS, or nothing."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu is not None)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: gpu)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: cap)
    monkeypatch.setattr(torch.version, "hip", hip)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(
    ("machine", "device_type", "label", "graphs"),
    [
        (dict(gpu="NVIDIA GeForce GTX 1080", cap=(6, 1)), "cuda", "CUDA fp32 (NVIDIA GeForce GTX 1080)", True),
        (dict(gpu="Tesla P40", cap=(6, 1)), "cuda", "CUDA fp32 (Tesla P40)", True),
        (dict(gpu="NVIDIA GeForce GTX 1660 SUPER", cap=(7, 5)), "cuda", "CUDA fp32 (NVIDIA GeForce GTX 1660 SUPER)", True),
        (dict(gpu="NVIDIA GeForce GTX 1650", cap=(7, 5)), "cuda", "CUDA fp32 (NVIDIA GeForce GTX 1650)", True),
        (dict(gpu="NVIDIA GeForce RTX 2060", cap=(7, 5)), "cuda", "CUDA fp16 (NVIDIA GeForce RTX 2060)", True),
        (dict(gpu="NVIDIA GeForce RTX 3060", cap=(8, 6)), "cuda", "CUDA fp16 (NVIDIA GeForce RTX 3060)", True),
        (dict(gpu="NVIDIA H200", cap=(9, 0)), "cuda", "CUDA fp16 (NVIDIA H200)", True),
        (dict(gpu="AMD Radeon RX 7900 XTX", cap=(11, 0), hip="6.2.41133"), "cuda", "ROCm fp16 (AMD Radeon RX 7900 XTX)", False),
        (dict(mps=True), "mps", "MPS fp32 (Apple GPU)", False),
        (dict(), "cpu", "CPU fp32", False),
    ],
)
def test_auto_picks_device_and_precision(monkeypatch, machine, device_type, label, graphs) -> None:
    fake_machine(monkeypatch, **machine)
    dev, compute = resolve_compute("auto", "auto")
    assert dev.type == device_type
    assert compute.label == label
    assert compute.graphs is graphs
    assert resolve_dtype("auto", dev) == compute.dtype


def test_cuda_wins_over_mps(monkeypatch) -> None:
    fake_machine(monkeypatch, gpu="NVIDIA GeForce RTX 4090", cap=(8, 9), mps=True)
    assert resolve_compute()[0].type == "cuda"


def test_precision_override(monkeypatch) -> None:
    fake_machine(monkeypatch, gpu="NVIDIA GeForce GTX 1080", cap=(6, 1))
    assert resolve_compute("cuda", "fp16")[1].dtype == torch.float16  # the user knows better
    fake_machine(monkeypatch, gpu="NVIDIA GeForce RTX 3060", cap=(8, 6))
    assert resolve_compute("auto", "fp32")[1].label == "CUDA fp32 (NVIDIA GeForce RTX 3060)"
    assert resolve_compute("auto", "bf16")[1].dtype == torch.bfloat16
    fake_machine(monkeypatch, mps=True)
    assert resolve_compute("mps", "fp16")[1].label == "MPS fp16 (Apple GPU)"


@pytest.mark.parametrize(
    ("machine", "device", "precision", "words"),
    [
        (dict(), "cuda", "auto", "no CUDA or ROCm GPU"),
        (dict(), "mps", "auto", "Metal backend is not usable"),
        (dict(), "cpu", "fp16", "fp16 runs on a GPU only"),
        (dict(gpu="NVIDIA GeForce RTX 2080", cap=(7, 5)), "auto", "bf16", "bf16 needs a GPU"),
        (dict(), "tpu", "auto", "unknown device 'tpu'"),
        (dict(), "cpu", "fp8", "unknown precision 'fp8'"),
    ],
)
def test_unavailable_choices_say_what_to_do(monkeypatch, machine, device, precision, words) -> None:
    fake_machine(monkeypatch, **machine)
    with pytest.raises(DeviceError, match=words) as e:
        resolve_compute(device, precision)
    assert "\n" not in str(e.value) and "use" in str(e.value)


def test_choice_is_pure() -> None:
    """The decision needs no hardware: the same description always gives the same answer."""
    assert choose_compute(DeviceInfo("cuda", "Quadro M4000", (5, 2))).precision == "fp32"  # Maxwell: slow fp16
    assert choose_compute(DeviceInfo("cuda", "Tesla P100", (6, 0))).precision == "fp16"  # fast fp16 on 6.0
    assert device_mod.fp16_is_slow(DeviceInfo("rocm", "AMD Instinct MI300X", (9, 4))) is False


# --------------------------------------------------------------------------- ONNX Runtime providers


@pytest.mark.parametrize(
    ("available", "platform", "want"),
    [
        ([CPU], "linux", [CPU]),
        ([CUDA, CPU], "linux", [CUDA, CPU]),
        (["TensorrtExecutionProvider", CUDA, CPU], "linux", [CUDA, CPU]),
        ([ROCM, CPU], "linux", [ROCM, CPU]),
        ([DML, CPU], "win32", [DML, CPU]),
        ([CUDA, DML, CPU], "win32", [CUDA, CPU]),
        ([COREML, CPU], "darwin", [COREML, CPU]),
        ([COREML, "AzureExecutionProvider", CPU], "linux", [CPU]),  # CoreML only exists on Apple
    ],
)
def test_auto_provider(available, platform, want) -> None:
    assert choose_providers("auto", available, platform) == want


def test_named_provider_and_missing_build() -> None:
    assert choose_providers("cpu", [CUDA, CPU], "linux") == [CPU]
    assert choose_providers("directml", [DML, CPU], "win32") == [DML, CPU]
    with pytest.raises(BackendError, match=r"rvclora\[directml\] \(onnxruntime-directml"):
        choose_providers("directml", [CPU], "win32")
    with pytest.raises(BackendError, match=r"rvclora\[gpu\]"):
        choose_providers("cuda", [CPU], "linux")
    with pytest.raises(BackendError, match="unknown device 'npu'"):
        choose_providers("npu", [CPU], "linux")


def test_run_and_panel_say_what_runs(monkeypatch) -> None:
    fake_machine(monkeypatch, gpu="NVIDIA GeForce RTX 3060", cap=(8, 6))
    voice = SimpleNamespace(device=torch.device("cuda"), dtype=torch.float16, backend="torch")
    assert runs_on(voice) == "CUDA fp16 (NVIDIA GeForce RTX 3060)"
    assert runs_on(SimpleNamespace(**{**vars(voice), "backend": "onnx", "dtype": torch.float32})) == \
        "CUDA fp32 (NVIDIA GeForce RTX 3060), ONNX Runtime"
    assert runs_on(SimpleNamespace(voice_name="deep")) == "CPU (built-in voice)"
    link = EngineLink(engine_factory=lambda *a: None, pool=PoolConfig(precision="fp32"))
    assert link.compute_label(VoiceSpec(model="voice.pth")) == "CUDA fp32 (NVIDIA GeForce RTX 3060)"
    fake_machine(monkeypatch, gpu="NVIDIA GeForce GTX 1660 Ti", cap=(7, 5))
    assert EngineLink(engine_factory=lambda *a: None).compute_label(VoiceSpec(model="v.pth")) == \
        "CUDA fp32 (NVIDIA GeForce GTX 1660 Ti)"
    assert link.compute_label(VoiceSpec(builtin="deep")) == "CPU (built-in voice)"


@pytest.mark.parametrize(("cores", "threads"), [(None, 1), (1, 1), (2, 1), (4, 2), (8, 4), (32, 4)])
def test_live_threads_leave_half_the_cores(cores, threads) -> None:
    assert live_cpu_threads(cores) == threads


def test_run_and_bench_set_the_live_threads(monkeypatch) -> None:
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(device_mod.os, "cpu_count", lambda: 8)
        assert set_live_threads() == 4 == torch.get_num_threads()
        assert set_live_threads(3) == 3 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
