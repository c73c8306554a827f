"""The box under the voice list that appears while the shared model files are missing:
their true size, Download with a per-byte progress bar and Cancel, and, when the Hub
cannot be reached, a dialog with every missing file and where to save it (selectable text).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QMessageBox, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ..library.assets import Asset
from .asset_jobs import size_text


class AssetBar(QFrame):
    download_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.button = QPushButton("Download models")
        self.button.setToolTip("Downloads the content encoder (HuBERT) and the RMVPE pitch tracker from Hugging Face.")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the download; the next Download continues where it stopped.")
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        # After a failed download: a dialog with every file to fetch by hand and where it goes
        # (selectable for copying), and a button here to open it again.
        self.details = QMessageBox(self)
        self.details.setIcon(QMessageBox.Icon.Warning)
        self.details.setWindowTitle("Download the model files by hand")
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setTextFormat(Qt.TextFormat.PlainText)
        self.details.setWindowModality(Qt.WindowModality.NonModal)
        self.details_button = QPushButton("Get them by hand\u2026")
        self.details_button.setToolTip("Which files to download yourself, from where, and where to save them.")
        self.details_button.setVisible(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.button, 1)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(self.progress)
        layout.addLayout(buttons)
        layout.addWidget(self.details_button)
        self.button.clicked.connect(self.download_requested)
        self.details_button.clicked.connect(self.details.show)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.setVisible(False)

    def show_missing(self, missing: list[Asset]) -> None:
        self.setVisible(bool(missing))
        if missing:
            names = " and ".join(a.repo_path for a in missing)
            self.text.setText(
                f"Your own RVC voices need {names} ({size_text(missing)} to download). "
                "Built-in voices work without them."
            )
        else:
            self.details.hide()
            self.details_button.setVisible(False)

    def set_downloading(self, on: bool) -> None:
        self.button.setEnabled(not on)
        self.cancel_button.setVisible(on)
        self.cancel_button.setEnabled(on)
        self.progress.setVisible(on)
        if on:
            self.details.hide()
            self.progress.setRange(0, 0)  # until the Hub says how much

    def show_progress(self, done_kb: int, total_kb: int, name: str) -> None:
        self.progress.setRange(0, max(1, total_kb))
        self.progress.setValue(min(done_kb, total_kb))
        self.progress.setFormat(f"{name}: {done_kb / 1000:.1f} of {total_kb / 1000:.1f} MB")

    def show_details(self, reason: str, text: str) -> None:
        self.details.setText(f"The download failed: {reason}")
        self.details.setInformativeText(text)
        self.details_button.setVisible(True)
        self.details.show()
