"""The user's voices in RVCLORA_HOME/voices: one folder per voice with a `voice.json`.

    voices/<name>/voice.json        what is in the folder and the voice's defaults
    voices/<name>/<model>.pth|.onnx the voice model (an RVC voice, or an exported ONNX one)
    voices/<name>/<index>.index     optional feature index
    voices/<name>/<adapter>.safetensors  optional LoRA adapters, each with a weight and on/off

Files are copied in, never moved, so the user's originals stay where they were; nothing
in the library is replaced without an explicit call, and names never collide silently.
Every file is checked before it is copied: a .pth must load as a voice, an .onnx must
be a streaming export ONNX Runtime can run, an adapter must fit its voice; a file the
library already holds (same content) is refused, naming the voice that has it.
"""

from __future__ import annotations

import builtins
import json
import re
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import LibraryError
from ..lora import AdapterNeedsForce
from ..synth.file_hash import sha256_file
from ..synth.index import FeatureIndex
from ..synth.onnx_voice import check_onnx_voice
from ..synth.output_file import staged_output
from ..synth.voice_adapters import load_checked_adapters
from ..synth.voice_file import load_voice
from .home import Home

VOICE_JSON = "voice.json"
FORMAT = "rvclora-voice"
FORMAT_VERSION = 1
MODEL_SUFFIXES = (".pth", ".onnx")
_BAD_NAME = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


class VoiceLibraryError(LibraryError):
    """A library operation could not be done; the message says why."""


class AlreadyInLibraryError(VoiceLibraryError):
    """The file is already in the library; `voice` names the voice that holds it."""

    def __init__(self, message: str, voice: str) -> None:
        super().__init__(message)
        self.voice = voice


@dataclass(frozen=True)
class VoiceDefaults:
    """Per-voice settings the panel and `rvclora run` start from."""

    pitch: float = 0.0
    formant: float = 0.0
    f0_method: str = "auto"  # rmvpe when rmvpe.pt is present, else pm (resolved when the voice runs)
    index_rate: float = 0.0
    protect: float = 0.33
    typical_f0: float = 0.0  # median f0 (Hz) of the voice's training audio, for automatic pitch; 0 = unknown


@dataclass(frozen=True)
class AdapterSlot:
    file: str
    weight: float = 1.0
    enabled: bool = True
    force: bool = False  # the user accepted it without a verifiable base (pass force= when loading)


@dataclass(frozen=True)
class VoiceEntry:
    name: str
    folder: Path
    model: str | None = None
    index: str | None = None
    adapters: tuple[AdapterSlot, ...] = ()
    defaults: VoiceDefaults = field(default_factory=VoiceDefaults)
    base: str | None = None  # for adapter-only voices: the base model they apply to

    @property
    def model_path(self) -> Path | None:
        return self.folder / self.model if self.model else None

    @property
    def runnable_model(self) -> Path | None:
        """The model to load: the voice's own, or for an adapter voice the base it was trained on."""
        if self.model:
            return self.folder / self.model
        if self.base:
            base = Path(self.base)
            return base if base.is_absolute() else self.folder / base
        return None

    @property
    def index_path(self) -> Path | None:
        return self.folder / self.index if self.index else None

    def active_adapters(self) -> list[tuple[Path, float]]:
        return [(self.folder / a.file, a.weight) for a in self.adapters if a.enabled]

    @property
    def needs_force(self) -> bool:
        """An enabled adapter was attached with force: load the active adapters with force=True."""
        return any(a.force for a in self.adapters if a.enabled)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "model": self.model,
            "base": self.base,
            "index": self.index,
            "adapters": [asdict(a) for a in self.adapters],
            "defaults": asdict(self.defaults),
        }


def read_voice_json(folder: Path) -> VoiceEntry:
    path = folder / VOICE_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VoiceLibraryError(f"{folder}: no {VOICE_JSON}; not a voice folder") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise VoiceLibraryError(f"{path}: not valid JSON ({e}); fix or delete the file") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise VoiceLibraryError(f"{path}: not an rvclora voice description")
    try:
        known = {f for f in VoiceDefaults.__dataclass_fields__}
        defaults = VoiceDefaults(**{k: v for k, v in (data.get("defaults") or {}).items() if k in known})
        adapters = tuple(AdapterSlot(**a) for a in data.get("adapters") or ())
    except TypeError as e:
        raise VoiceLibraryError(f"{path}: malformed entry ({e})") from None
    for key, value in [("model", data.get("model")), ("index", data.get("index"))] + [("adapters", a.file) for a in adapters]:
        _check_inside(path, key, value)
    return VoiceEntry(
        name=str(data.get("name") or folder.name),
        folder=folder,
        model=data.get("model"),
        index=data.get("index"),
        adapters=adapters,
        defaults=defaults,
        base=data.get("base"),
    )


