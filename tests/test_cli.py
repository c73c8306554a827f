"""The `rvclora` command as a user runs it: convert, info, assets, and its errors."""

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from rvclora.cli.main import build_parser, main
from rvclora.library.voice_library import AdapterSlot, VoiceDefaults, VoiceEntry, write_voice_json
from rvclora.synth.content_encoder import load_content_encoder
from rvclora.synth.index import build_index
from tests.cli_help import commands, undocumented
from tests.hubert_fixtures import tiny_hubert_config, write_hubert_file
from tests.rvc_fixtures import make_adapter_file, make_voice_file


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {
        "hubert": write_hubert_file(d / "hubert_base.pt", tiny_hubert_config("v1")),
        "voice": make_voice_file(d, version="v1", sr=40000, f0=True),
        "nof0": make_voice_file(d, version="v1", sr=32000, f0=False),
        "dir": d,
    }


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RVCLORA_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def run(*args):
    return main([str(a) for a in args])


def convert(models, src, dst, *extra):
    return run("convert", src, dst, "--model", models["voice"], "--hubert", models["hubert"], *extra)


def test_every_command_and_option_says_what_it_does():
    parser = build_parser()
    assert commands(parser) >= {"convert", "info", "assets", "run", "devices", "bench", "latency", "virtual-mic", "voices",
                                "ctl", "train", "export"}
    assert undocumented(parser, "rvclora") == []
    for name in sorted(commands(parser)):  # each command's options are added only when it is chosen
        assert undocumented(build_parser(name), "rvclora") == [], name


def test_an_unexplained_option_or_command_is_found():
    parser = argparse.ArgumentParser(prog="x")
    parser.add_argument("--documented", help="says what it does")
    parser.add_argument("--bare")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("quiet").add_argument("file")
    sub.add_parser("told", help="a command with help", aliases=["t"])
    assert undocumented(parser, "x") == ["x --bare", "x quiet", "x quiet file"]


def test_bare_command_without_a_display_says_what_to_do(monkeypatch, capsys):
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    assert main([]) == 2
    assert "rvclora run" in _error(capsys)


