"""The desktop panel, offscreen: voices, sliders to engine, devices, errors, memory, shortcuts.

Most tests drive the real window with a stand-in engine (recording what the panel
asks of it), so they need no sound devices; `test_builtin_voice_runs_on_pulse_devices`
runs the real engine against the private PulseAudio server of `tests/pulse_audio.py`.
"""

import os

from tests.conftest import speech_path
from tests.test_voice_meta import applio_voice

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any QApplication exists

import json
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication, QInputDialog, QMessageBox

from rvclora.gui import engine_link
from rvclora.gui.engine_link import EngineLink
from rvclora.gui.main_window import MainWindow
from rvclora.gui.settings_store import SettingsStore
from rvclora.gui.voice_choice import VoiceChoice
from rvclora.library import assets
from rvclora.library.home import Home
from rvclora.library.voice_library import VoiceDefaults, VoiceLibrary
from rvclora.realtime.engine_types import LatencyMeasurement
from rvclora.realtime.settings import EngineSettings
from tests.rvc_fixtures import make_adapter_file, make_foreign_adapter_file, make_voice_file

WARN = "\u26a0"


class FakeEngine:
    """Records what the panel asks of the engine; `fail` makes start() raise like a device error."""

    made: list["FakeEngine"] = []

    def __init__(self, source, settings, devices, fail: str | None = None):
        self.source, self.settings, self.devices = source, settings, devices
        self.running = False
        self.adapters = None
        self.events: list = []
        self.fail = fail
        FakeEngine.made.append(self)

    def start(self):
        if self.fail:
            raise OSError(self.fail)
        self.running = True

    def stop(self):
        self.running = False

    def update(self, **changes):
        self.settings = self.settings.replace(**changes)

    def set_adapters(self, adapters, force=False):
        self.adapters = list(adapters)
        self.forced = force

    def drain_events(self):
        events, self.events = self.events, []
        return events

    @property
    def stats(self):
        return SimpleNamespace(
            blocks=5, block_ms=self.settings.block_ms, compute_ms_last=12.0, compute_ms_p50=11.0,
            compute_ms_p95=14.0, overruns=1, input_xruns=0, output_xruns=0, underflows=2,
            algorithmic_latency_ms=self.settings.algorithmic_latency_ms, latency_ms=150.0,
            input_level_db=-20.0, output_level_db=-12.0, skipped_input=self.skipped, trimmed_output=2400,
            drift_ppm=-80.0, measured_latency_ms=self.measured, state=self.state, waiting_for="vsink",
            input_sr=48000, output_sr=48000, dropouts=3, dropout_ms=41.0, limiter_reduction_db=2.5,
            nonfinite_blocks=0,
        )

    skipped, measured, state = 0, float("nan"), "running"

    def measure_latency(self):
        self.measured = 163.0
        return LatencyMeasurement(163.0, 150.0, 1.5, 5, 30.0, True)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RVCLORA_HOME", str(tmp_path / "home"))
    return Home.from_env()


@pytest.fixture(scope="module")
def voice_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("gui_voices")
    voice = make_voice_file(d, version="v2", sr=40000, seed=0, name="Alto.pth")
    adapter = make_adapter_file(voice, d / "bright.safetensors", seed=3, targets="decoder")
    bad = d / "Broken.pth"
    bad.write_bytes(b"this is not a pytorch checkpoint at all" * 10)
    return SimpleNamespace(voice=voice, adapter=adapter, bad=bad)


@pytest.fixture
def fake_sources(monkeypatch, home):
    # Library voices would load HuBERT and the synthesizer; the stand-in engine needs neither,
    # but the panel checks that the content encoder is there before it starts a library voice.
    monkeypatch.setattr(engine_link, "load_voice", lambda spec: ("source", spec.name))
    home.hubert.parent.mkdir(parents=True, exist_ok=True)
    home.hubert.write_bytes(b"")
    home.rmvpe.write_bytes(b"")


def open_window(qtbot, home, factory=FakeEngine) -> MainWindow:
    window = MainWindow(home, link=EngineLink(factory))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.workers.busy == 0, timeout=15000)  # the device scan
    return window


def select(window: MainWindow, kind: str, name: str) -> None:
    assert window.voice_list.select(VoiceChoice(kind, name))
    assert window.voice == VoiceChoice(kind, name)