def _check_inside(path: Path, key: str, value: Any) -> None:
    """A file a voice.json names must be a plain name inside its folder: no absolute path, no
    `..`, no symlink leading out (`base`, the model an adapter voice applies to, may be anywhere)."""
    if value is None:
        return
    if not isinstance(value, str) or not value:
        raise VoiceLibraryError(f"{path}: '{key}' must be a file name, not {value!r}")
    folder = path.parent.resolve()
    rel = Path(value)
    if rel.is_absolute() or ".." in rel.parts or not (folder / rel).resolve().is_relative_to(folder):
        raise VoiceLibraryError(
            f"{path}: '{key}' names {value!r}, outside the voice's folder; a voice's files must sit in its folder "
            "(re-import the voice, or fix voice.json)"
        )


def write_voice_json(entry: VoiceEntry) -> Path:
    """Write atomically: a crash never leaves half a voice.json."""
    path = entry.folder / VOICE_JSON
    with staged_output(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(entry.to_json(), indent=2), encoding="utf-8")
    return path


def check_name(name: str) -> str:
    name = name.strip()
    if not name or name in (".", "..") or _BAD_NAME.search(name):
        raise VoiceLibraryError(f"'{name}' is not a usable voice name (avoid / \\ : * ? \" < > |)")
    return name


