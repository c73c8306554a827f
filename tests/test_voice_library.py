"""The voice library in RVCLORA_HOME: import, attach, rename, remove — and never lose a user's file."""

import json
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from safetensors import safe_open

from rvclora.export.onnx_export import export_onnx
from rvclora.library.home import Home
from rvclora.library.voice_library import (
    AdapterSlot,
    AlreadyInLibraryError,
    VoiceDefaults,
    VoiceEntry,
    VoiceLibrary,
    VoiceLibraryError,
    read_voice_json,
    write_voice_json,
)
from rvclora.lora import AdapterError, AdapterWarning
from rvclora.synth.index import build_index
from rvclora.synth.onnx_backend import OnnxSynthesizer
from rvclora.synth.onnx_voice import OnnxVoiceError
from rvclora.synth.pitch_options import resolve_f0_method
from rvclora.synth.voice_adapters import load_checked_adapters, parse_adapter_spec
from rvclora.synth.voice_file import VoiceFileError, load_voice
from tests.rvc_fixtures import make_adapter_file, make_foreign_adapter_file, make_voice_file


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("lib_src")
    voice = make_voice_file(d, version="v2", sr=40000, seed=0, name="Alto.pth")
    other = make_voice_file(d, version="v1", sr=48000, seed=1, name="Other.pth")
    (d / "b").mkdir()
    namesake = make_voice_file(d / "b", version="v2", sr=40000, seed=2, name="Alto.pth")  # same name, other voice
    adapter = make_adapter_file(voice, d / "bright.safetensors", seed=3, targets="decoder")
    index = build_index(np.random.default_rng(0).standard_normal((200, 768)).astype(np.float32), d / "added_test.index")
    foreign = make_foreign_adapter_file(adapter, d / "foreign.safetensors")
    return dict(voice=voice, other=other, namesake=namesake, adapter=adapter, foreign=foreign, index=index)


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
    second = library.create(files["namesake"])
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

    folder = library.root / "alice"
    folder.mkdir(parents=True)
    (folder / "alice.safetensors").write_bytes(files["adapter"].read_bytes())
    write_voice_json(VoiceEntry(name="alice", folder=folder, base=str(files["voice"]), adapters=(AdapterSlot("alice.safetensors"),)))
    (entry,) = library.list()
    assert entry.model_path is None and entry.runnable_model == files["voice"]
    assert entry.active_adapters() == [(folder / "alice.safetensors", 1.0)]


def test_an_imported_voice_picks_its_pitch_method_like_the_cli(library, files):
    entry = library.create(files["voice"])  # as the panel imports: no defaults given
    assert entry.defaults.f0_method == "auto" and read_voice_json(entry.folder).defaults.f0_method == "auto"
    rmvpe = library.root.parent / "assets" / "rmvpe.pt"
    assert resolve_f0_method(entry.defaults.f0_method, rmvpe) == "pm"  # no rmvpe.pt: Praat, no weights needed
    rmvpe.parent.mkdir(parents=True)
    rmvpe.write_bytes(b"x")
    assert resolve_f0_method(entry.defaults.f0_method, rmvpe) == "rmvpe"


def test_random_bytes_named_onnx_are_refused(library, tmp_path):
    junk = tmp_path / "Junk.onnx"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(OnnxVoiceError) as err:
        library.create(junk)
    message = str(err.value)
    assert "\n" not in message and "cannot load" in message
    assert "rvclora-export --model VOICE.pth --streaming --out Junk.onnx" in message
    assert library.list() == [] and not (library.root / "Junk").exists()


def test_a_file_already_in_the_library_is_not_copied_again(library, files, tmp_path):
    library.create(files["voice"], name="Mine")
    renamed = tmp_path / "copy of alto.pth"
    renamed.write_bytes(files["voice"].read_bytes())
    with pytest.raises(AlreadyInLibraryError, match="already in the library as voice 'Mine'") as err:
        library.create(renamed)
    assert err.value.voice == "Mine"
    assert [e.name for e in library.list()] == ["Mine"]
    library.add_adapter("Mine", files["adapter"])
    with pytest.raises(AlreadyInLibraryError, match="already attached to voice 'Mine'"):
        library.add_adapter("Mine", files["adapter"])
    assert len(library.get("Mine").adapters) == 1
    assert sorted(p.name for p in library.get("Mine").folder.iterdir()) == ["Alto.pth", "bright.safetensors", "voice.json"]