def wait_state(qtbot, window, state: str, timeout: int = 15000) -> None:
    qtbot.waitUntil(lambda: window.engine_state == state, timeout=timeout)


# --------------------------------------------------------------------------- voices and sliders


def test_pick_voice_and_slider_changes_engine_setting(qtbot, home, voice_files, fake_sources):
    VoiceLibrary(home).create(voice_files.voice, defaults=VoiceDefaults(pitch=12, index_rate=0.0, f0_method="pm",
                                                                        typical_f0=210.0))
    window = open_window(qtbot, home)
    names = [c.name for c in window.voice_list.choices()]
    assert "deep" in names and "Alto" in names  # built-ins and the library together

    select(window, "library", "Alto")
    assert window.pitch.value() == 12 and window.settings.pitch == 12  # the voice's saved defaults
    assert window.f0_method.currentData() == "pm"
    assert window.settings.voice_f0 == 210.0  # the voice's typical pitch, for automatic pitch
    window.start_engine()
    wait_state(qtbot, window, "running")
    engine = window.link.engine
    assert engine.source == ("source", "Alto") and engine.settings.pitch == 12
    assert "\u201cAlto\u201d on CPU fp32" in window.status_label.text()  # what runs

    window.pitch.slider.setValue(window.pitch.spec.position(-3))  # as a user's drag would
    window.block.slider.setValue(window.block.spec.position(120))
    window.gate.slider.setValue(window.gate.spec.position(-40))
    window.loudness.slider.setValue(window.loudness.spec.position(0.25))
    window.ceiling.slider.setValue(window.ceiling.spec.position(-6))
    window.passthrough.click()
    assert (engine.settings.pitch, engine.settings.block_ms, engine.settings.threshold_db) == (-3, 120, -40)
    assert engine.settings.rms_mix_rate == pytest.approx(0.75) and engine.settings.passthrough
    assert engine.settings.ceiling_db == -6
    assert "<b>160 ms</b>" in window.latency_label.text()  # block 120 + crossfade 30 + search 10
    # The readout follows the engine's stats.
    # The readout refreshes on the panel's poll timer: wait for one poll after the change.
    qtbot.waitUntil(lambda: "Overruns: 1" in window.overrun_label.text()
                    and "11.0 of 120 ms" in window.compute_label.text(), timeout=3000)
    assert "Glitches: 2" in window.overrun_label.text()
    assert window.chart.samples and window.in_meter.level_db == -20

    # The pitch is saved with the voice (voice.json), the block length with the panel.
    window.close()
    saved = json.loads((home.voices / "Alto" / "voice.json").read_text())
    assert saved["defaults"]["pitch"] == -3
    assert SettingsStore(home.settings_file).load().engine.block_ms == 120
    assert SettingsStore(home.settings_file).load().engine.ceiling_db == -6
    assert not engine.running  # closing the window stops the engine


def test_block_pulls_crossfade_down_and_latency_follows(qtbot, home):
    window = open_window(qtbot, home)
    window.block.slider.setValue(window.block.spec.position(20))
    assert window.settings.block_ms == 20 and window.settings.crossfade_ms == 20
    assert window.crossfade.value() == 20
    assert "<b>50 ms</b>" in window.latency_label.text()
    window.block.slider.setValue(window.block.spec.position(80))
    window.crossfade.slider.setValue(window.crossfade.spec.position(40))
    assert window.settings.crossfade_ms == 40 and "<b>130 ms</b>" in window.latency_label.text()


# --------------------------------------------------------------------------- real engine, real devices


@pytest.fixture
def talking(pulse):
    """Two null sinks on the test server: "gui_talk" with speech playing into it in a loop (its
    monitor is the panel's microphone) and "gui_out" for the panel's output. Sinks in the
    server's default format: capture through ALSA's pulse plugin from the harness's
    48 kHz float sink starves here (reported to the live-engine work)."""
    modules = [
        pulse.pactl("load-module", "module-null-sink", f"sink_name={name}", f"sink_properties=device.description={name}").strip()
        for name in ("gui_talk", "gui_out")
    ]
    loop = subprocess.Popen(["bash", "-c", 'while true; do paplay --device=gui_talk "$0" || sleep 0.1; done',
                             str(speech_path())], start_new_session=True)
    # A null sink's monitor delivers (almost) nothing while nothing plays into the sink:
    # wait until the speech is really playing before anyone records it.
    deadline = time.monotonic() + 10
    while "protocol-native" not in pulse.pactl("list", "short", "sink-inputs") and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield pulse
    finally:
        os.killpg(loop.pid, signal.SIGTERM)  # the loop and its current paplay, by PID
        loop.wait(5)
        for module in modules:
            pulse.pactl("unload-module", module)


