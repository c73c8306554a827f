"""The panel as a new user meets it: a voice too heavy for the computer, getting the model
files, and the small things (title, stale messages, hidden settings, drops, narrow screens).

Offscreen, with the stand-in engine of test_gui.py; downloads go to a local fake Hub.
"""

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any QApplication exists

import socket

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent
from PySide6.QtWidgets import QAbstractButton, QApplication, QComboBox, QLabel, QSlider, QWidget

from rvclora.gui import engine_link
from rvclora.gui.meters import FLOOR_DB
from rvclora.library.assets import HUBERT, RMVPE
from rvclora.library.voice_library import VoiceDefaults, VoiceLibrary
from tests.stand_in_engines import SlowEngine
from tests.test_assets import serve_hub
from tests.test_gui import WARN, _drop, open_window, select, wait_state
from tests.test_gui import home as home
from tests.test_gui import voice_files as voice_files

# --------------------------------------------------------------------------- item 2: too heavy


def test_voice_too_heavy_says_so_offers_a_block_that_keeps_up_and_fixes_it_in_one_click(qtbot, home):
    window = open_window(qtbot, home, factory=SlowEngine)
    window.start_engine()
    wait_state(qtbot, window, "running")
    qtbot.wait(1500)
    assert not window.transport.overload_shown  # one slow second is not yet "too heavy"
    qtbot.waitUntil(lambda: window.transport.overload_shown, timeout=8000)
    text = window.transport.overload_text.text()
    assert "too heavy for this computer at 60 ms blocks" in text and "150 ms" in text
    # The shortest block whose predicted compute fits with a quarter to spare: 220 ms (checked by hand:
    # 150 * (1040 + 220) / 1100 * 1.25 = 214.8 <= 220, while 210 ms would need 213.1).
    assert window.transport.overload_button.text() == "Use 220 ms blocks"
    assert "not achievable" in window.delay_label.text() and "not achievable" in window.latency_label.text()
    assert window.engine_state == "running"

    window.transport.overload_button.click()
    engine = window.link.engine
    assert engine.settings.block_ms == 220 and window.block.value() == 220 and window.settings.block_ms == 220
    assert not window.transport.overload_shown and "not achievable" not in window.latency_label.text()
    qtbot.wait(4500)  # the longer block keeps up: the notice stays away
    assert not window.transport.overload_shown and "not achievable" not in window.delay_label.text()


# --------------------------------------------------------------------------- item 3: model files


@pytest.fixture
def hub():
    yield from serve_hub({a.repo_path: f"{a.name} weights ".encode() * 20_000 for a in (HUBERT, RMVPE)})


@pytest.fixture
def hub_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_TOKEN", "")


def test_start_needing_a_missing_file_fails_at_once_pointing_at_the_download_button(qtbot, home, voice_files, monkeypatch):
    loads = []
    monkeypatch.setattr(engine_link, "load_voice", lambda spec: loads.append(spec) or ("source", spec.name))
    VoiceLibrary(home).create(voice_files.voice, defaults=VoiceDefaults(f0_method="auto"))
    window = open_window(qtbot, home)
    assert window.asset_bar.isVisibleTo(window) and "371 MB" in window.asset_bar.text.text()  # the true size
    select(window, "library", "Alto")
    qtbot.waitUntil(lambda: window.workers.busy == 0, timeout=10000)  # the voice note's file read
    window.start_engine()
    assert window.engine_state == "stopped" and loads == [] and window.workers.busy == 0  # at once, nothing loaded
    status = window.status_label.text()
    assert WARN in status and "hubert_base.pt" in status and "Download models" in status
    assert "rvclora assets" not in status and "--hubert" not in status

    # "auto" runs on Praat without rmvpe.pt: with the content encoder there, it starts.
    home.hubert.write_bytes(b"")
    window.start_engine()
    wait_state(qtbot, window, "running")
    window.stop_engine()
    wait_state(qtbot, window, "stopped")
    window.f0_method.setCurrentIndex(window.f0_method.findData("rmvpe"))  # RMVPE chosen: rmvpe.pt is needed
    assert "rmvpe.pt" in window.status_label.text() and "Download models" in window.status_label.text()  # said at once
    window.status_clear("assets")
    window.start_engine()
    assert window.engine_state == "stopped" and "rmvpe.pt" in window.status_label.text() and len(loads) == 1


