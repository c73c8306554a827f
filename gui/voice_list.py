"""The voice list: built-in voices first, then the user's library, with import / rename / remove.

The widget only shows voices and asks for actions (signals); the window does the
file work, so the list never touches the disk itself.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..library.voice_library import VoiceEntry
from .voice_choice import VoiceChoice

ROLE = Qt.ItemDataRole.UserRole


def display_name(choice: VoiceChoice) -> str:
    """Built-in voices have lower-case ids ("deep"); users see them capitalised."""
    return choice.name.capitalize() if choice.is_builtin else choice.name


class VoiceList(QWidget):
    voice_selected = Signal(object)  # VoiceChoice
    import_requested = Signal()
    rename_requested = Signal(str)  # library voice name
    remove_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setAccessibleName("Voices")
        # Long names elide rather than scroll sideways; at least the built-in voices and a few of
        # the user's show at once, however small the window.
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setMinimumHeight(self.list.fontMetrics().height() * 11)
        self.list.setToolTip(
            "Pick the voice you want to sound like. Built-in voices work right away; your own RVC "
            "voices (.pth or .onnx) appear under My voices. Drop files here to add them."
        )
        self.import_button = QPushButton("Import\u2026")
        self.import_button.setToolTip(
            "Add a voice model (.pth or .onnx) as a new voice, or add a .index file or a LoRA adapter "
            "(.safetensors) to the selected voice. You can also drag the files onto the window."
        )
        self.rename_button = QPushButton("Rename\u2026")
        self.rename_button.setToolTip("Give the selected voice another name.")
        self.remove_button = QPushButton("Remove\u2026")
        self.remove_button.setToolTip("Delete the selected voice and its files from rvclora's library (asks first).")
        # Import on its own row, the two that act on the selected voice below: narrow enough
        # for the panel to fit beside a chat window.
        buttons = QGridLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.import_button, 0, 0, 1, 2)
        buttons.addWidget(self.rename_button, 1, 0)
        buttons.addWidget(self.remove_button, 1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)

        self.list.currentItemChanged.connect(self._current_changed)
        self.import_button.clicked.connect(self.import_requested)
        self.rename_button.clicked.connect(lambda: self._ask(self.rename_requested))
        self.remove_button.clicked.connect(lambda: self._ask(self.remove_requested))
        self._update_buttons(None)

    # -- content --------------------------------------------------------------------------

    def set_voices(self, builtins: list[tuple[str, str]], entries: list[VoiceEntry], problems: list[str] = ()) -> None:
        """Refill the list, keeping the current selection when it still exists (without re-emitting it)."""
        current = self.current()
        blocked = self.list.blockSignals(True)
        self.list.clear()
        self._header("Built-in voices")
        for name, description in builtins:
            choice = VoiceChoice("builtin", name)
            self._voice_item(choice, display_name(choice), f"{description[:1].upper()}{description[1:]}. Needs no model files.")
        self._header("My voices")
        if not entries:
            hint = QListWidgetItem("  Drop a .pth or .onnx voice here")
            hint.setFlags(Qt.ItemFlag.NoItemFlags)
            hint.setToolTip("Voices you import are copied into rvclora's library; your original files stay where they are.")
            self.list.addItem(hint)
        for entry in entries:
            extras = []
            if entry.index:
                extras.append("index")
            if entry.adapters:
                extras.append(f"{len(entry.adapters)} adapter{'s' if len(entry.adapters) > 1 else ''}")
            tip = f"{entry.model or 'no model'}" + (f" + {', '.join(extras)}" if extras else "") + f"\nin {entry.folder}"
            self._voice_item(VoiceChoice("library", entry.name), entry.name, tip)
        for problem in problems:
            bad = QListWidgetItem("  \u26a0 unreadable voice folder")
            bad.setFlags(Qt.ItemFlag.NoItemFlags)
            bad.setToolTip(problem)
            self.list.addItem(bad)
        self.list.blockSignals(blocked)
        if current is not None:
            self.select(current, emit=False)
        self._update_buttons(self.current())

    def _header(self, text: str) -> None:
        item = QListWidgetItem(text)
        # A section title, not a choice: enabled (so it reads as text, not greyed) but not selectable.
        item.setFlags(Qt.ItemFlag.ItemIsEnabled)
        font = QFont(self.list.font())
        font.setBold(True)
        item.setFont(font)
        self.list.addItem(item)

    def _voice_item(self, choice: VoiceChoice, text: str, tooltip: str) -> None:
        item = QListWidgetItem("  " + text)
        item.setData(ROLE, choice)
        item.setToolTip(tooltip)
        self.list.addItem(item)

    def choices(self) -> list[VoiceChoice]:
        out = []
        for row in range(self.list.count()):
            choice = self.list.item(row).data(ROLE)
            if choice is not None:
                out.append(choice)
        return out

    # -- selection ------------------------------------------------------------------------

    def current(self) -> VoiceChoice | None:
        item = self.list.currentItem()
        return None if item is None else item.data(ROLE)

    def select(self, choice: VoiceChoice, *, emit: bool = True) -> bool:
        for row in range(self.list.count()):
            if self.list.item(row).data(ROLE) == choice:
                blocked = self.list.blockSignals(not emit)
                self.list.setCurrentRow(row)
                self.list.blockSignals(blocked)
                self._update_buttons(choice)
                return True
        return False

    def step(self, delta: int) -> None:
        """Next / previous voice (keyboard shortcut); wraps around."""
        choices = self.choices()
        if not choices:
            return
        current = self.current()
        i = choices.index(current) if current in choices else -1
        self.select(choices[(i + delta) % len(choices)])

    def _current_changed(self, item: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        choice = None if item is None else item.data(ROLE)
        self._update_buttons(choice)
        if choice is not None:
            self.voice_selected.emit(choice)

    def _update_buttons(self, choice: VoiceChoice | None) -> None:
        mine = choice is not None and not choice.is_builtin
        self.rename_button.setEnabled(mine)
        self.remove_button.setEnabled(mine)

    def _ask(self, signal: Signal) -> None:
        choice = self.current()
        if choice is not None and not choice.is_builtin:
            signal.emit(choice.name)
