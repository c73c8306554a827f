"""A labelled slider that shows its value with units, and the specs of the panel's sliders.

QSlider only knows integers; `SliderSpec` maps its positions to real values in
fixed steps, so every position is a value the engine accepts (block lengths in
whole 10 ms frames, for instance).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QSlider, QWidget


@dataclass(frozen=True)
class SliderSpec:
    key: str
    label: str
    minimum: float
    maximum: float
    step: float
    fmt: Callable[[float], str]
    tooltip: str
    off_at_minimum: bool = False  # the leftmost position reads "Off" (the engine treats it so)

    def position(self, value: float) -> int:
        value = min(max(value, self.minimum), self.maximum)
        return round((value - self.minimum) / self.step)

    def value(self, position: int) -> float:
        return round(self.minimum + position * self.step, 6)

    @property
    def positions(self) -> int:
        return round((self.maximum - self.minimum) / self.step)

    def text(self, value: float) -> str:
        return "Off" if self.off_at_minimum and value <= self.minimum else self.fmt(value)


def _signed(unit: str, digits: int = 0) -> Callable[[float], str]:
    # A minus sign, not a hyphen, and a plus on positive values: "+12 st" reads as "up".
    return lambda v: f"{v:+.{digits}f} {unit}".replace("-", "\u2212") if v else f"0 {unit}"


def _percent(v: float) -> str:
    return f"{round(v * 100)} %"


PITCH = SliderSpec(
    "pitch", "Pitch", -24, 24, 1, _signed("st"),
    "Moves your voice up or down, in semitones. +12 is one octave up (a typical male to female "
    "change), \u221212 one octave down.",
)
FORMANT = SliderSpec(
    "formant", "Formant", -5, 5, 0.5, _signed("st", 1),
    "Changes how big the speaker sounds without changing the note: up sounds smaller and brighter, "
    "down bigger and darker.",
)
INDEX_RATE = SliderSpec(
    "index_rate", "Voice detail", 0, 1, 0.05, _percent,
    "How much of the voice's own recorded timbre (its .index file) to blend in. Higher sounds more "
    "like the target voice but uses more CPU and can blur words. Does nothing if the voice has no index.",
)
# The engine's gate is off at -60 dB (as in RVC); above -10 dB it would mute normal speech.
NOISE_GATE = SliderSpec(
    "threshold_db", "Noise gate", -60, -10, 1, lambda v: f"{v:.0f} dB".replace("-", "\u2212"),
    "Sounds quieter than this are muted, so breathing, fans and keyboard clicks don't come out as a "
    "voice. Leftmost is off. Raise it until the output stays silent while you don't speak.",
    off_at_minimum=True,
)
# Off at the left; otherwise the strength of the neural denoiser on the microphone (engine's denoise_input).
DENOISE = SliderSpec(
    "denoise", "Noise removal", 0, 1, 0.05, _percent,
    "Removes background noise (fans, keyboard, traffic) from your microphone before conversion, "
    "instead of only muting it. Adds about 30 ms of delay and some CPU. Leftmost is off; 100 % removes "
    "all it can, lower values leave a little room sound. Needs the optional denoise package.",
    off_at_minimum=True,
)
AUTOTUNE = SliderSpec(
    "autotune", "Autotune", 0, 1, 0.05, _percent,
    "Pulls your pitch onto the nearest musical note: 100 % snaps it exactly (the robotic effect), "
    "lower values only nudge it. Leftmost is off.",
    off_at_minimum=True,
)
# The engine's rms_mix_rate is 1 = the model's own loudness, 0 = follow the input; users think
# the other way round ("follow how loud I speak"), so the slider shows 1 - rms_mix_rate.
LOUDNESS = SliderSpec(
    "follow_loudness", "Follow my loudness", 0, 1, 0.05, _percent,
    "100 % makes the voice as loud or quiet as you speak, moment by moment. 0 % keeps the voice "
    "model's own loudness.",
)
# The engine's output limiter: -1 dBTP by default; the panel offers the useful top of the
# settings' -60…0 range.
CEILING = SliderSpec(
    "ceiling_db", "Loudest peak", -24, 0, 0.5, lambda v: f"{v:.1f} dB".replace("-", "\u2212"),
    "No peak of the output goes above this (a true-peak limiter), however loud the input or the "
    "voice gets. Quieter sound passes untouched.",
)
BLOCK = SliderSpec(
    "block_ms", "Block length", 20, 500, 10, lambda v: f"{v:.0f} ms",
    "How much of your voice is converted at a time. Shorter means less delay but needs a faster "
    "computer: if you hear crackles or the overrun count goes up, make it longer.",
)
CROSSFADE = SliderSpec(
    "crossfade_ms", "Crossfade", 10, 40, 10, lambda v: f"{v:.0f} ms",
    "How long each converted piece blends into the next, which hides the joins. Longer is smoother "
    "and adds that much delay.",
)


class SettingSlider(QObject):
    """[label] [slider] [value] for one setting; emits `changed(value)` on every move.

    A QObject holding three widgets rather than a widget, so `SliderGrid` can line up the
    labels, sliders and values of a whole group in columns.
    """

    changed = Signal(object)

    def __init__(self, spec: SliderSpec, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.spec = spec
        self.label = QLabel(spec.label)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, spec.positions)
        self.slider.setPageStep(max(1, spec.positions // 10))
        self.slider.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.slider.setMinimumWidth(70)
        self.slider.setAccessibleName(spec.label)
        self.label.setBuddy(self.slider)
        self.value_label = QLabel()
        self.value_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        # Wide enough for the longest text this slider can show, so the slider never jumps.
        texts = [spec.text(spec.value(p)) for p in range(0, spec.positions + 1)]
        metrics = self.value_label.fontMetrics()
        self.value_label.setMinimumWidth(max(metrics.horizontalAdvance(t) for t in texts) + 6)
        for widget in (self.label, self.slider, self.value_label):
            widget.setToolTip(spec.tooltip)
        self.slider.valueChanged.connect(self._moved)
        self._show(self.value())

    def widgets(self) -> tuple[QWidget, QWidget, QWidget]:
        return self.label, self.slider, self.value_label

    def value(self) -> float:
        return self.spec.value(self.slider.value())

    def set_value(self, value: float, *, emit: bool = False) -> None:
        """Move the slider; by default silently, so loading a voice does not echo back as a change."""
        blocked = self.slider.blockSignals(not emit)
        self.slider.setValue(self.spec.position(value))
        self.slider.blockSignals(blocked)
        self._show(self.value())

    def set_maximum_value(self, maximum: float) -> None:
        """Limit the range (e.g. crossfade to the block length); Qt clamps the current value and says so."""
        self.slider.setMaximum(self.spec.position(maximum))

    def set_enabled(self, enabled: bool) -> None:
        for widget in self.widgets():
            widget.setEnabled(enabled)

    def set_visible(self, visible: bool) -> None:
        """Hide the whole row: a setting that does not apply is not shown at all."""
        for widget in self.widgets():
            widget.setVisible(visible)

    def is_visible_to(self, ancestor: QWidget) -> bool:
        return self.slider.isVisibleTo(ancestor)

    def _moved(self, position: int) -> None:
        value = self.spec.value(position)
        self._show(value)
        self.changed.emit(value)

    def _show(self, value: float) -> None:
        self.value_label.setText(self.spec.text(value))


class SliderGrid(QWidget):
    """Sliders in aligned columns: labels left, sliders stretching, values right."""

    def __init__(self, sliders: list[SettingSlider], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setColumnStretch(1, 1)
        for row, slider in enumerate(sliders):
            slider.setParent(self)
            for column, widget in enumerate(slider.widgets()):
                self.grid.addWidget(widget, row, column)

    def add_row(self, label: QWidget, field: QWidget) -> None:
        """A non-slider row (a combo box, a note) spanning the slider and value columns."""
        row = self.grid.rowCount()
        self.grid.addWidget(label, row, 0)
        self.grid.addWidget(field, row, 1, 1, 2)
