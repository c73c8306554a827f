"""One error model: what the user can fix exits 2 with one line; anything else is a bug that exits 1
with "rerun with --debug", which shows the traceback — the same from rvclora, rvclora-train and
rvclora-export."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest
import torch

import rvclora.errors as errors
from rvclora.cli.main import export_main, main, train_main
from rvclora.lora import LoRAConfig, add_lora, inject, unfreeze
from rvclora.realtime.devices import DeviceError as AudioDeviceError
from rvclora.synth.device import DeviceError as ComputeDeviceError
from rvclora.tests.rvc_fixtures import make_voice_file


def _numpy_bug(*args, **kwargs):
    raise np.linalg.LinAlgError("Singular matrix")  # a ValueError subclass, yet nothing the user did


def _one_line(capsys, prog: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    assert err.startswith(f"{prog}: "), err
    return err


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RVCLORA_HOME", str(tmp_path / "home"))


@pytest.fixture
def voice(tmp_path):
    return make_voice_file(tmp_path, version="v1", sr=40000, f0=True)


def _entries(tmp_path, voice):
    """(prog, entry point, argv, dotted name of a function the command calls) for each entry point."""
    data = tmp_path / "data"
    data.mkdir()
    return [
        ("rvclora", main, ["info", str(voice)], "rvclora.synth.voice_file.inspect_voice"),
        ("rvclora-train", train_main, [str(data), "--base", str(voice), "--out", str(tmp_path / "a.safetensors")],
         "rvclora.train.session.train_voice"),
        ("rvclora-export", export_main, ["--model", str(voice), "--out", str(tmp_path / "v.onnx")],
         "rvclora.export.cli._export_onnx"),
    ]


def _patch(monkeypatch, dotted: str, fn) -> None:
    module, name = dotted.rsplit(".", 1)
    monkeypatch.setattr(importlib.import_module(module), name, fn)


@pytest.mark.parametrize("which", [0, 1, 2], ids=["rvclora", "rvclora-train", "rvclora-export"])
def test_a_bug_exits_1_with_the_debug_hint(which, tmp_path, voice, monkeypatch, capsys):
    prog, entry, argv, target = _entries(tmp_path, voice)[which]
    _patch(monkeypatch, target, _numpy_bug)
    assert entry(argv) == 1
    err = _one_line(capsys, prog)
    assert "internal error" in err and "LinAlgError" in err and "rerun with --debug" in err


@pytest.mark.parametrize("which", [0, 1, 2], ids=["rvclora", "rvclora-train", "rvclora-export"])
def test_debug_shows_the_traceback(which, tmp_path, voice, monkeypatch):
    prog, entry, argv, target = _entries(tmp_path, voice)[which]
    _patch(monkeypatch, target, _numpy_bug)
    with pytest.raises(np.linalg.LinAlgError):
        entry([*argv, "--debug"])


@pytest.mark.parametrize("which", [0, 1, 2], ids=["rvclora", "rvclora-train", "rvclora-export"])
def test_a_user_error_exits_2_with_one_line(which, tmp_path, voice, monkeypatch, capsys):
    prog, entry, argv, target = _entries(tmp_path, voice)[which]

    def missing_runtime(*args, **kwargs):  # e.g. the optional ONNX Runtime not installed
        raise errors.BackendError("onnxruntime is not installed; pip install 'rvclora[onnx]'")

    _patch(monkeypatch, target, missing_runtime)
    assert entry(argv) == 2
    assert _one_line(capsys, prog) == f"{prog}: error: onnxruntime is not installed; pip install 'rvclora[onnx]'"


def test_real_user_errors_from_each_entry_point(tmp_path, voice, capsys):
    assert main(["convert", str(tmp_path / "none.wav"), str(tmp_path / "o.wav"), "--model", str(voice)]) == 2
    assert "error:" in _one_line(capsys, "rvclora")
    assert train_main([str(tmp_path / "nofolder"), "--base", str(voice), "--out", str(tmp_path / "a.safetensors")]) == 2
    assert "not a folder" in _one_line(capsys, "rvclora-train")
    assert export_main(["--model", str(voice), "--out", str(tmp_path / "v.pth")]) == 2
    assert "needs at least one --adapter" in _one_line(capsys, "rvclora-export")


def test_lora_refuses_bad_input_with_typed_user_errors():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(errors.UsageError, match="matches no"):
        inject(model, "re:nothing_here", LoRAConfig(rank=2))
    with pytest.raises(errors.AdapterError, match="no parameter named"):
        unfreeze(model, ["missing.weight"])
    with pytest.raises(errors.AdapterError, match="supports"):
        add_lora(torch.nn.ReLU(), LoRAConfig(rank=2))
    with pytest.raises(errors.UsageError, match="rank"):
        LoRAConfig(rank=0)


def _error_classes():
    for pkg in ("lora", "synth", "realtime", "export", "train"):
        package = importlib.import_module(f"rvclora.{pkg}")
        for info in pkgutil.iter_modules(package.__path__, f"rvclora.{pkg}."):
            module = importlib.import_module(info.name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ == module.__name__ and issubclass(cls, Exception) and not issubclass(cls, Warning):
                    yield cls


def test_every_error_class_of_ours_is_a_user_error():
    classes = list(_error_classes())
    assert len(classes) > 20  # the walk found the tree's errors
    stray = [f"{c.__module__}.{c.__name__}" for c in classes if not issubclass(c, errors.UserError)]
    assert not stray, stray


def test_the_two_device_errors_are_one_family():
    assert issubclass(AudioDeviceError, errors.DeviceError) and issubclass(ComputeDeviceError, errors.DeviceError)