def test_builtin_voice_runs_on_pulse_devices(qtbot, home, talking):
    window = open_window(qtbot, home, factory=None)  # the real engine
    select(window, "builtin", "deep")
    mic = next(d.name for d in window.devices.devices if d.pulse == "gui_talk.monitor")
    out = next(d.name for d in window.devices.devices if d.pulse == "gui_out")
    window.devices.input.setCurrentIndex(window.devices.input.findData(mic))
    window.devices.output.setCurrentIndex(window.devices.output.findData(out))
    assert "(virtual)" in window.devices.output.currentText()  # the null sink is marked

    engine = _start_until_blocks_flow(qtbot, window)
    window.pitch.slider.setValue(window.pitch.spec.position(4))
    window.formant.slider.setValue(window.formant.spec.position(-1.5))
    assert engine.settings.pitch == 4 and engine.settings.formant == -1.5
    # The speech arrives and the converted voice leaves: both meters move.
    qtbot.waitUntil(lambda: window.in_meter.level_db > -50 and window.out_meter.level_db > -50, timeout=5000)
    assert "Compute: \u2014" not in window.compute_label.text() and window.chart.samples
    # Still running (a loaded machine may have put a transient input warning in the status line).
    assert engine.running and window.start_button.text() == "Stop"
    assert not window.devices.refresh_button.isEnabled()  # no PortAudio rescan under open streams

    window.start_button.click()
    wait_state(qtbot, window, "stopped")
    assert window.link.engine is None and not engine.running
    assert WARN not in window.status_label.text()


def _start_until_blocks_flow(qtbot, window, tries: int = 3):
    """Start with the Start button until converted blocks flow.

    On a loaded two-core machine PortAudio's ALSA "pulse" capture thread can starve for
    more than 1.5 s at start, and the engine's watchdog then stops with "the input device
    stopped delivering audio". The panel must show that error and stay usable, which is
    checked here before trying again.
    """
    for _ in range(tries):
        window.start_button.click()
        wait_state(qtbot, window, "running")
        engine = window.link.engine
        qtbot.waitUntil(lambda engine=engine: engine.stats.blocks >= 5 or not engine.running, timeout=15000)
        if engine.running:
            return engine
        wait_state(qtbot, window, "stopped")
        assert WARN in window.status_label.text() and window.start_button.text() == "Start"
    pytest.fail("the engine never delivered blocks from the PulseAudio test devices")


# --------------------------------------------------------------------------- errors become messages


def test_corrupt_model_file_shows_error(qtbot, home, voice_files):
    window = open_window(qtbot, home)
    window.import_files([voice_files.bad])
    qtbot.waitUntil(lambda: WARN in window.status_label.text(), timeout=10000)
    assert "Broken.pth" in window.status_label.text()
    assert [c.name for c in window.voice_list.choices() if not c.is_builtin] == []  # nothing half-imported

    # A voice whose model got damaged after import: starting it reports why, the panel goes on.
    entry = VoiceLibrary(home).create(voice_files.voice, name="Damaged")
    entry.model_path.write_bytes(b"\x00garbage" * 64)
    home.hubert.parent.mkdir(parents=True, exist_ok=True)
    home.hubert.write_bytes(b"")
    home.rmvpe.write_bytes(b"")  # present, so loading reaches the voice model itself
    window.refresh_voices()
    select(window, "library", "Damaged")
    window.start_engine()
    qtbot.waitUntil(lambda: WARN in window.status_label.text() and window.engine_state == "stopped", timeout=10000)
    assert "Damaged" in window.status_label.text() or "voice" in window.status_label.text().lower()
    assert window.start_button.text() == "Start" and window.isVisible()


