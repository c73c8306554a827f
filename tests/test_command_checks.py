"""The commands as a user runs them: bad output paths and options are refused before any
work, failed writes leave nothing behind, and adapters made by other tools (no
base_fingerprint) load with --force only — in `convert`, `run` and `rvclora-export`.
Every failure is one line on stderr and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from rvclora.cli.main import export_main, train_main
from rvclora.cli.main import main as rvclora_main
from rvclora.realtime.settings import EngineSettings, SettingsError
from rvclora.synth import audio_io, voice_file
from rvclora.synth.pitch_options import PITCH_SHIFT_RANGE
from rvclora.synth.voice_file import load_voice
from tests.conftest import speech_path
from tests.hubert_fixtures import tiny_hubert_config, write_hubert_file
from tests.rvc_fixtures import (
    make_adapter_file,
    make_base_file,
    make_foreign_adapter_file,
    make_voice_file,
)

IS_ROOT = os.geteuid() == 0  # root writes into read-only folders


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    voice = make_voice_file(d, version="v1", sr=40000, f0=True)
    adapter = make_adapter_file(voice, d / "made-here.safetensors", seed=4)
    speech, sr = sf.read(speech_path(), dtype="float32")
    short = d / "short.wav"
    sf.write(short, speech[: sr], sr)  # one second keeps each conversion quick
    return {
        "dir": d,
        "voice": voice,
        "hubert": write_hubert_file(d / "hubert_base.pt", tiny_hubert_config("v1")),
        "adapter": adapter,
        "foreign": make_foreign_adapter_file(adapter, d / "other-tool.safetensors"),
        "speech": short,
    }


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RVCLORA_HOME", str(tmp_path / "home"))  # no real assets leak in
    return tmp_path / "home"


def rvclora(capsys, *args):
    rc = rvclora_main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def convert(capsys, models, out, *extra, src=None):
    return rvclora(capsys, "convert", src or models["speech"], out, "--model", models["voice"],
                   "--hubert", models["hubert"], "--f0-method", "pm", "--seed", "1", *extra)


def one_line(rc, err, *words):
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return lines[0]


@pytest.fixture
def no_work(monkeypatch):
    """Reading the input or loading a model fails the test: the check must come first."""
    def started(*a, **k):
        raise AssertionError("the command started working before checking its output")

    originals = {"load_mono": audio_io.load_mono, "load_voice": voice_file.load_voice}
    monkeypatch.setattr(audio_io, "load_mono", started)
    monkeypatch.setattr(voice_file, "load_voice", started)
    yield
    # A module first imported during the test bound the stand-in by name (`from … import load_voice`);
    # put the real function back there too, or later tests in this process would meet the stand-in.
    for module in list(sys.modules.values()):
        for name, real in originals.items():
            if getattr(module, name, None) is started:
                setattr(module, name, real)


# --------------------------------------------------------------------------- convert: output and options first


@pytest.mark.parametrize("case, words", [
    ("out.xyz", ["must end in .wav or .flac or .ogg"]),
    ("missing/out.wav", ["missing does not exist"]),
    ("existing.wav", ["already exists", "--overwrite"]),
    ("a-folder.wav", ["is a folder"]),
    ("out.wav --pitch 999", ["--pitch 999: must be from -24 to 24"]),
    ("out.wav --sr 0", ["--sr 0: must be from"]),
    ("locked/out.wav", ["not writable"]),
])
def test_convert_refuses_a_bad_output_before_any_work(models, tmp_path, capsys, no_work, case, words):
    name, *extra = case.split()
    if name.startswith("locked"):
        if IS_ROOT:
            pytest.skip("root can write into a read-only folder")
        (tmp_path / "locked").mkdir(mode=0o500)
    (tmp_path / "existing.wav").write_bytes(b"precious")
    (tmp_path / "a-folder.wav").mkdir()
    before = sorted(tmp_path.rglob("*"))
    rc, _, err = convert(capsys, models, tmp_path / name, *extra)
    one_line(rc, err, *words)
    assert sorted(tmp_path.rglob("*")) == before and (tmp_path / "existing.wav").read_bytes() == b"precious"


@pytest.mark.parametrize("pitch", [PITCH_SHIFT_RANGE[0] - 0.5, PITCH_SHIFT_RANGE[1] + 0.5])
def test_convert_and_run_share_one_pitch_range(models, tmp_path, capsys, no_work, pitch):
    lo, hi = PITCH_SHIFT_RANGE
    rc, _, err = convert(capsys, models, tmp_path / "o.wav", "--pitch", pitch)
    one_line(rc, err, f"must be from {lo:g} to {hi:g}")
    rc, _, err = rvclora(capsys, "run", "--builtin", "deep", "--pitch", pitch, "--input-file", models["speech"],
                         "--output-file", tmp_path / "r.wav")
    one_line(rc, err, f"must be from {lo:g} to {hi:g}")
    with pytest.raises(SettingsError):
        EngineSettings(pitch=pitch)
    EngineSettings(pitch=lo), EngineSettings(pitch=hi)  # the ends themselves are allowed


def test_a_failed_write_at_the_end_leaves_no_file(models, tmp_path, capsys, monkeypatch):
    real_write = sf.write

    def disk_full(path, *a, **k):
        real_write(path, *a, **k)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sf, "write", disk_full)
    out = tmp_path / "out" / "converted.flac"
    out.parent.mkdir()
    rc, _, err = convert(capsys, models, out)
    one_line(rc, err, "cannot write", "No space left")
    assert list(out.parent.iterdir()) == []


def test_an_undecodable_mp3_says_so_in_one_line(models, tmp_path):
    junk = tmp_path / "song.mp3"
    junk.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    env = {**os.environ, "RVCLORA_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "rvclora.cli", "convert", str(junk), str(tmp_path / "out.wav"),
         "--model", str(models["voice"]), "--hubert", str(models["hubert"])],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # decoder noise does not reach the terminal
    assert "song.mp3: cannot decode" in lines[0] and "does not exist" not in lines[0]
    assert not (tmp_path / "out.wav").exists()


# --------------------------------------------------------------------------- adapters made by other tools


def test_convert_applies_a_fingerprintless_adapter_only_with_force(models, tmp_path, capsys):
    rc, _, err = convert(capsys, models, tmp_path / "refused.wav", "--adapter", models["foreign"])
    line = one_line(rc, err, "other-tool.safetensors", "no base_fingerprint", "--force")
    assert not (tmp_path / "refused.wav").exists(), line
    rc, _, err = convert(capsys, models, tmp_path / "forced.wav", "--adapter", models["foreign"], "--force")
    assert rc == 0, err
    assert err.strip().splitlines() == [
        "rvclora: warning: other-tool.safetensors: no base fingerprint, applied unverified because of --force"
    ]
    rc, _, err = convert(capsys, models, tmp_path / "native.wav", "--adapter", models["adapter"])
    assert rc == 0 and err == "", err
    forced, native = sf.read(tmp_path / "forced.wav")[0], sf.read(tmp_path / "native.wav")[0]
    assert np.array_equal(forced, native)  # the same tensors: the same voice


def test_run_applies_a_fingerprintless_adapter_only_with_force(models, tmp_path, capsys):
    args = ["run", "--model", models["voice"], "--hubert", models["hubert"], "--f0-method", "pm", "--context-ms", "300",
            "--adapter", models["foreign"], "--input-file", models["speech"]]
    rc, _, err = rvclora(capsys, *args, "--output-file", tmp_path / "refused.wav")
    one_line(rc, err, "no base_fingerprint", "--force")
    rc, out, err = rvclora(capsys, *args, "--output-file", tmp_path / "forced.wav", "--force")
    assert rc == 0, err
    # besides the two lines every run prints (what it runs on, the control socket), exactly the one warning
    assert [ln for ln in err.splitlines()
            if ln.strip() and not ln.startswith("control: ") and " runs on " not in ln] == [
        "rvclora: warning: other-tool.safetensors: no base fingerprint, applied unverified because of --force"
    ]
    assert sf.info(tmp_path / "forced.wav").duration == pytest.approx(1.0, abs=0.02)


def test_export_applies_a_fingerprintless_adapter_only_with_force(models, tmp_path, capsys):
    def export(*args):
        rc = export_main([str(a) for a in args])
        return (rc, *capsys.readouterr())

    refused = tmp_path / "refused.pth"
    rc, _, err = export("--model", models["voice"], "--adapter", models["foreign"], "--out", refused)
    one_line(rc, err, "no base_fingerprint", "--force")
    assert list(tmp_path.iterdir()) == []
    rc, _, err = export("--model", models["voice"], "--adapter", models["foreign"], "--out", tmp_path / "forced.pth", "--force")
    assert rc == 0, err
    assert err.strip().splitlines() == [  # once, although the merge and its verification both check it
        "rvclora-export: warning: other-tool.safetensors: no base fingerprint, applied unverified because of --force"
    ]
    rc, _, err = export("--model", models["voice"], "--adapter", models["adapter"], "--out", tmp_path / "native.pth")
    assert rc == 0 and err == "", err
    forced, native = (load_voice(tmp_path / n).model.state_dict() for n in ("forced.pth", "native.pth"))
    assert all(np.array_equal(forced[k].numpy(), native[k].numpy()) for k in native)


# --------------------------------------------------------------------------- rvclora-export and rvclora-train


def test_export_checks_its_output_before_opening_the_model(tmp_path, capsys):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    for out, words in ((tmp_path / "missing" / "v.onnx", ["missing does not exist"]),
                       (tmp_path / "v.txt", [".onnx or .pth"]),
                       (junk, ["already exists", "--overwrite"])):
        rc = export_main(["--model", str(junk), "--out", str(out)])
        one_line(rc, capsys.readouterr().err, *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.pth"]


@pytest.fixture(scope="module")
def train_kit(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    return {"base": make_base_file(d, "v2", 40000, True, seed=0), "hubert": write_hubert_file(d / "h.pt", tiny_hubert_config("v2"))}


def test_train_on_an_empty_folder_fails_at_once_and_leaves_nothing(train_kit, tmp_path, capsys, monkeypatch):
    def loaded(*a, **k):
        raise AssertionError("the base was loaded before the data was checked")

    monkeypatch.setattr("rvclora.train.session.build_generator", loaded)
    empty = tmp_path / "recordings"
    (empty / "notes").mkdir(parents=True)
    (empty / "notes" / "readme.txt").write_text("no audio here")
    out = tmp_path / "voices" / "alice" / "alice.safetensors"
    before = sorted(tmp_path.rglob("*"))
    rc = train_main([str(empty), "--base", str(train_kit["base"]), "--out", str(out), "--hubert", str(train_kit["hubert"]),
                     "--f0-method", "pm", "--device", "cpu", "--no-progress"])
    one_line(rc, capsys.readouterr().err, "no audio files")
    assert sorted(tmp_path.rglob("*")) == before  # no out folder, no work folder, no run.json


def test_train_refuses_an_output_it_could_not_write(train_kit, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("rvclora.train.session.build_generator", lambda *a, **k: pytest.fail("work started"))
    data = tmp_path / "data"
    data.mkdir()
    sf.write(data / "a.wav", np.zeros(16000, np.float32), 16000)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the folder should be")
    rc = train_main([str(data), "--base", str(train_kit["base"]), "--out", str(blocker / "a.safetensors"),
                     "--hubert", str(train_kit["hubert"]), "--device", "cpu", "--no-progress"])
    one_line(rc, capsys.readouterr().err, "is a file, not a folder")
    rc = train_main([str(data), "--base", str(train_kit["base"]), "--out", str(tmp_path / "a.safetensors"),
                     "--hubert", str(tmp_path / "no-hubert.pt"), "--device", "cpu", "--no-progress"])
    one_line(rc, capsys.readouterr().err, "content encoder not found")
    assert not (tmp_path / "a.safetensors").exists() and not (tmp_path / "a.train").exists()
