"""Importing what people download into the voice library: model files, folders, zip bundles, links.

Every path ends in `VoiceLibrary.create` / `add_index`, so a bundle's voice gets the
same checks as a loose file. An import is all or nothing: when any voice of a bundle
or folder is refused, the voices already made for it are removed again and the
staging folder (under RVCLORA_HOME, beside voices/) is deleted.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..synth.onnx_voice import check_onnx_voice
from ..synth.voice_file import load_voice
from .index_pairing import name_score, pair_index
from .voice_bundle import INDEX_SUFFIXES, MODEL_SUFFIXES, BundleLimits, expand_bundle, remove_staging
from .voice_library import VoiceDefaults, VoiceEntry, VoiceLibrary, VoiceLibraryError
from .voice_links import LinkPolicy, download_link

Progress = Callable[[int, int | None], None]  # (bytes done, total or None)


@dataclass(frozen=True)
class ImportReport:
    voices: tuple[VoiceEntry, ...]
    notes: tuple[str, ...] = ()  # one line each: indexes not attached, files skipped


def is_link(source: str | Path) -> bool:
    return isinstance(source, str) and "://" in source


def import_source(
    library: VoiceLibrary,
    source: str | Path,
    *,
    name: str | None = None,
    defaults: VoiceDefaults | None = None,
    limits: BundleLimits = BundleLimits(),
    sha256: str | None = None,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    link_policy: object | None = None,
) -> ImportReport:
    """Import a voice model file, a folder, a .zip bundle or an https link (to a .pth/.onnx/.zip)."""
    if is_link(source):
        policy = link_policy if isinstance(link_policy, LinkPolicy) else LinkPolicy()
        downloads = _downloads(library)
        try:
            file = download_link(str(source), downloads, sha256=sha256, progress=progress,
                                 cancelled=cancelled, policy=policy)
            try:
                return import_source(library, file, name=name, defaults=defaults, limits=limits)
            finally:  # the library holds its own copy; a refused download goes too
                shutil.rmtree(file.parent, ignore_errors=True)
        finally:
            with contextlib.suppress(OSError):
                downloads.rmdir()  # unless a broken download waits there to resume
    path = Path(source)
    if path.is_dir():
        return import_folder(library, path, name=name, defaults=defaults)
    if not path.is_file():
        raise VoiceLibraryError(f"{path}: no such file or folder")
    if path.suffix.lower() == ".zip":
        return import_bundle(library, path, name=name, defaults=defaults, limits=limits)
    if path.suffix.lower() in MODEL_SUFFIXES:
        # beside a loose file (say in Downloads) only indexes named for this voice belong to it
        neighbours = sorted(p for p in path.parent.glob("*") if p.suffix.lower() in INDEX_SUFFIXES and p.is_file()
                            and name_score(path, "", p) > 0)
        return import_models(library, [path], neighbours, name=name, defaults=defaults, where="next to it")
    raise VoiceLibraryError(
        f"{path.name}: import takes a voice model (.pth/.onnx), a .zip bundle, a folder or an https link"
    )


def _usable_name(stem: str) -> str:
    """A voice name from a zip or folder name, which may hold characters a voice name cannot."""
    return re.sub(r'[\\/:*?"<>|\x00-\x1f]+', "_", stem).strip(" ._") or "voice"


def _downloads(library: VoiceLibrary) -> Path:
    """Partial downloads live here between tries, so a broken download resumes."""
    folder = library.root.parent / ".downloads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _staging(library: VoiceLibrary) -> Path:
    library.root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".import-", dir=library.root.parent))


def import_bundle(
    library: VoiceLibrary,
    zip_path: Path,
    *,
    name: str | None = None,
    defaults: VoiceDefaults | None = None,
    limits: BundleLimits = BundleLimits(),
) -> ImportReport:
    """Every voice in the zip becomes a voice (a single one named after the zip unless `name`
    is given), each with its best-matching index from the bundle."""
    staging = _staging(library)
    try:
        contents = expand_bundle(Path(zip_path), staging, limits)
        if not contents.models:
            found = f" (it holds {len(contents.indexes)} index file(s))" if contents.indexes else ""
            raise VoiceLibraryError(f"{Path(zip_path).name}: no voice model (.pth/.onnx) in the bundle{found}")
        if name is None and len(contents.models) == 1:
            name = _usable_name(Path(zip_path).stem)
        report = import_models(library, list(contents.models), list(contents.indexes), name=name,
                               defaults=defaults, where="in the bundle", origin=contents.origin)
        skipped = [s for s in contents.skipped if not any(p.startswith(("__MACOSX", ".")) for p in s.split("/"))]
        extra = (f"left in the bundle: {', '.join(skipped[:5])}{' …' if len(skipped) > 5 else ''}",) if skipped else ()
        return ImportReport(report.voices, report.notes + extra)
    finally:
        remove_staging(staging)


def import_folder(
    library: VoiceLibrary, folder: Path, *, name: str | None = None, defaults: VoiceDefaults | None = None
) -> ImportReport:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(
        part.startswith(".") or part == "__MACOSX" for part in p.relative_to(folder).parts))
    models = [p for p in files if p.suffix.lower() in MODEL_SUFFIXES]
    indexes = [p for p in files if p.suffix.lower() in INDEX_SUFFIXES]
    if not models:
        raise VoiceLibraryError(f"{folder}: no voice model (.pth/.onnx) in the folder")
    if name is None and len(models) == 1:
        name = _usable_name(folder.name)
    return import_models(library, models, indexes, name=name, defaults=defaults, where="in the folder")


def _content_version(model: Path) -> str:
    if model.suffix.lower() == ".onnx":

        return str(check_onnx_voice(model).get("version", "v2"))

    return load_voice(model).version


def import_models(
    library: VoiceLibrary,
    models: list[Path],
    indexes: Iterable[Path],
    *,
    name: str | None = None,
    defaults: VoiceDefaults | None = None,
    where: str = "",
    origin: Callable[[Path], str] = lambda p: p.name,
) -> ImportReport:
    """Make a voice of each model and attach the best index for it; all or nothing."""
    pool = list(indexes)
    created: list[VoiceEntry] = []
    notes: list[str] = []
    unfit: dict[str, None] = {}
    try:
        for model in models:
            try:
                entry = library.create(model, name=name if len(models) == 1 else None, defaults=defaults)
            except VoiceLibraryError:
                raise
            except ValueError as e:  # the file's own checks; name the member, not the staged copy
                raise VoiceLibraryError(str(e).replace(str(model), origin(model))) from None
            created.append(entry)
            if not pool:
                continue
            choice = pair_index(model, _content_version(model), pool)
            if choice.best is not None:
                entry = library.add_index(entry.name, choice.best)
                created[-1] = entry
                pool.remove(choice.best)
                notes.append(f"voice '{entry.name}': index {origin(choice.best)} attached")
            unfit.update(dict.fromkeys(choice.unfit))
    except BaseException:
        for entry in created:
            with contextlib.suppress(VoiceLibraryError, OSError):
                library.remove(entry.name)
        raise
    unused = [p for p in pool if not any(p.name in reason for reason in unfit)]
    if unused and created:
        notes.append(f"also {where}, not attached: {', '.join(origin(p) for p in unused)}")
    notes.extend(f"not usable: {reason}" for reason in unfit)
    return ImportReport(tuple(created), tuple(notes))
