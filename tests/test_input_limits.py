"""A very long input is refused from its header, before it is decoded, in bounded memory."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest

from rvclora.tests.rvc_fixtures import make_voice_file

# Peak memory of the whole `rvclora` process that refuses the file: the interpreter with
# numpy, soundfile and torch imported is ~0.3 GB; decoding 10 hours would need > 1 GB
# (8 kHz float32) before resampling, and the old code went to 6 GB.
MEMORY_BOUND_MB = 600


def sparse_silent_wav(path, hours: float, sr: int = 8000) -> None:
    """A valid 16-bit mono wav of `hours` of silence that takes no disk space (a sparse file)."""
    data = int(hours * 3600 * sr) * 2
    header = b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, sr, sr * 2, 2, 16)
    with open(path, "wb") as f:
        f.write(header + b"data" + struct.pack("<I", data))
        f.truncate(44 + data)


# A small launcher forks the command: a child forked straight from this (large) test process
# would start with this process's resident pages in its high-water mark.
_LAUNCHER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(rc if rc >= 0 else 128 - rc)\n"
)


def run_with_peak_rss(argv, env) -> tuple[int, str, float]:
    """(exit code, stderr, the command's own peak RSS in MB)."""
    res = subprocess.run([sys.executable, "-c", _LAUNCHER, *map(str, argv)], env=env, capture_output=True, text=True)
    return res.returncode, res.stderr, int(res.stdout.split()[-1]) / 1024  # Linux: kB


@pytest.fixture(scope="module")
def ten_hours(tmp_path_factory):
    d = tmp_path_factory.mktemp("long")
    path = d / "ten_hours.wav"
    sparse_silent_wav(path, 10.0)
    return d, path


@pytest.mark.parametrize("command", ["convert", "run"])
def test_a_ten_hour_input_is_refused_in_bounded_memory(ten_hours, tmp_path, command):
    d, long_wav = ten_hours
    voice = make_voice_file(tmp_path, version="v1", sr=40000, f0=True)
    out = tmp_path / "out.wav"
    if command == "convert":
        args = ["convert", long_wav, out, "--model", voice, "--f0-method", "pm"]
    else:
        args = ["run", "--builtin", "deep", "--input-file", long_wav, "--output-file", out]
    env = {**os.environ, "RVCLORA_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    rc, err, peak_mb = run_with_peak_rss([sys.executable, "-m", "rvclora.cli", *map(str, args)], env)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "10.0 hours" in lines[0] and "at most 1 hour" in lines[0], err
    assert peak_mb < MEMORY_BOUND_MB, f"peak memory {peak_mb:.0f} MB"
    assert not out.exists()
