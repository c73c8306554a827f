"""The panel's streamer controls, offscreen: `rvclora ctl` drives the panel (and through it the engine),
presets saved and switched from the panel, the voice's default preset, hotkeys set by pressing the key."""

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any QApplication exists

import json
import threading

import numpy as np
import soundfile as sf
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog

from rvclora.gui.hotkey_editor import HotkeyDialog
from rvclora.gui.hotkey_settings import load_hotkeys
from rvclora.gui.preset_dialog import PresetChoice, PresetDialog
from rvclora.library.presets import Preset, PresetStore
from rvclora.realtime.control_server import send_command
from rvclora.realtime.engine import Engine
from tests.test_gui import home as home
from tests.test_gui import open_window, select, wait_state


def _ctl(qtbot, window, command: str, arg: str = "") -> tuple[bool, str]:
    """Send from another thread, as `rvclora ctl` would, while the panel's event loop runs."""
    answer: list = []
    t = threading.Thread(target=lambda: answer.append(send_command(command, arg, window.control.path)))
    t.start()
    qtbot.waitUntil(lambda: bool(answer), timeout=15000)
    t.join()
    return answer[0]


def test_ctl_drives_the_panel_and_its_engine(qtbot, home):
    PresetStore.for_home(home).save(Preset("Low", {"pitch": -6.0, "threshold_db": -35.0}))
    window = open_window(qtbot, home)
    assert os.stat(window.control.path).st_mode & 0o777 == 0o600
    select(window, "builtin", "passthrough")
    assert _ctl(qtbot, window, "start") == (True, "starting")
    wait_state(qtbot, window, "running")
    assert _ctl(qtbot, window, "voice", "deep") == (True, "voice deep")
    wait_state(qtbot, window, "running")
    assert window.voice.name == "deep"
    assert _ctl(qtbot, window, "pitch", "+2") == (True, "pitch +2")
    assert window.pitch.value() == 2 and window.link.engine.settings.pitch == 2  # the slider and the engine
    assert _ctl(qtbot, window, "bypass", "on") == (True, "bypass on")
    assert window.passthrough.isChecked() and window.link.engine.settings.passthrough
    assert _ctl(qtbot, window, "preset", "Low") == (True, "preset Low")
    engine = window.link.engine
    assert (engine.settings.pitch, engine.settings.threshold_db) == (-6.0, -35.0)
    assert (window.pitch.value(), window.gate.value()) == (-6.0, -35.0)
    assert _ctl(qtbot, window, "mute", "on") == (True, "mute on") and engine.settings.output_gain_db == -60.0
    assert _ctl(qtbot, window, "mute", "off") == (True, "mute off") and engine.settings.output_gain_db == 0.0
    ok, status = _ctl(qtbot, window, "status")
    assert ok and json.loads(status) == {"state": "running", "voice": "deep", "preset": "Low", "pitch": -6.0,
                                         "bypass": True, "mute": False}
    assert _ctl(qtbot, window, "voice", "Nobody")[0] is False
    assert _ctl(qtbot, window, "stop") == (True, "stopped")
    wait_state(qtbot, window, "stopped")


def test_presets_saved_in_the_panel_and_the_voice_default(qtbot, home, monkeypatch):
    window = open_window(qtbot, home)
    select(window, "builtin", "deep")
    window.pitch.set_value(4, emit=True)
    window.gate.set_value(-30, emit=True)
    monkeypatch.setattr(PresetDialog, "exec", lambda self: QDialog.DialogCode.Accepted)
    monkeypatch.setattr(PresetDialog, "choice", lambda self: PresetChoice("Bright", True, False, True))
    window.ask_save_preset()
    saved = PresetStore.for_home(home).get("Bright", "deep")
    assert saved.voice == "deep" and saved.values["pitch"] == 4 and saved.values["threshold_db"] == -30
    assert PresetStore.for_home(home).default_for("deep").name == "Bright"
    select(window, "builtin", "high")
    window.pitch.set_value(0, emit=True)
    window.gate.set_value(-60, emit=True)
    assert "Bright" not in window.preset_names()  # deep's own preset is not offered for another voice
    select(window, "builtin", "deep")  # its default preset comes with it
    assert (window.pitch.value(), window.gate.value()) == (4, -30)
    assert [a.data() for a in window.preset_menu.actions() if a.isChecked()] == ["Bright"]
    # Switched from the panel's Presets menu.
    PresetStore.for_home(home).save(Preset("Up", {"pitch": 7.0}))
    window.refresh_presets()
    next(a for a in window.preset_menu.actions() if a.data() == "Up").trigger()
    assert window.pitch.value() == 7 and window.settings.pitch == 7
    assert [a.data() for a in window.preset_menu.actions() if a.isChecked()] == ["Up"]


