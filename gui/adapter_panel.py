"""The selected voice's LoRA adapters: one row each with an on/off box and a weight slider.

Several adapters on at once blend: each adds its change to the voice scaled by its
weight. The panel only edits `AdapterSlot`s and reports them; the window applies
them to the running engine and saves them in the voice's voice.json.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QCheckBox, QGridLayout, QLabel, QSizePolicy, QSlider, QVBoxLayout, QWidget

from ..library.voice_library import AdapterSlot

WEIGHT_STEP = 0.05
WEIGHT_MAX = 2.0  # past 2× an adapter's change usually only adds artefacts

EMPTY_LIBRARY = (
    "No adapters. Drop a LoRA adapter (.safetensors) made for this voice onto the window, "
    "or use Import\u2026, to add one."
)
EMPTY_BUILTIN = "Built-in voices have no adapters."


class AdapterPanel(QWidget):
    adapters_changed = Signal(object)  # tuple[AdapterSlot, ...]

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._slots: tuple[AdapterSlot, ...] = ()
        self.rows: list[tuple[QCheckBox, QSlider, QLabel]] = []
        self.empty = QLabel(EMPTY_BUILTIN)
        self.empty.setWordWrap(True)
        self.empty.setEnabled(False)  # greyed: a hint, not content
        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setColumnStretch(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.empty)
        layout.addWidget(self.grid_host)

    @property
    def slots(self) -> tuple[AdapterSlot, ...]:
        return self._slots

    def set_adapters(self, slots: tuple[AdapterSlot, ...], *, builtin: bool = False) -> None:
        self._slots = tuple(slots)
        while self.grid.count():
            widget = self.grid.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        self.rows = []
        for row, slot in enumerate(self._slots):
            self._add_row(row, slot)
        self.empty.setText(EMPTY_BUILTIN if builtin else EMPTY_LIBRARY)
        self.empty.setVisible(not self._slots)
        self.grid_host.setVisible(bool(self._slots))

    def _add_row(self, row: int, slot: AdapterSlot) -> None:
        name = Path(slot.file).stem
        box = QCheckBox(name)
        box.setChecked(slot.enabled)
        box.setToolTip(f"Turn the adapter '{name}' on or off. Changes apply while you talk.")
        slider = QSlider(Qt.Orientation.Horizontal)
        slider.setRange(0, round(WEIGHT_MAX / WEIGHT_STEP))
        slider.setValue(round(slot.weight / WEIGHT_STEP))
        slider.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        slider.setMinimumWidth(70)
        slider.setEnabled(slot.enabled)
        slider.setAccessibleName(f"{name} weight")
        slider.setToolTip(
            "How strongly this adapter changes the voice: 100 % as trained, 0 % not at all. With "
            "several adapters on, their changes add up (a blend)."
        )
        value = QLabel(_percent(slot.weight))
        value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        value.setMinimumWidth(value.fontMetrics().horizontalAdvance("200 %") + 6)
        self.grid.addWidget(box, row, 0)
        self.grid.addWidget(slider, row, 1)
        self.grid.addWidget(value, row, 2)
        self.rows.append((box, slider, value))
        box.toggled.connect(lambda on, r=row: self._changed(r, enabled=on))
        # Weights change on release (and on keyboard steps) only: re-weighting merges the adapter
        # into the model again, which is too heavy to do for every pixel of a drag.
        slider.valueChanged.connect(lambda pos, label=value: label.setText(_percent(pos * WEIGHT_STEP)))
        slider.sliderReleased.connect(lambda r=row, s=slider: self._changed(r, weight=s.value() * WEIGHT_STEP))
        slider.actionTriggered.connect(
            lambda _action, r=row, s=slider: None if s.isSliderDown() else self._later(r, s)
        )

    def _later(self, row: int, slider: QSlider) -> None:
        # actionTriggered fires before the value moves; read it once the event is done.
        QTimer.singleShot(0, lambda: self._changed(row, weight=slider.value() * WEIGHT_STEP))

    def _changed(self, row: int, *, enabled: bool | None = None, weight: float | None = None) -> None:
        slot = self._slots[row]
        new = replace(
            slot,
            enabled=slot.enabled if enabled is None else enabled,
            weight=slot.weight if weight is None else round(weight, 4),
        )
        if new == slot:
            return
        self.rows[row][1].setEnabled(new.enabled)
        self._slots = self._slots[:row] + (new,) + self._slots[row + 1 :]
        self.adapters_changed.emit(self._slots)


def _percent(weight: float) -> str:
    return f"{round(weight * 100)} %"
