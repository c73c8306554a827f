"""A small chart of compute time per block against the block's time budget.

The engine keeps up only while converting a block takes less time than the block
lasts; the chart makes the margin visible at a glance: bars are recent compute
times, the dashed line is the budget, bars over it turn red (an overrun).
"""

from __future__ import annotations

from collections import deque

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

HISTORY = 120  # samples; at the panel's 10 updates/s this is the last 12 s
OVER_BUDGET = QColor(220, 60, 50)  # the level meters' red: "too much" reads the same everywhere


class LoadChart(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._samples: deque[float] = deque(maxlen=HISTORY)
        self._budget_ms = 0.0
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setAccessibleName("Compute time per block")
        self.setToolTip(
            "Time your computer needs to convert each block (bars) against the block length "
            "(dashed line). Bars must stay below the line; red bars are blocks that came too late."
        )

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(240, 44)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(80, 30)

    @property
    def samples(self) -> list[float]:
        return list(self._samples)

    def add(self, compute_ms: float, budget_ms: float) -> None:
        self._samples.append(max(0.0, compute_ms))
        self._budget_ms = max(0.0, budget_ms)
        self.update()

    def clear(self) -> None:
        self._samples.clear()
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        palette = self.palette()
        rect = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        painter.setPen(palette.color(QPalette.ColorRole.Mid))
        painter.setBrush(palette.color(QPalette.ColorRole.Base))
        painter.drawRect(rect)
        inner = rect.adjusted(2, 2, -2, -2)
        # Scale so the budget sits at 2/3 of the height: the headroom above it shows overruns.
        top_ms = max([self._budget_ms * 1.5, *self._samples, 1.0])
        bar_w = inner.width() / HISTORY
        normal = palette.color(QPalette.ColorRole.Highlight)
        start = HISTORY - len(self._samples)
        for i, ms in enumerate(self._samples):
            h = inner.height() * min(ms, top_ms) / top_ms
            x = inner.left() + (start + i) * bar_w
            color = OVER_BUDGET if self._budget_ms and ms > self._budget_ms else normal
            painter.fillRect(QRectF(x, inner.bottom() - h, max(1.0, bar_w - 0.5), h), color)
        if self._budget_ms:
            y = inner.bottom() - inner.height() * self._budget_ms / top_ms
            pen = QPen(palette.color(QPalette.ColorRole.Text))
            pen.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawLine(QPointF(inner.left(), y), QPointF(inner.right(), y))
        painter.end()
