"""`make run` on a fresh machine: scripts/setup.sh says what it is doing while it installs.

A first install downloads about 1 GB; with pip in --quiet mode the terminal stayed silent
for ~95 s and looked hung. This runs the script with a stand-in Python whose `-m pip`
only records its arguments, so no network or real install is involved.
"""

import os
import subprocess
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FAKE_PYTHON = textwrap.dedent(
    """\
    #!/usr/bin/env bash
    # A stand-in interpreter: venv copies itself, pip records what it was asked.
    if [ "$1" = "-c" ]; then exit 0; fi
    if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; exit 0; fi
    if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then shift 2; echo "PIP $*"; exit 0; fi
    exit 3
    """
)


def test_setup_announces_each_step_and_lets_pip_show_progress(tmp_path):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup.sh"), str(fake), str(tmp_path / "venv"), "2.13.0", ".[gui]", ""],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr
    pip_calls = [line for line in result.stdout.splitlines() if line.startswith("PIP ")]
    assert len(pip_calls) == 2 and all("--quiet" not in c and " -q" not in c for c in pip_calls)  # pip's own output shows
    steps = [line for line in result.stderr.splitlines() if line.startswith("setup: [")]
    assert [s[:12] for s in steps] == ["setup: [1/4]", "setup: [2/4]", "setup: [3/4]", "setup: [4/4]"]
    assert "PyTorch 2.13.0" in steps[2] and ".[gui]" in steps[3]
