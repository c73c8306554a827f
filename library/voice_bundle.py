"""Voice bundles: the `.zip` files RVC voices are shared as.

A bundle holds one or more voice models (.pth / .onnx), usually an `added_*.index`,
often in a nested folder, with debris (`__MACOSX/`, `._x`, `.DS_Store`, readmes).
A zip from the internet is hostile input, so the whole directory is checked before
one byte is expanded: a member that points outside the archive (`../x`, an absolute
or drive path), a symlink, an encrypted member, one over the size cap or with an
absurd expansion ratio refuses the bundle with a one-line reason. Members are never
extracted under their own names: each wanted one is streamed into a folder the
caller gives, under a name chosen here, counting bytes as they come (a header can
lie about the size). zipfile's own extract() is not used for that reason.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .voice_library import VoiceLibraryError

MODEL_SUFFIXES = (".pth", ".onnx")
INDEX_SUFFIXES = (".index",)
_DRIVE = re.compile(r"^[A-Za-z]:")


class BundleError(VoiceLibraryError):
    """A zip bundle was refused; the message names the member and the reason."""


@dataclass(frozen=True)
class BundleLimits:
    """What a bundle may expand to. A real voice .pth is 50–200 MB, an index up to ~1 GB;
    their zip ratio is near 1 (fp16 weights and float vectors barely compress)."""

    max_member_bytes: int = 4 << 30
    max_total_bytes: int = 8 << 30
    max_ratio: float = 200.0  # expanded / compressed, for members over ratio_floor bytes
    ratio_floor: int = 1 << 20
    max_members: int = 10_000


@dataclass(frozen=True)
class BundleContents:
    models: tuple[Path, ...]  # expanded, in the order of the archive
    indexes: tuple[Path, ...]
    skipped: tuple[str, ...]  # member names left in the archive (debris, other files)
    sources: tuple[tuple[Path, str], ...] = ()  # (expanded file, member name)

    def origin(self, path: Path) -> str:
        """The member name a staged file came from (for messages)."""
        return dict(self.sources).get(path, path.name)


def _member_path(info: zipfile.ZipInfo) -> PurePosixPath:
    """The member's path, refused when it could land outside the folder it is expanded into."""
    raw = info.filename.replace("\\", "/")
    if raw.startswith("/") or _DRIVE.match(raw):
        raise BundleError(f"member {info.filename!r} has an absolute path; refusing the whole bundle")
    parts = PurePosixPath(raw).parts
    if ".." in parts:
        raise BundleError(f"member {info.filename!r} points outside the archive (..); refusing the whole bundle")
    if "\x00" in raw:
        raise BundleError(f"member {info.filename!r} has a NUL in its name; refusing the whole bundle")
    return PurePosixPath(raw)


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def _is_debris(path: PurePosixPath) -> bool:
    """macOS resource forks and hidden files: never a voice, never read."""
    return any(part == "__MACOSX" or part.startswith(".") for part in path.parts)


def _check_sizes(info: zipfile.ZipInfo, limits: BundleLimits) -> None:
    if info.file_size > limits.max_member_bytes:
        raise BundleError(
            f"member {info.filename!r} expands to {info.file_size} bytes, over the {limits.max_member_bytes}-byte cap; refusing the bundle"
        )
    if info.file_size > limits.ratio_floor and info.file_size > limits.max_ratio * max(info.compress_size, 1):
        ratio = info.file_size / max(info.compress_size, 1)
        raise BundleError(
            f"member {info.filename!r} expands {ratio:.0f}x (over {limits.max_ratio:g}x): not a voice file, "
            "possibly a zip bomb; refusing the bundle"
        )


def scan_bundle(archive: zipfile.ZipFile, limits: BundleLimits) -> tuple[list[zipfile.ZipInfo], list[str]]:
    """(members to expand, member names skipped); raises BundleError for a bundle to refuse."""
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise BundleError(f"the bundle has {len(infos)} members (over {limits.max_members}); refusing it")
    wanted: list[zipfile.ZipInfo] = []
    skipped: list[str] = []
    for info in infos:
        path = _member_path(info)  # every member, even skipped ones: a bundle with one is not trusted
        if _is_symlink(info):
            raise BundleError(f"member {info.filename!r} is a symbolic link; refusing the whole bundle")
        if info.is_dir():
            continue
        if _is_debris(path) or path.suffix.lower() not in MODEL_SUFFIXES + INDEX_SUFFIXES:
            skipped.append(info.filename)
            continue
        if info.flag_bits & 0x1:
            raise BundleError(f"member {info.filename!r} is encrypted; unzip it yourself and import the files")
        _check_sizes(info, limits)
        wanted.append(info)
    total = sum(i.file_size for i in wanted)
    if total > limits.max_total_bytes:
        raise BundleError(f"the bundle's voice files expand to {total} bytes, over the {limits.max_total_bytes}-byte cap")
    return wanted, skipped


def _copy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, limits: BundleLimits) -> None:
    cap = min(info.file_size, limits.max_member_bytes)
    written = 0
    with archive.open(info) as src, open(target, "xb") as dst:
        while block := src.read(1 << 20):
            written += len(block)
            if written > cap:
                raise BundleError(f"member {info.filename!r} expands beyond the size its header states; refusing the bundle")
            dst.write(block)


def expand_bundle(zip_path: Path, staging: Path, limits: BundleLimits = BundleLimits()) -> BundleContents:
    """Check `zip_path` and expand its voice models and indexes into the empty folder `staging`.

    Each member goes to `staging/<n>-<member's folder>/<member's file name>`, so equal
    file names in different folders stay apart and no member name decides a path.
    The caller removes `staging` (also when this raises).
    """
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise BundleError(f"{zip_path.name}: not a readable zip file ({e}); download it again") from None
    with archive:
        wanted, skipped = scan_bundle(archive, limits)
        models: list[Path] = []
        indexes: list[Path] = []
        sources: list[tuple[Path, str]] = []
        for n, info in enumerate(wanted):
            member = _member_path(info)
            folder = staging / f"{n}-{re.sub(r'[^A-Za-z0-9._ -]+', '_', str(member.parent))[:80]}"
            folder.mkdir()
            target = folder / _safe_file_name(member.name)
            try:
                _copy_member(archive, info, target, limits)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, RuntimeError) as e:
                raise BundleError(f"member {info.filename!r} cannot be read ({e}); the bundle is damaged") from None
            (models if target.suffix.lower() in MODEL_SUFFIXES else indexes).append(target)
            sources.append((target, info.filename))
    return BundleContents(tuple(models), tuple(indexes), tuple(skipped), tuple(sources))


def _safe_file_name(name: str) -> str:
    cleaned = re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", name).strip() or "file"
    return cleaned if cleaned not in (".", "..") else "file"


def remove_staging(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
