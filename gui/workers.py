"""Run slow work (model loading, downloads, device scans) off the UI thread.

The panel must never freeze: anything that can take more than a few milliseconds
goes through `Workers.submit`, which runs it on a QThreadPool and delivers the
result, a one-line error, or progress back on the UI thread through queued signals.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from ..errors import UserError


def one_line(error: BaseException) -> str:
    """What the status line shows for an error: our own errors already speak to the user;
    anything else is a bug, so name its type to make the report useful."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, UserError) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _Signals(QObject):
    # Created on the UI thread, emitted from the worker: Qt queues the calls back to the UI thread.
    done = Signal(object)
    failed = Signal(str)
    progress = Signal(int, int, str)


class Task(QRunnable):
    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict, with_progress: bool) -> None:
        super().__init__()
        self.setAutoDelete(False)  # Workers drops its reference when the task reports back
        self.signals = _Signals()
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self._with_progress = with_progress

    def run(self) -> None:
        kwargs = dict(self._kwargs)
        if self._with_progress:
            kwargs["progress"] = lambda done, total, text="": self.signals.progress.emit(int(done), int(total), str(text))
        try:
            result = self._fn(*self._args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - every failure must become a message, never kill the app
            self.signals.failed.emit(one_line(error))
        else:
            self.signals.done.emit(result)


class Workers(QObject):
    """A small thread pool whose tasks report back on the UI thread; `busy` says how many run."""

    busy_changed = Signal(int)

    def __init__(self, parent: QObject | None = None, max_threads: int = 4) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._running: set[Task] = set()

    @property
    def busy(self) -> int:
        return len(self._running)

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None] | None = None,
        on_failed: Callable[[str], None] | None = None,
        on_progress: Callable[[int, int, str], None] | None = None,
        **kwargs: Any,
    ) -> Task:
        """Run `fn(*args, **kwargs)` on the pool; with `on_progress`, `fn` gets a `progress(done, total, text)`."""
        task = Task(fn, args, kwargs, with_progress=on_progress is not None)
        if on_progress is not None:
            task.signals.progress.connect(on_progress)
        task.signals.done.connect(lambda result: self._finish(task, on_done, result))
        task.signals.failed.connect(lambda message: self._finish(task, on_failed, message))
        self._running.add(task)
        self.busy_changed.emit(self.busy)
        self.pool.start(task)
        return task

    def _finish(self, task: Task, callback: Callable[[Any], None] | None, value: Any) -> None:
        self._running.discard(task)
        self.busy_changed.emit(self.busy)
        if callback is not None:
            callback(value)

    def wait(self, msecs: int = 10_000) -> bool:
        """Block until the running tasks end (used when the window closes)."""
        return self.pool.waitForDone(msecs)
