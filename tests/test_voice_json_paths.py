"""Files named in a voice.json stay inside the voice's folder: `..`, absolute paths and symlinks out are refused."""

from __future__ import annotations

import json

import pytest

from rvclora.library.home import Home
from rvclora.library.voice_library import FORMAT, VoiceLibrary, VoiceLibraryError, read_voice_json


def write(folder, **fields):
    folder.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "format_version": 1, "name": folder.name, "model": "v.pth", **fields}
    (folder / "voice.json").write_text(json.dumps(data))
    return folder


@pytest.fixture
def voices(tmp_path):
    home = Home(tmp_path / "home")
    (tmp_path / "outside.pth").write_bytes(b"x")
    return home.voices, tmp_path


@pytest.mark.parametrize("fields, key", [
    ({"model": "../outside.pth"}, "model"),
    ({"model": "sub/../../outside.pth"}, "model"),
    ({"index": "/etc/passwd"}, "index"),
    ({"adapters": [{"file": "../../x.safetensors"}]}, "adapters"),
])
def test_paths_out_of_the_folder_are_refused(voices, fields, key):
    root, _ = voices
    folder = write(root / "Bad", **fields)
    with pytest.raises(VoiceLibraryError, match=f"'{key}' names .*outside the voice's folder"):
        read_voice_json(folder)
    library = VoiceLibrary(Home(root.parent))
    assert [e.name for e in library.list()] == []  # never offered, so never loaded
    assert any("outside the voice's folder" in p for p in library.problems())


def test_a_symlink_leading_out_is_refused(voices):
    root, outside = voices
    folder = write(root / "Link", model="v.pth")
    (folder / "v.pth").symlink_to(outside / "outside.pth")
    with pytest.raises(VoiceLibraryError, match="outside the voice's folder"):
        read_voice_json(folder)


def test_files_inside_are_accepted(voices):
    root, _ = voices
    folder = write(root / "Good", model="v.pth", index="sub/added.index",
                   adapters=[{"file": "a.safetensors", "weight": 0.5}])
    entry = read_voice_json(folder)
    assert entry.model_path == folder / "v.pth" and entry.index_path == folder / "sub" / "added.index"
