"""The panel's "≈… ms in all" readout is the delay `rvclora latency` measures (PulseAudio test server).

The panel's engine link (`gui.engine_link.EngineLink`, the real engine in its own child
process, as the panel runs it) plays a built-in voice into a null sink and listens to
that sink's monitor; the estimate it reports is what the panel prints as "in all".
Then `rvclora latency` (the command itself, through the front door, run here once the
panel's engine is gone) starts the engine again with the same voice, settings and
devices, plays probe bursts through its path and measures the round trip. The two
must agree within 10 ms: the engine settles at the same delay on every start, and its
estimate is that delay.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from rvclora.cli.main import main as rvclora
from rvclora.gui.engine_link import DeviceChoice, EngineLink
from rvclora.realtime.settings import EngineSettings
from rvclora.realtime.voice_pool import VoiceSpec
from tests.pulse_audio import pulse  # noqa: F401

LOOP = "panel_lat"
VOICE = "deep"
SETTINGS = EngineSettings()  # the panel's defaults: what a user sees first
AGREE_MS = 10.0


@pytest.fixture(scope="module")
def loop(pulse):  # noqa: F811
    module = pulse.pactl("load-module", "module-null-sink", f"sink_name={LOOP}", "format=float32le", "rate=48000",
                         "channels=1", "channel_map=mono").strip()
    yield DeviceChoice(input=f"{LOOP}.monitor", output=LOOP)
    pulse.pactl("unload-module", module)


def _upsets(raw) -> int:
    """Events that move a running engine's delay for a while: device xruns, underflows, trims, skips."""
    return raw.input_xruns + raw.output_xruns + raw.underflows + raw.trimmed_output + raw.skipped_input


def panel_readout(devices: DeviceChoice) -> tuple[list[float], bool]:
    """The panel's "in all" readout, twice a second for 2.5 s once the engine has run ≈4 s, and
    whether anything upset the engine's timing meanwhile (see `_upsets`)."""
    link = EngineLink()
    try:
        link.start(VoiceSpec(builtin=VOICE, name=VOICE), SETTINGS, devices)
        deadline = time.monotonic() + 20
        while (link.stats() is None or link.stats().blocks < 20) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.5)  # the output settles ≈2 s after its first block
        before = _upsets(link.engine.stats)
        shown = []
        for _ in range(5):
            time.sleep(0.5)
            shown.append(link.stats().latency_ms)
        return shown, _upsets(link.engine.stats) != before
    finally:
        link.close()


def cli_latency(devices: DeviceChoice, capsys) -> dict | None:
    """`rvclora latency --json` with the panel's settings; None when every try was disturbed (it says so)."""
    s = SETTINGS
    code = rvclora(["latency", "--input", devices.input, "--output", devices.output, "--builtin", VOICE, "--json",
                    "--block-ms", str(s.block_ms), "--crossfade-ms", str(s.crossfade_ms), "--search-ms",
                    str(s.search_ms), "--buffer-ms", str(s.buffer_ms)])
    out, err = capsys.readouterr()
    if code != 0:
        assert "latency not measured" in err, err[-2000:]
        return None
    return json.loads(out.strip().splitlines()[-1])


def test_panel_delay_in_all_is_what_rvclora_latency_measures(loop, capsys):
    """One pair normally. A loaded machine can upset either run (a device xrun, an underflow: the
    delay moves for seconds until the engine brings it back): such a pair is taken once more. Two
    undisturbed runs that disagree fail at once: then the readout itself is wrong."""
    pairs = []
    for _ in range(2):
        shown, upset = panel_readout(loop)
        cli = cli_latency(loop, capsys)
        panel = float(np.median(shown))
        pair = {"panel_shows": [round(x, 1) for x in shown], "panel_upset": upset,
                "measured": None if cli is None else round(cli["ms"], 1),
                "cli_estimate": None if cli is None else round(cli["estimated_ms"], 1),
                "cli_xruns": None if cli is None else cli["xruns"]}
        pairs.append(pair)
        if cli is not None and (abs(panel - cli["ms"]) <= AGREE_MS or not (upset or cli["xruns"])):
            break
    if cli is None:
        pytest.skip(f"rvclora latency found every try disturbed (skipped, trimmed or starved audio): the machine "
                    f"cannot run the engine steadily now: {pairs}")
    print(pairs)  # shown by pytest -s and beside a failure
    assert abs(panel - cli["ms"]) <= AGREE_MS, pairs
