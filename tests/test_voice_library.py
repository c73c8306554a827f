"""The voice library in RVCLORA_HOME: import, attach, rename, remove — and never lose a user's file."""

import json

import numpy as np
import pytest

from rvclora.lora import AdapterError
from rvclora.synth.home import Home
from rvclora.synth.index import build_index
from rvclora.synth.voice_adapters import load_checked_adapters, parse_adapter_spec
from rvclora.synth.voice_file import VoiceFileError, load_voice
from rvclora.synth.voice_library import VoiceDefaults, VoiceLibrary, VoiceLibraryError, read_voice_json
from rvclora.tests.rvc_fixtures import make_adapter_file, make_voice_file


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("lib_src")
    voice = make_voice_file(d, version="v2", sr=40000, seed=0, name="Alto.pth")
    other = make_voice_file(d, version="v1", sr=48000, seed=1, name="Other.pth")
    adapter = make_adapter_file(voice, d / "bright.safetensors", seed=3, targets="decoder")
    index = build_index(np.random.default_rng(0).standard_normal((200, 768)).astype(np.float32), d / "added_test.index")
    return dict(voice=voice, other=other, adapter=adapter, index=index)


@pytest.fixture
def library(tmp_path):
    return VoiceLibrary(Home(tmp_path / "home"))


def test_import_voice_with_index_and_adapter(library, files):
    entry = library.create(files["voice"], defaults=VoiceDefaults(pitch=12, index_rate=0.5))
    assert entry.name == "Alto" and entry.model_path.read_bytes() == files["voice"].read_bytes()
    assert files["voice"].exists()  # the user's original stays where it was
    library.add_index("Alto", files["index"])
    entry = library.add_adapter("Alto", files["adapter"], weight=0.7)
    again = library.get("Alto")
    assert again == entry
    assert again.defaults.pitch == 12 and again.index_path.is_file()
    assert again.active_adapters() == [(again.folder / "bright.safetensors", 0.7)]
    data = json.loads((again.folder / "voice.json").read_text())
    assert data["format"] == "rvclora-voice" and data["adapters"][0]["weight"] == 0.7
    # the adapter applies to the stored model
    voice = load_voice(again.model_path)
    (adapter, weight), = load_checked_adapters(voice, again.active_adapters())
    assert weight == 0.7 and adapter.lora


def test_names_never_collide(library, files):
    first = library.create(files["voice"])
    second = library.create(files["voice"])
    assert (first.name, second.name) == ("Alto", "Alto (2)")
    with pytest.raises(VoiceLibraryError, match="already exists"):
        library.rename("Alto (2)", "alto")
    renamed = library.rename("Alto (2)", "Soprano")
    assert renamed.folder.name == "Soprano" and read_voice_json(renamed.folder).name == "Soprano"
    assert [e.name for e in library.list()] == ["Alto", "Soprano"]
    library.remove("Soprano")
    assert [e.name for e in library.list()] == ["Alto"]


def test_bad_files_are_refused_before_anything_is_copied(library, files, tmp_path):
    corrupt = tmp_path / "Broken.pth"
    corrupt.write_bytes(files["voice"].read_bytes()[:2000])
    with pytest.raises(VoiceFileError):
        library.create(corrupt)
    with pytest.raises(VoiceLibraryError, match=".pth or .onnx"):
        library.create(files["index"])
    assert library.list() == []
    library.create(files["other"])
    with pytest.raises(AdapterError, match="made for base"):
        library.add_adapter("Other", files["adapter"])  # made for the v2 40k voice
    with pytest.raises(VoiceLibraryError, match="not a usable voice name"):
        library.create(files["voice"], name="a/b")
    assert library.get("Other").adapters == ()


def test_a_damaged_voice_json_is_reported_not_fatal(library, files):
    entry = library.create(files["voice"])
    (entry.folder / "voice.json").write_text("{not json")
    assert library.list() == []
    (problem,) = library.problems()
    assert "not valid JSON" in problem


@pytest.mark.parametrize(
    "spec, expected",
    [("a.safetensors", ("a.safetensors", 1.0)), ("a.safetensors:0.5", ("a.safetensors", 0.5)), ("C:/x/a.safetensors", ("C:/x/a.safetensors", 1.0)),
     (r"C:\v\a.safetensors:2", (r"C:\v\a.safetensors", 2.0))],
)
def test_adapter_specs(spec, expected):
    path, weight = parse_adapter_spec(spec)
    assert (str(path), weight) == expected


def test_adapter_spec_with_bad_weight():
    with pytest.raises(AdapterError, match="must be a number"):
        parse_adapter_spec("a.safetensors:loud")


def test_a_trained_voice_folder_is_a_library_voice_on_its_base(library, files):
    from rvclora.synth.voice_library import AdapterSlot, VoiceEntry, write_voice_json

    folder = library.root / "alice"
    folder.mkdir(parents=True)
    (folder / "alice.safetensors").write_bytes(files["adapter"].read_bytes())
    write_voice_json(VoiceEntry(name="alice", folder=folder, base=str(files["voice"]), adapters=(AdapterSlot("alice.safetensors"),)))
    (entry,) = library.list()
    assert entry.model_path is None and entry.runnable_model == files["voice"]
    assert entry.active_adapters() == [(folder / "alice.safetensors", 1.0)]
