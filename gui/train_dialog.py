""""Train a voice": a folder of recordings, a base and a name in; a library voice out.

The dialog starts the training process and then only watches its job folder
(see `training_runs`), so it can be closed, the panel too, and opened again to
find the run where it is.  Cancel asks the job to checkpoint and stop; Start on
the same name later resumes from that checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..library.home import Home
from ..library.voice_library import VoiceLibraryError, check_name
from .training_runs import TrainingRun, cancel_run, read_run, start_run

POLL_MS = 300
DEFAULT_STEPS = 2000


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "\u2026"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _path_row(edit: QLineEdit, browse: QPushButton) -> QWidget:
    row = QWidget()
    lay = QHBoxLayout(row)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(edit, 1)
    lay.addWidget(browse)
    return row


class TrainDialog(QDialog):
    voice_ready = Signal(str)  # the name of a voice that has just arrived in the library

    def __init__(self, home: Home, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.home = home
        self.run: TrainingRun | None = None
        self._announced = False
        self.setWindowTitle("Train a voice")

        self.folder = QLineEdit()
        self.folder.setPlaceholderText("a folder of recordings of one speaker (5-30 minutes)")
        self.base = QLineEdit()
        base = home.pretrained("G")
        self.base.setText(str(base) if base.is_file() else "")
        self.base.setPlaceholderText("pretrained base G*.pth (its D*.pth next to it is used too)")
        self.name = QLineEdit()
        self.name.setPlaceholderText("the new voice's name")
        self.steps = QSpinBox()
        self.steps.setRange(1, 1_000_000)
        self.steps.setValue(DEFAULT_STEPS)
        browse_folder, browse_base = QPushButton("Browse\u2026"), QPushButton("Browse\u2026")
        browse_folder.clicked.connect(self._browse_folder)
        browse_base.clicked.connect(self._browse_base)
        form = QFormLayout()
        form.addRow("Recordings", _path_row(self.folder, browse_folder))
        form.addRow("Base model", _path_row(self.base, browse_base))
        form.addRow("Voice name", self.name)
        form.addRow("Training steps", self.steps)

        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setPlaceholderText("The preprocessing report (files used, files skipped and why) appears here.")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        self.start_button = QPushButton("Start training")
        self.cancel_button = QPushButton("Cancel training")
        self.cancel_button.setToolTip("Stops after the current step and keeps a checkpoint: Start resumes it later.")
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.start_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.close)

        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(QLabel("Preprocessing"))
        lay.addWidget(self.report, 1)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(buttons)

        self.timer = QTimer(self, interval=POLL_MS)
        self.timer.timeout.connect(self.poll)
        self._show_buttons()
        self.resize(560, 440)

    # ------------------------------------------------------------------ actions

    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder of recordings", self.folder.text() or str(Path.home()))
        if path:
            self.folder.setText(path)
            if not self.name.text():
                self.name.setText(Path(path).name)

    def _browse_base(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Base model", self.base.text() or str(self.home.assets), "RVC models (*.pth)")
        if path:
            self.base.setText(path)

    def _problem(self) -> str | None:
        folder, base, name = Path(self.folder.text().strip()), Path(self.base.text().strip()), self.name.text().strip()
        if not self.folder.text().strip() or not folder.is_dir():
            return "choose the folder of recordings"
        if not self.base.text().strip() or not base.is_file():
            return "choose the base model (a pretrained G*.pth; Download shared models fetches one)"
        try:
            check_name(name)
        except VoiceLibraryError as e:
            return str(e)
        if self.home.voice_dir(name).exists():
            return f"a voice named '{name}' is already in the library; choose another name"
        return None

    def start(self) -> None:
        problem = self._problem()
        if problem:
            self.status.setText(problem)
            return
        name = self.name.text().strip()
        try:
            self.run = start_run(self.home, name, Path(self.folder.text().strip()), Path(self.base.text().strip()), steps=self.steps.value())
        except (ValueError, OSError) as e:
            self.status.setText(str(e).splitlines()[0])
            return
        self._announced = False
        self.report.clear()
        self.status.setText("Starting\u2026")
        self.timer.start()
        self._show_buttons()

    def attach(self, name: str) -> bool:
        """Show the run of voice `name` (after the panel was reopened); False if there is none."""
        run = read_run(self.home, name)
        if run is None:
            return False
        self.run = run
        self.name.setText(name)
        s = run.state
        for edit, key in ((self.folder, "data"), (self.base, "base")):
            if s.get(key):
                edit.setText(str(s[key]))
        if s.get("total"):
            self.steps.setValue(int(s["total"]))
        self._announced = run.phase == "done"
        self.timer.start()
        self.poll()
        return True

    def cancel(self) -> None:
        if self.run is not None:
            cancel_run(self.run)
            self.status.setText("Cancelling after the current step (a checkpoint is kept)\u2026")

    # ------------------------------------------------------------------ watching

    def poll(self) -> None:
        if self.run is None:
            return
        run = read_run(self.home, self.run.name) or self.run
        self.run = run
        s = run.state
        if s.get("preprocess_report"):
            text = str(s["preprocess_report"]).rstrip()
            if self.report.toPlainText() != text:
                self.report.setPlainText(text)
        step, total = int(s.get("step") or 0), int(s.get("total") or 0)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(step, max(total, 1)))
        phase = run.phase
        if phase in ("starting", "preprocessing"):
            self.status.setText("Preparing the recordings (cut, filter, features)\u2026")
        elif phase == "training":
            loss = "" if s.get("loss") is None else f" \u00b7 loss {s['loss']:.3f} \u00b7 mel {s['mel']:.3f}"
            self.status.setText(f"Step {step} of {total}{loss} \u00b7 {_duration(s.get('eta_s'))} left")
        elif phase == "finishing":
            self.status.setText("Measuring the result and adding the voice to your library\u2026")
        elif phase == "done":
            self.status.setText(f"Voice '{run.name}' is ready in your library.")
        elif phase == "cancelled":
            self.status.setText(f"Cancelled at step {step}; the checkpoint is kept: Start resumes it.")
        elif phase == "failed":
            self.status.setText(f"Training failed: {s.get('error') or run.log_tail}")
        if not run.finished and not run.running:
            self.status.setText(f"The training process ended unexpectedly: {run.log_tail or 'see log.txt'}")
            self.timer.stop()
        if run.finished:
            self.timer.stop()
            if phase == "done" and not self._announced:
                self._announced = True
                self.voice_ready.emit(run.name)
        self._show_buttons()

    def _show_buttons(self) -> None:
        busy = self.run is not None and not self.run.finished and self.run.running
        self.start_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        for w in (self.folder, self.base, self.name, self.steps):
            w.setEnabled(not busy)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.timer.stop()  # the training goes on: reopening the dialog finds it again
        super().closeEvent(event)