def test_offline_download_lists_every_missing_file_with_where_it_goes(qtbot, home, hub_env, monkeypatch):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", closed)
    window = open_window(qtbot, home)
    window.asset_bar.button.click()
    details = window.asset_bar.details  # a dialog: the whole list, not a cut-off status line
    qtbot.waitUntil(details.isVisible, timeout=20000)
    assert details.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse  # can be copied
    assert "cannot reach" in details.text()
    for asset in (HUBERT, RMVPE):
        assert str(asset.local_path(home)) in details.informativeText() and asset.url(closed) in details.informativeText()
    assert WARN in window.status_label.text() and "by hand" in window.status_label.text()
    assert window.asset_bar.button.isEnabled()  # try again later
    details.close()
    window.asset_bar.details_button.click()  # and the list can be opened again
    assert details.isVisible()


def test_download_shows_bytes_can_be_cancelled_and_resumes(qtbot, home, hub, hub_env, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setattr("huggingface_hub.constants.DOWNLOAD_CHUNK_SIZE", 1024)
    hub.seconds_per_kb = 0.01  # about 7 s for both files: time to cancel
    window = open_window(qtbot, home)
    bar = window.asset_bar
    total_kb = sum(len(b) for b in hub.files.values()) // 1000
    bar.button.click()
    qtbot.waitUntil(lambda: bar.progress.value() > 20, timeout=15000)
    assert bar.progress.maximum() == total_kb and "MB" in bar.progress.format()  # bytes of the Hub's true total
    assert bar.cancel_button.isVisibleTo(window)
    bar.cancel_button.click()
    qtbot.waitUntil(lambda: window.workers.busy == 0, timeout=15000)
    assert "cancelled" in window.status_label.text().lower() and WARN not in window.status_label.text()
    assert not home.hubert.exists() and bar.isVisibleTo(window) and not bar.cancel_button.isVisibleTo(window)

    hub.seconds_per_kb = 0.0
    bar.button.click()
    qtbot.waitUntil(lambda: not bar.isVisibleTo(window), timeout=20000)
    assert home.hubert.read_bytes() == hub.files["hubert_base.pt"] and home.rmvpe.read_bytes() == hub.files["rmvpe.pt"]
    assert "downloaded" in window.status_label.text()


# --------------------------------------------------------------------------- item 7: papercuts


def test_window_title_does_not_repeat_the_application_name(qtbot, home):
    app = QApplication.instance()
    app.setApplicationDisplayName("rvclora")  # as `rvclora` sets it
    try:
        window = open_window(qtbot, home)
        title = window.windowTitle()
        # Qt appends " — rvclora" to any title that does not already end with it.
        assert title.count("rvclora") <= 1 and (title.endswith("rvclora") or "rvclora" not in title), title
    finally:
        app.setApplicationDisplayName("")


def test_stale_status_is_cleared_and_refresh_reports(qtbot, home, voice_files):
    VoiceLibrary(home).create(voice_files.voice)
    window = open_window(qtbot, home)
    select(window, "library", "Alto")
    window.start_engine()  # refused: no content encoder yet
    assert WARN in window.status_label.text()
    select(window, "builtin", "deep")  # that message was about the other voice
    assert window.status_label.text() == ""

    window.devices.refresh_button.click()
    qtbot.waitUntil(lambda: "Found" in window.status_label.text(), timeout=15000)
    assert "microphone" in window.status_label.text() and "output" in window.status_label.text()


def test_crossfade_comes_back_when_the_block_grows_again(qtbot, home):
    window = open_window(qtbot, home)
    assert window.settings.crossfade_ms == 30
    window.block.slider.setValue(window.block.spec.position(20))
    assert window.settings.crossfade_ms == 20 and window.crossfade.value() == 20
    window.block.slider.setValue(window.block.spec.position(100))
    assert window.settings.crossfade_ms == 30 and window.crossfade.value() == 30  # what the user had chosen
    assert "<b>140 ms</b>" in window.latency_label.text()


def test_settings_that_do_not_apply_are_hidden(qtbot, home, voice_files):
    VoiceLibrary(home).create(voice_files.voice)
    window = open_window(qtbot, home)
    select(window, "builtin", "deep")
    assert not window.f0_method.isVisibleTo(window) and not window.f0_label.isVisibleTo(window)
    assert not window.index_rate.slider.isVisibleTo(window) and not window.adapters_group.isVisibleTo(window)
    assert window.pitch.slider.isVisibleTo(window)
    select(window, "library", "Alto")  # no .index: voice detail does nothing
    assert window.f0_method.isVisibleTo(window) and window.adapters_group.isVisibleTo(window)
    assert not window.index_rate.slider.isVisibleTo(window)


def test_dropping_an_unsupported_file_says_why(qtbot, home, tmp_path):
    window = open_window(qtbot, home)
    song = tmp_path / "my voice.mp3"
    song.write_bytes(b"ID3")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(song))])
    enter = QDragEnterEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dragEnterEvent(enter)
    assert enter.isAccepted()  # not bounced back in silence
    _drop(window, [song])
    status = window.status_label.text()
    assert WARN in status and "my voice.mp3" in status and "audio file" in status


