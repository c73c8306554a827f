"""The window's training side: open "Train a voice", find running trainings again on start,
and show a trained voice in the list when it arrives.  A mixin of `MainWindow`."""

from __future__ import annotations

from .panel_model import LIBRARY
from .train_dialog import TrainDialog
from .training_runs import active_runs
from .voice_choice import VoiceChoice


class TrainingActions:
    train_dialog: TrainDialog | None = None

    def open_training(self, name: str | None = None) -> TrainDialog:
        if self.train_dialog is None:
            self.train_dialog = TrainDialog(self.home, self)
            self.train_dialog.voice_ready.connect(self._voice_trained)
        if name is not None:
            self.train_dialog.attach(name)
        self.train_dialog.show()
        self.train_dialog.raise_()
        return self.train_dialog

    def reattach_training(self) -> None:
        """A training started before the panel was (re)opened: show its progress again."""
        runs = active_runs(self.home)
        if runs:
            self.open_training(runs[0].name)

    def _voice_trained(self, name: str) -> None:
        self.refresh_voices()
        if self.voice_list.select(VoiceChoice("library", name)):
            self.show_message(f"Trained voice '{name}' added to your library", topic=LIBRARY)
