"""`rvclora bench --stages`: each stage's time is attributed to it, and the stages add up to the block."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from rvclora.realtime.bench import speechlike
from rvclora.realtime.block_converter import load_rvc_source
from rvclora.realtime.settings import EngineSettings
from rvclora.realtime.stage_profile import run_stages
from tests.hubert_fixtures import tiny_hubert_config, write_hubert_file
from tests.rvc_fixtures import make_voice_file
from tests.test_realtime_cli import run

SETTINGS = EngineSettings(block_ms=60, crossfade_ms=20, search_ms=20, context_ms=300, f0_method="pm")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("stages")
    return d, make_voice_file(d, version="v2", sr=40000, f0=True), write_hubert_file(d / "h.pt", tiny_hubert_config("v2"))


@pytest.fixture()
def source(files):
    _, model, hubert = files
    return load_rvc_source(model, hubert=hubert, device="cpu", precision="fp32")


def test_slow_stage_is_named(source) -> None:
    """A content encoder made 30 ms slower shows as 30 ms more content encoder, not as other stages."""
    signal = speechlike(3.0, 16000)
    fast = run_stages(source, SETTINGS, signal, blocks=6, warmup=1)
    forward = source.encoder.forward

    def slow(*args, **kwargs):
        time.sleep(0.03)
        return forward(*args, **kwargs)

    source.encoder.forward = slow
    slowed = run_stages(source, SETTINGS, signal, blocks=6, warmup=1)
    extra = {name: slowed["stages"][name]["p50"] - fast["stages"][name]["p50"] for name in fast["stages"]}
    assert slowed["stages"]["content encoder"]["p50"] >= 30.0  # the sleep itself, whatever the load
    assert extra["content encoder"] >= 20.0, extra  # 10 ms of margin for a busy machine
    # A misplaced sleep would add 30 ms to one other stage (or to "other"); load moves their medians less.
    others = {k: v for k, v in extra.items() if k != "content encoder"}
    assert max(others.values()) < 25.0, others


def test_stages_add_up_to_the_block(source) -> None:
    result = run_stages(source, SETTINGS, speechlike(3.0, 16000), blocks=8, warmup=1)
    stages = result["stages"]
    assert {"input resample", "content encoder", "pitch", "text encoder", "flow", "decoder", "SOLA",
            "output resample"} <= set(stages)
    assert "index" not in stages  # no index loaded: nothing to time
    assert sum(s["mean"] for s in stages.values()) == pytest.approx(result["total"]["mean"], rel=0.05)
    assert all(s["p95"] >= s["p50"] > 0 for s in stages.values())


def test_bench_stages_cli(files, capsys) -> None:
    d, model, hubert = files
    assert run("bench", "--model", model, "--hubert", hubert, "--f0-method", "pm", "--context-ms", "300",
               "--blocks", "3", "--naive-blocks", "0", "--stages") == 0
    out = capsys.readouterr()
    result = json.loads(out.out)
    assert result["runs_on"] == "CPU fp32"
    assert result["stages"]["decoder"]["p50"] > 0 and result["stage_blocks"] == 3
    table = out.err.splitlines()
    assert table[0].split() == ["stage", "p50", "ms", "p95", "ms", "share"]
    assert any(line.startswith("content encoder") for line in table) and table[-1].startswith("total")
    assert np.isclose(sum(s["share"] for s in result["stages"].values()), 1.0, atol=0.3)