def test_hotkeys_are_set_by_pressing_the_key_and_saved(qtbot, home, monkeypatch):
    dialog = HotkeyDialog({}, ["deep"], [])
    qtbot.addWidget(dialog)
    edit = dialog.edits["bypass"]
    edit.setFocus()
    qtbot.keyClick(edit, Qt.Key.Key_B, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier)
    qtbot.keyClick(dialog.edits["voice:deep"], Qt.Key.Key_F8)
    qtbot.waitUntil(lambda: dialog.bindings() == {"bypass": "<ctrl>+<alt>+b", "voice:deep": "<f8>"}, timeout=5000)

    window = open_window(qtbot, home)
    monkeypatch.setattr(HotkeyDialog, "exec", lambda self: QDialog.DialogCode.Accepted)
    monkeypatch.setattr(HotkeyDialog, "bindings", lambda self: {"bypass": "<ctrl>+<alt>+b", "voice:deep": "<f8>"})
    monkeypatch.delenv("DISPLAY", raising=False)  # no X here: the panel says what works instead
    window.edit_hotkeys()
    assert "rvclora ctl" in window.status_label.text()
    assert load_hotkeys(home.settings_file) == ({"bypass": "<ctrl>+<alt>+b", "voice:deep": "<f8>"}, None)
    window.close()
    again = open_window(qtbot, home)
    assert again.hotkey_bindings == {"bypass": "<ctrl>+<alt>+b", "voice:deep": "<f8>"}
    assert json.loads(home.settings_file.read_text())["panel"]["voice"]  # the panel's own settings kept


class _FedEngine(Engine):
    """The real engine, fed clicks in real time by a thread instead of a microphone."""

    def start(self):
        pipe = self.attach(48000)
        self._feeding = threading.Event()
        clicks = np.zeros(48000, np.float32)
        for k in range(4):
            clicks[6000 + 12000 * k : 6000 + 12000 * k + 48] = 0.8 * np.hanning(48)

        def feed():
            k = 0
            while not self._feeding.wait(0.01):
                pipe.on_input(clicks[(k % 100) * 480 : (k % 100 + 1) * 480])
                self.wake()
                k += 1

        threading.Thread(target=feed, daemon=True).start()

    def stop(self):
        if hasattr(self, "_feeding"):
            self._feeding.set()
        super().stop()


def test_record_in_the_panel_writes_both_channels_lined_up(qtbot, home):
    window = open_window(qtbot, home, factory=lambda source, settings, devices: _FedEngine(source, settings))
    select(window, "builtin", "deep")
    window.start_engine()
    wait_state(qtbot, window, "running")
    window.record_action.trigger()
    qtbot.waitUntil(lambda: "recording to" in window.status_label.text(), timeout=15000)
    qtbot.wait(2500)
    window.record_action.trigger()
    qtbot.waitUntil(lambda: "recorded" in window.status_label.text(), timeout=15000)
    files = list((home.root / "recordings").glob("session-*.wav"))
    assert len(files) == 1
    y, sr = sf.read(files[0], dtype="float32")
    assert sr == 48000 and y.shape[1] == 2 and len(y) > sr
    heard, sent = np.abs(y[:, 0]), np.abs(y[:, 1])
    peaks = [i for i in range(1, len(y) - 1) if heard[i] > 0.5 and heard[i] >= heard[i - 1] and heard[i] >= heard[i + 1]]
    assert len(peaks) >= 4
    for p in peaks:
        w = slice(max(0, p - 480), p + 480)
        assert abs(int(np.argmax(sent[w])) - int(np.argmax(heard[w]))) <= 48  # within 1 ms
    # Stopping the engine ends a recording with it, and the menu follows.
    window.record_action.trigger()
    qtbot.waitUntil(lambda: "recording to" in window.status_label.text(), timeout=15000)
    qtbot.wait(1000)  # some blocks into the file (a recording with no audio writes none)
    window.stop_engine()
    wait_state(qtbot, window, "stopped")
    qtbot.waitUntil(lambda: not window.record_action.isChecked(), timeout=5000)
    assert len(list((home.root / "recordings").glob("session-*.wav"))) == 2
