"""The panel's window: wires the voice list, sliders, devices and readouts to the engine and library.

The window holds the state (current voice, engine settings, devices) and decides
what to do; the widgets only show and ask. Anything slow runs on `Workers`, and
every failure ends as one line in the status bar: the panel keeps running.
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..realtime.settings import F0_METHODS, EngineSettings, SettingsError
from ..synth import assets as synth_assets
from ..synth.home import Home
from ..synth.voice_library import AdapterSlot, VoiceDefaults, VoiceEntry, VoiceLibrary, VoiceLibraryError
from . import engine_link
from .adapter_panel import AdapterPanel
from .device_picker import DevicePicker
from .engine_link import DeviceChoice, EngineLink, EngineStats
from .load_chart import LoadChart
from .meters import LevelMeter
from .settings_store import PanelState, SettingsStore
from .sliders import BLOCK, CROSSFADE, FORMANT, INDEX_RATE, LOUDNESS, NOISE_GATE, PITCH, SettingSlider, SliderGrid
from .voice_choice import ADAPTER_SUFFIXES, IMPORTABLE_SUFFIXES, INDEX_SUFFIXES, MODEL_SUFFIXES, VoiceChoice
from .voice_list import VoiceList, display_name
from .workers import Workers, one_line

STATS_INTERVAL_MS = 100  # 10 readout updates a second: meters look live, the UI thread stays idle
SAVE_DELAY_MS = 500  # settings are written once a slider comes to rest, not for every step
PANEL_ASSETS = ("hubert_base", "rmvpe")  # what library voices need to run (training bases are not needed here)
DEFAULT_SIZE = (1140, 640)

F0_LABELS = {
    "auto": "Automatic",
    "rmvpe": "RMVPE (best, needs rmvpe.pt)",
    "pm": "Praat (light on CPU)",
    "fcpe": "FCPE (fast)",
}


class MainWindow(QMainWindow):
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
        self._engine_state = "stopped"  # stopped | starting | running | stopping
        self._restart_pending = False
        self._listing_devices = False  # PortAudio is re-initialised while listing: no stream may open then
        self._start_after_listing = False
        self._builtins: list[tuple[str, str]] = []

        self.setWindowTitle("rvclora \u2014 voice changer")
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
        self.refresh_devices()
        self._check_assets()
        if self.store.problem:
            self.show_error(self.store.problem)

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        # Left: voices. Middle: the voice's own settings and adapters. Right: devices and timing.
        self.voice_list = VoiceList()
        self.asset_bar = self._build_asset_bar()
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(_group("Voices", self.voice_list), 1)
        left_layout.addWidget(self.asset_bar)

        self.pitch = SettingSlider(PITCH)
        self.formant = SettingSlider(FORMANT)
        self.index_rate = SettingSlider(INDEX_RATE)
        self.f0_method = QComboBox()
        for method in F0_METHODS:
            self.f0_method.addItem(F0_LABELS.get(method, method), method)
        self.f0_method.setToolTip(
            "How your pitch is followed. RMVPE is the most accurate; Praat uses the least CPU. "
            "Saved with the voice."
        )
        f0_label = QLabel("Pitch tracker")
        f0_label.setToolTip(self.f0_method.toolTip())
        f0_label.setBuddy(self.f0_method)
        self.voice_grid = SliderGrid([self.pitch, self.formant, self.index_rate])
        self.voice_grid.add_row(f0_label, self.f0_method)
        self.voice_note = QLabel()
        self.voice_note.setWordWrap(True)
        self.voice_note.setEnabled(False)
        voice_box = QWidget()
        voice_layout = QVBoxLayout(voice_box)
        voice_layout.setContentsMargins(0, 0, 0, 0)
        voice_layout.addWidget(self.voice_grid)
        voice_layout.addWidget(self.voice_note)
        self.voice_group = _group("Voice", voice_box)
        self.adapters = AdapterPanel()
        middle = QWidget()
        middle_layout = QVBoxLayout(middle)
        middle_layout.setContentsMargins(0, 0, 0, 0)
        middle_layout.addWidget(self.voice_group)
        middle_layout.addWidget(_group("Adapters (LoRA)", self.adapters))
        middle_layout.addStretch(1)

        self.devices = DevicePicker(virtual_mic=engine_link.virtual_mic_supported())
        self.gate = SettingSlider(NOISE_GATE)
        self.loudness = SettingSlider(LOUDNESS)
        self.block = SettingSlider(BLOCK)
        self.crossfade = SettingSlider(CROSSFADE)
        self.latency_label = QLabel()
        self.latency_label.setWordWrap(True)
        self.latency_label.setToolTip(
            "The delay the conversion itself adds: block + crossfade + a 10 ms search for the best join. "
            "Your sound devices add a little more."
        )
        sound_box = QWidget()
        sound_layout = QVBoxLayout(sound_box)
        sound_layout.setContentsMargins(0, 0, 0, 0)
        sound_layout.addWidget(SliderGrid([self.gate, self.loudness, self.block, self.crossfade]))
        sound_layout.addWidget(self.latency_label)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(_group("Audio devices", self.devices))
        right_layout.addWidget(_group("Sound and delay", sound_box))
        right_layout.addStretch(1)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setChildrenCollapsible(False)
        for widget, stretch in ((left, 0), (middle, 1), (right, 1)):
            splitter.addWidget(widget)
            splitter.setStretchFactor(splitter.count() - 1, stretch)
        splitter.setSizes([250, 380, 490])

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(self._build_transport())
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)

        self.status_label = QLabel()
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # "working" without a known length
        self.busy.setMaximumWidth(120)
        self.busy.setVisible(False)
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.busy)
        self.resize(*DEFAULT_SIZE)

    def _build_transport(self) -> QWidget:
        self.start_button = QPushButton("Start")
        self.start_button.setMinimumWidth(self.start_button.fontMetrics().horizontalAdvance("Starting\u2026") + 40)
        self.start_button.setDefault(True)
        self.start_button.setToolTip("Start or stop changing your voice (Ctrl+Enter).")
        self.passthrough = QPushButton("Passthrough")
        self.passthrough.setCheckable(True)
        self.passthrough.setToolTip(
            "Send your own voice through unchanged, to check levels and routing in Discord or OBS (Ctrl+P)."
        )
        self.in_meter = LevelMeter("Input")
        self.out_meter = LevelMeter("Output")
        meters = QWidget()
        meter_grid = QHBoxLayout(meters)
        meter_grid.setContentsMargins(0, 0, 0, 0)
        meter_col = QVBoxLayout()
        for text, meter in (("In", self.in_meter), ("Out", self.out_meter)):
            row = QHBoxLayout()
            label = QLabel(text)
            label.setMinimumWidth(label.fontMetrics().horizontalAdvance("Out") + 4)
            label.setToolTip(meter.toolTip())
            row.addWidget(label)
            row.addWidget(meter, 1)
            meter_col.addLayout(row)
        meter_grid.addLayout(meter_col)

        self.chart = LoadChart()
        self.compute_label = QLabel()
        self.compute_label.setToolTip(self.chart.toolTip())
        self.overrun_label = QLabel()
        self.overrun_label.setToolTip(
            "Blocks that took longer to convert than they last, and sound-card hiccups. If these climb, "
            "make the block longer or pick a lighter pitch tracker."
        )
        self.delay_label = QLabel()
        self.delay_label.setToolTip(self.latency_label.toolTip())
        readout = QVBoxLayout()
        readout.setSpacing(0)
        for label in (self.compute_label, self.overrun_label, self.delay_label):
            readout.addWidget(label)

        bar = QFrame()
        bar.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QHBoxLayout(bar)
        layout.addWidget(self.start_button)
        layout.addWidget(self.passthrough)
        layout.addSpacing(12)
        layout.addWidget(meters, 2)
        layout.addSpacing(12)
        layout.addLayout(readout)
        layout.addWidget(self.chart, 2)
        self._show_stats(None)
        return bar

    def _build_asset_bar(self) -> QWidget:
        bar = QFrame()
        bar.setFrameShape(QFrame.Shape.StyledPanel)
        self.asset_text = QLabel(
            "Your own RVC voices need two shared model files (about 550 MB). Built-in voices work without them."
        )
        self.asset_text.setWordWrap(True)
        self.asset_button = QPushButton("Download models")
        self.asset_button.setToolTip("Downloads the content encoder (HuBERT) and the RMVPE pitch tracker from Hugging Face.")
        self.asset_progress = QProgressBar()
        self.asset_progress.setVisible(False)
        layout = QVBoxLayout(bar)
        layout.addWidget(self.asset_text)
        layout.addWidget(self.asset_progress)
        layout.addWidget(self.asset_button)
        bar.setVisible(False)
        return bar

    def _build_menus(self) -> None:
        def action(menu, text: str, slot, shortcut: str | None = None, tip: str | None = None) -> QAction:
            act = QAction(text, self)
            if shortcut:
                act.setShortcut(QKeySequence(shortcut))
                # Window-wide: the shortcut works whichever slider or list has the focus.
                act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            if tip:
                act.setStatusTip(tip)
            act.triggered.connect(slot)
            menu.addAction(act)
            self.addAction(act)
            return act

        file_menu = self.menuBar().addMenu("&File")
        action(file_menu, "&Import voice, index or adapter\u2026", self.ask_import, "Ctrl+O")
        self.download_action = action(file_menu, "&Download shared models", self.download_assets)
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
        self.block.changed.connect(self._block_changed)
        self.crossfade.changed.connect(lambda v: self._set_setting(crossfade_ms=int(v)))
        self.passthrough.toggled.connect(lambda on: self._set_setting(passthrough=on, save=False))
        self.adapters.adapters_changed.connect(self._adapters_changed)
        self.devices.devices_changed.connect(self._devices_changed)
        self.devices.refresh_requested.connect(self.refresh_devices)
        self.devices.create_virtual_mic_requested.connect(self.create_virtual_mic)
        self.start_button.clicked.connect(self.toggle_engine)
        self.asset_button.clicked.connect(self.download_assets)
        self.workers.busy_changed.connect(lambda n: self.busy.setVisible(n > 0))

    # ------------------------------------------------------------------ status line

    def show_message(self, text: str) -> None:
        self.status_label.setText(text)
        self.status_label.setToolTip(text)

    def show_error(self, text: str) -> None:
        # The status line is the one place errors go: visible, selectable, and the app goes on.
        self.show_message(f"\u26a0 {text}")

    # ------------------------------------------------------------------ voices

    def refresh_voices(self) -> None:
        if not self._builtins:
            try:
                self._builtins = engine_link.builtin_voices()
            except Exception as e:  # noqa: BLE001 - the library must still show
                self.show_error(f"built-in voices unavailable: {one_line(e)}")
        self.voice_list.set_voices(self._builtins, self.library.list(), self.library.problems())

    def _select_initial_voice(self) -> None:
        wanted = VoiceChoice.from_key(self.state.voice)
        if wanted is None or not self.voice_list.select(wanted):
            choices = self.voice_list.choices()
            # A new user should hear a change on the first Start: skip presets that change nothing.
            audible = [c for c in choices if c.is_builtin and _audible_preset(c.name)]
            if audible or choices:
                self.voice_list.select((audible or choices)[0])

    def select_voice(self, choice: VoiceChoice) -> None:
        """Show a voice's settings and, if the engine runs, switch the engine to it."""
        self._flush_voice_save()
        entry = None
        if not choice.is_builtin:
            try:
                entry = self.library.get(choice.name)
            except VoiceLibraryError as e:
                self.show_error(str(e))
                self.refresh_voices()
                return
        self.voice, self.entry = choice, entry
        self.state = replace(self.state, voice=choice.key)
        self._show_voice()
        self._schedule_save()
        if self._engine_state == "running":
            self._switch_voice()
        elif self._engine_state == "starting":
            self._restart()

    def _switch_voice(self) -> None:
        """The engine keeps playing: same-base voices swap adapters, others load in the background."""
        try:
            spec = engine_link.voice_spec(self.voice, self.entry)
        except ValueError as e:
            self.show_error(str(e))
            return
        name = display_name(self.voice)
        self.show_message(f"Switching to \u201c{name}\u201d\u2026")
        self.workers.submit(self.link.switch_voice, spec, on_done=lambda _kind: None, on_failed=self.show_error)

    def _show_voice(self) -> None:
        if self.voice is None:
            return
        if self.entry is None:
            tweak = self.state.tweak(self.voice.name)
            pitch, formant, index_rate, f0 = tweak.pitch, tweak.formant, 0.0, self.settings.f0_method
            try:
                preset_pitch, preset_formant = engine_link.builtin_preset(self.voice.name)
                self.voice_note.setText(
                    f"A built-in voice (preset: pitch {preset_pitch:+g} st, formant {preset_formant:+g} st). "
                    "The sliders add to the preset."
                )
            except Exception:  # noqa: BLE001
                self.voice_note.setText("A built-in voice.")
            self.adapters.set_adapters((), builtin=True)
        else:
            d = self.entry.defaults
            pitch, formant, index_rate, f0 = d.pitch, d.formant, d.index_rate, d.f0_method
            has_index = self.entry.index is not None
            self.voice_note.setText(
                "Settings here are saved with the voice." + ("" if has_index else " This voice has no .index file.")
            )
            self.adapters.set_adapters(self.entry.adapters)
        for slider, value in ((self.pitch, pitch), (self.formant, formant), (self.index_rate, index_rate)):
            slider.set_value(value)
        self.index_rate.set_enabled(self.entry is not None and self.entry.index is not None)
        self.f0_method.setEnabled(self.entry is not None)
        blocked = self.f0_method.blockSignals(True)
        self.f0_method.setCurrentIndex(max(0, self.f0_method.findData(f0 if f0 in F0_METHODS else "auto")))
        self.f0_method.blockSignals(blocked)
        self._set_setting(
            pitch=float(pitch),
            formant=float(formant),
            index_rate=float(index_rate),
            f0_method=f0 if f0 in F0_METHODS else "auto",
            save=False,
        )

    def _voice_setting(self, name: str, value: object) -> None:
        """A per-voice setting moved: apply it live and remember it with the voice."""
        if not self._set_setting(save=False, **{name: value}):
            return
        if self.entry is not None:
            self.entry = replace(self.entry, defaults=replace(self.entry.defaults, **{name: value}))
            self._voice_save_timer.start()
        elif self.voice is not None and name in ("pitch", "formant"):
            tweak = self.state.tweak(self.voice.name)
            self.state = self.state.with_tweak(self.voice.name, replace(tweak, **{name: float(value)}))
            self._schedule_save()

    def _save_voice_now(self) -> None:
        if self.entry is None:
            return
        try:
            self.library.update(self.entry)
        except (VoiceLibraryError, OSError) as e:
            self.show_error(f"could not save the settings of '{self.entry.name}': {one_line(e)}")

    def _flush_voice_save(self) -> None:
        if self._voice_save_timer.isActive():
            self._voice_save_timer.stop()
            self._save_voice_now()

    def _adapters_changed(self, slots: tuple[AdapterSlot, ...]) -> None:
        if self.entry is None:
            return
        self.entry = replace(self.entry, adapters=slots)
        self._voice_save_timer.start()
        if self._engine_state == "running":
            active = self.entry.active_adapters()
            self.workers.submit(
                self.link.set_adapters, active,
                on_done=lambda _r: self.show_message(_adapter_summary(slots)),
                on_failed=self.show_error,
            )

    # ------------------------------------------------------------------ import, rename, remove

    def ask_import(self) -> None:
        patterns = " ".join(f"*{s}" for s in IMPORTABLE_SUFFIXES)
        paths, _ = QFileDialog.getOpenFileNames(
            self,
            "Import voice, index or adapter",
            str(Path.home()),
            f"Voice files ({patterns});;Voice models (*.pth *.onnx);;Feature index (*.index);;"
            f"LoRA adapters (*.safetensors);;All files (*)",
        )
        if paths:
            self.import_files([Path(p) for p in paths])

    def import_files(self, paths: list[Path]) -> None:
        """Add dropped or chosen files: models become new voices, .index and adapters join the selected voice."""
        models = [p for p in paths if p.suffix.lower() in MODEL_SUFFIXES]
        extras = [p for p in paths if p.suffix.lower() in INDEX_SUFFIXES + ADAPTER_SUFFIXES]
        other = [p for p in paths if p not in models and p not in extras]
        if other:
            self.show_error(f"{other[0].name}: not a voice model (.pth/.onnx), .index or adapter (.safetensors) file")
        if extras and not models and (self.entry is None):
            self.show_error("select one of your voices first: a .index or adapter file is added to a voice")
            extras = []
        if not models and not extras:
            return
        target = self.entry.name if self.entry is not None else None
        self.show_message(f"Importing {len(models) + len(extras)} file(s)\u2026")
        self.workers.submit(
            _import, self.library, models, extras, target,
            on_done=self._imported,
            on_failed=self.show_error,
        )

    def _imported(self, result: tuple[str | None, list[str], list[str]]) -> None:
        select, done, errors = result
        self.refresh_voices()
        if select is not None:
            self.voice_list.select(VoiceChoice("library", select))
            if self.entry is not None and self.entry.name == select:
                # The selected voice got a new index or adapter: show it, and use it if running.
                self.select_voice(VoiceChoice("library", select))
        if errors:
            self.show_error(errors[0] + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))
        elif done:
            self.show_message("Added " + ", ".join(done))

    def _rename_current(self) -> None:
        if self.entry is not None:
            self.rename_voice(self.entry.name)

    def _remove_current(self) -> None:
        if self.entry is not None:
            self.remove_voice(self.entry.name)

    def rename_voice(self, name: str) -> None:
        new, ok = QInputDialog.getText(self, "Rename voice", f"New name for \u201c{name}\u201d:", text=name)
        if not ok or not new.strip() or new.strip() == name:
            return
        self._flush_voice_save()
        try:
            entry = self.library.rename(name, new)
        except (VoiceLibraryError, OSError) as e:
            self.show_error(one_line(e))
            return
        if self.entry is not None and self.entry.name == name:
            self.voice, self.entry = VoiceChoice("library", entry.name), entry
            self.state = replace(self.state, voice=self.voice.key)
            self._schedule_save()
        self.refresh_voices()
        self.voice_list.select(VoiceChoice("library", entry.name), emit=False)
        self.show_message(f"Renamed \u201c{name}\u201d to \u201c{entry.name}\u201d")

    def remove_voice(self, name: str) -> None:
        answer = QMessageBox.question(
            self,
            "Remove voice",
            f"Remove the voice \u201c{name}\u201d and delete its files from rvclora's library?\n\n"
            "The files you originally imported are not touched.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        removing_current = self.entry is not None and self.entry.name == name
        if removing_current:
            self._voice_save_timer.stop()
            if self._engine_state in ("running", "starting"):
                self.stop_engine()
        try:
            self.library.remove(name)
        except (VoiceLibraryError, OSError) as e:
            self.show_error(one_line(e))
            return
        if removing_current:
            self.voice, self.entry = None, None
        self.refresh_voices()
        if removing_current:
            self._select_initial_voice()
        self.show_message(f"Removed \u201c{name}\u201d")

    # drag and drop: anywhere on the window
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        if any(Path(u.toLocalFile()).suffix.lower() in IMPORTABLE_SUFFIXES for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt API
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.import_files(paths)

    # ------------------------------------------------------------------ settings

    def _apply_global_settings(self) -> None:
        s = self.settings
        self.gate.set_value(s.threshold_db)
        self.loudness.set_value(1.0 - s.rms_mix_rate)
        self.block.set_value(s.block_ms)
        self.crossfade.set_maximum_value(min(CROSSFADE.maximum, s.block_ms))
        self.crossfade.set_value(s.crossfade_ms)
        self._show_latency()

    def _block_changed(self, value: float) -> None:
        block = int(value)
        # The crossfade can never be longer than the block: pull it down together, in one change.
        crossfade = min(self.settings.crossfade_ms, block)
        blocked = self.crossfade.slider.blockSignals(True)
        self.crossfade.set_maximum_value(min(CROSSFADE.maximum, block))
        self.crossfade.set_value(crossfade)
        self.crossfade.slider.blockSignals(blocked)
        self._set_setting(block_ms=block, crossfade_ms=crossfade)

    def _set_setting(self, save: bool = True, **changes: object) -> bool:
        """Validate, keep, and send live to the engine. Returns False (and says why) on a bad value."""
        try:
            new = self.settings.replace(**changes)
        except SettingsError as e:
            self.show_error(str(e))
            return False
        changed = {k: v for k, v in changes.items() if getattr(self.settings, k) != getattr(new, k)}
        self.settings = new
        self._show_latency()
        if changed and self._engine_state == "running":
            try:
                self.link.update(**changed)
            except Exception as e:  # noqa: BLE001 - a refused change is a message, not a crash
                self.show_error(one_line(e))
        if save:
            self.state = replace(self.state, engine=self.settings)
            self._schedule_save()
        return True

    def _show_latency(self, measured_ms: float | None = None) -> None:
        s = self.settings
        if measured_ms is not None:
            # The running engine knows best (built-in voices skip the crossfade but add look-ahead).
            self.latency_label.setText(f"Delay from conversion: <b>{measured_ms:.0f} ms</b> (measured by the running engine)")
            return
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

    # ------------------------------------------------------------------ devices

    def refresh_devices(self) -> None:
        if self._engine_state != "stopped":
            # Rescanning re-initialises PortAudio, which would pull the running streams away.
            self.show_message("Stop the voice changer to look for new devices.")
            return
        if self._listing_devices:
            return
        self._listing_devices = True
        self.workers.submit(engine_link.list_devices, on_done=self._devices_listed, on_failed=self._devices_failed)

    def _listing_done(self) -> None:
        self._listing_devices = False
        if self._start_after_listing:
            self._start_after_listing = False
            self.start_engine()

    def _devices_listed(self, devices: list) -> None:
        self._show_devices(devices)
        self._listing_done()

    def _show_devices(self, devices: list) -> None:
        s = self.state
        self.devices.set_devices(devices, DeviceChoice(s.input_device, s.output_device, s.monitor_device))
        if self._first_run and s.output_device is None:
            # First run: send to a virtual microphone if there is one, so Start is all it takes.
            self._first_run = False
            virtual = self.devices.preferred_virtual_output()
            if virtual is not None:
                self.devices.select_output(virtual)
                return  # select_output reported the change
        self._devices_changed(self.devices.choice(), restart=False)

    def _devices_failed(self, message: str) -> None:
        self.show_error(f"could not list audio devices: {message}")
        self._listing_done()

    def _devices_changed(self, choice: DeviceChoice, restart: bool = True) -> None:
        self.state = replace(
            self.state, input_device=choice.input, output_device=choice.output, monitor_device=choice.monitor
        )
        self._schedule_save()
        if restart and self._engine_state in ("running", "starting"):
            self._restart()

    def create_virtual_mic(self) -> None:
        if self._engine_state != "stopped":
            self.show_message("Stop the voice changer first, then create the virtual microphone.")
            return
        if self._listing_devices:
            return
        self.show_message("Creating the virtual microphone\u2026")
        self._listing_devices = True

        def make() -> tuple[str, list]:
            name = engine_link.create_virtual_mic()
            return name, engine_link.list_devices()

        self.workers.submit(make, on_done=self._virtual_mic_made, on_failed=self._virtual_mic_failed)

    def _virtual_mic_failed(self, message: str) -> None:
        self.show_error(message)
        self._listing_done()

    def _virtual_mic_made(self, result: tuple[str, list]) -> None:
        name, devices = result
        self.devices.set_devices(devices, self.devices.choice())
        self._listing_done()
        if not self.devices.select_output(name):
            self.show_error(f"created the virtual microphone, but no output device named '{name}' appeared")
            return
        self.show_message(
            f"Virtual microphone ready: the changed voice goes to \u201c{name}\u201d. "
            "In Discord or OBS, pick \u201crvclora\u201d as the microphone."
        )

    # ------------------------------------------------------------------ engine

    @property
    def engine_state(self) -> str:
        return self._engine_state

    def toggle_engine(self) -> None:
        if self._engine_state in ("running", "starting"):
            self.stop_engine()
        elif self._engine_state == "stopped":
            self.start_engine()

    def start_engine(self) -> None:
        if self.voice is None:
            self.show_error("pick a voice first")
            return
        if self._listing_devices:
            self._start_after_listing = True
            self.show_message("Looking for audio devices\u2026")
            return
        self._set_engine_state("starting")
        self.show_message(f"Loading \u201c{display_name(self.voice)}\u201d\u2026")
        voice, entry, settings, devices = self.voice, self.entry, self.settings, self.devices.choice()

        def start() -> str:
            self.link.start(engine_link.voice_spec(voice, entry), settings, devices)
            return display_name(voice)

        self.workers.submit(start, on_done=self._started, on_failed=self._start_failed)

    def _restart(self) -> None:
        if self._engine_state == "starting":
            self._restart_pending = True  # one more start once this one lands, with the newest choices
            return
        self.start_engine()

    def _started(self, name: str) -> None:
        if self._restart_pending:
            self._restart_pending = False
            self.start_engine()
            return
        self._set_engine_state("running")
        # Settings may have moved while the model loaded: send the newest ones.
        current = self.link.settings
        if current is not None and current != self.settings:
            changed = {f.name: getattr(self.settings, f.name) for f in fields(self.settings) if getattr(current, f.name) != getattr(self.settings, f.name)}
            try:
                self.link.update(**changed)
            except Exception as e:  # noqa: BLE001
                self.show_error(one_line(e))
        output = self.devices.choice().output or "the system's default output"
        self.show_message(f"Running: \u201c{name}\u201d \u2192 {output}")

    def _start_failed(self, message: str) -> None:
        self._restart_pending = False
        self._set_engine_state("stopped")
        self.show_error(message)

    def stop_engine(self) -> None:
        self._restart_pending = False
        self._set_engine_state("stopping")
        self.workers.submit(self.link.stop, on_done=lambda _r: self._stopped(by_user=True), on_failed=self._stop_failed)

    def _stopped(self, message: str | None = None, *, by_user: bool = False) -> None:
        self._set_engine_state("stopped")
        # After the user's own Stop, passing warnings of the run (a quiet input, say) are
        # over; errors still show. When the engine stopped by itself, its last word stays.
        if by_user and not message and self.status_label.text().startswith("\u26a0") and not self._show_engine_messages(errors_only=True):
            self.show_message("Stopped.")
            return
        self._show_engine_messages()
        if message:
            self.show_error(message)
        elif not self.status_label.text().startswith("\u26a0"):
            self.show_message("Stopped.")

    def _stop_failed(self, message: str) -> None:
        self._stopped(message)

    def _set_engine_state(self, state: str) -> None:
        self._engine_state = state
        self.start_button.setText({"stopped": "Start", "starting": "Starting\u2026", "running": "Stop", "stopping": "Stopping\u2026"}[state])
        self.start_button.setEnabled(state in ("stopped", "running", "starting"))
        self.devices.refresh_button.setEnabled(state == "stopped")
        self.devices.virtual_mic_button.setEnabled(state == "stopped")
        if state == "stopped":
            self._show_stats(None)
            self.chart.clear()

    def _poll_engine(self) -> None:
        if self._engine_state != "running":
            return
        self._show_engine_messages()
        if not self.link.running:
            # The engine stopped by itself (a device vanished, say): its event says why.
            self._stopped()
            return
        try:
            stats = self.link.stats()
        except Exception as e:  # noqa: BLE001 - a readout glitch must not take the panel down
            self.show_error(f"engine readout failed: {one_line(e)}")
            return
        self._show_stats(stats)

    def _show_engine_messages(self, *, errors_only: bool = False) -> bool:
        """Show the engine's pending messages; True when an error was among them."""
        error = False
        for message in self.link.drain_messages():
            if message.kind == "error":
                error = True
            if message.is_problem and (message.kind == "error" or not errors_only):
                self.show_error(message.text)
            elif message.kind in ("adapters", "voice") and not errors_only:
                self.show_message(message.text[:1].upper() + message.text[1:])
        return error

    def _show_stats(self, stats: EngineStats | None) -> None:
        if stats is None:
            self._show_latency()
            self.in_meter.set_level(None)
            self.out_meter.set_level(None)
            self.compute_label.setText(f"Compute: \u2014 of {self.settings.block_ms} ms")
            self.overrun_label.setText("Overruns: \u2014")
            self.delay_label.setText(f"Delay: {self.settings.algorithmic_latency_ms} ms")
            return
        self.in_meter.set_level(stats.input_db)
        self.out_meter.set_level(stats.output_db)
        self.compute_label.setText(
            f"Compute: {stats.compute_p50_ms:.1f} of {stats.budget_ms:.0f} ms (p95 {stats.compute_p95_ms:.1f})"
        )
        self.overrun_label.setText(f"Overruns: {stats.overruns}  \u00b7  Glitches: {stats.glitches}")
        self.delay_label.setText(
            f"Delay: {stats.algorithmic_latency_ms:.0f} ms conversion, \u2248{stats.latency_ms:.0f} ms in all"
        )
        self._show_latency(stats.algorithmic_latency_ms)
        if stats.blocks:
            self.chart.add(stats.compute_ms, stats.budget_ms)

    # ------------------------------------------------------------------ assets

    def _check_assets(self) -> None:
        statuses = synth_assets.check_assets(self.home, synth_assets.select_assets(PANEL_ASSETS))
        missing = [s.asset.name for s in statuses if not s.present]
        self.asset_bar.setVisible(bool(missing))
        self.download_action.setEnabled(bool(missing))

    def download_assets(self) -> None:
        self.asset_button.setEnabled(False)
        self.asset_progress.setVisible(True)
        self.asset_progress.setRange(0, 0)
        self.show_message("Downloading shared models\u2026")
        self.workers.submit(
            _download, self.home, PANEL_ASSETS,
            on_progress=self._download_progress,
            on_done=lambda _r: self._downloaded(None),
            on_failed=self._downloaded,
        )

    def _download_progress(self, done: int, total: int, text: str) -> None:
        self.asset_progress.setRange(0, total)
        self.asset_progress.setValue(done)
        self.asset_progress.setFormat(f"{text} (%v of %m)")
        self.show_message(f"Downloading {text}\u2026")

    def _downloaded(self, error: str | None) -> None:
        self.asset_button.setEnabled(True)
        self.asset_progress.setVisible(False)
        self._check_assets()
        if error:
            self.show_error(error)
        else:
            self.show_message("Shared models downloaded: your own voices are ready to use.")

    # ------------------------------------------------------------------ closing

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        self._stats_timer.stop()
        self._flush_voice_save()
        self.state = replace(self.state, geometry=bytes(self.saveGeometry().toBase64()).decode("ascii"))
        self._save_timer.stop()
        self._save_now()
        # Blocking here is fine: the window is going away, and streams must close cleanly.
        self.workers.wait(10_000)
        try:
            self.link.close()  # also ends the engine process
        except Exception:  # noqa: BLE001 - nothing left to tell the user
            pass
        super().closeEvent(event)


# ---------------------------------------------------------------------- helpers (run on workers)


def _import(
    library: VoiceLibrary, models: list[Path], extras: list[Path], target: str | None
) -> tuple[str | None, list[str], list[str]]:
    """Import on a worker: returns (voice to select, what was added, one-line errors)."""
    done: list[str] = []
    errors: list[str] = []
    select = None
    for path in models:
        try:
            entry = library.create(path, defaults=VoiceDefaults())
        except Exception as e:  # noqa: BLE001 - each file reports on its own
            errors.append(f"{path.name}: {one_line(e)}")
            continue
        done.append(f"voice \u201c{entry.name}\u201d")
        select = target = entry.name  # extras dropped together with a model join that model
    for path in extras:
        if target is None:
            errors.append(f"{path.name}: select one of your voices first")
            continue
        try:
            if path.suffix.lower() in INDEX_SUFFIXES:
                library.add_index(target, path)
                done.append(f"index to \u201c{target}\u201d")
            else:
                library.add_adapter(target, path)
                done.append(f"adapter \u201c{path.stem}\u201d to \u201c{target}\u201d")
            select = target
        except Exception as e:  # noqa: BLE001
            errors.append(f"{path.name}: {one_line(e)}")
    return select, done, errors


def _download(home: Home, names: tuple[str, ...], progress) -> None:
    # One asset at a time so the panel can show which file and how many are left.
    todo = synth_assets.select_assets(names)
    for i, asset in enumerate(todo):
        progress(i, len(todo), asset.description or asset.name)
        synth_assets.download_assets([asset], home, progress=False)
    progress(len(todo), len(todo), "done")


def _audible_preset(name: str) -> bool:
    try:
        return engine_link.builtin_preset(name) != (0.0, 0.0)
    except Exception:  # noqa: BLE001
        return False


def _adapter_summary(slots: tuple[AdapterSlot, ...]) -> str:
    on = [f"{Path(s.file).stem} {round(s.weight * 100)} %" for s in slots if s.enabled]
    return "Adapters: " + (", ".join(on) if on else "none on")


def _group(title: str, content: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    layout.addWidget(content)
    return box