def test_console_script_runs_in_a_fresh_process():
    result = subprocess.run([sys.executable, "-m", "rvclora.cli", "info", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "JSON" in result.stdout


def test_convert_speech_end_to_end(models, speech_file, tmp_path, capsys):
    out = tmp_path / "out.wav"
    assert convert(models, speech_file, out, "--f0-method", "pm", "--seed", "3") == 0
    audio, sr = sf.read(out)
    src, src_sr = sf.read(speech_file)
    assert sr == 40000
    # RVC's pipeline loses at most a few 10 ms frames at the end.
    assert abs(len(audio) / sr - len(src) / src_sr) < 0.05
    assert np.isfinite(audio).all() and np.abs(audio).max() > 1e-4
    assert "wrote" in capsys.readouterr().out


def test_convert_is_reproducible_with_a_seed(models, speech_file, tmp_path):
    a, b, c = tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "c.wav"
    assert convert(models, speech_file, a, "--f0-method", "pm", "--seed", "7") == 0
    assert convert(models, speech_file, b, "--f0-method", "pm", "--seed", "7") == 0
    assert convert(models, speech_file, c, "--f0-method", "pm", "--seed", "8") == 0
    assert np.array_equal(sf.read(a)[0], sf.read(b)[0])
    assert not np.array_equal(sf.read(a)[0], sf.read(c)[0])


def test_convert_8khz_stereo_flac_to_requested_rate(models, tmp_path):
    t = np.arange(8000 * 2) / 8000
    tone = 0.4 * np.sin(2 * np.pi * 180 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
    src = tmp_path / "in.flac"
    sf.write(src, np.stack([tone, 0.5 * tone], axis=1), 8000)
    out = tmp_path / "out.flac"
    assert convert(models, src, out, "--f0-method", "pm", "--sr", "16000") == 0
    audio, sr = sf.read(out)
    assert sr == 16000 and abs(len(audio) - 32000) < 16000 * 0.05


def test_model_without_pitch(models, speech_file, tmp_path):
    out = tmp_path / "out.wav"
    assert run("convert", speech_file, out, "--model", models["nof0"], "--hubert", models["hubert"]) == 0
    assert sf.info(out).samplerate == 32000


def test_index_rate_changes_the_output(models, speech_file, tmp_path):
    encoder = load_content_encoder(models["hubert"], version="v1")
    with torch.no_grad():
        feats = encoder(torch.randn(1, 16000 * 4) * 0.1)[0].numpy()
    index = build_index(feats, tmp_path / "added_IVF1_Flat_nprobe_1_test_v1.index")
    outs = {}
    for rate in ("0", "1"):
        outs[rate] = tmp_path / f"out{rate}.wav"
        assert convert(models, speech_file, outs[rate], "--f0-method", "pm", "--seed", "1", "--index", index, "--index-rate", rate) == 0
    assert not np.allclose(sf.read(outs["0"])[0], sf.read(outs["1"])[0], atol=1e-4)


def test_info_prints_json(models, capsys):
    assert run("info", models["voice"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["version"] == "v1" and info["sample_rate"] == 40000 and info["f0"] is True
    assert info["dtype"] == "float16" and len(info["sha256"]) == 64 and info["speakers"] >= 1
    assert info["parameters"] > 1000


def test_info_on_an_adapter(models, tmp_path, capsys):
    adapter = make_adapter_file(models["voice"], tmp_path / "a.safetensors", rank=4, targets="decoder")
    assert run("info", adapter) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "adapter" and info["rank"] == 4 and info["targets"] == "decoder"
    assert info["base"]["version"] == "v1" and info["base"]["sample_rate"] == 40000
    assert info["parameters"] > 0 and info["size_bytes"] == adapter.stat().st_size


def _error(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("rvclora: error:") and "\n" not in err, err
    return err


def test_bad_inputs_give_one_line_errors(models, speech_file, tmp_path, capsys):
    out = tmp_path / "out.wav"
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    assert convert(models, nan, out) == 2
    assert "NaN" in _error(capsys)

    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    assert convert(models, empty, out) == 2
    assert "no audio" in _error(capsys)

    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(models["voice"].read_bytes()[:1000])
    assert run("convert", speech_file, out, "--model", corrupt, "--hubert", models["hubert"]) == 2
    assert "corrupt" in _error(capsys)

    assert run("convert", speech_file, out, "--model", models["hubert"], "--hubert", models["hubert"]) == 2
    assert "voice" in _error(capsys).lower()

    assert run("convert", speech_file, out, "--model", models["voice"]) == 2
    assert "assets download" in _error(capsys)

    assert convert(models, speech_file, out, "--f0-method", "rmvpe", "--rmvpe", tmp_path / "none.pt") == 2
    assert "rmvpe" in _error(capsys)

    assert convert(models, speech_file, out, "--speaker", "99") == 2
    assert "speaker" in _error(capsys)

    out.write_bytes(b"precious")
    assert convert(models, speech_file, out) == 2
    assert "--overwrite" in _error(capsys)
    assert out.read_bytes() == b"precious"


def test_assets_check_lists_missing_files(home, capsys):
    assert run("assets", "check") == 0
    out = capsys.readouterr().out
    assert str(home / "assets" / "hubert_base.pt") in out and "missing" in out


def test_assets_download_offline_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    assert run("assets", "download") == 2
    err = _error(capsys)
    assert "hubert_base.pt" in err


def test_convert_with_an_adapter_and_its_voice_json(models, speech_file, tmp_path):
    trained = tmp_path / "alice"
    trained.mkdir()
    adapter = make_adapter_file(models["voice"], trained / "alice.safetensors", seed=4)
    write_voice_json(VoiceEntry(name="alice", folder=trained, base=str(models["voice"]),
                                adapters=(AdapterSlot("alice.safetensors"),),
                                defaults=VoiceDefaults(pitch=7, f0_method="pm", protect=0.5)))
    plain, adapted, explicit = tmp_path / "plain.wav", tmp_path / "adapted.wav", tmp_path / "explicit.wav"
    assert convert(models, speech_file, plain, "--seed", "1", "--pitch", "7", "--f0-method", "pm", "--protect", "0.5") == 0
    assert convert(models, speech_file, adapted, "--seed", "1", "--adapter", adapter) == 0  # defaults from voice.json
    assert convert(models, speech_file, explicit, "--seed", "1", "--adapter", f"{adapter}:1",
                   "--pitch", "7", "--f0-method", "pm", "--protect", "0.5") == 0
    a, b, c = (sf.read(p)[0] for p in (plain, adapted, explicit))
    assert np.array_equal(b, c)  # the voice.json defaults are exactly the options it names
    assert not np.allclose(a, b, atol=1e-3)  # the adapter changes the voice


def test_convert_refuses_an_adapter_for_another_base(models, speech_file, tmp_path, capsys):
    adapter = make_adapter_file(models["nof0"], tmp_path / "other.safetensors", seed=1)
    assert convert(models, speech_file, tmp_path / "o.wav", "--adapter", adapter) == 2
    assert "made for base" in _error(capsys)
