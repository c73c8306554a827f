"""Adding files to the voice library from the panel (no Qt here): sorting dropped files,
saying why a file cannot be used, and the import job the worker pool runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MissingAssetError
from ..library.embedders import content_encoder_path
from ..library.home import Home
from ..library.voice_library import VoiceDefaults, VoiceLibrary
from ..lora import AdapterNeedsForce
from ..synth.voice_file import inspect_voice
from .voice_choice import ADAPTER_SUFFIXES, INDEX_SUFFIXES, MODEL_SUFFIXES
from .workers import one_line

SUPPORTED = "a voice model (.pth or .onnx), a feature index (.index) or a LoRA adapter (.safetensors)"
_AUDIO = (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".opus")
_ARCHIVES = (".zip", ".7z", ".rar", ".tar", ".gz")


@dataclass(frozen=True)
class ImportResult:
    select: str | None  # the voice to select
    done: list[str]  # what was added, for the status line
    errors: list[str]  # one line each
    unverified: list[tuple[Path, str]] = field(default_factory=list)  # adapters whose base cannot be checked, with why: ask the user


@dataclass(frozen=True)
class SortedFiles:
    models: list[Path]
    extras: list[Path]  # .index and adapters: they join a voice
    unsupported: list[tuple[Path, str]]  # with the reason, for the user


def unsupported_reason(path: Path) -> str | None:
    """Why `path` cannot be added (one line), or None when it can."""
    suffix = path.suffix.lower()
    if suffix in MODEL_SUFFIXES + INDEX_SUFFIXES + ADAPTER_SUFFIXES:
        return None if not path.is_dir() else f"{path.name}: a folder; drop the files inside it"
    if path.is_dir():
        return f"{path.name}: a folder; drop the voice's files from inside it ({SUPPORTED})"
    if suffix in _ARCHIVES:
        return f"{path.name}: an archive; unpack it first and drop the .pth/.onnx (and .index) inside"
    if suffix in _AUDIO:
        return f"{path.name}: an audio file; the panel converts your microphone live (for files use `rvclora convert`)"
    kind = f"a {suffix} file" if suffix else "a file without an extension"
    return f"{path.name}: {kind} is not something rvclora can use; drop {SUPPORTED}"


def sort_files(paths: list[Path]) -> SortedFiles:
    models, extras, unsupported = [], [], []
    for path in paths:
        reason = unsupported_reason(path)
        if reason is not None:
            unsupported.append((path, reason))
        elif path.suffix.lower() in MODEL_SUFFIXES:
            models.append(path)
        else:
            extras.append(path)
    return SortedFiles(models, extras, unsupported)


def encoder_note(home: Home, model: Path | None) -> str:
    """One sentence on the content encoder a voice model needs and whether it is installed
    (reads the file: run on a worker). Empty for ONNX models and unreadable files."""
    if model is None or model.suffix.lower() != ".pth":
        return ""
    try:
        meta = inspect_voice(model).meta
    except ValueError:
        return ""  # Start reports a broken file in its own words
    vocoder = f" Vocoder: {meta.vocoder}." if meta.vocoder else ""
    try:
        content_encoder_path(home, meta.embedder)
    except MissingAssetError as e:
        return f"Content encoder: {meta.embedder_name} (not installed: {e}).{vocoder}"
    return f"Content encoder: {meta.embedder_name}.{vocoder}"


def import_into_library(
    library: VoiceLibrary, models: list[Path], extras: list[Path], target: str | None, *, force: bool = False
) -> ImportResult:
    """Import on a worker. Adapters made for an unverifiable base are left out and listed in
    `unverified` unless `force` (the user said to use them anyway)."""
    done: list[str] = []
    errors: list[str] = []
    unverified: list[tuple[Path, str]] = []
    select = None
    for path in models:
        try:
            entry = library.create(path, defaults=VoiceDefaults())
        except Exception as e:  # noqa: BLE001 - each file reports on its own
            errors.append(f"{path.name}: {one_line(e)}")
            continue
        done.append(f"voice \u201c{entry.name}\u201d")
        select = target = entry.name  # extras dropped together with a model join that model
    for path in extras:
        if target is None:
            errors.append(f"{path.name}: select one of your voices first")
            continue
        try:
            if path.suffix.lower() in INDEX_SUFFIXES:
                library.add_index(target, path)
                done.append(f"index to \u201c{target}\u201d")
            else:
                library.add_adapter(target, path, force=force)
                done.append(f"adapter \u201c{path.stem}\u201d to \u201c{target}\u201d")
            select = target
        except AdapterNeedsForce as e:
            unverified.append((path, one_line(e)))
        except Exception as e:  # noqa: BLE001 — one bad file of many: reported in the summary, the rest import
            errors.append(f"{path.name}: {one_line(e)}")
    return ImportResult(select, done, errors, unverified)
