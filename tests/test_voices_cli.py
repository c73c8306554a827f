"""`rvclora voices …` end to end in a temporary RVCLORA_HOME: the panel's library without the panel."""

from __future__ import annotations

import argparse
import json
import zipfile

import numpy as np
import pytest

from rvclora.cli.main import build_parser, main
from rvclora.library.home import Home
from rvclora.library.voice_library import VoiceLibrary
from rvclora.synth.index import build_index
from tests.cli_help import commands, undocumented
from tests.rvc_fixtures import make_adapter_file, make_voice_file


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_src")
    voice = make_voice_file(d, version="v2", sr=40000, seed=0, name="Alto.pth")
    index = build_index(np.random.default_rng(0).standard_normal((200, 768)).astype(np.float32),
                        d / "added_IVF4_Flat_nprobe_1_Alto_v2.index")
    (d / "other").mkdir()
    bass = make_voice_file(d / "other", version="v2", sr=40000, seed=4, name="Bass.pth")
    with zipfile.ZipFile(d / "Bass pack.zip", "w") as z:
        z.write(bass, "Bass/Bass.pth")
        z.writestr("__MACOSX/Bass/._Bass.pth", b"junk")
    with zipfile.ZipFile(d / "evil.zip", "w") as z:
        z.write(bass, "Bass.pth")
        z.writestr("../../escape.pth", b"x")
    adapter = make_adapter_file(voice, d / "bright.safetensors", seed=3, targets="decoder")
    return dict(voice=voice, index=index, zip=d / "Bass pack.zip", evil=d / "evil.zip", adapter=adapter)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RVCLORA_HOME", str(tmp_path / "home"))
    return Home(tmp_path / "home")


def run(capsys, *args) -> tuple[int, str, str]:
    rc = main(["voices", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_voices_end_to_end(home, src, capsys):
    rc, out, _ = run(capsys, "list")
    assert rc == 0 and "no voices" in out

    rc, out, err = run(capsys, "import", src["voice"], src["zip"])
    assert rc == 0, err
    assert "imported voice 'Alto'" in out and "added_IVF4_Flat_nprobe_1_Alto_v2.index" in out  # paired from beside it
    assert "imported voice 'Bass pack'" in out

    rc, out, err = run(capsys, "import", f"{src['adapter']}:0.5", "--to", "Alto")
    assert rc == 0 and "bright.safetensors attached to voice 'Alto' at weight 0.5" in out, err

    rc, out, _ = run(capsys, "list", "--json")
    listed = {v["name"]: v for v in json.loads(out)}
    assert set(listed) == {"Alto", "Bass pack"}
    assert listed["Alto"]["index"] == "added_IVF4_Flat_nprobe_1_Alto_v2.index"
    assert listed["Alto"]["adapters"][0]["weight"] == 0.5
    # the CLI and the panel see one library
    assert [e.name for e in VoiceLibrary(home).list()] == ["Alto", "Bass pack"]

    rc, out, _ = run(capsys, "show", "Alto")
    shown = json.loads(out)
    assert rc == 0 and shown["version"] == "v2" and shown["sample_rate"] == 40000 and shown["embedder"] == "contentvec"
    assert shown["vocoder"] == "HiFi-GAN" and shown["content_encoder"] == {"path": str(home.hubert), "present": False}

    rc, out, _ = run(capsys, "rename", "Bass pack", "Bass")
    assert rc == 0 and (home.voices / "Bass" / "voice.json").is_file() and not (home.voices / "Bass pack").exists()

    # the same file again, a hostile bundle, a refused link: one-line errors, nothing changes
    before = sorted(p.relative_to(home.root) for p in home.root.rglob("*"))
    for args, expected in (
        ((src["voice"],), "already in the library as voice 'Alto'"),
        ((src["evil"],), "outside the archive"),
        (("file:///etc/passwd",), "only https"),
        (("http://10.0.0.1/a.pth",), "only https"),
        (("https://10.0.0.1/a.pth",), "private network"),
        ((src["index"],), "--to VOICE"),
    ):
        rc, out, err = run(capsys, "import", *args)
        assert rc == 2 and expected in err and err.count("\n") == 1, (args, err)
    assert sorted(p.relative_to(home.root) for p in home.root.rglob("*")) == before

    rc, _, err = run(capsys, "remove", "Alto")  # not a terminal: asks for --yes instead of deleting
    assert rc == 2 and "--yes" in err and (home.voices / "Alto").is_dir()
    rc, out, _ = run(capsys, "remove", "Alto", "--yes")
    assert rc == 0 and not (home.voices / "Alto").exists()
    assert src["voice"].is_file()  # the user's original stays
    rc, _, err = run(capsys, "show", "Alto")
    assert rc == 2 and "no voice named 'Alto'" in err


def test_every_voices_action_and_option_says_what_it_does():
    voices = next(a for a in build_parser("voices")._actions if isinstance(a, argparse._SubParsersAction)).choices["voices"]
    assert commands(voices) >= {"list", "import", "remove", "rename", "show"}
    assert undocumented(voices, "rvclora voices") == []
