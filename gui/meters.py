"""A horizontal level meter in dBFS with a falling peak marker.

The bar colours are fixed green / yellow / red on purpose: every audio tool uses
them, so they read the same in a dark or a light theme. Everything else (the
trough, the marks) comes from the palette.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QRectF, QSize
from PySide6.QtGui import QColor, QLinearGradient, QPainter, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

FLOOR_DB = -60.0
YELLOW_DB = -18.0
RED_DB = -6.0
PEAK_FALL_DB_PER_UPDATE = 1.5  # at 10 updates/s the peak marker falls 15 dB/s, like a common PPM


class LevelMeter(QWidget):
    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._db = FLOOR_DB
        self._peak_db = FLOOR_DB
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setAccessibleName(f"{name} level")
        self._update_tooltip()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(160, 14)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(60, 10)

    @property
    def level_db(self) -> float:
        return self._db

    @property
    def peak_db(self) -> float:
        return self._peak_db

    def reset(self) -> None:
        """Empty, peak marker included (the engine stopped: nothing is playing)."""
        self._db = self._peak_db = FLOOR_DB
        self._update_tooltip()
        self.update()

    def set_level(self, db: float | None) -> None:
        """The current level in dBFS; None (no signal, engine stopped) empties the meter."""
        db = FLOOR_DB if db is None or not math.isfinite(db) else max(FLOOR_DB, min(0.0, db))
        self._db = db
        self._peak_db = max(db, self._peak_db - PEAK_FALL_DB_PER_UPDATE)
        self._update_tooltip()
        self.update()

    def _update_tooltip(self) -> None:
        level = "silent" if self._db <= FLOOR_DB else f"{self._db:.0f} dBFS".replace("-", "\u2212")
        self.setToolTip(
            f"{self.name} level: {level}. Speak normally: it should move into the yellow now and then "
            "and never stay in the red."
        )

    def _x(self, db: float, width: float) -> float:
        return width * (db - FLOOR_DB) / -FLOOR_DB

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        rect = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        palette = self.palette()
        painter.setPen(palette.color(QPalette.ColorRole.Mid))
        painter.setBrush(palette.color(QPalette.ColorRole.Base))
        painter.drawRect(rect)
        inner = rect.adjusted(1.5, 1.5, -1.5, -1.5)
        width = inner.width()
        gradient = QLinearGradient(inner.left(), 0, inner.right(), 0)
        gradient.setColorAt(0.0, QColor(46, 170, 80))
        gradient.setColorAt(self._x(YELLOW_DB, 1.0), QColor(46, 170, 80))
        gradient.setColorAt(self._x(YELLOW_DB, 1.0) + 0.01, QColor(230, 190, 40))
        gradient.setColorAt(self._x(RED_DB, 1.0), QColor(230, 190, 40))
        gradient.setColorAt(self._x(RED_DB, 1.0) + 0.01, QColor(220, 60, 50))
        gradient.setColorAt(1.0, QColor(220, 60, 50))
        if self._db > FLOOR_DB:
            painter.fillRect(QRectF(inner.left(), inner.top(), self._x(self._db, width), inner.height()), gradient)
        if self._peak_db > FLOOR_DB:
            x = inner.left() + self._x(self._peak_db, width)
            painter.setPen(palette.color(QPalette.ColorRole.Text))
            painter.drawLine(int(x), int(inner.top()), int(x), int(inner.bottom()))
        # Marks at -18 and -6 dB so "into the yellow" means something even when silent.
        painter.setPen(palette.color(QPalette.ColorRole.Mid))
        for db in (YELLOW_DB, RED_DB):
            x = inner.left() + self._x(db, width)
            painter.drawLine(int(x), int(inner.bottom() - 3), int(x), int(inner.bottom()))
        painter.end()