def test_engine_errors_become_status_messages(qtbot, home):
    window = open_window(qtbot, home, factory=lambda s, st, d: FakeEngine(s, st, d, fail="cannot open audio device 'USB mic'"))
    window.start_engine()
    qtbot.waitUntil(lambda: WARN in window.status_label.text(), timeout=5000)
    assert "USB mic" in window.status_label.text() and window.engine_state == "stopped"

    window.link._factory = FakeEngine
    window.start_engine()
    wait_state(qtbot, window, "running")
    engine = window.link.engine
    # The engine stops itself (a device vanished) and says why in an event.
    engine.events.append(SimpleNamespace(kind="error", message="the input device stopped delivering audio"))
    engine.running = False
    wait_state(qtbot, window, "stopped")
    assert "input device stopped" in window.status_label.text()


# --------------------------------------------------------------------------- library actions


def _drop(window: MainWindow, paths: list[Path]) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)


def test_import_drop_adapters_rename_remove(qtbot, home, voice_files, fake_sources, monkeypatch):
    window = open_window(qtbot, home)
    _drop(window, [voice_files.voice])  # drag and drop a model: a new voice, selected
    qtbot.waitUntil(lambda: window.voice == VoiceChoice("library", "Alto"), timeout=10000)
    _drop(window, [voice_files.adapter])  # an adapter joins the selected voice
    qtbot.waitUntil(lambda: len(window.adapters.rows) == 1, timeout=10000)
    assert "adapter" in window.status_label.text()

    window.start_engine()
    wait_state(qtbot, window, "running")
    engine = window.link.engine
    box, slider, value = window.adapters.rows[0]
    slider.setValue(round(0.5 / 0.05))
    slider.sliderReleased.emit()  # weights apply when the user lets go
    qtbot.waitUntil(lambda: engine.adapters is not None, timeout=5000)
    assert engine.adapters == [(str(home.voices / "Alto" / "bright.safetensors"), 0.5)] and value.text() == "50 %"
    box.setChecked(False)
    qtbot.waitUntil(lambda: engine.adapters == [], timeout=5000)
    window._flush_voice_save()
    slot = VoiceLibrary(home).get("Alto").adapters[0]
    assert (slot.weight, slot.enabled) == (0.5, False)  # saved with the voice

    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("Alto Bright", True))
    window.voice_list.rename_button.click()
    assert window.voice == VoiceChoice("library", "Alto Bright") and (home.voices / "Alto Bright").is_dir()

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Cancel)
    window.voice_list.remove_button.click()
    assert (home.voices / "Alto Bright").is_dir()  # Cancel keeps it
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.voice_list.remove_button.click()
    assert not (home.voices / "Alto Bright").exists()
    assert all(c.is_builtin for c in window.voice_list.choices())
    qtbot.waitUntil(lambda: window.engine_state == "stopped", timeout=5000)  # its engine was stopped first


def test_an_adapter_made_elsewhere_is_used_only_when_the_user_says_so(
    qtbot, home, voice_files, fake_sources, monkeypatch, tmp_path
):
    """An adapter without base_fingerprint (another tool's) cannot be checked against the
    voice: the panel asks; Cancel attaches nothing, Yes attaches it forced and the engine
    gets it with force."""
    foreign = make_foreign_adapter_file(voice_files.adapter, tmp_path / "elsewhere.safetensors")
    window = open_window(qtbot, home)
    _drop(window, [voice_files.voice])
    qtbot.waitUntil(lambda: window.voice == VoiceChoice("library", "Alto"), timeout=10000)
    asked = []

    def answer(reply):
        def question(*args, **kwargs):
            asked.append(args[2])
            return reply
        return question

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Cancel))
    _drop(window, [foreign])
    qtbot.waitUntil(lambda: WARN in window.status_label.text(), timeout=10000)
    assert "no base_fingerprint" in window.status_label.text() and len(asked) == 1
    assert VoiceLibrary(home).get("Alto").adapters == ()

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    _drop(window, [foreign])
    qtbot.waitUntil(lambda: len(window.adapters.rows) == 1, timeout=10000)
    assert len(asked) == 2 and "elsewhere.safetensors" in asked[1]
    slot = VoiceLibrary(home).get("Alto").adapters[0]
    assert slot.force and VoiceLibrary(home).get("Alto").needs_force
    window.start_engine()
    wait_state(qtbot, window, "running")
    box, slider, value = window.adapters.rows[0]
    slider.setValue(round(0.5 / 0.05))
    slider.sliderReleased.emit()
    qtbot.waitUntil(lambda: window.link.engine.adapters is not None, timeout=5000)
    assert window.link.engine.forced is True
    window.stop_engine()
    wait_state(qtbot, window, "stopped")


