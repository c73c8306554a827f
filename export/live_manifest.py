"""The live set's manifest: which ONNX files make one voice's whole live chain, and proof they belong.

``rvclora export --live`` writes a folder::

    synth.onnx          the streaming synthesizer (skip_head, return_length, return_length2)
    content.onnx        the content encoder the voice was trained on (fp32)
    content_int8.onnx   the same with int8 linear layers (only with --int8)
    pitch.onnx          RMVPE (absent when no rmvpe.pt was given: pm or fcpe then)
    live.json           this manifest

The manifest names each file with its sha256, the opset, the voice's base
fingerprint and the hashes of the source files (voice, content encoder, rmvpe.pt).
`read_live_set` refuses, with one line, a folder whose manifest is missing or
damaged, a file that is missing, and a file whose bytes are not the ones
exported with this voice (swapped in from another voice's set, or edited).
Imports no torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FileFormatError
from ..synth.file_hash import sha256_file

MANIFEST = "live.json"
FORMAT = "rvclora-live-onnx"
FORMAT_VERSION = 1
FILES = {"synth": "synth.onnx", "content": "content.onnx", "content_int8": "content_int8.onnx", "pitch": "pitch.onnx"}
REEXPORT = "re-export it: rvclora export --live --model VOICE.pth --out FOLDER"


class LiveSetError(FileFormatError):
    """A live set the engine cannot trust; the one-line message names the file and the fix."""


@dataclass(frozen=True)
class LiveSet:
    """A checked live set: the folder, its manifest and the path of each file it holds."""

    folder: Path
    manifest: dict
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.manifest.get("name") or self.folder.name)

    def path(self, part: str) -> Path | None:
        return self.files.get(part)


def is_live_set(path: str | os.PathLike) -> bool:
    """A folder holding a manifest, or the manifest file itself."""
    p = Path(path)
    return (p.is_dir() and (p / MANIFEST).is_file()) or p.name == MANIFEST


def write_manifest(folder: Path, *, files: dict[str, Path], info: dict) -> dict:
    """Write ``live.json`` for ``files`` (part → path inside ``folder``); returns what it wrote."""
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, **info,
        "files": {part: {"file": p.name, "sha256": sha256_file(p)} for part, p in files.items()},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_live_set(path: str | os.PathLike, *, verify_hashes: bool = True) -> LiveSet:
    """Read and check a live set (its folder or its ``live.json``); LiveSetError on any doubt."""
    p = Path(path)
    folder = p.parent if p.name == MANIFEST else p
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise LiveSetError(f"{folder}: no {MANIFEST} here, so it is not a live set; {REEXPORT}")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LiveSetError(f"{manifest_path}: unreadable ({str(e).splitlines()[0][:120]}); {REEXPORT}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        raise LiveSetError(f"{manifest_path}: not an rvclora live-set manifest; {REEXPORT}")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise LiveSetError(f"{manifest_path}: written by a newer rvclora (format {manifest['format_version']}); update rvclora")
    files: dict[str, Path] = {}
    for part, entry in manifest["files"].items():
        if part not in FILES or not isinstance(entry, dict) or Path(str(entry.get("file", ""))).name != entry.get("file"):
            raise LiveSetError(f"{manifest_path}: damaged entry {part!r}; {REEXPORT}")
        file = folder / entry["file"]
        if not file.is_file():
            raise LiveSetError(f"{file}: missing from the live set of {manifest.get('name', folder.name)!r}; {REEXPORT}")
        if verify_hashes and sha256_file(file) != entry.get("sha256"):
            raise LiveSetError(
                f"{file.name}: not the file exported with voice {manifest.get('name', folder.name)!r} (its bytes differ "
                f"from {MANIFEST}: from another voice's set, or changed); {REEXPORT}"
            )
        files[part] = file
    for part in ("synth", "content"):
        if part not in files:
            raise LiveSetError(f"{manifest_path}: the set lists no {FILES[part]}; {REEXPORT}")
    return LiveSet(folder=folder, manifest=manifest, files=files)


__all__ = ["FILES", "MANIFEST", "LiveSet", "LiveSetError", "is_live_set", "read_live_set", "write_manifest"]
