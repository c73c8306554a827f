"""The bar across the top: Start, Passthrough, level meters, the compute readout and chart,
and the "too heavy" notice with its one-click fix.

It only shows what it is given (`show_stats`, `show_overload`); the window decides.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from .engine_link import EngineStats
from .load_chart import LoadChart
from .meters import LevelMeter
from .overload import Overload

DELAY_TIP = (
    "The delay the conversion itself adds: block + crossfade + a 10 ms search for the best join. "
    "Your sound devices add a little more."
)


class TransportBar(QFrame):
    apply_block_requested = Signal(int)  # the overload notice's "Use N ms blocks"
    measure_requested = Signal()  # "Measure delay"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.start_button = QPushButton("Start")
        self.start_button.setMinimumWidth(self.start_button.fontMetrics().horizontalAdvance("Starting\u2026") + 40)
        self.start_button.setDefault(True)
        self.start_button.setToolTip("Start or stop changing your voice (Ctrl+Enter).")
        self.passthrough = QPushButton("Passthrough")
        self.passthrough.setCheckable(True)
        self.passthrough.setToolTip(
            "Send your own voice through unchanged, to check levels and routing in Discord or OBS (Ctrl+P)."
        )
        self.in_meter = LevelMeter("Input")
        self.out_meter = LevelMeter("Output")
        meters = QGridLayout()
        meters.setContentsMargins(0, 0, 0, 0)
        for row, (text, meter) in enumerate((("In", self.in_meter), ("Out", self.out_meter))):
            label = QLabel(text)
            label.setToolTip(meter.toolTip())
            meters.addWidget(label, row, 0)
            meters.addWidget(meter, row, 1)
        meters.setColumnStretch(1, 1)

        self.chart = LoadChart()
        self.compute_label = QLabel()
        self.compute_label.setToolTip(self.chart.toolTip())
        self.overrun_label = QLabel()
        self.overrun_label.setToolTip(
            "Blocks that took longer to convert than they last, and sound-card hiccups. If these climb, "
            "make the block longer or pick a lighter pitch tracker."
        )
        self.delay_label = QLabel()
        self.delay_label.setToolTip(DELAY_TIP)
        self.measure_button = QPushButton("Measure delay")
        self.measure_button.setToolTip(
            "Play short probe bursts through the running voice's own path and time their return "
            "(about 3 s). Needs the output to reach the input, e.g. the virtual microphone's monitor."
        )
        self.measure_button.setEnabled(False)
        self.measure_button.clicked.connect(self.measure_requested)
        readout = QVBoxLayout()
        readout.setSpacing(0)
        for label in (self.compute_label, self.overrun_label, self.delay_label):
            readout.addWidget(label)
        readout.addWidget(self.measure_button)

        # The notice when the voice is too heavy: says so plainly and offers the fix.
        self.overload_text = QLabel()
        self.overload_text.setWordWrap(True)
        self.overload_button = QPushButton()
        self.overload_button.setToolTip("Make the blocks this long: more delay, but the voice keeps up.")
        self.overload_button.clicked.connect(self._apply_suggestion)
        self.overload_box = QFrame()
        self.overload_box.setFrameShape(QFrame.Shape.StyledPanel)
        box = QHBoxLayout(self.overload_box)
        box.setContentsMargins(6, 4, 6, 4)
        box.addWidget(self.overload_text, 1)
        box.addWidget(self.overload_button)
        self.overload_box.setVisible(False)
        self._suggested: int | None = None

        top = QHBoxLayout()
        top.addWidget(self.start_button)
        top.addWidget(self.passthrough)
        top.addSpacing(8)
        top.addLayout(meters, 3)
        top.addSpacing(8)
        top.addLayout(readout)
        top.addWidget(self.chart, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addWidget(self.overload_box)

    @property
    def overload_shown(self) -> bool:
        return self.overload_box.isVisibleTo(self)

    def show_stats(self, stats: EngineStats | None, block_ms: int, idle_delay_ms: int, *, delay_valid: bool = True) -> None:
        """The readout; None (stopped) empties the meters and the chart."""
        if stats is None:
            self.in_meter.reset()
            self.out_meter.reset()
            self.chart.clear()
            self.compute_label.setText(f"Compute: \u2014 of {block_ms} ms")
            self.overrun_label.setText("Overruns: \u2014")
            self.delay_label.setText(f"Delay: {idle_delay_ms} ms")
            self.measure_button.setEnabled(False)
            return
        self.measure_button.setEnabled(not stats.waiting_for)
        self.in_meter.set_level(stats.input_db)
        self.out_meter.set_level(stats.output_db)
        self.compute_label.setText(
            f"Compute: {stats.compute_p50_ms:.1f} of {stats.budget_ms:.0f} ms (p95 {stats.compute_p95_ms:.1f})"
        )
        lost = f"  \u00b7  Dropouts {stats.dropouts} ({stats.dropout_ms:.0f} ms)" if stats.dropouts else ""
        lost += f"  \u00b7  Skipped {stats.skipped_ms:.0f} ms" if stats.skipped_ms >= 1 else ""
        lost += f"  \u00b7  Trimmed {stats.trimmed_ms:.0f} ms" if stats.trimmed_ms >= 1 else ""
        lost += f"  \u00b7  Limiter \u2212{stats.limiter_db:.1f} dB" if stats.limiter_db >= 0.1 else ""
        lost += f"  \u00b7  Silenced {stats.silenced_blocks} (NaN)" if stats.silenced_blocks else ""
        self.overrun_label.setText(f"Overruns: {stats.overruns}  \u00b7  Glitches: {stats.glitches}{lost}")
        self.overrun_label.setToolTip(
            f"Output clock {stats.drift_ppm:+.0f} ppm against the input's, corrected sample by sample at quiet points. "
            "Dropouts: gaps heard (the output ran dry, or the device reported an overflow/underflow), with the "
            "silence they left; skipped: input dropped because conversion fell behind; trimmed: output backlog "
            "cut with a fade; limiter: how far the true-peak limiter turned loud peaks down; silenced: blocks "
            "with invalid numbers replaced by silence."
        )
        if stats.waiting_for:
            self.delay_label.setText(f"Waiting for {stats.waiting_for}\u2026")
        elif delay_valid:
            measured = "" if stats.measured_latency_ms is None else f", measured {stats.measured_latency_ms:.0f} ms"
            self.delay_label.setText(
                f"Delay: {stats.algorithmic_latency_ms:.0f} ms conversion, \u2248{stats.latency_ms:.0f} ms in all{measured}"
            )
        else:
            self.delay_label.setText(f"Delay: not achievable ({stats.algorithmic_latency_ms:.0f} ms only if it kept up)")
        if stats.blocks:
            self.chart.add(stats.compute_ms, stats.budget_ms)

    def show_overload(self, overload: Overload | None) -> None:
        self.overload_box.setVisible(overload is not None)
        if overload is None:
            self._suggested = None
            return
        self.overload_text.setText(f"\u26a0 {overload.message()}")
        self._suggested = overload.suggested_block_ms
        self.overload_button.setVisible(overload.suggested_block_ms is not None)
        if overload.suggested_block_ms is not None:
            self.overload_button.setText(f"Use {overload.suggested_block_ms} ms blocks")

    def _apply_suggestion(self) -> None:
        if self._suggested is not None:
            self.apply_block_requested.emit(self._suggested)
