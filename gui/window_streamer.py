"""The window's streamer side: presets, recording, global hotkeys and `rvclora ctl`.

A mixin of `MainWindow`. Hotkeys and the control socket arrive on their own threads;
`_Bridge` carries each command to the UI thread, where `panel_command` carries it out
through the same widgets the user would touch (so the sliders, the voice list and the
saved settings follow), and the socket's thread waits for the one-line answer.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog

from ..library.presets import Preset, PresetError, PresetStore
from ..realtime.control_server import CLIENT_TIMEOUT_S, ControlError, ControlServer
from ..realtime.engine_control import MUTE_GAIN_DB, parse_pitch, parse_switch
from ..realtime.presets import PRESET_FIELDS, preset_from_settings, settings_with_preset
from ..realtime.settings import SettingsError
from ..realtime.streams import EngineDevices
from .hotkey_editor import HotkeyDialog
from .hotkey_settings import load_hotkeys, save_hotkeys
from .hotkeys import GlobalHotkeys, HotkeyError, unavailable_reason
from .panel_model import EngineState
from .preset_dialog import PresetDialog
from .voice_choice import VoiceChoice
from .voice_list import display_name

# Preset fields the panel shows on its own sliders: set through them so the sliders follow.
SHOWN = ("pitch", "formant", "index_rate", "f0_method", "threshold_db", "rms_mix_rate", "block_ms", "crossfade_ms")


class _Bridge(QObject):
    call = Signal(object)  # (command, arg, Future | None)


class StreamerActions:
    # ------------------------------------------------------------------ setup

    def _setup_streamer(self) -> None:
        self.presets = PresetStore.for_home(self.home)
        self._unmuted_db: float | None = None
        self._preset_name = ""
        self._bridge = _Bridge(self)
        self._bridge.call.connect(self._run_bridged, Qt.ConnectionType.QueuedConnection)
        # In the menus, not a new row: the panel still fits beside Discord on a small screen.
        self.record_action = QAction("&Record session", self)
        self.record_action.setCheckable(True)
        self.record_action.setShortcut(QKeySequence("Ctrl+R"))
        self.record_action.setToolTip("Record your voice and the converted voice, lined up, as the two channels "
                                      "of one file in the recordings folder, to check what others heard.")
        self.record_action.toggled.connect(self._record_toggled)
        audio = next(a.menu() for a in self.menuBar().actions() if a.text() == "&Audio")
        audio.addSeparator()
        audio.addAction(self.record_action)
        self.addAction(self.record_action)
        self.preset_menu = self.menuBar().addMenu("Pre&sets")
        self.voice_list.voice_selected.connect(self._voice_default_preset)  # after `select_voice`
        self._record_timer = QTimer(self, interval=500, timeout=self._check_recording)
        self._record_timer.start()
        self.refresh_presets()
        self.hotkeys: GlobalHotkeys | None = None
        self.hotkey_bindings, problem = load_hotkeys(self.home.settings_file)
        if problem:
            self.show_error(problem)
        self._start_hotkeys()
        self.control: ControlServer | None = None
        try:
            self.control = ControlServer(self._from_outside).start()
        except ControlError as e:
            self.show_message(f"`rvclora ctl` cannot reach this panel: {e}")

    def _close_streamer(self) -> None:
        if self.hotkeys is not None:
            self.hotkeys.stop()
        if self.control is not None:
            self.control.close()
        if self.record_action.isChecked():
            self._show_record_result(self.link.record(None))

    # ------------------------------------------------------------------ commands from outside

    def _from_outside(self, command: str, arg: str) -> str:
        """The control socket's thread: run on the UI thread, wait for the answer."""
        future: Future = Future()
        self._bridge.call.emit((command, arg, future))
        try:
            return future.result(timeout=CLIENT_TIMEOUT_S)
        except FutureTimeout:
            raise RuntimeError("the panel is busy; try again") from None

    def _from_hotkey(self, command: str, arg: str) -> None:
        self._bridge.call.emit((command, arg, None))

    def _run_bridged(self, item: tuple[str, str, Future | None]) -> None:
        command, arg, future = item
        try:
            result = self.panel_command(command, arg)
        except (ValueError, OSError, RuntimeError) as e:
            if future is None:
                self.show_error(str(e).splitlines()[0] if str(e) else type(e).__name__)
            else:
                future.set_exception(e)
            return
        if future is not None:
            future.set_result(result)

    def panel_command(self, command: str, arg: str = "") -> str:
        """One control command (as `rvclora ctl` and the hotkeys send them), on the UI thread."""
        if command == "start":
            if self._engine_state == EngineState.STOPPED:
                self.start_engine()
            return "starting" if self._engine_state.active else "not started (see the panel)"
        if command == "stop":
            if self._engine_state.active:
                self.stop_engine()
            return "stopped"
        if command == "toggle":
            self.toggle_engine()
            return "starting" if self._engine_state == EngineState.STARTING else "stopped"
        if command == "voice":
            choice = self._step_choice(arg) if arg.strip() in ("+1", "-1") else self._choice_named(arg)
            self.voice_list.select(choice)
            return f"voice {choice.name}"
        if command == "preset":
            return self.apply_preset(self.presets.find(arg.strip(), self.voice.name if self.voice else None))
        if command == "pitch":
            self.pitch.set_value(parse_pitch(arg, self.settings.pitch), emit=True)
            return f"pitch {self.settings.pitch:+g}"
        if command == "bypass":
            self.passthrough.setChecked(parse_switch("bypass", arg, self.passthrough.isChecked()))
            return f"bypass {'on' if self.passthrough.isChecked() else 'off'}"
        if command == "mute":
            return self._mute(parse_switch("mute", arg, self._unmuted_db is not None))
        if command == "status":
            return json.dumps({"state": str(self._engine_state.value), "voice": self.voice.name if self.voice else "",
                               "preset": self._preset_name, "pitch": self.settings.pitch,
                               "bypass": self.settings.passthrough, "mute": self._unmuted_db is not None})
        raise ValueError(f"unknown command {command!r}")

    def _choice_named(self, name: str) -> VoiceChoice:
        name = name.strip()
        choices = self.voice_list.choices()
        for choice in choices:
            if name in (choice.name, choice.key) or name.lower() == display_name(choice).lower():
                return choice
        raise ValueError(f"no voice named {name!r}; voices: {', '.join(c.name for c in choices)}")

    def _step_choice(self, arg: str) -> VoiceChoice:
        choices = self.voice_list.choices()
        if not choices:
            raise ValueError("no voices to switch between")
        i = choices.index(self.voice) if self.voice in choices else -1
        return choices[(i + int(arg)) % len(choices)]

    def _mute(self, on: bool) -> str:
        if on and self._unmuted_db is None:
            self._unmuted_db = self.settings.output_gain_db
            self._set_setting(save=False, output_gain_db=MUTE_GAIN_DB)
        elif not on and self._unmuted_db is not None:
            self._set_setting(save=False, output_gain_db=self._unmuted_db)
            self._unmuted_db = None
        return f"mute {'on' if on else 'off'}"

    # ------------------------------------------------------------------ presets

    def refresh_presets(self) -> None:
        """The Presets menu: the presets offered with this voice (the current one ticked), then save and hotkeys."""
        menu = self.preset_menu
        menu.clear()
        try:
            offered = self.presets.for_voice(self.voice.name if self.voice else None)
        except PresetError as e:
            offered = []
            self.show_error(str(e))
        for preset in offered:
            act = menu.addAction(preset.name + (" (this voice)" if preset.voice else ""))
            act.setCheckable(True)
            act.setChecked(preset.name == self._preset_name)
            act.setData(preset.name)
            act.triggered.connect(lambda _checked=False, name=preset.name: self._preset_picked(name))
        if not offered:
            menu.addAction("No presets yet").setEnabled(False)
        menu.addSeparator()
        menu.addAction("&Save preset\u2026", self.ask_save_preset)
        menu.addAction("&Hotkeys\u2026", self.edit_hotkeys)

    def preset_names(self) -> list[str]:
        """The presets the menu offers now (for scripts and tests)."""
        return [a.data() for a in self.preset_menu.actions() if a.data()]

    def _preset_picked(self, name: str) -> None:
        if name:
            try:
                self.show_message(self.panel_command("preset", name))
            except (ValueError, RuntimeError) as e:
                self.show_error(str(e))

    def apply_preset(self, preset: Preset) -> str:
        """Switch to `preset`: its voice when it has one, its values through the panel's own controls."""
        if preset.voice is not None and (self.voice is None or self.voice.name != preset.voice):
            self.voice_list.select(self._choice_named(preset.voice))
        new, skipped = settings_with_preset(self.settings, preset)  # refuses a bad value before anything moves
        values = preset.values
        for name, slider in (("pitch", self.pitch), ("formant", self.formant), ("index_rate", self.index_rate),
                             ("threshold_db", self.gate), ("block_ms", self.block)):
            if name in values:
                slider.set_value(getattr(new, name), emit=True)
        if "rms_mix_rate" in values:
            self.loudness.set_value(1.0 - new.rms_mix_rate, emit=True)
        if "crossfade_ms" in values:
            self.crossfade.set_value(new.crossfade_ms, emit=True)
        if "f0_method" in values:
            self.f0_method.setCurrentIndex(max(0, self.f0_method.findData(new.f0_method)))
        rest = {k: getattr(new, k) for k in values if k in PRESET_FIELDS and k not in SHOWN}
        if rest and not self._set_setting(**rest):
            raise SettingsError(f"preset {preset.name}: not all of it could be applied")
        if preset.devices:
            self.devices.set_devices(self.devices.devices, replace(self.devices.choice(), **preset.devices))
            self._devices_changed(self.devices.choice())
        self._preset_name = preset.name
        self.refresh_presets()
        return f"preset {preset.name}" + (f" (not known here: {', '.join(skipped)})" if skipped else "")

    def _voice_default_preset(self, choice: VoiceChoice) -> None:
        self._preset_name = ""
        try:
            preset = self.presets.default_for(choice.name)
            if preset is not None:
                self.apply_preset(preset)
        except (PresetError, SettingsError, ValueError) as e:
            self.show_error(f"default preset of {choice.name}: {e}")
        self.refresh_presets()

    def ask_save_preset(self) -> None:
        voice = self.voice.name if self.voice else None
        dialog = PresetDialog(voice, self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        c = dialog.choice()
        try:
            chosen = self.devices.choice()
            devices = EngineDevices(chosen.input, chosen.output, chosen.monitor) if c.with_devices else None
            preset = preset_from_settings(c.name, replace(self.settings, output_gain_db=self._unmuted_db)
                                          if self._unmuted_db is not None else self.settings,
                                          voice=voice if c.for_voice else None, devices=devices)
            self.presets.save(preset)
            if c.default and voice:
                self.presets.set_default(voice, c.name)
        except (PresetError, OSError) as e:
            self.show_error(f"preset not saved: {e}")
            return
        self._preset_name = c.name
        self.refresh_presets()
        self.show_message(f"saved preset {c.name}")

    # ------------------------------------------------------------------ recording

    def _record_toggled(self, on: bool) -> None:
        if on:
            folder = self.home.root / "recordings"
            folder.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("session-%Y%m%d-%H%M%S")
            path = folder / f"{stamp}.wav"
            n = 2
            while path.exists():  # two takes within a second: never overwrite the first
                path, n = folder / f"{stamp}-{n}.wav", n + 1
            self.workers.submit(self.link.record, str(path), on_done=self.show_message, on_failed=self._record_failed)
        else:
            self.workers.submit(self.link.record, None, on_done=self._show_record_result, on_failed=self._record_failed)

    def _record_failed(self, message: str) -> None:
        self._set_record_button(False)
        self.show_error(f"recording: {message}")

    def _show_record_result(self, message: Any) -> None:
        self.show_message(str(message))

    def _check_recording(self) -> None:
        # Stopping the engine ends its recording (the file is complete): the button follows.
        if self.record_action.isChecked() and self._engine_state == EngineState.STOPPED:
            self._set_record_button(False)
            self.show_message("recording ended with the engine; it is in the recordings folder")

    def _set_record_button(self, on: bool) -> None:
        blocked = self.record_action.blockSignals(True)
        self.record_action.setChecked(on)
        self.record_action.blockSignals(blocked)

    # ------------------------------------------------------------------ hotkeys

    def edit_hotkeys(self) -> None:
        voices = [c.name for c in self.voice_list.choices()]
        presets = sorted({p.name for p in self.presets.all()})
        dialog = HotkeyDialog(self.hotkey_bindings, voices, presets, note=unavailable_reason(), parent=self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        self.hotkey_bindings = dialog.bindings()
        try:
            save_hotkeys(self.home.settings_file, self.hotkey_bindings)
        except (HotkeyError, OSError) as e:
            self.show_error(f"hotkeys not saved: {e}")
        self._start_hotkeys()

    def _start_hotkeys(self) -> None:
        if self.hotkeys is not None:
            self.hotkeys.stop()
            self.hotkeys = None
        if not self.hotkey_bindings:
            return
        try:
            self.hotkeys = GlobalHotkeys(self.hotkey_bindings, self._from_hotkey).start()
        except HotkeyError as e:
            self.show_message(str(e))

