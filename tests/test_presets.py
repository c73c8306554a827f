"""Presets: every live setting round-trips, global and per voice, switched on a running engine, and the
voice's default preset is what both `convert` and `rvclora run` start from."""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import pytest

from rvclora.cli import offline as synth_cli
from rvclora.library.home import Home
from rvclora.library.presets import Preset, PresetError, PresetStore
from rvclora.realtime.block_converter import BuiltinSource
from rvclora.realtime.engine import Engine
from rvclora.realtime.engine_control import EngineControl
from rvclora.realtime.presets import (
    devices_with_preset,
    preset_from_settings,
    settings_with_preset,
)
from rvclora.realtime.run_session import settings_for_run
from rvclora.realtime.settings import FIELDS, EngineSettings, SettingsError
from rvclora.realtime.streams import EngineDevices

TUNED = EngineSettings(block_ms=120, crossfade_ms=40, search_ms=20, pitch=7.0, formant=-2.0, index_rate=0.5,
                       threshold_db=-40.0, f0_method="pm", rms_mix_rate=0.4, output_gain_db=-3.0, speaker=1,
                       passthrough=True)


@pytest.fixture
def store(tmp_path):
    return PresetStore(tmp_path / "presets.json")


def test_every_live_setting_round_trips_through_a_saved_preset(store, tmp_path):
    devices = EngineDevices(input="USB mic", output="rvclora")
    store.save(preset_from_settings("Stream", TUNED, voice="Alto", devices=devices))
    again = PresetStore(tmp_path / "presets.json").get("Stream", "Alto")
    # Every field of the live settings is carried, by name (new fields come along); passthrough is a switch.
    assert set(again.values) == FIELDS - {"passthrough"}
    restored, skipped = settings_with_preset(EngineSettings(), again)
    assert skipped == []
    assert restored == dataclasses.replace(TUNED, passthrough=False)
    assert devices_with_preset(EngineDevices(), again) == EngineDevices(input="USB mic", output="rvclora")
    # Devices only when asked for.
    store.save(preset_from_settings("Quiet", TUNED))
    assert store.get("Quiet").devices is None
    assert devices_with_preset(devices, store.get("Quiet")) == devices


def test_unknown_names_are_skipped_and_bad_values_named(store):
    restored, skipped = settings_with_preset(EngineSettings(), Preset("Later", {"pitch": 3.0, "reverb_mix": 0.5}))
    assert restored.pitch == 3.0 and skipped == ["reverb_mix"]
    with pytest.raises(SettingsError, match="pitch 99"):
        settings_with_preset(EngineSettings(), Preset("Bad", {"pitch": 99.0}))
    with pytest.raises(PresetError, match="no preset named 'nope'"):
        store.get("nope")


def test_global_and_per_voice_presets(store):
    store.save(Preset("Stream", {"pitch": 1.0}))
    store.save(Preset("Stream", {"pitch": 5.0}, voice="Alto"))
    store.save(Preset("Low", {"pitch": -4.0}, voice="Bass"))
    assert store.get("Stream", "Alto").values["pitch"] == 5.0  # the voice's own wins
    assert store.get("Stream", "Bass").values["pitch"] == 1.0
    assert sorted(p.name for p in store.for_voice("Alto")) == ["Stream", "Stream"]
    with pytest.raises(PresetError):
        store.get("Low", "Alto")  # another voice's preset is not offered
    store.set_default("Alto", "Stream")
    assert store.default_for("Alto").values["pitch"] == 5.0 and store.default_for("Bass") is None
    assert store.remove("Stream", "Alto") and store.default_for("Alto").values["pitch"] == 1.0  # the global one now
    store.remove("Stream")
    assert store.default_for("Alto") is None
    # A damaged file is refused in one line, not silently replaced.
    store.path.write_text("{not json")
    with pytest.raises(PresetError, match="fix or remove"):
        store.save(Preset("X"))
    assert store.path.read_text() == "{not json"


def test_switching_a_preset_changes_the_running_engine(store):
    store.save(Preset("Deep", {"pitch": -5.0, "formant": -2.0, "block_ms": 120, "crossfade_ms": 20}))
    store.save(Preset("Chip", {"pitch": 2.0}, voice="chipmunk"))
    engine = Engine(BuiltinSource("passthrough"))
    pipe = engine.attach(48000, threaded=False)
    control = EngineControl(engine, store, load_voice=BuiltinSource, voice="passthrough")
    noise = (0.05 * np.random.default_rng(0).standard_normal(4800)).astype(np.float32)

    def play() -> None:
        for _ in range(4):
            pipe.on_input(noise)
            engine.pump()

    try:
        play()
        assert control("preset", "Deep") == "preset Deep"
        play()
        s = engine.pipeline.proc.settings  # what the running chain uses
        assert (s.pitch, s.formant, s.block_ms, s.crossfade_ms) == (-5.0, -2.0, 120, 20)
        assert engine.pipeline.proc.block_in == 120 * engine.pipeline.proc.input_sr // 1000
        # A voice's own preset brings its voice along.
        assert control("preset", "Chip") == "voice chipmunk; preset Chip"
        play()
        assert engine.source.name == "chipmunk" and engine.pipeline.proc.settings.pitch == 2.0
        assert json.loads(control("status"))["preset"] == "Chip"
    finally:
        engine.stop()


def test_the_voice_default_preset_feeds_convert_and_run_alike(tmp_path):
    home = Home(tmp_path / "home").ensure()
    (home.voice_dir("Alto")).mkdir()
    model = home.voice_dir("Alto") / "model.pth"
    model.write_bytes(b"")
    store = PresetStore.for_home(home)
    store.save(Preset("Warm", {"pitch": 5.0, "index_rate": 0.4, "f0_method": "pm", "block_ms": 200}, voice="Alto"))
    store.set_default("Alto", "Warm")

    args = argparse.Namespace(model=model, preset=None, pitch=None, f0_method=None, index_rate=None, protect=None,
                              noise_scale=0.66666, speaker=0)
    synth_cli._fill_from_preset(args, home)
    live, name = settings_for_run(EngineSettings(), "Alto", None, store)
    assert name == "Warm"
    assert (args.pitch, args.index_rate, args.f0_method) == (live.pitch, live.index_rate, live.f0_method) == (5.0, 0.4, "pm")
    assert live.block_ms == 200  # live-only settings apply live
    # What the user typed still wins, offline and live.
    args = argparse.Namespace(model=model, preset=None, pitch=-1.0, f0_method=None, index_rate=None, protect=None,
                              noise_scale=0.66666, speaker=0)
    synth_cli._fill_from_preset(args, home)
    assert args.pitch == -1.0 and args.index_rate == 0.4
    assert settings_for_run(EngineSettings(pitch=-1.0), "Alto", None, store)[0].pitch == -1.0
    # Another voice's model gets no preset.
    other = argparse.Namespace(model=tmp_path / "x.pth", preset=None, pitch=None, f0_method=None, index_rate=None,
                               protect=None, noise_scale=0.66666, speaker=0)
    synth_cli._fill_from_preset(other, home)
    assert other.pitch is None
