"""Zip bundles and indexes found by name: what people download, imported safely into the library."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rvclora.library.home import Home
from rvclora.library.index_pairing import name_score, pair_index
from rvclora.library.voice_bundle import BundleError, BundleLimits
from rvclora.library.voice_import import import_source
from rvclora.library.voice_library import VoiceLibrary, VoiceLibraryError
from rvclora.synth.index import build_index
from tests.rvc_fixtures import make_voice_file

ALTO_INDEX = "added_IVF4_Flat_nprobe_1_Alto_v2.index"


def _index(path: Path, dim: int, seed: int, rows: int = 200) -> Path:
    return build_index(np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32), path)


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    d = tmp_path_factory.mktemp("bundle_src")
    voice = make_voice_file(d, version="v2", sr=40000, seed=0, name="Alto.pth")
    other = make_voice_file(d, version="v2", sr=40000, seed=5, name="Bass.pth")
    return dict(
        voice=voice,
        other=other,
        index=_index(d / ALTO_INDEX, 768, 0),
        old_index=_index(d / "added_IVF8_Flat_nprobe_1_Alto-old_v2.index", 768, 1, rows=300),
        bass_index=_index(d / "added_IVF4_Flat_nprobe_1_Bass_v2.index", 768, 2),
        v1_index=_index(d / "added_IVF4_Flat_nprobe_1_Alto_v1.index", 256, 3),
    )


@pytest.fixture
def home(tmp_path):
    return Home(tmp_path / "home")


@pytest.fixture
def library(home):
    return VoiceLibrary(home)


def _zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members:
            z.writestr(name, data)
    return path


def _left_in_home(home: Home) -> list[str]:
    return sorted(str(p.relative_to(home.root)) for p in home.root.rglob("*")) if home.root.exists() else []


def test_a_typical_rvc_zip_becomes_one_voice_with_the_right_index(library, home, src, tmp_path):
    bundle = _zip(tmp_path / "Alto Voice.zip", [
        ("Alto/Alto.pth", src["voice"].read_bytes()),
        (f"Alto/{ALTO_INDEX}", src["index"].read_bytes()),
        ("Alto/old/added_IVF8_Flat_nprobe_1_Alto-old_v2.index", src["old_index"].read_bytes()),
        ("__MACOSX/Alto/._Alto.pth", b"\x00\x05\x16\x07 resource fork"),
        ("Alto/.DS_Store", b"junk"),
        ("Alto/readme.txt", b"made with RVC"),
    ])
    report = import_source(library, bundle)
    (entry,) = report.voices
    assert entry.name == "Alto Voice"  # a one-voice bundle is named after the zip
    assert entry.model_path.read_bytes() == src["voice"].read_bytes()
    assert entry.index_path.read_bytes() == src["index"].read_bytes()  # by name, not the bigger old one
    notes = "\n".join(report.notes)
    assert "added_IVF8_Flat_nprobe_1_Alto-old_v2.index" in notes and "not attached" in notes
    assert "readme.txt" in notes and "__MACOSX" not in notes and ".DS_Store" not in notes
    # only the voice's folder was written: no staging, no debris
    assert _left_in_home(home) == sorted(["voices", "voices/Alto Voice", "voices/Alto Voice/Alto.pth",
                                          f"voices/Alto Voice/{ALTO_INDEX}", "voices/Alto Voice/voice.json"])
    assert library.get("Alto Voice").index == ALTO_INDEX


def test_the_panel_path_create_takes_a_zip(library, src, tmp_path):
    bundle = _zip(tmp_path / "pack.zip", [("a/Alto.pth", src["voice"].read_bytes()), ("b/Bass.pth", src["other"].read_bytes()),
                                          (f"a/{ALTO_INDEX}", src["index"].read_bytes()),
                                          ("b/added_IVF4_Flat_nprobe_1_Bass_v2.index", src["bass_index"].read_bytes())])
    entry = library.create(bundle)
    assert entry.name == "Alto"
    names = {e.name: e for e in library.list()}
    assert set(names) == {"Alto", "Bass"}
    assert names["Alto"].index_path.read_bytes() == src["index"].read_bytes()
    assert names["Bass"].index_path.read_bytes() == src["bass_index"].read_bytes()


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = 0o120777 << 16
    return info


@pytest.mark.parametrize(
    "member, data, reason",
    [
        ("../../x", b"payload", "outside the archive"),
        ("Alto/../../../x.pth", b"payload", "outside the archive"),
        ("/tmp/evil.pth", b"payload", "absolute path"),
        ("C:/evil.pth", b"payload", "absolute path"),
        (_symlink("Alto/link.pth"), b"/etc/passwd", "symbolic link"),
        ("Alto/added_IVF1_Flat_nprobe_1_bomb_v2.index", bytes(3 << 20), "zip bomb"),
    ],
)
def test_hostile_members_refuse_the_bundle_and_leave_nothing(library, home, src, tmp_path, member, data, reason):
    bundle = _zip(tmp_path / "evil.zip", [("Alto/Alto.pth", src["voice"].read_bytes()), (member, data)])
    with pytest.raises(BundleError) as exc:
        import_source(library, bundle)
    assert reason in str(exc.value) and "\n" not in str(exc.value)
    assert library.list() == []
    assert [p for p in _left_in_home(home) if p != "voices"] == []
    for escaped in (tmp_path / "x", tmp_path.parent / "x", tmp_path.parent.parent / "x", Path("/tmp/evil.pth")):
        assert not escaped.exists()


def test_an_oversized_member_is_refused_before_it_is_expanded(library, home, src, tmp_path):
    bundle = _zip(tmp_path / "big.zip", [("Alto.pth", src["voice"].read_bytes())], compression=zipfile.ZIP_STORED)
    size = src["voice"].stat().st_size
    with pytest.raises(BundleError, match="over the .*-byte cap"):
        import_source(library, bundle, limits=BundleLimits(max_member_bytes=size - 1))
    assert [p for p in _left_in_home(home) if p != "voices"] == []
    # the same bundle under the cap imports
    assert import_source(library, bundle, limits=BundleLimits(max_member_bytes=size)).voices[0].name == "big"


def test_a_zip_name_a_voice_cannot_have_is_made_usable(library, src, tmp_path):
    bundle = _zip(tmp_path / 'Alto: "live" v2?.zip', [("Alto.pth", src["voice"].read_bytes())])
    assert import_source(library, bundle).voices[0].name == "Alto_ _live_ v2"


def test_a_zip_with_no_voice_is_refused(library, home, src, tmp_path):
    bundle = _zip(tmp_path / "empty.zip", [(ALTO_INDEX, src["index"].read_bytes()), ("notes.txt", b"hi")])
    with pytest.raises(VoiceLibraryError, match="no voice model"):
        import_source(library, bundle)
    assert [p for p in _left_in_home(home) if p != "voices"] == []


def test_a_refused_second_voice_undoes_the_first(library, home, src, tmp_path):
    bundle = _zip(tmp_path / "half.zip", [("Alto.pth", src["voice"].read_bytes()), ("Broken.pth", b"PK\x03\x04 not a model")])
    with pytest.raises(VoiceLibraryError):
        import_source(library, bundle)
    assert library.list() == [] and [p for p in _left_in_home(home) if p != "voices"] == []


def test_a_damaged_zip_is_one_line(library, tmp_path):
    bad = tmp_path / "cut.zip"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(BundleError, match="not a readable zip"):
        import_source(library, bad)


def test_an_index_next_to_a_loose_voice_is_paired_by_name_and_width(library, src):
    # src holds: Alto (v2) and Bass voices, Alto v2 / Alto-old v2 / Bass v2 / Alto v1 indexes
    report = import_source(library, src["voice"])
    (entry,) = report.voices
    assert entry.index_path.read_bytes() == src["index"].read_bytes()
    notes = "\n".join(report.notes)
    assert "Alto-old_v2.index" in notes  # the other candidate is listed
    assert "Alto_v1.index" in notes and "256-d" in notes  # wrong width: listed as unusable, never attached
    assert "Bass" not in notes  # another voice's index lying beside it is none of its business

def test_a_loose_voice_gets_no_index_named_for_another(library, src, tmp_path):
    for f in (src["index"], src["bass_index"]):
        shutil.copy(f, tmp_path / f.name)
    zed = shutil.copy(src["other"], tmp_path / "Zed.pth")
    (entry,) = import_source(library, Path(zed)).voices
    assert entry.index is None


def test_index_names_score_like_rvc_names_them(src):
    applio = Path("Alto_300e_9000s.pth")
    assert name_score(applio, "v2", Path(ALTO_INDEX)) > name_score(applio, "v2", Path("added_IVF8_Flat_nprobe_1_Bass_v2.index"))
    assert name_score(Path("Alto.pth"), "v2", Path(ALTO_INDEX)) > name_score(Path("Alto.pth"), "v1", Path(ALTO_INDEX))
    choice = pair_index(src["other"], "v2", [src["index"], src["bass_index"], src["v1_index"]])
    assert choice.best == src["bass_index"] and choice.others == (src["index"],) and len(choice.unfit) == 1
    # no name match at all: the larger fitting index wins, never one of the wrong width
    choice = pair_index(Path("Zed.pth"), "v2", [src["index"], src["old_index"], src["v1_index"]])
    assert choice.best == src["old_index"]
