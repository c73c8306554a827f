"""`rvclora-train` end to end on real speech with a tiny model, on the CPU.

The base, content encoder and discriminator are tiny random models in the official
file formats; the speech is the MIT-licensed recordings shipped by pytest-audioeval.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import rvclora.train.loop as loop
from rvclora.cli.main import train_main as main
from rvclora.library.voice_library import AdapterSlot, read_voice_json
from rvclora.lora import BaseInfo, check_adapter, load_adapter, model_fingerprint
from rvclora.synth.voice_file import load_voice
from rvclora.train.discriminators import DiscriminatorWidths, MultiPeriodDiscriminator, save_discriminator
from tests.conftest import speech_path
from tests.rvc_fixtures import make_voice_file
from tests.train_kit import BAD, REFERENCE, SPEECH, args, read_log


def write_bad_files(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    speech, sr = sf.read(speech_path("en/quick_brown_fox.wav"), dtype="float32")
    sf.write(folder / "silent.wav", np.zeros(sr * 2, np.float32), sr)
    sf.write(folder / "short.wav", speech[: sr // 5], sr)
    (folder / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage" + bytes(range(256)))
    sf.write(folder / "clipped.flac", np.clip(speech * 30, -1, 1), sr)
    (folder / "notes.txt").write_text("not audio: ignored")


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("RVCLORA_HOME", str(tmp_path / "home"))  # no real assets leak in


def test_training_lowers_validation_mel_loss(kit, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(kit["data"], data)
    write_bad_files(data / "bad")
    out = tmp_path / "voice" / "alice.safetensors"
    rc = main(args(kit, out, "--max-steps", "16", "--lr", "3e-3", "--eval-every", "8", "--save-every", "8", "--index", data=data))
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "epoch" in cap.err  # the progress bar
    work = out.parent / "alice.train"

    train, val = read_log(work)
    assert [r["step"] for r in train] == list(range(1, 17))
    assert [r["step"] for r in val] == [0, 8, 16]
    assert val[-1]["mel"] < 0.85 * val[0]["mel"], val  # validation mel loss falls (measured: 0.77x by step 16)
    assert all(np.isfinite([r["loss_d"], r["loss_g"], r["kl"], r["fm"], r["gen"]]).all() for r in train)

    report = json.loads((work / "report.json").read_text())
    assert report["steps"] == 16 and report["mode"] == "lora" and report["val_mel_best"] < report["val_mel_start"]
    assert report["mcd_db"] > 0 and 0 < report["spectral_convergence"] < 2 and report["steps_per_s"] > 0
    assert report["peak_memory_mb"] > 0 and report["adapter_bytes"] == out.stat().st_size
    skipped = {Path(s["path"]).name: s["reason"] for s in report["skipped_files"]}
    assert set(skipped) == set(BAD)
    for name, why in BAD.items():
        assert why in skipped[name], skipped
    assert "corrupt.wav" in (work / "preprocess_report.txt").read_text()
    assert report["train_segments"] + report["val_segments"] >= len(SPEECH)

    # the adapter: its header names exactly this base
    adapter = load_adapter(out)
    base = load_voice(kit["base"])
    info = BaseInfo("v2", 40000, True, model_fingerprint(base.model))
    assert adapter.base == info and adapter.rank == 4 and adapter.alpha == 8.0 and adapter.targets == "all"
    assert adapter.created_by == "rvclora-train"
    check_adapter(adapter, base.model, info)
    assert not any(n.startswith("enc_q") for n in adapter.lora) and not adapter.extras
    assert any(float(b.float().abs().max()) > 0 for _, b in adapter.lora.values())  # it trained

    voice = read_voice_json(out.parent)  # the voice library's own format
    assert voice.adapters == (AdapterSlot("alice.safetensors", 1.0, True),) and voice.model is None
    assert voice.defaults.f0_method == "pm" and voice.defaults.pitch == 0.0 and voice.index == "alice.index"
    assert voice.defaults.index_rate == 0.75 and voice.runnable_model == kit["base"].resolve()
    assert 150 < voice.defaults.typical_f0 < 300  # the training speakers' median pitch, for automatic pitch
    assert (out.parent / "alice.index").stat().st_size > 0
    assert list((work / "tensorboard").glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (work / "checkpoints").glob("*.pt")) == ["ckpt_00000008.pt", "ckpt_00000016.pt"]

    # never replace the user's adapter without --overwrite
    before = out.read_bytes()
    assert main(args(kit, out, "--max-steps", "1", "--no-progress", data=data)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already exists; pass --overwrite" in err
    assert out.read_bytes() == before
    # a rerun reads every feature from the cache
    assert main(args(kit, out, "--max-steps", "1", "--no-progress", "--overwrite", data=data)) == 0
    assert f"({len(SPEECH) + len(BAD)} cached, 0 processed)" in capsys.readouterr().out


def test_resume_continues_exactly(kit, reference_run, tmp_path):
    # the resumed part crosses an epoch (4 steps per epoch)
    common = REFERENCE
    ref_out = reference_run

    out = tmp_path / "run" / "a.safetensors"
    first = list(common)
    first[1] = "4"
    assert main(args(kit, out, *first)) == 0
    work = out.parent / "a.train"
    # as if killed between steps 2 and 4: the step-4 checkpoint never got written
    (work / "checkpoints" / "ckpt_00000004.pt").unlink()
    assert main(args(kit, out, *common, "--resume")) == 0

    ref_train, ref_val = read_log(ref_out.parent / "a.train")
    train, val = read_log(work)
    assert [r["step"] for r in train] == list(range(1, 7))
    assert train == ref_train  # the same loss curve, bit for bit
    assert val == ref_val
    a, b = load_adapter(ref_out), load_adapter(out)
    for name, (ra, rb) in a.lora.items():
        assert torch.equal(ra, b.lora[name][0]) and torch.equal(rb, b.lora[name][1])


def test_bad_files_only_and_empty_folder(kit, tmp_path, capsys):
    bad = tmp_path / "bad"
    write_bad_files(bad)
    out = tmp_path / "o" / "a.safetensors"
    assert main(args(kit, out, "--no-progress", data=bad)) == 2
    cap = capsys.readouterr()
    err = cap.err.strip()
    assert err.count("\n") == 0 and "no usable audio; all 4 file(s) were skipped" in err
    for name, why in BAD.items():  # each skipped file is listed with its reason
        assert any(name in line and why in line for line in cap.out.splitlines()), cap.out
    assert not out.exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(args(kit, out, "--no-progress", data=empty)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no audio files" in err


def test_full_finetune_and_released_voice_base(kit, tmp_path):
    few = ("--max-steps", "2", "--eval-every", "2", "--no-progress")
    full = tmp_path / "full" / "voice.pth"
    assert main(args(kit, full, "--full", *few)) == 0
    trained = load_voice(full)  # an official RVC voice file
    base = load_voice(kit["base"])
    assert not trained.model.has_posterior
    assert any(not torch.equal(p, base.model.state_dict()[k]) for k, p in trained.model.state_dict().items())

    # a released voice has no posterior encoder: a fresh one trains along, and is not saved
    voice = make_voice_file(tmp_path, "v2", 40000, True, seed=1)
    out = tmp_path / "v" / "a.safetensors"
    cmd = args(kit, out, *few, "--unfreeze", "emb_g.weight")
    cmd[cmd.index("--base") + 1] = str(voice)
    assert main(cmd) == 0
    adapter = load_adapter(out)
    assert set(adapter.extras) == {"emb_g.weight"} and not any("enc_q" in n for n in adapter.lora)
    loaded = load_voice(voice)
    assert adapter.base.fingerprint == model_fingerprint(loaded.model)


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--fp16",), "--fp16 needs a CUDA GPU"),
        (("--rank", "0"), "--rank 0: must be at least 1"),
        (("--targets", "nonsense.*"), "matches no"),
        (("--unfreeze", "nope.weight"), "--unfreeze"),
    ],
)
def test_bad_options_give_one_line_errors(kit, tmp_path, capsys, extra, message):
    out = tmp_path / "a.safetensors"
    assert main(args(kit, out, "--no-progress", *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err


def test_bad_files_args(kit, tmp_path, capsys):
    out = tmp_path / "a.pth"
    assert main(args(kit, out, "--no-progress")) == 2
    assert "use a .safetensors file name" in capsys.readouterr().err
    out = tmp_path / "a.safetensors"
    d_v1 = save_discriminator(tmp_path / "D1.pth", MultiPeriodDiscriminator("v1", DiscriminatorWidths.scaled(32)))
    cmd = args(kit, out, "--no-progress")
    cmd[cmd.index("--base-d") + 1] = str(d_v1)
    assert main(cmd) == 2
    assert "v1 discriminator, but the base is v2" in capsys.readouterr().err
    cmd[cmd.index("--base") + 1] = str(tmp_path / "missing.pth")
    assert main(cmd) == 2
    assert "base model not found" in capsys.readouterr().err


def test_early_stopping_keeps_the_best_weights(kit, tmp_path, monkeypatch):
    scores = iter([1.0, 1.5, 2.0, 2.5, 3.0])  # validation only ever gets worse
    real = loop.evaluate
    monkeypatch.setattr(loop, "evaluate", lambda *a, **k: (next(scores), real(*a, **k)[1][:0]))
    out = tmp_path / "a.safetensors"
    assert main(args(kit, out, "--max-steps", "10", "--eval-every", "1", "--patience", "2", "--no-progress", "--lr", "1e-2")) == 0
    report = json.loads((tmp_path / "a.train" / "report.json").read_text())
    assert report["stopped_early"] and report["steps"] == 2 and report["best_step"] == 0
    # the best weights were the untrained ones: every B is still zero
    assert all(float(b.float().abs().max()) == 0 for _, b in load_adapter(out).lora.values())
