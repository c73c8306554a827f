"""Microphone, output and monitor pickers, with virtual devices marked.

Devices are remembered by name: PortAudio's indices change whenever a device comes
or goes. A remembered device that is not plugged in stays selectable (marked
"not found") rather than silently switching to another microphone.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

from .engine_link import DeviceChoice, DeviceInfo

SYSTEM_DEFAULT = "System default"
MONITOR_OFF = "Off (don't play it back to me)"


class DevicePicker(QWidget):
    devices_changed = Signal(object)  # DeviceChoice
    refresh_requested = Signal()
    create_virtual_mic_requested = Signal()

    def __init__(self, *, virtual_mic: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.input = self._combo(
            "Microphone",
            "The microphone you speak into.",
        )
        self.output = self._combo(
            "Output",
            "Where the changed voice goes. Pick a virtual device (marked \u201cvirtual\u201d) and select "
            "the matching microphone in Discord or OBS: CABLE Output for VB-CABLE, BlackHole on macOS, "
            "rvclora on Linux.",
        )
        self.monitor = self._combo(
            "Monitor",
            "Optional: also play the changed voice on your headphones so you can hear yourself. "
            "Use headphones, not speakers, or your microphone will pick it up.",
        )
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Look for devices again, e.g. after plugging in a headset.")
        self.virtual_mic_button = QPushButton("Create virtual microphone")
        self.virtual_mic_button.setToolTip(
            "Adds a microphone named \u201crvclora\u201d to your system and sends the changed voice to it. "
            "Then pick \u201crvclora\u201d as the microphone in Discord or OBS."
        )
        self.virtual_mic_button.setVisible(virtual_mic)

        # Each label above its picker: device names need the width more than the labels do.
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setVerticalSpacing(2)
        for row, (text, combo) in enumerate(
            (("Microphone", self.input), ("Output (to Discord/OBS)", self.output), ("Monitor (hear yourself)", self.monitor))
        ):
            label = QLabel(text)
            label.setBuddy(combo)
            label.setToolTip(combo.toolTip())
            grid.addWidget(label, 2 * row, 0)
            grid.addWidget(combo, 2 * row + 1, 0)
        buttons = QHBoxLayout()
        buttons.addWidget(self.virtual_mic_button)
        buttons.addStretch(1)
        buttons.addWidget(self.refresh_button)
        grid.addLayout(buttons, 6, 0)

        self._tips = (self.input.toolTip(), self.output.toolTip(), self.monitor.toolTip())
        self._devices: list[DeviceInfo] = []
        for combo in (self.input, self.output, self.monitor):
            combo.currentIndexChanged.connect(self._changed)
        self.refresh_button.clicked.connect(self.refresh_requested)
        self.virtual_mic_button.clicked.connect(self.create_virtual_mic_requested)
        self.set_devices([], DeviceChoice())

    @staticmethod
    def _combo(name: str, tooltip: str) -> QComboBox:
        combo = QComboBox()
        combo.setToolTip(tooltip)
        combo.setAccessibleName(name)
        # Long device names must not widen the window: the combo elides, the popup shows all.
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(14)
        combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        return combo

    @property
    def devices(self) -> list[DeviceInfo]:
        return list(self._devices)

    def set_devices(self, devices: list[DeviceInfo], choice: DeviceChoice) -> None:
        """Fill the pickers and select `choice` (without emitting devices_changed)."""
        self._devices = list(devices)
        inputs = [d for d in devices if d.inputs > 0]
        outputs = [d for d in devices if d.outputs > 0]
        self._fill(self.input, SYSTEM_DEFAULT, inputs, choice.input)
        self._fill(self.output, SYSTEM_DEFAULT, outputs, choice.output)
        self._fill(self.monitor, MONITOR_OFF, outputs, choice.monitor)
        self._show_full_names()

    def _fill(self, combo: QComboBox, none_text: str, devices: list[DeviceInfo], wanted: str | None) -> None:
        blocked = combo.blockSignals(True)
        combo.clear()
        combo.addItem(none_text, None)
        seen = set()
        for d in devices:
            if d.name in seen:  # the same device under two host APIs: one entry is enough here
                continue
            seen.add(d.name)
            combo.addItem(d.label, d.name)
            kind = f"\nVirtual device: {d.virtual}" if d.virtual else ""
            combo.setItemData(combo.count() - 1, f"{d.name}\n{d.hostapi}, {d.samplerate:.0f} Hz{kind}", Qt.ItemDataRole.ToolTipRole)
        if wanted is not None and wanted not in seen:
            combo.addItem(f"{wanted} (not found)", wanted)
        combo.setCurrentIndex(max(0, combo.findData(wanted)) if wanted is not None else 0)
        combo.blockSignals(blocked)

    def choice(self) -> DeviceChoice:
        return DeviceChoice(
            input=self.input.currentData(), output=self.output.currentData(), monitor=self.monitor.currentData()
        )

    def select_output(self, name: str) -> bool:
        """Select an output by device name or by the PulseAudio sink behind it; emits devices_changed."""
        for d in self._devices:
            if d.outputs > 0 and name in (d.name, d.pulse):
                self.output.setCurrentIndex(self.output.findData(d.name))
                return True
        return False

    def preferred_virtual_output(self) -> str | None:
        """The output a new user most likely wants: rvclora's own virtual mic, else any virtual cable."""
        virtual = [d for d in self._devices if d.virtual and d.outputs > 0]
        virtual.sort(key=lambda d: d.virtual != "rvclora")
        return virtual[0].name if virtual else None

    def _changed(self, _index: int) -> None:
        self._show_full_names()
        self.devices_changed.emit(self.choice())

    def _show_full_names(self) -> None:
        # Long names may not fit the combo: its tooltip then shows the whole selected name.
        for combo, tip in zip((self.input, self.output, self.monitor), self._tips):
            combo.setToolTip(f"{combo.currentText()}\n\n{tip}")
