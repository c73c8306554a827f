"""The real panel with the real engine keeps running for two minutes.

The panel once aborted after 40-75 s of running ("Fatal Python error: none_dealloc",
a Qt binding that leaked references to None on every paint call); short tests never
saw it. This runs `tests.panel_run` (the real window, a built-in voice, the
live engine on PulseAudio test devices with real speech as the microphone) in its own
process for 120 s: the process must end by itself with the panel still answering,
the meters must have moved and the blocks must have been counted.
"""

from pathlib import Path

import pytest

from tests.conftest import speech_path
from tests.panel_run import run_panel_process, speech_sinks

# The panel with the real engine for minutes.
pytestmark = pytest.mark.slow

SECONDS = 120


def test_panel_runs_two_minutes_with_the_real_engine(pulse, tmp_path: Path):
    with speech_sinks(pulse, tmp_path, speech_path(), seconds=60) as (mic, out):
        code, report, stderr = run_panel_process(SECONDS, mic, out, tmp_path / "home", report_every=30)
    assert code == 0, f"the panel process ended with {code}: {stderr}"
    assert report.get("final") and report["alive"] and report["running_s"] >= SECONDS, report
    assert report["engine_state"] in ("running", "starting"), report  # a restart after a starved capture is allowed
    # Blocks of 60 ms (the default) for 120 s are 2000; a loaded machine may lose some, not most.
    assert report["blocks"] > 0.5 * SECONDS * 1000 / 60, report
    assert report["input_db_max"] > -50 and report["output_db_max"] > -50, report  # speech in, voice out
    assert report["chart_samples_max"] > 0 and report["paints"] >= SECONDS, report