def test_readout_shows_lost_audio_drift_and_the_measured_delay(qtbot, home):
    """Skipped input, trimmed output, dropouts and the limiter are shown (not only counted);
    "Measure delay" runs the engine's own probe and its result stands beside the estimate; a lost
    device reads as waiting."""
    window = open_window(qtbot, home)
    select(window, "builtin", "deep")
    assert not window.transport.measure_button.isEnabled()  # nothing to measure while stopped
    window.start_engine()
    wait_state(qtbot, window, "running")
    engine = window.link.engine
    engine.skipped = 4800  # 100 ms at 48 kHz
    qtbot.waitUntil(lambda: "Skipped 100 ms" in window.transport.overrun_label.text(), timeout=5000)
    assert "Trimmed 50 ms" in window.transport.overrun_label.text()
    # dropouts with the silence they left, and the limiter's gain reduction
    assert "Dropouts 3 (41 ms)" in window.transport.overrun_label.text()
    assert "Limiter \u22122.5 dB" in window.transport.overrun_label.text()
    assert "-80 ppm" in window.transport.overrun_label.toolTip()
    assert "measured" not in window.transport.delay_label.text()
    qtbot.waitUntil(window.transport.measure_button.isEnabled, timeout=5000)
    window.transport.measure_button.click()
    qtbot.waitUntil(lambda: "measured 163" in window.transport.delay_label.text(), timeout=5000)
    assert "\u2248150 ms in all" in window.transport.delay_label.text()
    assert "measured 163.0 ms" in window.status_label.text() and WARN not in window.status_label.text()
    engine.state = "reconnecting"
    qtbot.waitUntil(lambda: window.transport.delay_label.text() == "Waiting for vsink\u2026", timeout=5000)
    assert not window.transport.measure_button.isEnabled()
    window.stop_engine()
    wait_state(qtbot, window, "stopped")


def test_a_voice_shows_the_content_encoder_it_needs(qtbot, home, tmp_path):
    """An Applio voice names its content encoder: the panel says which, and that it is missing."""
    VoiceLibrary(home).create(applio_voice(tmp_path / "Spinny.pth", embedder="spin"))
    window = open_window(qtbot, home)
    select(window, "library", "Spinny")
    qtbot.waitUntil(lambda: "Content encoder: spin (not installed" in window.voice_note.text(), timeout=10000)
    assert str(home.assets) in window.voice_note.text()


def test_extras_without_a_voice_say_what_to_do(qtbot, home, voice_files):
    window = open_window(qtbot, home)
    select(window, "builtin", "high")
    window.import_files([voice_files.adapter])
    assert WARN in window.status_label.text() and "select one of your voices" in window.status_label.text()


# --------------------------------------------------------------------------- memory and shortcuts


def test_remembers_voice_devices_and_settings(qtbot, home):
    window = open_window(qtbot, home)
    select(window, "builtin", "giant")
    window.pitch.slider.setValue(window.pitch.spec.position(2))
    window.crossfade.slider.setValue(window.crossfade.spec.position(20))
    window.denoise.slider.setValue(window.denoise.spec.position(0.8))
    window.autotune.slider.setValue(window.autotune.spec.position(0.5))
    assert window.settings.denoise_input and window.settings.denoise_strength == 0.8 and window.settings.autotune == 0.5
    window.close()

    state = SettingsStore(home.settings_file).load()
    assert state.voice == "builtin:giant" and state.tweak("giant").pitch == 2 and state.engine.crossfade_ms == 20
    assert state.engine.denoise_input and state.engine.denoise_strength == 0.8 and state.engine.autotune == 0.5
    # Other parts of rvclora may keep their own keys in settings.json: they survive.
    data = json.loads(home.settings_file.read_text())
    data["other"] = {"keep": True}
    data["panel"]["input_device"] = "Some USB mic"
    home.settings_file.write_text(json.dumps(data))

    again = open_window(qtbot, home)
    assert again.voice == VoiceChoice("builtin", "giant") and again.pitch.value() == 2
    assert again.settings.crossfade_ms == 20 and again.crossfade.value() == 20
    assert again.denoise.value() == 0.8 and again.autotune.value() == 0.5
    again.denoise.slider.setValue(0)  # leftmost: off
    assert not again.settings.denoise_input
    assert again.devices.choice().input == "Some USB mic"  # kept even while unplugged
    assert "not found" in again.devices.input.currentText()
    again.close()
    assert json.loads(home.settings_file.read_text())["other"] == {"keep": True}


