"""Global hotkeys: synthetic key presses (XTEST via xdotool, under Xvfb) while another window has the
focus reach the listener and change the running engine; bindings round-trip through the settings file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import numpy as np
import pytest
from Xlib import X
from Xlib import display as xdisplay

from rvclora.gui.hotkey_settings import (
    from_qt_text,
    load_hotkeys,
    save_hotkeys,
    to_qt_text,
)
from rvclora.gui.hotkeys import (
    GlobalHotkeys,
    HotkeyError,
    command_for,
    unavailable_reason,
)
from rvclora.library.presets import Preset, PresetStore
from rvclora.realtime.block_converter import BuiltinSource
from rvclora.realtime.engine import Engine
from rvclora.realtime.engine_control import MUTE_GAIN_DB, EngineControl


@pytest.fixture
def xvfb(monkeypatch):
    if shutil.which("Xvfb") is None or shutil.which("xdotool") is None:
        pytest.skip("needs Xvfb and xdotool (make setup-test installs them)")
    r, w = os.pipe()
    # -displayfd: Xvfb picks a free display itself, so parallel test runs never collide.
    server = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "640x480x24", "-nolisten", "tcp", "-noreset"],
                              pass_fds=(w,), stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as f:
        display = ":" + f.readline().strip()
    monkeypatch.setenv("DISPLAY", display)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("XDG_SESSION_TYPE", "x11")
    yield display
    server.terminate()
    server.wait(10)


def _focused_window(display: str):
    """Another app's window with the input focus; keep the returned connection open (closing it destroys the window)."""

    d = xdisplay.Display(display)
    screen = d.screen()
    win = screen.root.create_window(10, 10, 200, 100, 0, screen.root_depth, X.InputOutput, X.CopyFromParent,
                                    background_pixel=screen.white_pixel, event_mask=X.KeyPressMask)
    win.set_wm_name("another app")
    win.map()
    d.sync()
    time.sleep(0.2)
    win.set_input_focus(X.RevertToParent, X.CurrentTime)
    d.sync()
    return d, win.id


def _xdotool(*args: str) -> None:
    subprocess.run(["xdotool", *args], check=True, timeout=10)


def _wait(condition, what: str, engine: Engine) -> None:
    deadline = time.monotonic() + 10
    noise = (0.01 * np.random.default_rng(0).standard_normal(4800)).astype(np.float32)
    while not condition():
        assert time.monotonic() < deadline, f"the engine never saw: {what}"
        engine.pipeline.on_input(noise)
        engine.pump()
        time.sleep(0.05)


def test_hotkeys_reach_the_engine_while_another_window_has_focus(xvfb, tmp_path):
    conn, other = _focused_window(xvfb)
    focus = subprocess.run(["xdotool", "getwindowfocus"], capture_output=True, text=True, check=True)
    assert int(focus.stdout) == other
    store = PresetStore(tmp_path / "presets.json")
    store.save(Preset("Low", {"pitch": -7.0}))
    engine = Engine(BuiltinSource("passthrough"))
    engine.attach(48000, threaded=False)
    control = EngineControl(engine, store, load_voice=BuiltinSource, voice="passthrough")
    keys = GlobalHotkeys({"bypass": "<ctrl>+<alt>+b", "pitch_up": "<f9>", "push_to_talk": "<f10>",
                          "voice:deep": "<ctrl>+<alt>+d", "preset:Low": "<ctrl>+<shift>+l"}, control)
    proc = lambda: engine.pipeline.proc  # noqa: E731 - what the running chain uses now
    try:
        keys.start()
        _wait(lambda: proc().settings.output_gain_db == MUTE_GAIN_DB, "push-to-talk mutes until held", engine)
        _xdotool("keydown", "F10")
        _wait(lambda: proc().settings.output_gain_db == 0.0, "push-to-talk held", engine)
        _xdotool("keyup", "F10")
        _wait(lambda: proc().settings.output_gain_db == MUTE_GAIN_DB, "push-to-talk let go", engine)
        _xdotool("key", "ctrl+alt+b")
        _wait(lambda: proc().settings.passthrough, "bypass on", engine)
        _xdotool("key", "F9", "F9")
        _wait(lambda: proc().settings.pitch == 2.0, "pitch up twice", engine)
        _xdotool("key", "ctrl+alt+d")
        _wait(lambda: engine.source.name == "deep", "favourite voice", engine)
        _xdotool("key", "ctrl+shift+l")
        _wait(lambda: proc().settings.pitch == -7.0, "preset key", engine)
        assert keys.errors == []
        # The keys went to the other window all along: the panel never had the focus.
        focus = subprocess.run(["xdotool", "getwindowfocus"], capture_output=True, text=True, check=True)
        assert int(focus.stdout) == other
    finally:
        keys.stop()
        engine.stop()
        conn.close()


def test_bindings_round_trip_with_the_settings(tmp_path):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"panel": {"voice": "builtin:deep"}}))
    pressed = {"start_stop": "Ctrl+Alt+S", "push_to_mute": "F10", "voice:Alto": "Ctrl+1", "pitch_up": "Ctrl+PgUp"}
    bindings = {action: from_qt_text(text) for action, text in pressed.items()}
    assert bindings["start_stop"] == "<ctrl>+<alt>+s" and bindings["pitch_up"] == "<ctrl>+<page_up>"
    save_hotkeys(settings, bindings)
    loaded, problem = load_hotkeys(settings)
    assert problem is None and loaded == bindings
    assert {a: to_qt_text(s) for a, s in loaded.items()} == pressed
    assert json.loads(settings.read_text())["panel"] == {"voice": "builtin:deep"}  # the panel's key untouched
    with pytest.raises(HotkeyError, match="add a key"):
        from_qt_text("Ctrl+Alt")
    with pytest.raises(HotkeyError, match="unknown hotkey action"):
        save_hotkeys(settings, {"launch_rockets": "<f1>"})


def test_where_global_keys_cannot_work_one_line_says_what_does(monkeypatch):
    wayland = unavailable_reason({"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert "Wayland" in wayland and "rvclora ctl" in wayland and "\n" not in wayland
    assert "need an X display" in unavailable_reason({}, "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(HotkeyError, match="rvclora ctl"):
        GlobalHotkeys({"bypass": "<f9>"}, lambda c, a: "").start()
    with pytest.raises(HotkeyError, match="bound to both"):
        GlobalHotkeys({"bypass": "<f9>", "pitch_up": "<f9>"}, lambda c, a: "")


def test_hold_actions_send_on_press_and_release():
    assert command_for("push_to_talk", True) == ("mute", "off") and command_for("push_to_talk", False) == ("mute", "on")
    assert command_for("push_to_mute", True) == ("mute", "on") and command_for("push_to_mute", False) == ("mute", "off")
    assert command_for("bypass", False) is None and command_for("voice:Alto", True) == ("voice", "Alto")
