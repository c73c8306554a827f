"""The box under the voice list that appears while the shared model files are missing:
their true size, Download with a per-byte progress bar and Cancel, and, when the Hub
cannot be reached, every missing file with where to save it, as selectable text.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ..synth.assets import Asset
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
        # Shown after a failed download: the files to fetch by hand, selectable for copying.
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setVisible(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.button, 1)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(self.progress)
        layout.addLayout(buttons)
        layout.addWidget(self.details)
        self.button.clicked.connect(self.download_requested)
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
            self.details.setVisible(False)

    def set_downloading(self, on: bool) -> None:
        self.button.setEnabled(not on)
        self.cancel_button.setVisible(on)
        self.cancel_button.setEnabled(on)
        self.progress.setVisible(on)
        if on:
            self.details.setVisible(False)
            self.progress.setRange(0, 0)  # until the Hub says how much

    def show_progress(self, done_kb: int, total_kb: int, name: str) -> None:
        self.progress.setRange(0, max(1, total_kb))
        self.progress.setValue(min(done_kb, total_kb))
        self.progress.setFormat(f"{name}: {done_kb / 1000:.1f} of {total_kb / 1000:.1f} MB")

    def show_details(self, text: str) -> None:
        self.details.setText(text)
        self.details.setVisible(True)
