"""Faults the live engine meets, on its own code path (file driver, simulated devices):
nothing deafening or non-finite leaves an output port, and a stalled worker's dropouts are counted."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from rvclora.realtime.block_converter import BuiltinSource
from rvclora.realtime.cli import run_line
from rvclora.realtime.engine import Engine
from rvclora.realtime.library_log import library_noise_to
from rvclora.realtime.settings import EngineSettings, SettingsError
from tests.engine_sim import SR, Sim


def true_peak_db(audio: np.ndarray) -> float:
    """Reference true peak: 4× oversampled with scipy's polyphase FIR (independent of the limiter's own)."""
    return float(20 * np.log10(np.abs(resample_poly(np.asarray(audio, np.float64), 4, 1)).max()))


@pytest.mark.parametrize("ceiling_db", [-1.0, -6.0])
def test_a_deafening_input_leaves_the_live_engine_at_or_below_the_ceiling(tmp_path, ceiling_db):
    """±1000 into the built-in voice, through the engine's output port (no file-side limiter):
    the true peak stays at or below the ceiling, the voice is still there, and the limiter's
    gain reduction shows in the stats and the run line."""
    sr = 48000
    t = np.arange(2 * sr) / sr
    rng = np.random.default_rng(5)
    x = 1000 * np.clip(np.sin(2 * np.pi * 180 * t) + 0.3 * rng.standard_normal(len(t)), -1, 1)
    loud = tmp_path / "loud.wav"
    sf.write(loud, x.astype(np.float32), sr, subtype="FLOAT")
    engine = Engine(BuiltinSource("deep"), EngineSettings(ceiling_db=ceiling_db))
    out = engine.process_file(loud)
    st = engine.stats
    assert np.abs(out).max() > 0.5 * 10 ** (ceiling_db / 20)  # limited, not silenced
    assert true_peak_db(out) <= ceiling_db, true_peak_db(out)
    assert st.limiter_max_reduction_db > 40 and st.limiter_ms == pytest.approx(1000 * 112 / 48000)
    assert "limiter -" in run_line(st)


def test_the_ceiling_is_a_checked_live_setting():
    with pytest.raises(SettingsError, match="ceiling_db 3: must be from -60 to 0"):
        EngineSettings(ceiling_db=3.0)
    sim = Sim(EngineSettings(block_ms=60, crossfade_ms=10, search_ms=0, buffer_ms=20), out_ppm=0)
    sim.engine.update(ceiling_db=-12.0)
    sim.run(1.0)
    assert sim.pipe.out.limiter.config.ceiling_db == -12.0


def test_a_non_finite_block_is_silenced_counted_and_said_once():
    """Passthrough (no model to catch it) of input with NaN and inf: every output sample is finite,
    the silenced blocks are counted, and the user is told once."""
    engine = Engine(BuiltinSource("passthrough"), EngineSettings(passthrough=True))
    pipe = engine.attach(48000, 48000, threaded=False)
    block = np.full(480, 0.1, np.float32)
    played = []
    for k in range(60):
        x = block.copy()
        if k in (20, 40):
            x[7] = np.nan if k == 20 else np.inf
        pipe.on_input(x)
        engine.pump()
        buf = np.zeros(480, np.float32)
        pipe.out.read(buf)
        played.append(buf)
    engine.stop()
    out = np.concatenate(played)
    assert np.isfinite(out).all() and np.abs(out).max() > 0.05
    assert engine.stats.nonfinite_blocks == 2
    said = [e for e in engine.drain_events() if e.kind == "warning" and "NaN" in e.message]
    assert len(said) == 1 and "\n" not in said[0].message


def test_a_stalled_worker_is_counted_as_a_dropout_of_the_length_heard():
    """A converter that sleeps 500 ms once (virtual clock): the output runs dry; the stats count
    one dropout whose length is the silence the device really played (within one device
    period), and the run line shows it."""
    settings = EngineSettings(block_ms=60, crossfade_ms=10, search_ms=0, buffer_ms=20)
    stall_block = int(5.0 / 0.06)
    sim = Sim(settings, out_ppm=0, compute=lambda k: 0.5 if k == stall_block else 0.02, period=320,
              window_every_s=0.0)
    sim.run(10.0)
    st = sim.engine.stats
    out = np.concatenate([w for t0, w in sim.outputs[0].windows if t0 > 2.0])
    silent_ms = 1000.0 * np.count_nonzero(out == 0.0) / SR  # the noise input has no exact zeros
    assert 300 < silent_ms < 600, silent_ms
    assert st.dropouts == 1 and st.underflows == 1
    assert abs(st.dropout_ms - silent_ms) <= 1000.0 * 320 / SR, (st.dropout_ms, silent_ms)
    assert f"dropouts 1 ({st.dropout_ms:.0f} ms)" in run_line(st)


def test_library_noise_goes_to_the_log_and_our_lines_to_the_terminal(tmp_path, capfd):
    """What C libraries write to descriptor 2 while the engine runs (ALSA's xrun lines, written
    here the way C writes them) lands in the log; the run line printed meanwhile still reaches
    the terminal, and afterwards descriptor 2 is the terminal again."""
    log = tmp_path / "logs" / "audio.log"
    with library_noise_to(log):
        os.write(2, b"ALSA lib pcm.c:8570:(snd_pcm_recover) underrun occurred\n")
        print("latency ~120 ms | dropouts 0", file=sys.stderr, flush=True)
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert "ALSA lib" not in err and "latency ~120 ms" in err and "after" in err
    assert "underrun occurred" in log.read_text()