def test_meters_and_chart_reset_on_stop(qtbot, home):
    window = open_window(qtbot, home)
    window.start_engine()
    wait_state(qtbot, window, "running")
    qtbot.waitUntil(lambda: len(window.chart.samples) > 2 and window.in_meter.peak_db > FLOOR_DB, timeout=5000)
    window.stop_engine()
    wait_state(qtbot, window, "stopped")
    assert window.chart.samples == []
    for meter in (window.in_meter, window.out_meter):
        assert meter.level_db == FLOOR_DB and meter.peak_db == FLOOR_DB  # the peak marker too


def _clipped(window: QWidget) -> list[str]:
    """Visible widgets squeezed below their minimum, labels whose text is cut, overlapping siblings."""
    problems = []
    widgets = [w for w in window.findChildren(QWidget) if w.isVisibleTo(window) and w.window() is window]
    for w in widgets:
        if isinstance(w, (QAbstractButton, QComboBox, QSlider, QLabel)) and w.width() < w.minimumSizeHint().width() - 1:
            problems.append(f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r}: {w.width()} < {w.minimumSizeHint().width()}")
        if (isinstance(w, QLabel) and not w.wordWrap() and w.text() and "<" not in w.text()
                and w.fontMetrics().horizontalAdvance(w.text()) > w.contentsRect().width() + 1):
            problems.append(f"label {w.text()!r} cut: {w.contentsRect().width()} px")
    for parent in {w.parentWidget() for w in widgets}:
        kids = [w for w in widgets if w.parentWidget() is parent and not w.isWindow() and w.width() > 0]
        for i, a in enumerate(kids):
            for b in kids[i + 1 :]:
                overlap = a.geometry().intersected(b.geometry())
                if (overlap.width() > 1 and overlap.height() > 1
                        and not (a.geometry().contains(b.geometry()) or b.geometry().contains(a.geometry()))):
                    problems.append(f"{type(a).__name__} overlaps {type(b).__name__}")
    return problems


def test_fits_beside_discord_on_a_1366_px_screen(qtbot, home, voice_files):
    VoiceLibrary(home).create(voice_files.voice)
    window = open_window(qtbot, home)
    for kind, name in (("builtin", "deep"), ("library", "Alto")):
        select(window, kind, name)
        # A library voice's settings arrive from a file read on a worker; the window grows to fit once
        # they are laid out, so the minimum is taken for each voice after that.
        qtbot.waitUntil(lambda: window.workers.busy == 0, timeout=10000)
        qtbot.wait(50)
        minimum = window.minimumSizeHint().expandedTo(window.minimumSize())
        assert minimum.width() <= 800 and minimum.height() <= 600, minimum
        window.resize(minimum)
        qtbot.wait(50)
        assert window.width() <= 800
        assert _clipped(window) == [], (kind, _clipped(window))
        voices = window.voice_list.list
        assert not voices.horizontalScrollBar().isVisible()
        rows = [voices.visualItemRect(voices.item(i)) for i in range(voices.count())]
        assert all(voices.viewport().rect().contains(r) for r in rows[:9]), "the voice list is squeezed"
        for column in (window.voice_group, window.devices, window.block.slider, window.crossfade.slider, window.latency_label):
            visible = column.visibleRegion().boundingRect()
            assert visible.size() == column.size(), f"{type(column).__name__} is cut at the minimum size"