class VoiceLibrary:
    """Voices under `home.voices`; every method re-reads the disk, so several views stay in sync."""

    def __init__(self, home: Home) -> None:
        self.root = home.voices

    def list(self) -> list[VoiceEntry]:
        """All readable voices, by name; unreadable folders are skipped (see `problems`)."""
        entries = []
        for folder in sorted(self.root.glob("*/")) if self.root.is_dir() else []:
            try:
                entries.append(read_voice_json(folder))
            except VoiceLibraryError:
                continue
        return sorted(entries, key=lambda e: e.name.lower())

    def problems(self) -> builtins.list[str]:  # `list` is a method name in this class
        """One line per voice folder that cannot be read."""
        out = []
        for folder in sorted(self.root.glob("*/")) if self.root.is_dir() else []:
            try:
                read_voice_json(folder)
            except VoiceLibraryError as e:
                out.append(str(e))
        return out

    def get(self, name: str) -> VoiceEntry:
        for entry in self.list():
            if entry.name == name:
                return entry
        raise VoiceLibraryError(f"no voice named '{name}' in {self.root}; import it first")

    def _free_name(self, wanted: str) -> str:
        taken = {e.name.lower() for e in self.list()} | (
            {p.name.lower() for p in self.root.iterdir()} if self.root.is_dir() else set()
        )
        name, n = wanted, 2
        while name.lower() in taken:
            name, n = f"{wanted} ({n})", n + 1
        return name

    def create(self, model: Path, name: str | None = None, defaults: VoiceDefaults | None = None) -> VoiceEntry:
        """Copy a model file (.pth / .onnx) into a new voice folder; a taken name gets a suffix.
        A .zip bundle imports every voice in it (see voice_import); the first is returned."""
        model = Path(model)
        if model.suffix.lower() == ".zip":
            from .voice_import import import_bundle  # noqa: PLC0415 — import cycle: voice_import.py builds on VoiceLibrary

            return import_bundle(self, model, name=name, defaults=defaults).voices[0]
        if model.suffix.lower() not in MODEL_SUFFIXES:
            raise VoiceLibraryError(f"{model}: a voice model is a .pth or .onnx file")
        if not model.is_file():
            raise VoiceLibraryError(f"{model}: no such file")
        # refuse corrupt files, non-voices and what the live engine cannot run before anything is copied
        if model.suffix.lower() == ".pth":

            load_voice(model)
        else:

            check_onnx_voice(model)
        holder = self._voice_holding(model)
        if holder is not None:
            raise AlreadyInLibraryError(
                f"{model.name} is already in the library as voice '{holder}' (same content); "
                "select that voice instead of importing it again",
                holder,
            )
        name = self._free_name(check_name(name or model.stem))
        folder = self.root / name
        folder.mkdir(parents=True)
        try:
            shutil.copy2(model, folder / model.name)
            entry = VoiceEntry(name=name, folder=folder, model=model.name, defaults=defaults or VoiceDefaults())
            write_voice_json(entry)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return entry

    def _voice_holding(self, model: Path) -> str | None:
        """The name of a voice whose model file has `model`'s content, else None."""
        size, digest = model.stat().st_size, None
        for entry in self.list():
            mine = entry.model_path
            if mine is None or not mine.is_file() or mine.stat().st_size != size:
                continue  # sizes first: hashing 55 MB files only when they could be the same
            digest = digest or sha256_file(model)
            if sha256_file(mine) == digest:
                return entry.name
        return None

    @staticmethod
    def _check_file(path: Path, suffixes: tuple[str, ...], what: str) -> None:
        if path.suffix.lower() not in suffixes:
            raise VoiceLibraryError(f"{path}: a {what} is a {' or '.join(suffixes)} file")
        if not path.is_file():
            raise VoiceLibraryError(f"{path}: no such file")

    def _attach(self, name: str, path: Path, suffixes: tuple[str, ...], what: str) -> tuple[VoiceEntry, str]:
        entry = self.get(name)
        path = Path(path)
        self._check_file(path, suffixes, what)
        attached = [a.file for a in entry.adapters] + ([entry.index] if entry.index else [])
        digest = sha256_file(path)
        for file in attached:
            held = entry.folder / file
            if held.is_file() and held.stat().st_size == path.stat().st_size and sha256_file(held) == digest:
                raise AlreadyInLibraryError(
                    f"{path.name} is already attached to voice '{entry.name}' (as {file}, same content)", entry.name
                )
        target = entry.folder / path.name
        if target.exists() and target.read_bytes() != path.read_bytes():
            stem, n = path.stem, 2
            while target.exists():
                target, n = entry.folder / f"{stem}-{n}{path.suffix}", n + 1
        if not target.exists():
            shutil.copy2(path, target)
        return entry, target.name

    def add_index(self, name: str, index: Path) -> VoiceEntry:

        FeatureIndex.load(index)  # refuses trained-only and non-faiss files
        entry, file = self._attach(name, index, (".index",), "feature index")
        entry = replace(entry, index=file)
        write_voice_json(entry)
        return entry

    def add_adapter(self, name: str, adapter: Path, weight: float = 1.0, *, force: bool = False) -> VoiceEntry:
        """Attach a LoRA adapter after checking it against the voice's model (version, rate,
        f0, shapes, base fingerprint). `force` accepts an adapter whose base cannot be
        verified (another fingerprint, or none: made by another tool); shapes are still
        checked, an AdapterWarning is issued and the slot remembers it (`needs_force`)."""

        entry = self.get(name)
        adapter = Path(adapter)
        self._check_file(adapter, (".safetensors",), "LoRA adapter")
        model = entry.runnable_model
        if model is None or not model.is_file():
            raise VoiceLibraryError(f"voice '{entry.name}' has no model file to check the adapter against ({model})")
        if model.suffix.lower() != ".pth":
            raise VoiceLibraryError(
                f"voice '{entry.name}' is an ONNX export, which cannot take adapters; merge the adapter into "
                f"the voice's .pth instead: rvclora-export --model VOICE.pth --adapter {adapter.name} --streaming --out NEW.onnx"
            )
        voice = load_voice(model)
        try:
            load_checked_adapters(voice, [(adapter, weight)])  # made for this base?
            forced = False
        except AdapterNeedsForce:
            if not force:
                raise
            load_checked_adapters(voice, [(adapter, weight)], force=True)  # still refuses wrong shapes
            forced = True
        entry, file = self._attach(name, adapter, (".safetensors",), "LoRA adapter")
        if any(a.file == file for a in entry.adapters):
            return entry
        entry = replace(entry, adapters=entry.adapters + (AdapterSlot(file, weight, True, forced),))
        write_voice_json(entry)
        return entry

    def update(self, entry: VoiceEntry) -> VoiceEntry:
        """Save changed defaults or adapter weights of an existing voice."""
        if not (entry.folder / VOICE_JSON).is_file():
            raise VoiceLibraryError(f"no voice named '{entry.name}' in {self.root}")
        write_voice_json(entry)
        return entry

    def rename(self, name: str, new_name: str) -> VoiceEntry:
        entry = self.get(name)
        new_name = check_name(new_name)
        if new_name == name:
            return entry
        if any(e.name.lower() == new_name.lower() for e in self.list() if e.name != name) or (
            (self.root / new_name).exists() and (self.root / new_name) != entry.folder
        ):
            raise VoiceLibraryError(f"a voice named '{new_name}' already exists; choose another name")
        folder = entry.folder.with_name(new_name)
        entry.folder.rename(folder)
        entry = replace(entry, name=new_name, folder=folder)
        write_voice_json(entry)
        return entry

    def remove(self, name: str) -> None:
        """Delete a voice folder with everything in it. Callers confirm with the user first."""
        entry = self.get(name)
        shutil.rmtree(entry.folder)