def test_an_adapter_is_checked_against_the_base_of_an_adapter_voice(library, files):

    folder = library.root / "trained"
    folder.mkdir(parents=True)
    write_voice_json(VoiceEntry(name="trained", folder=folder, base=str(files["other"])))  # a v1 48k base
    with pytest.raises(AdapterError, match="made for base v2 40k"):
        library.add_adapter("trained", files["adapter"])
    assert library.get("trained").adapters == () and not (folder / "bright.safetensors").exists()
    folder2 = library.root / "trained2"
    folder2.mkdir()
    write_voice_json(VoiceEntry(name="trained2", folder=folder2, base=str(files["voice"]), adapters=(AdapterSlot("x.safetensors", 1.0, False),)))
    assert library.add_adapter("trained2", files["adapter"]).adapters[-1].file == "bright.safetensors"


def test_an_adapter_made_elsewhere_attaches_only_with_force(library, files):
    library.create(files["voice"])
    with pytest.raises(AdapterError, match="no base_fingerprint.*--force") as err:
        library.add_adapter("Alto", files["foreign"])
    assert "\n" not in str(err.value) and library.get("Alto").adapters == ()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        entry = library.add_adapter("Alto", files["foreign"], weight=0.5, force=True)
    assert [str(w.message) for w in caught if issubclass(w.category, AdapterWarning)] == [
        "foreign.safetensors: no base fingerprint, applied unverified because of --force"
    ]
    assert entry.adapters[-1].force and entry.needs_force and library.get("Alto").needs_force
    # what the engine does with the entry: the adapter loads with force, and only with it
    voice = load_voice(entry.model_path)
    with pytest.raises(AdapterError):
        load_checked_adapters(voice, entry.active_adapters())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AdapterWarning)
        ((adapter, weight),) = load_checked_adapters(voice, entry.active_adapters(), force=entry.needs_force)
    assert weight == 0.5 and adapter.base.fingerprint == ""
    # a matching adapter attached with force needs no force later
    assert not library.add_adapter("Alto", files["adapter"], force=True).adapters[-1].force


def test_an_adapter_with_wrong_shapes_is_refused_even_with_force(library, files, tmp_path):
    with safe_open(str(files["adapter"]), framework="pt") as f:
        key = next(k for k in f.keys() if k.endswith(".lora_A"))  # noqa: SIM118 — safe_open is not a dict
        a = f.get_tensor(key)
    bad = make_foreign_adapter_file(files["adapter"], tmp_path / "bad.safetensors", **{key: a[:, :-1].contiguous()})
    library.create(files["voice"])
    with pytest.raises(AdapterError, match="expects A"):
        library.add_adapter("Alto", bad, force=True)


@pytest.fixture(scope="module")
def exports(files, tmp_path_factory):
    """The voice exported for the live engine (--streaming) and without it (each export is its own process)."""

    d = tmp_path_factory.mktemp("onnx")
    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = {s: pool.submit(export_onnx, files["voice"], d / f"Alto-{s}.onnx", streaming=s == "live", verify=False)
                for s in ("live", "plain")}
        return {s: job.result().path for s, job in jobs.items()}


def test_an_onnx_voice_must_be_a_streaming_export(library, files, exports):
    with pytest.raises(OnnxVoiceError) as err:
        library.create(exports["plain"])
    assert str(err.value) == (
        "Alto-plain.onnx: exported without --streaming (no skip_head/return_length input), so the live engine "
        "cannot run it; re-export it from the voice's .pth: rvclora-export --model VOICE.pth --streaming --out Alto-plain.onnx"
    )
    assert library.list() == []
    entry = library.create(exports["live"])
    assert entry.model_path.read_bytes() == exports["live"].read_bytes()
    # the engine's ONNX backend runs what the library accepted

    assert OnnxSynthesizer(entry.model_path, device="cpu").streaming
    with pytest.raises(VoiceLibraryError, match="ONNX export, which cannot take adapters.*rvclora-export"):
        library.add_adapter(entry.name, files["adapter"])
    assert library.get(entry.name).adapters == ()
