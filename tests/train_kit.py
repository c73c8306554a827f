"""The training tests' shared kit: a tiny base, content encoder and discriminator in the official
formats, real speech in a folder, and one feature cache, built once per test session.

A pytest plugin (named in conftest.py) so every training test module gets the same kit: the
features of the speech are extracted once for the whole suite, not once per module. Also the
one reference run (6 steps) that the resume tests compare against, trained once.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from rvclora.cli.main import train_main as main
from rvclora.synth.audio_io import resample
from rvclora.train.discriminators import DiscriminatorWidths, MultiPeriodDiscriminator, save_discriminator
from tests.conftest import speech_path
from tests.hubert_fixtures import tiny_hubert_config, write_hubert_file
from tests.rvc_fixtures import make_base_file

SPEECH = [
    "en/quick_brown_fox.wav", "en/counting.wav", "en/hello_world.wav", "es/pangrama.wav", "es/conteo.wav",
    "fr/pangrama.wav", "fr/comptage.wav", "it/pangrama.wav", "it/conteggio.wav",
]
BAD = {"silent.wav": "silent", "short.wav": "too short", "corrupt.wav": "cannot decode", "clipped.flac": "clipped"}
# The reference run: 8 training segments, batch 2 in micro-batches of 1 (the same run on any
# number of processes): 4 steps per epoch, so a resume from step 2 crosses an epoch.
REFERENCE = ("--max-steps", "6", "--save-every", "2", "--eval-every", "2", "--lr", "1e-3", "--micro-batch", "1", "--no-progress")


@pytest.fixture(scope="session")
def kit(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_kit")
    data = root / "data"
    (data / "session2").mkdir(parents=True)
    for i, name in enumerate(SPEECH):
        audio, sr = sf.read(speech_path(name), dtype="float32")
        if i == 0:  # any rate and channel count: stereo 44.1 kHz FLAC
            sf.write(data / "session2" / "stereo.flac", np.stack([resample(audio, sr, 44100)] * 2, 1), 44100)
        elif i == 1:
            sf.write(data / "session2" / "take.ogg", audio, sr)
        else:
            shutil.copy(speech_path(name), data / name.replace("/", "_"))
    torch.manual_seed(0)
    d = MultiPeriodDiscriminator("v2", DiscriminatorWidths.scaled(16))
    return {
        "root": root,
        "data": data,
        "base": make_base_file(root, "v2", 40000, True, seed=0),
        "hubert": write_hubert_file(root / "hubert_base.pt", tiny_hubert_config("v2")),
        "D": save_discriminator(root / "f0D40k.pth", d),
        "cache": root / "cache",  # shared by every run: features are extracted once
    }


def args(kit, out: Path, *extra: str, data: Path | None = None) -> list[str]:
    return [
        str(data or kit["data"]), "--base", str(kit["base"]), "--base-d", str(kit["D"]), "--out", str(out),
        "--hubert", str(kit["hubert"]), "--f0-method", "pm", "--device", "cpu", "--rank", "4", "--alpha", "8",
        "--batch-size", "2", "--patience", "0", "--cache-dir", str(kit["cache"]), *extra,
    ]


def read_log(work: Path) -> tuple[list[dict], list[dict]]:
    rows = [json.loads(line) for line in (work / "losses.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == "train"], [r for r in rows if r["kind"] == "val"]


@pytest.fixture(scope="session")
def reference_run(kit, tmp_path_factory) -> Path:
    """The output adapter of one uninterrupted run with REFERENCE's settings (its log is in
    `<out>.parent / "a.train"`); tests read it, never change it."""
    root = tmp_path_factory.mktemp("reference_run")
    out = root / "one" / "a.safetensors"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RVCLORA_HOME", str(root / "home"))
        assert main(args(kit, out, *REFERENCE)) == 0
    return out
