"""`rvclora run --record`: input and converted output as two channels that line up (click test)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from rvclora.cli.main import build_parser
from rvclora.realtime.session_recorder import SessionRecorder

SR = 48000
CLICKS = [int(SR * (0.3 + 0.37 * k)) for k in range(8)]


def _run(*argv):
    args = build_parser(str(argv[0])).parse_args([str(a) for a in argv])
    return args.func(args)


@pytest.fixture
def clicks(tmp_path):
    x = np.zeros(int(3.6 * SR), np.float32)
    for c in CLICKS:
        x[c : c + 48] = 0.8 * np.hanning(48)
    path = tmp_path / "clicks.wav"
    sf.write(path, x, SR)
    return path


@pytest.mark.parametrize("voice", ["deep", "chipmunk"])
def test_recorded_channels_line_up_within_1ms(clicks, tmp_path, monkeypatch, voice):
    monkeypatch.setenv("RVCLORA_HOME", str(tmp_path / "home"))
    rec = tmp_path / "rec.wav"
    assert _run("run", "--builtin", voice, "--input-file", clicks, "--output-file", tmp_path / "out.wav",
                "--record", rec, "--no-control") == 0
    y, sr = sf.read(rec, dtype="float32")
    assert sr == SR and y.shape[1] == 2
    heard, sent = np.abs(y[:, 0]), np.abs(y[:, 1])
    lag = 0.032 * SR  # the built-in voices' fixed delay: where each click must appear in both channels
    for c in CLICKS:
        w = slice(c, c + int(lag) + SR // 10)
        t_in, t_out = np.argmax(heard[w]), np.argmax(sent[w])
        assert sent[w][t_out] > 0.05, "the converted click is missing"
        assert abs(t_in - lag) < 0.002 * SR  # the delay is taken out of the recording, not added to it
        apart_ms = (int(t_out) - int(t_in)) / SR * 1e3
        assert abs(apart_ms) <= 1.0, f"click at {c / SR:.2f} s: channels {apart_ms:.2f} ms apart"


def test_record_refuses_an_existing_file(tmp_path):
    (tmp_path / "take.wav").write_bytes(b"keep me")
    with pytest.raises(ValueError, match="exists"):
        SessionRecorder(tmp_path / "take.wav")
    assert (tmp_path / "take.wav").read_bytes() == b"keep me"
