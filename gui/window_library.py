"""The window's library side: import (menu, button, drag and drop), rename and remove.

A mixin of `MainWindow`; the file work runs on the worker pool (`library_jobs`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from ..library.voice_library import VoiceLibraryError
from .library_jobs import ImportResult, import_into_library, sort_files
from .panel_model import LIBRARY
from .voice_choice import IMPORTABLE_SUFFIXES, VoiceChoice
from .workers import one_line


class LibraryActions:
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
        files = sort_files(paths)
        models, extras = files.models, files.extras
        if files.unsupported:
            more = len(files.unsupported) - 1
            self.show_error(files.unsupported[0][1] + (f" (and {more} more)" if more else ""), topic=LIBRARY)
        if extras and not models and self.entry is None:
            self.show_error("select one of your voices first: a .index or adapter file is added to a voice", topic=LIBRARY)
            extras = []
        if not models and not extras:
            return
        target = self.entry.name if self.entry is not None else None
        self.show_message(f"Importing {len(models) + len(extras)} file(s)\u2026", topic=LIBRARY)
        self.workers.submit(
            import_into_library, self.library, models, extras, target,
            on_done=self._imported,
            on_failed=lambda m: self.show_error(m, topic=LIBRARY),
        )

    def _imported(self, result: ImportResult) -> None:
        select, done, errors = result.select, result.done, result.errors
        if result.unverified and self.entry is not None and self._use_unverified(result.unverified):
            target = self.entry.name
            self.workers.submit(
                import_into_library, self.library, [], [p for p, _ in result.unverified], target, force=True,
                on_done=self._imported,
                on_failed=lambda m: self.show_error(m, topic=LIBRARY),
            )
        elif result.unverified:
            errors = errors + [why for _, why in result.unverified]
        self.refresh_voices()
        if select is not None:
            self.voice_list.select(VoiceChoice("library", select))
            if self.entry is not None and self.entry.name == select:
                # The selected voice got a new index or adapter: show it, and use it if running.
                self.select_voice(VoiceChoice("library", select))
        if errors:
            self.show_error(errors[0] + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""), topic=LIBRARY)
        elif done:
            self.show_message("Added " + ", ".join(done), topic=LIBRARY)

    def _use_unverified(self, unverified: list[tuple[Path, str]]) -> bool:
        """Ask before attaching adapters whose base cannot be checked (made by another tool)."""
        names = ", ".join(p.name for p, _ in unverified)
        return self._confirm(
            "Adapter for an unknown base",
            f"{names} cannot be checked against this voice's base (it was made by another tool, or for another "
            "copy of the base). Its shapes fit. Use it anyway?",
        )

    def _confirm(self, title: str, text: str) -> bool:
        """Yes/Cancel, Cancel the default: nothing the user made is changed without a Yes."""
        answer = QMessageBox.question(
            self, title, text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes

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
            self.show_error(one_line(e), topic=LIBRARY)
            return
        if self.entry is not None and self.entry.name == name:
            self.voice, self.entry = VoiceChoice("library", entry.name), entry
            self.state = replace(self.state, voice=self.voice.key)
            self._schedule_save()
        self.refresh_voices()
        self.voice_list.select(VoiceChoice("library", entry.name), emit=False)
        self.show_message(f"Renamed \u201c{name}\u201d to \u201c{entry.name}\u201d", topic=LIBRARY)

    def remove_voice(self, name: str) -> None:
        if not self._confirm(
            "Remove voice",
            f"Remove the voice \u201c{name}\u201d and delete its files from rvclora's library?\n\n"
            "The files you originally imported are not touched.",
        ):
            return
        removing_current = self.entry is not None and self.entry.name == name
        if removing_current:
            self._voice_save_timer.stop()
            if self._engine_state.active:
                self.stop_engine()
        try:
            self.library.remove(name)
        except (VoiceLibraryError, OSError) as e:
            self.show_error(one_line(e), topic=LIBRARY)
            return
        if removing_current:
            self.voice, self.entry = None, None
        self.refresh_voices()
        if removing_current:
            self._select_initial_voice()
        self.show_message(f"Removed \u201c{name}\u201d", topic=LIBRARY)

    # Drag and drop, anywhere on the window. Every local file is accepted, so that dropping
    # one rvclora cannot use says why instead of silently bouncing back.
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        if any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt API
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.import_files(paths)