def test_damaged_settings_file_still_opens(qtbot, home):
    home.ensure()
    home.settings_file.write_text("{not json")
    window = open_window(qtbot, home)
    assert WARN in window.status_label.text() and "default settings" in window.status_label.text()
    assert window.settings == EngineSettings() and window.voice is not None


def test_keyboard_shortcuts(qtbot, home):
    window = open_window(qtbot, home)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=3000)
    first = window.voice
    qtbot.keyClick(window.voice_list.list, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    choices = window.voice_list.choices()
    assert window.voice == choices[(choices.index(first) + 1) % len(choices)]
    qtbot.keyClick(window.voice_list.list, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert window.voice == first
    qtbot.keyClick(window.pitch.slider, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
    assert window.passthrough.isChecked() and window.settings.passthrough
    qtbot.keyClick(window.pitch.slider, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    wait_state(qtbot, window, "running")
    assert window.link.engine.settings.passthrough
    qtbot.keyClick(window.pitch.slider, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    wait_state(qtbot, window, "stopped")


# --------------------------------------------------------------------------- assets


def test_asset_download_runs_off_the_ui_thread_with_progress(qtbot, home, monkeypatch):

    calls = []

    def fake_download(wanted, h, *, progress=True, **kwargs):
        time.sleep(0.2)  # long enough that a frozen UI would be noticed
        for asset in assets.select_assets(wanted):
            path = asset.local_path(h)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
            calls.append(asset.name)
        return []

    monkeypatch.setattr(assets, "download_assets", fake_download)
    window = open_window(qtbot, home)
    assert window.asset_bar.isVisibleTo(window)
    window.asset_bar.button.click()
    assert window.asset_bar.progress.isVisibleTo(window)  # the click returned at once
    qtbot.waitUntil(lambda: not window.asset_bar.isVisibleTo(window), timeout=10000)
    assert calls == ["hubert_base", "rmvpe"] and "downloaded" in window.status_label.text()


def test_killed_engine_process_is_one_line_and_start_works_again(qtbot, home, talking):
    """The engine runs in its own process: killing it (as the OOM killer or a native crash
    would) leaves the panel up, says why in one line, and Start works again."""
    window = open_window(qtbot, home, factory=None)
    select(window, "builtin", "deep")
    mic = next(d.name for d in window.devices.devices if d.pulse == "gui_talk.monitor")
    out = next(d.name for d in window.devices.devices if d.pulse == "gui_out")
    window.devices.input.setCurrentIndex(window.devices.input.findData(mic))
    window.devices.output.setCurrentIndex(window.devices.output.findData(out))
    _start_until_blocks_flow(qtbot, window)
    pid = window.link.engine_pid
    assert pid is not None and pid != os.getpid()

    os.kill(pid, signal.SIGKILL)
    wait_state(qtbot, window, "stopped", timeout=10000)
    status = window.status_label.text()
    assert WARN in status and "killed by SIGKILL" in status and "\n" not in status
    assert window.start_button.text() == "Start" and window.isVisible()

    engine = _start_until_blocks_flow(qtbot, window)
    assert window.link.engine_pid not in (None, pid) and engine.running
    select(window, "builtin", "high")  # a voice change while running switches live, no restart
    qtbot.waitUntil(lambda: window.link.engine_pid is not None and "Voice: high" in window.status_label.text(), timeout=10000)
    assert window.engine_state == "running" and window.link.engine is engine
    window.start_button.click()
    wait_state(qtbot, window, "stopped")
