"""`rvclora run/devices/bench/latency/virtual-mic`: options, files, JSON, one-line errors."""

from __future__ import annotations

import json

import pytest
import soundfile as sf

from rvclora.cli.main import build_parser, chosen_command
from rvclora.tests.conftest import speech_path
from rvclora.tests.hubert_fixtures import tiny_hubert_config, write_hubert_file
from rvclora.tests.rvc_fixtures import make_voice_file


def _parser(argv):
    return build_parser(chosen_command(argv))


def run(*argv):
    argv = [str(a) for a in argv]
    args = _parser(argv).parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def voice(tmp_path_factory):
    d = tmp_path_factory.mktemp("rtcli")
    return d, make_voice_file(d, version="v1", sr=40000, f0=True), write_hubert_file(d / "h.pt", tiny_hubert_config("v1"))


@pytest.mark.parametrize("command", ["run", "devices", "bench", "latency", "virtual-mic"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        _parser([command]).parse_args([command, "--help"])
    assert e.value.code == 0
    assert "usage: rvclora " + command in capsys.readouterr().out


def test_run_converts_a_file_through_the_engine(voice, capsys):
    d, model, hubert = voice
    out = d / "out.wav"
    assert run("run", "--model", model, "--hubert", hubert, "--f0-method", "pm", "--context-ms", "300",
               "--pitch", "4", "--input-file", speech_path(), "--output-file", out) == 0
    audio, sr = sf.read(out)
    assert sr == 40000 and len(audio) == pytest.approx(sf.info(speech_path()).duration * sr, abs=sr // 100)
    assert "blocks, compute p50" in capsys.readouterr().out


def test_run_builtin_voice_from_file(voice):
    d, _, _ = voice
    assert run("run", "--builtin", "chipmunk", "--input-file", speech_path(), "--output-file", d / "b.wav") == 0
    assert sf.info(d / "b.wav").samplerate == 48000


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--block-ms", "65"], "multiple of 10"),
        (["--crossfade-ms", "100"], "longer fades only add latency"),
        (["--input-file", "x.wav"], "go together"),
    ],
)
def test_run_bad_options_are_one_line_errors(voice, argv, words):
    d, _, _ = voice
    with pytest.raises(ValueError, match=words):
        run("run", "--builtin", "deep", *argv)


def test_bench_json_tiny_model(voice, capsys):
    d, model, hubert = voice
    assert run("bench", "--model", model, "--hubert", hubert, "--f0-method", "pm", "--context-ms", "1000",
               "--blocks", "4", "--naive-blocks", "2", "--out", d / "bench.json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result == json.loads((d / "bench.json").read_text())
    for key in ("p50", "p95", "p99", "real_time_factor", "overruns"):
        assert key in result["compute_ms"]
    assert result["algorithmic_latency_ms"] == 100 and result["context_ms"] == 1000
    assert result["decoded_frames"] == 10 and result["window_frames"] == 110
    assert result["speedup_vs_naive"] > 0 and result["backend"] == "torch" and result["device"] == "cpu"


def test_bench_builtin(capsys):
    assert run("bench", "--builtin", "high", "--blocks", "3") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["backend"] == "dsp" and "speedup_vs_naive" not in result


def test_devices_and_virtual_mic_with_a_sound_server(pulse, capsys):  # noqa: F811
    assert run("devices") == 0
    table = capsys.readouterr().out
    assert "vmic" in table and "virtual" in table
    assert run("virtual-mic", "create", "--name", "rvctest") == 0
    assert "rvctest" in capsys.readouterr().out
    assert run("virtual-mic", "status", "--name", "rvctest") == 0
    assert "present" in capsys.readouterr().out
    assert run("virtual-mic", "remove", "--name", "rvctest") == 0
    assert run("virtual-mic", "status", "--name", "rvctest") == 0
    assert "no virtual mic" in capsys.readouterr().out


def test_latency_through_the_loopback(pulse, capsys):  # noqa: F811
    """Measured through the engine: its safety margin is part of what comes back (a separate
    duplex stream, the old way, would not see it at all)."""
    assert run("latency", "--input", "vmic", "--output", "vsink", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["path"] == "engine" and 60 < result["ms"] < 1000 and result["jitter_ms"] < 5
    assert run("latency", "--input", "vmic", "--output", "vsink", "--buffer-ms", "400", "--json") == 0
    padded = json.loads(capsys.readouterr().out)
    assert padded["ms"] - result["ms"] > 300, (result, padded)


def test_run_on_devices_for_a_moment(pulse, capsys):  # noqa: F811
    assert run("run", "--builtin", "passthrough", "--input", "vmic", "--output", "vsink",
               "--latency", "high", "--duration", "1.2") == 0
    err = capsys.readouterr().err
    assert "latency ~" in err and "skipped 0" in err and "ppm" in err


def test_missing_model_is_a_one_line_error(tmp_path):
    with pytest.raises(OSError, match="no such voice model"):
        run("run", "--model", tmp_path / "nope.pth", "--input-file", speech_path(), "--output-file", tmp_path / "o.wav")
