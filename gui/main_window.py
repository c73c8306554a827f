"""The panel's window: lays out the voice list, sliders, devices and readouts, and wires them.

The window holds the state (current voice, engine settings, devices); what it does
lives in its parts: `window_voices`, `window_engine`, `window_library` and
`window_devices` (the window's mixins), with the decisions that need no Qt in
`panel_model`, `overload`, `asset_jobs` and `library_jobs`. Anything slow runs on
`Workers`, and every failure ends as one line in the status bar: the panel keeps running.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QLabel,
    QMainWindow,
    QProgressBar,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..library.home import Home
from ..library.voice_library import VoiceEntry, VoiceLibrary
from ..realtime.settings import F0_METHODS, EngineSettings, SettingsError
from . import engine_link
from .adapter_panel import AdapterPanel
from .asset_bar import AssetBar
from .device_picker import DevicePicker
from .engine_link import EngineLink
from .overload import OverloadWatch
from .panel_model import SETTINGS, EngineState, Status, StatusLine
from .settings_store import PanelState, SettingsStore
from .sliders import (
    AUTOTUNE,
    BLOCK,
    CEILING,
    CROSSFADE,
    DENOISE,
    FORMANT,
    INDEX_RATE,
    LOUDNESS,
    NOISE_GATE,
    PITCH,
    SettingSlider,
    SliderGrid,
)
from .transport_bar import DELAY_TIP, TransportBar
from .voice_choice import VoiceChoice
from .voice_list import VoiceList
from .window_devices import AssetActions, DeviceActions
from .window_engine import EngineActions
from .window_library import LibraryActions
from .window_streamer import StreamerActions
from .window_training import TrainingActions
from .window_voices import VoiceActions
from .workers import Workers, one_line

STATS_INTERVAL_MS = 100  # 10 readout updates a second: meters look live, the UI thread stays idle
SAVE_DELAY_MS = 500  # settings are written once a slider comes to rest, not for every step
DEFAULT_SIZE = (1140, 640)
# Qt's minimum size does not count the height that wrapped text needs at the narrowest width;
# this floor keeps every row readable there and still fits a 1366x768 laptop screen.
MIN_HEIGHT = 540
# Qt adds " — <application display name>" to a title that does not already end in it.
TITLE = "Voice changer \u2014 rvclora"
WARN = "\u26a0"  # drawn before error messages in the status line

F0_LABELS = {  # short: the combo must fit a narrow window; the tooltip says more
    "auto": "Automatic",
    "rmvpe": "RMVPE (best)",
    "pm": "Praat (light)",
    "fcpe": "FCPE (fast)",
}


class MainWindow(VoiceActions, EngineActions, LibraryActions, DeviceActions, AssetActions, StreamerActions, TrainingActions,
                 QMainWindow):
    def __init__(self, home: Home | None = None, *, link: EngineLink | None = None) -> None:
        super().__init__()
        self.home = (home or Home.from_env()).ensure()
        self.library = VoiceLibrary(self.home)
        self.store = SettingsStore(self.home.settings_file)
        self.state: PanelState = self.store.load()
        # Nothing saved yet: a first run, when the panel may pick a virtual output for the user.
        self._first_run = self.state == PanelState() and not self.home.settings_file.exists()
        self.link = link or EngineLink()
        self.workers = Workers(self)
        self.voice: VoiceChoice | None = None
        self.entry: VoiceEntry | None = None  # the library entry of `voice`, None for built-ins
        self.settings: EngineSettings = self.state.engine
        self.status = StatusLine()
        self.overload = OverloadWatch(maximum_block_ms=int(BLOCK.maximum))
        self._engine_state = EngineState.STOPPED
        self._restart_pending = False
        self._listing_devices = False  # PortAudio is re-initialised while listing: no stream may open then
        self._start_after_listing = False
        self._download_cancel = None  # a threading.Event while a download runs
        self._builtins: list[tuple[str, str]] = []
        # The crossfade the user chose: a short block clamps it, a longer block gives it back.
        self._wanted_crossfade = self.settings.crossfade_ms

        self.setWindowTitle(TITLE)
        self.setAcceptDrops(True)
        self._build()
        self._build_menus()
        self._connect()

        self._save_timer = QTimer(self, singleShot=True, interval=SAVE_DELAY_MS, timeout=self._save_now)
        self._voice_save_timer = QTimer(self, singleShot=True, interval=SAVE_DELAY_MS, timeout=self._save_voice_now)
        self._stats_timer = QTimer(self, interval=STATS_INTERVAL_MS, timeout=self._poll_engine)
        self._stats_timer.start()

        self._restore_geometry()
        self._apply_global_settings()
        self.refresh_voices()
        self._select_initial_voice()
        self.refresh_devices(quiet=True)
        self._check_assets()
        self._setup_streamer()  # presets, recording, hotkeys, `rvclora ctl`
        if self.store.problem:
            self.show_error(self.store.problem)
        self.reattach_training()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        # Left: voices. Middle: the voice's own settings and adapters. Right: devices and timing.
        self.voice_list = VoiceList()
        self.asset_bar = AssetBar()
        left = _column(_group("Voices", self.voice_list), self.asset_bar, stretch_first=True)

        self.pitch = SettingSlider(PITCH)
        self.formant = SettingSlider(FORMANT)
        self.index_rate = SettingSlider(INDEX_RATE)
        self.f0_method = QComboBox()
        for method in F0_METHODS:
            self.f0_method.addItem(F0_LABELS.get(method, method), method)
        self.f0_method.setToolTip(
            "How your pitch is followed. RMVPE is the most accurate (needs the downloaded rmvpe.pt); "
            "Praat uses the least CPU. Automatic uses RMVPE when rmvpe.pt is there, else Praat. Saved with the voice."
        )
        self.f0_label = QLabel("Pitch tracker")
        self.f0_label.setToolTip(self.f0_method.toolTip())
        self.f0_label.setBuddy(self.f0_method)
        self.voice_grid = SliderGrid([self.pitch, self.formant, self.index_rate])
        self.voice_grid.add_row(self.f0_label, self.f0_method)
        self.voice_note = QLabel()
        self.voice_note.setWordWrap(True)
        self.voice_note.setEnabled(False)
        self.voice_group = _group("Voice", _column(self.voice_grid, self.voice_note))
        self.adapters = AdapterPanel()
        self.adapters_group = _group("Adapters (LoRA)", self.adapters)
        middle = _column(self.voice_group, self.adapters_group)

        self.devices = DevicePicker(virtual_mic=engine_link.virtual_mic_supported())
        self.gate = SettingSlider(NOISE_GATE)
        self.loudness = SettingSlider(LOUDNESS)
        self.denoise = SettingSlider(DENOISE)
        self.autotune = SettingSlider(AUTOTUNE)
        self.ceiling = SettingSlider(CEILING)
        self.block = SettingSlider(BLOCK)
        self.crossfade = SettingSlider(CROSSFADE)
        self.latency_label = QLabel()
        self.latency_label.setWordWrap(True)
        self.latency_label.setToolTip(DELAY_TIP)
        sound = _column(SliderGrid([self.gate, self.denoise, self.loudness, self.ceiling, self.autotune, self.block, self.crossfade]), self.latency_label)
        right = _column(_group("Audio devices", self.devices), _group("Sound and delay", sound))

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setChildrenCollapsible(False)
        for widget, stretch in ((left, 0), (middle, 1), (right, 1)):
            splitter.addWidget(widget)
            splitter.setStretchFactor(splitter.count() - 1, stretch)
        splitter.setSizes([250, 380, 490])

        self.transport = TransportBar()
        t = self.transport
        self.start_button, self.passthrough, self.chart = t.start_button, t.passthrough, t.chart
        self.in_meter, self.out_meter = t.in_meter, t.out_meter
        self.compute_label, self.overrun_label, self.delay_label = t.compute_label, t.overrun_label, t.delay_label
        self.setCentralWidget(_column(self.transport, splitter, stretch_last=True, margins=True))

        self.status_label = QLabel()
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # "working" without a known length
        self.busy.setMaximumWidth(120)
        self.busy.setVisible(False)
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.busy)
        self._show_stats(None)
        self.setMinimumHeight(MIN_HEIGHT)
        self.resize(*DEFAULT_SIZE)

    def _build_menus(self) -> None:
        def action(menu, text: str, slot, shortcut: str | None = None) -> QAction:
            act = QAction(text, self)
            if shortcut:
                act.setShortcut(QKeySequence(shortcut))
                # Window-wide: the shortcut works whichever slider or list has the focus.
                act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            act.triggered.connect(lambda _checked=False: slot())
            menu.addAction(act)
            self.addAction(act)
            return act

        file_menu = self.menuBar().addMenu("&File")
        action(file_menu, "&Import voice, index or adapter\u2026", self.ask_import, "Ctrl+O")
        self.download_action = action(file_menu, "&Download shared models", self.download_assets)
        action(file_menu, "&Train a voice\u2026", self.open_training)
        file_menu.addSeparator()
        action(file_menu, "&Quit", self.close, "Ctrl+Q")
        voice_menu = self.menuBar().addMenu("&Voice")
        action(voice_menu, "&Next voice", lambda: self.voice_list.step(1), "Ctrl+Down")
        action(voice_menu, "&Previous voice", lambda: self.voice_list.step(-1), "Ctrl+Up")
        voice_menu.addSeparator()
        action(voice_menu, "&Rename\u2026", self._rename_current)
        action(voice_menu, "Re&move\u2026", self._remove_current)
        audio_menu = self.menuBar().addMenu("&Audio")
        self.start_action = action(audio_menu, "&Start / stop", self.toggle_engine, "Ctrl+Return")
        self.passthrough_action = action(audio_menu, "&Passthrough", self.passthrough.toggle, "Ctrl+P")
        audio_menu.addSeparator()
        action(audio_menu, "&Refresh devices", self.refresh_devices, "F5")
        if engine_link.virtual_mic_supported():
            action(audio_menu, "Create &virtual microphone", self.create_virtual_mic)

    def _connect(self) -> None:
        self.voice_list.voice_selected.connect(self.select_voice)
        self.voice_list.import_requested.connect(self.ask_import)
        self.voice_list.rename_requested.connect(self.rename_voice)
        self.voice_list.remove_requested.connect(self.remove_voice)
        self.pitch.changed.connect(lambda v: self._voice_setting("pitch", v))
        self.formant.changed.connect(lambda v: self._voice_setting("formant", v))
        self.index_rate.changed.connect(lambda v: self._voice_setting("index_rate", v))
        self.f0_method.currentIndexChanged.connect(lambda _i: self._voice_setting("f0_method", self.f0_method.currentData()))
        self.gate.changed.connect(lambda v: self._set_setting(threshold_db=v))
        self.loudness.changed.connect(lambda v: self._set_setting(rms_mix_rate=round(1.0 - v, 6)))
        self.denoise.changed.connect(lambda v: self._set_setting(denoise_input=v > 0, denoise_strength=v or 1.0))
        self.autotune.changed.connect(lambda v: self._set_setting(autotune=v))
        self.ceiling.changed.connect(lambda v: self._set_setting(ceiling_db=v))
        self.block.changed.connect(self._block_changed)
        self.crossfade.changed.connect(self._crossfade_changed)
        self.passthrough.toggled.connect(lambda on: self._set_setting(passthrough=on, save=False))
        self.adapters.adapters_changed.connect(self._adapters_changed)
        self.devices.devices_changed.connect(self._devices_changed)
        self.devices.refresh_requested.connect(lambda: self.refresh_devices())
        self.devices.create_virtual_mic_requested.connect(self.create_virtual_mic)
        self.start_button.clicked.connect(self.toggle_engine)
        self.transport.apply_block_requested.connect(self.apply_suggested_block)
        self.transport.measure_requested.connect(self.measure_delay)
        self.asset_bar.download_requested.connect(self.download_assets)
        self.asset_bar.cancel_requested.connect(self.cancel_download)
        self.workers.busy_changed.connect(lambda n: self.busy.setVisible(n > 0))

    # ------------------------------------------------------------------ status line

    def show_message(self, text: str, *, topic: str | None = None) -> None:
        self._show_status(self.status.show(text, "info", topic))

    def show_error(self, text: str, *, topic: str | None = None) -> None:
        # The status line is the one place errors go: visible, selectable, and the app goes on.
        self._show_status(self.status.show(text, "error", topic))

    def status_clear(self, *topics: str) -> None:
        if self.status.clear(*topics):
            self._show_status(self.status.current)

    def _show_status(self, status: Status) -> None:
        # errors carry the warning sign; the model holds only their kind
        text = f"{WARN} {status.text}" if status.kind == "error" and status.text else status.text
        self.status_label.setText(text)
        self.status_label.setToolTip(text)

    # ------------------------------------------------------------------ settings

    def _apply_global_settings(self) -> None:
        s = self.settings
        self.gate.set_value(s.threshold_db)
        self.loudness.set_value(1.0 - s.rms_mix_rate)
        self.denoise.set_value(s.denoise_strength if s.denoise_input else 0.0)
        self.autotune.set_value(s.autotune)
        self.ceiling.set_value(s.ceiling_db)
        self.block.set_value(s.block_ms)
        self.crossfade.set_maximum_value(min(CROSSFADE.maximum, s.block_ms))
        self.crossfade.set_value(s.crossfade_ms)
        self._show_latency()

    def _block_changed(self, value: float) -> None:
        block = int(value)
        # The crossfade can never be longer than the block: a short block pulls it down, a longer
        # one gives back what the user chose. One change to the engine for both.
        crossfade = int(min(self._wanted_crossfade, block, CROSSFADE.maximum))
        blocked = self.crossfade.slider.blockSignals(True)
        self.crossfade.set_maximum_value(min(CROSSFADE.maximum, block))
        self.crossfade.set_value(crossfade)
        self.crossfade.slider.blockSignals(blocked)
        self.overload.reset()  # a new block length: judge it afresh
        self._show_overload()
        self._set_setting(block_ms=block, crossfade_ms=crossfade)

    def _crossfade_changed(self, value: float) -> None:
        self._wanted_crossfade = int(value)
        self._set_setting(crossfade_ms=int(value))

    def _set_setting(self, save: bool = True, **changes: object) -> bool:
        """Validate, keep, and send live to the engine. Returns False (and says why) on a bad value."""
        try:
            new = self.settings.replace(**changes)
        except SettingsError as e:
            self.show_error(str(e), topic=SETTINGS)
            return False
        self.status_clear(SETTINGS)
        changed = {k: v for k, v in changes.items() if getattr(self.settings, k) != getattr(new, k)}
        self.settings = new
        self._show_latency()
        if changed and self._engine_state == EngineState.RUNNING:
            try:
                self.link.update(**changed)
            except Exception as e:  # noqa: BLE001 - a refused change is a message, not a crash
                self.show_error(one_line(e), topic=SETTINGS)
        if save:
            self.state = replace(self.state, engine=self.settings)
            self._schedule_save()
        return True

    def _show_latency(self, measured_ms: float | None = None) -> None:
        s = self.settings
        if self.overload.current is not None:
            self.latency_label.setText(
                f"Delay from conversion: <b>not achievable</b> at {s.block_ms} ms blocks: "
                "the voice falls behind (see the notice above)"
            )
        elif measured_ms is not None:
            # The running engine knows best (built-in voices skip the crossfade but add look-ahead).
            self.latency_label.setText(f"Delay from conversion: <b>{measured_ms:.0f} ms</b> (as the running voice reports it)")
        else:
            self.latency_label.setText(
                f"Delay from conversion: <b>{s.algorithmic_latency_ms} ms</b> "
                f"(block {s.block_ms} + crossfade {s.crossfade_ms} + search {s.search_ms} ms)"
            )

    def _schedule_save(self) -> None:
        self._save_timer.start()

    def _save_now(self) -> None:
        try:
            self.store.save(self.state)
        except OSError as e:
            self.show_error(f"could not save settings: {one_line(e)}")

    def _restore_geometry(self) -> None:
        if self.state.geometry:
            self.restoreGeometry(QByteArray.fromBase64(self.state.geometry.encode("ascii")))

    # ------------------------------------------------------------------ closing

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        self._stats_timer.stop()
        if self._download_cancel is not None:
            self._download_cancel.set()  # a running download stops within a chunk
        self._flush_voice_save()
        self.state = replace(self.state, geometry=bytes(self.saveGeometry().toBase64()).decode("ascii"))
        self._save_timer.stop()
        self._save_now()
        # Blocking here is fine: the window is going away, and streams must close cleanly.
        self.workers.wait(10_000)
        self._close_streamer()
        with contextlib.suppress(Exception):  # the window is closing: nothing left to tell the user
            self.link.close()  # also ends the engine process
        super().closeEvent(event)


def _group(title: str, content: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    layout.addWidget(content)
    return box


def _column(*widgets: QWidget, stretch_first: bool = False, stretch_last: bool = False, margins: bool = False) -> QWidget:
    """Widgets stacked top to bottom; the spare height goes to the first, the last, or below all."""
    host = QWidget()
    layout = QVBoxLayout(host)
    if not margins:
        layout.setContentsMargins(0, 0, 0, 0)
    for i, widget in enumerate(widgets):
        stretch = (stretch_first and i == 0) or (stretch_last and i == len(widgets) - 1)
        layout.addWidget(widget, 1 if stretch else 0)
    if not (stretch_first or stretch_last):
        layout.addStretch(1)
    return host
