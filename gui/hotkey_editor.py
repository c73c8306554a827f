"""The panel's hotkey settings: one row per action, set by pressing the key.

Each row is a `QKeySequenceEdit` (the user presses the key or chord) and a Clear
button; favourite voices and presets get a row each. `bindings()` returns the
actions with a key, in pynput's notation, ready for `GlobalHotkeys` and the settings file.
"""

from __future__ import annotations

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QKeySequenceEdit,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from .hotkey_settings import from_qt_text, to_qt_text
from .hotkeys import ACTIONS, PRESET_PREFIX, VOICE_PREFIX, HotkeyError


class HotkeyDialog(QDialog):
    def __init__(self, bindings: dict[str, str], voices: list[str], presets: list[str], *,
                 note: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Hotkeys")
        self.edits: dict[str, QKeySequenceEdit] = {}
        form = QFormLayout()
        rows = [(a, t) for a, t in ACTIONS.items()]
        rows += [(VOICE_PREFIX + v, f"Voice: {v}") for v in voices]
        rows += [(PRESET_PREFIX + p, f"Preset: {p}") for p in presets]
        for action, text in rows:
            edit = QKeySequenceEdit()
            edit.setMaximumSequenceLength(1)  # one key or chord, not a sequence of presses
            if action in bindings:
                edit.setKeySequence(QKeySequence(to_qt_text(bindings[action])))
            clear = QPushButton("Clear")
            clear.clicked.connect(edit.clear)
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            row.addWidget(clear)
            form.addRow(text, row)
            self.edits[action] = edit
        holder = QWidget()
        holder.setLayout(form)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(holder)
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        intro = QLabel("Click a box and press the key. These keys work while another window (a game, OBS, "
                       "Discord) has the focus.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        if note:
            warning = QLabel(note)
            warning.setWordWrap(True)
            layout.addWidget(warning)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.problem)
        layout.addWidget(buttons)
        self.resize(520, 560)

    def bindings(self) -> dict[str, str]:
        """Actions with a key, in pynput's notation; HotkeyError (one line) for a key that cannot be used."""
        out = {}
        for action, edit in self.edits.items():
            text = edit.keySequence().toString(QKeySequence.SequenceFormat.PortableText)
            if text:
                out[action] = from_qt_text(text)
        taken: dict[str, str] = {}
        for action, spec in out.items():
            if spec in taken:
                raise HotkeyError(f"{to_qt_text(spec)} is set for two actions; give one of them another key")
            taken[spec] = action
        return out

    def _accept(self) -> None:
        try:
            self.bindings()
        except HotkeyError as e:
            self.problem.setText(str(e))
            return
        self.accept()
