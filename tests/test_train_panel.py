"""Train a voice from the panel: a folder in, progress out, the panel closed and reopened
mid-run, a cancel that keeps the checkpoint, and the voice in the library at the end.

The training is a real child process (`rvclora.train.job`) on a tiny base, content
encoder and discriminator in the official formats, with real speech.
"""

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any QApplication exists

import shutil
import signal

import numpy as np
import pytest
import soundfile as sf
import torch

from rvclora.gui.training_runs import read_run
from rvclora.library.voice_library import VoiceLibrary
from rvclora.train.discriminators import DiscriminatorWidths, MultiPeriodDiscriminator, save_discriminator
from tests.conftest import speech_path
from tests.hubert_fixtures import tiny_hubert_config, write_hubert_file
from tests.rvc_fixtures import make_base_file
from tests.test_gui import home as home
from tests.test_gui import open_window

SPEECH = ["en/quick_brown_fox.wav", "en/counting.wav", "en/hello_world.wav", "es/pangrama.wav", "fr/pangrama.wav", "it/pangrama.wav"]
STEPS = 6


@pytest.fixture
def kit(home, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    home.ensure()
    base = home.pretrained("G")
    base.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(make_base_file(tmp_path, "v2", 40000, True, seed=0), base)
    torch.manual_seed(0)
    save_discriminator(home.pretrained("D"), MultiPeriodDiscriminator("v2", DiscriminatorWidths.scaled(16)))
    write_hubert_file(home.hubert, tiny_hubert_config("v2"))
    data = tmp_path / "recordings"
    data.mkdir()
    for name in SPEECH:
        shutil.copy(speech_path(name), data / name.replace("/", "_"))
    sf.write(data / "silent.wav", np.zeros(32000, np.float32), 16000)
    return data


def test_train_a_voice_from_the_panel_survives_reopening_and_cancel(qtbot, home, kit):
    window = open_window(qtbot, home)
    dialog = window.open_training()
    assert dialog.base.text() == str(home.pretrained("G"))  # the downloaded base is the default
    dialog.folder.setText(str(kit))
    dialog.name.setText("Mia")
    dialog.steps.setValue(STEPS)
    dialog.start_button.click()
    assert not dialog.start_button.isEnabled() and dialog.cancel_button.isEnabled()

    # the preprocessing report names the skipped file and why
    qtbot.waitUntil(lambda: "silent.wav" in dialog.report.toPlainText(), timeout=120_000)
    assert "skipped" in dialog.report.toPlainText() and "silent" in dialog.report.toPlainText()
    qtbot.waitUntil(lambda: (dialog.run.state.get("step") or 0) >= 1, timeout=120_000)
    assert "left" in dialog.status.text() and "loss" in dialog.status.text()

    # close the panel mid-run: the training goes on; a new panel finds it again. The job is paused
    # meanwhile, so it is still mid-run however long the panel takes to reopen on a loaded machine.
    job = int(dialog.run.state["pid"])
    os.kill(job, signal.SIGSTOP)
    try:
        window.close()
        window = open_window(qtbot, home)
        dialog = window.train_dialog
        assert dialog is not None and dialog.isVisible() and dialog.run.name == "Mia"
        assert dialog.folder.text() == str(kit) and dialog.steps.value() == STEPS and not dialog.start_button.isEnabled()
        step_seen = dialog.run.state["step"]
    finally:
        os.kill(job, signal.SIGCONT)
    qtbot.waitUntil(lambda: dialog.run.state.get("step", 0) > step_seen, timeout=60_000)  # it still trains

    # cancel: the run stops after a checkpoint of the step it was on
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: dialog.run.phase == "cancelled", timeout=60_000)
    stopped_at = dialog.run.state["step"]
    assert 1 <= stopped_at < STEPS and "Start resumes" in dialog.status.text()
    assert (dialog.run.folder / "work" / "checkpoints" / f"ckpt_{stopped_at:08d}.pt").is_file()
    assert "Mia" not in [e.name for e in VoiceLibrary(home).list()]

    # Start again resumes from there and ends with the voice in the library, selected
    dialog.start_button.click()
    qtbot.waitUntil(lambda: dialog.run.phase == "done", timeout=400_000)
    log = (dialog.run.folder / "log.txt").read_text()
    assert f"resuming at step {stopped_at}" in log
    entry = VoiceLibrary(home).get("Mia")
    assert entry.active_adapters() and entry.runnable_model == home.pretrained("G").resolve()
    qtbot.waitUntil(lambda: window.voice is not None and window.voice.name == "Mia", timeout=5000)
    assert "Mia" in [c.name for c in window.voice_list.choices()]
    assert read_run(home, "Mia").state["step"] == STEPS
