"""Saving the panel's current sound as a named preset: its name, whose it is, and what it keeps."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtWidgets import QCheckBox, QDialog, QDialogButtonBox, QFormLayout, QLineEdit, QWidget


@dataclass(frozen=True)
class PresetChoice:
    name: str
    for_voice: bool  # only offered with the current voice
    with_devices: bool  # the audio devices are part of it
    default: bool  # the voice starts with it, live and in `convert`


class PresetDialog(QDialog):
    def __init__(self, voice: str | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Save preset")
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. Stream, Game night")
        self.for_voice = QCheckBox(f"Only for {voice}" if voice else "Only for this voice")
        self.for_voice.setEnabled(voice is not None)
        self.with_devices = QCheckBox("Include the audio devices")
        self.default = QCheckBox(f"Start {voice} with this preset (live and in convert)" if voice else "Default")
        self.default.setEnabled(voice is not None)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Name", self.name)
        for box in (self.for_voice, self.with_devices, self.default):
            form.addRow("", box)
        form.addRow(buttons)

    def choice(self) -> PresetChoice:
        return PresetChoice(self.name.text().strip(), self.for_voice.isChecked(), self.with_devices.isChecked(),
                            self.default.isChecked())
