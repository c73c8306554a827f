"""Adapters with NaN or absurd values are refused by every command that loads one (one line, exit 2)."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from rvclora.cli.main import export_main, main
from rvclora.lora import load_adapter
from rvclora.synth.voice_adapters import MAX_DELTA_RATIO, check_adapter_scale
from rvclora.synth.voice_file import load_voice
from rvclora.tests.conftest import speech_path
from rvclora.tests.hubert_fixtures import tiny_hubert_config, write_hubert_file
from rvclora.tests.rvc_fixtures import make_adapter_file, make_voice_file


def _spoiled(adapter, path, value):
    """The adapter with one lora_B (fp32, so 1e30 is representable) set to `value` times itself
    (NaN: every value NaN); header and fingerprint kept, so only the values are wrong."""
    with safe_open(str(adapter), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k).float() for k in f.keys()}
    key = sorted(k for k in tensors if k.endswith(".lora_B"))[0]
    tensors[key] = torch.full_like(tensors[key], math.nan) if math.isnan(value) else tensors[key] * value
    save_file(tensors, str(path), metadata=meta)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_adapters")
    voice = make_voice_file(d, version="v1", sr=40000, f0=True)
    good = make_adapter_file(voice, d / "good.safetensors")
    return {
        "dir": d, "voice": voice, "good": good,
        "hubert": write_hubert_file(d / "hubert_base.pt", tiny_hubert_config("v1")),
        "nan": _spoiled(good, d / "nan.safetensors", math.nan),
        "huge": _spoiled(good, d / "huge.safetensors", 1e30),
    }


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RVCLORA_HOME", str(tmp_path / "home"))


def _one_line(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


BAD = [("nan", "NaN/Inf"), ("huge", "their own size")]


def test_real_adapters_are_far_below_the_bound(files):
    voice, adapter = load_voice(files["voice"]), load_adapter(files["good"])
    check_adapter_scale(adapter, voice.model)  # accepted
    # and a 30× louder one still is: the bound leaves a wide margin above real adapters
    check_adapter_scale(load_adapter(_spoiled(files["good"], files["dir"] / "x30.safetensors", 30.0)), voice.model)
    assert MAX_DELTA_RATIO >= 30


@pytest.mark.parametrize("kind, words", BAD)
def test_convert_refuses(files, tmp_path, capsys, kind, words):
    out = tmp_path / "o.wav"
    rc = main(["convert", str(speech_path()), str(out), "--model", str(files["voice"]), "--hubert", str(files["hubert"]),
               "--f0-method", "pm", "--adapter", str(files[kind])])
    assert rc == 2
    _one_line(capsys, files[kind].name, words)
    assert not out.exists()


@pytest.mark.parametrize("kind, words", BAD)
def test_run_refuses(files, tmp_path, capsys, kind, words):
    out = tmp_path / "o.wav"
    rc = main(["run", "--model", str(files["voice"]), "--hubert", str(files["hubert"]), "--f0-method", "pm",
               "--adapter", str(files[kind]), "--input-file", str(speech_path()), "--output-file", str(out)])
    assert rc == 2
    _one_line(capsys, files[kind].name, words)
    assert not out.exists()


@pytest.mark.parametrize("kind, words", BAD)
def test_export_refuses(files, tmp_path, capsys, kind, words):
    out = tmp_path / "merged.pth"
    rc = export_main(["--model", str(files["voice"]), "--adapter", str(files[kind]), "--out", str(out)])
    assert rc == 2
    _one_line(capsys, files[kind].name, words)
    assert not out.exists()


@pytest.mark.parametrize("kind, words", BAD)
def test_library_import_refuses(files, capsys, kind, words):
    assert main(["voices", "import", str(files["voice"]), "--name", "v"]) == 0
    capsys.readouterr()
    assert main(["voices", "import", str(files[kind]), "--to", "v", "--force"]) == 2  # --force does not help
    _one_line(capsys, files[kind].name, words)
    assert main(["voices", "import", str(files["good"]), "--to", "v"]) == 0
