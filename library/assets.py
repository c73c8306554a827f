"""Shared model assets (content encoder, RMVPE, pretrained bases) and their download.

The files come from the Hugging Face repo `lj1995/VoiceConversionWebUI`, the one RVC
itself downloads from, and are stored under `<home>/assets/` with the repo's layout.
Downloads go through `huggingface_hub.hf_hub_download` (atomic temp-file + rename,
progress bars, resumable) and each file's size is checked against the size the Hub
lists for it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled
from tqdm.auto import tqdm

from .. import errors
from .home import Home

__all__ = [
    "ASSETS",
    "Asset",
    "AssetError",
    "AssetStatus",
    "DownloadCancelled",
    "DEFAULT_ENDPOINT",
    "GROUPS",
    "REPO_ID",
    "REVISION",
    "check_assets",
    "download_size",
    "download_assets",
    "hub_endpoint",
    "select_assets",
]

log = logging.getLogger(__name__)

REPO_ID = "lj1995/VoiceConversionWebUI"
REVISION = "main"
DEFAULT_ENDPOINT = "https://huggingface.co"


class AssetError(errors.AssetError):
    """An asset could not be obtained; the message is one line saying why and what to do."""


class DownloadCancelled(AssetError):
    """The caller's `cancel` event was set; the unfinished file was removed."""


# Called as progress(bytes done, bytes in all, the asset being downloaded), from the downloading thread.
ByteProgress = Callable[[int, int, "Asset"], None]


@dataclass(frozen=True)
class Asset:
    name: str
    repo_path: str  # path inside REPO_ID, '/'-separated; also the path under <home>/assets/
    description: str = ""
    size: int = 0  # bytes, as the Hub lists the file (for "how much will this download"); 0: unknown

    def local_path(self, home: Home) -> Path:
        return home.assets.joinpath(*self.repo_path.split("/"))

    def url(self, endpoint: str | None = None) -> str:
        return f"{hub_endpoint(endpoint)}/{REPO_ID}/resolve/{REVISION}/{self.repo_path}"


# Sizes from the Hub's listing of lj1995/VoiceConversionWebUI; downloads check the live listing.
HUBERT = Asset("hubert_base", "hubert_base.pt", "content encoder (HuBERT base, fairseq format)", 189_507_909)
RMVPE = Asset("rmvpe", "rmvpe.pt", "pitch estimator", 181_184_272)
PRETRAINED_V2: tuple[Asset, ...] = tuple(
    Asset(
        f"{f0}{kind}{sr}",
        f"pretrained_v2/{f0}{kind}{sr}.pth",
        f"v2 {sr} pretrained {'generator' if kind == 'G' else 'discriminator'}{' with pitch' if f0 else ', no pitch'}",
    )
    for f0 in ("f0", "")
    for kind in ("G", "D")
    for sr in ("32k", "40k", "48k")
)
ASSETS: tuple[Asset, ...] = (HUBERT, RMVPE, *PRETRAINED_V2)
_BY_NAME: Mapping[str, Asset] = {asset.name: asset for asset in ASSETS}

GROUPS: Mapping[str, tuple[Asset, ...]] = {
    # What inference plus LoRA training of the common v2 40k voices need.
    "default": (HUBERT, RMVPE, _BY_NAME["f0G40k"], _BY_NAME["f0D40k"]),
    "all": ASSETS,
}


class AssetStatus(NamedTuple):
    asset: Asset
    present: bool
    size: int | None  # bytes on disk, None when absent


def select_assets(names: Iterable[str | Asset]) -> tuple[Asset, ...]:
    """Group names ("default", "all"), asset names ("rmvpe", "f0G40k") or Assets -> unique Assets, in order."""
    picked: dict[str, Asset] = {}
    for item in names:
        if isinstance(item, Asset):
            found: tuple[Asset, ...] = (item,)
        elif item in GROUPS:
            found = GROUPS[item]
        elif item in _BY_NAME:
            found = (_BY_NAME[item],)
        else:
            choices = ", ".join([*GROUPS, *_BY_NAME])
            raise AssetError(f"unknown asset or group {item!r}; choose from: {choices}")
        for asset in found:
            picked.setdefault(asset.name, asset)
    return tuple(picked.values())


def check_assets(home: Home, assets: Iterable[Asset] = ASSETS) -> list[AssetStatus]:
    """Which assets are on disk, and their sizes (local only: no network)."""
    statuses = []
    for asset in assets:
        path = asset.local_path(home)
        present = path.is_file()
        statuses.append(AssetStatus(asset, present, path.stat().st_size if present else None))
    return statuses


def hub_endpoint(endpoint: str | None = None) -> str:
    """The Hub to use: `endpoint`, else `HF_ENDPOINT` read now (huggingface_hub reads it only at import)."""
    chosen = endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    return chosen.rstrip("/")


def download_assets(
    assets: Iterable[Asset | str],
    home: Home,
    *,
    endpoint: str | None = None,
    progress: bool = True,
    replace_mismatched: bool = False,
    cache_dir: str | Path | None = None,
    token: str | bool | None = None,
    revision: str = REVISION,
    on_bytes: ByteProgress | None = None,
    cancel: threading.Event | None = None,
) -> list[Path]:
    """Download the assets that are missing from `<home>/assets/`; return all their local paths.

    Files already present with the size the Hub lists are kept untouched. A present
    file of another size (say a custom encoder saved under the same name) is kept
    and reported as an error unless `replace_mismatched` is set. A download whose
    size differs from the Hub's listing is deleted and reported. `cache_dir` is the
    huggingface_hub cache to reuse already-downloaded blobs from (default: its own);
    `token` is passed to huggingface_hub (None: the user's saved token, False: none).
    `revision` is the Hub revision to fetch (a commit pins it; see asset_pins).
    `on_bytes(done, total, asset)` reports every received chunk, over all files to fetch
    (total from the Hub's listing); setting `cancel` stops the download within a chunk,
    raises `DownloadCancelled` (the partial file stays for the next try to resume).
    """
    wanted = select_assets(assets)
    url = hub_endpoint(endpoint)
    home.ensure()

    try:
        remote_sizes = _remote_sizes(wanted, url, token, revision)
    except Exception as exc:
        if not _is_unreachable(exc):
            raise
        missing = [asset for asset in wanted if not asset.local_path(home).is_file()]
        if not missing:
            log.warning("Hub unreachable (%s); using the asset files already present without checking them", _reason(exc))
            return [asset.local_path(home) for asset in wanted]
        raise AssetError(_offline_message(url, home, missing, exc)) from None

    todo: list[Asset] = []
    conflicts: list[str] = []
    for asset in wanted:
        path = asset.local_path(home)
        if not path.is_file():
            todo.append(asset)
        elif path.stat().st_size != remote_sizes[asset.repo_path]:
            if replace_mismatched:
                todo.append(asset)
            else:
                conflicts.append(f"{path} is {path.stat().st_size} bytes, the Hub's is {remote_sizes[asset.repo_path]}")
    if conflicts:
        raise AssetError(
            f"existing files differ from the Hub's ({'; '.join(conflicts)}); delete them (or use replace_mismatched) to download the Hub's versions"
        )

    total = sum(remote_sizes[asset.repo_path] for asset in todo)
    done = 0
    for position, asset in enumerate(todo):
        if cancel is not None and cancel.is_set():  # also for transfers that report no chunks
            raise DownloadCancelled(f"download cancelled before {asset.repo_path}")
        log.info("downloading %s (%d bytes) from %s", asset.repo_path, remote_sizes[asset.repo_path], url)
        bar = None
        if on_bytes is not None or cancel is not None:
            bar = _callback_tqdm(asset, done, total, on_bytes, cancel)
        elif not progress:
            bar = _SilentTqdm
        _download_one(asset, home, url, remote_sizes[asset.repo_path], bar, cache_dir, token, todo[position:], revision, cancel)
        done += remote_sizes[asset.repo_path]
        if on_bytes is not None:
            on_bytes(done, total, asset)
    return [asset.local_path(home) for asset in wanted]


def download_size(assets: Iterable[Asset | str], home: Home) -> int:
    """Bytes still to download for `assets` (by the sizes the catalogue lists; no network)."""
    return sum(asset.size for asset in select_assets(assets) if not asset.local_path(home).is_file())


def _remote_sizes(assets: tuple[Asset, ...], endpoint: str, token: str | bool | None, revision: str = REVISION) -> dict[str, int]:
    """Sizes the Hub lists for the assets' files (one paths-info request)."""
    try:
        api = HfApi(endpoint=endpoint, token=token)
        entries = api.get_paths_info(REPO_ID, [a.repo_path for a in assets], revision=revision)
    except HfHubHTTPError as exc:
        if _is_unreachable(exc):
            raise
        raise AssetError(f"cannot list {REPO_ID} at {endpoint}: {_reason(exc)}") from None
    sizes: dict[str, int] = {}
    for entry in entries:
        lfs = getattr(entry, "lfs", None)
        size = lfs.size if lfs is not None else getattr(entry, "size", None)
        if size is not None:
            sizes[entry.path] = int(size)
    absent = [a.repo_path for a in assets if a.repo_path not in sizes]
    if absent:
        raise AssetError(f"not found in {REPO_ID} at {endpoint}: {', '.join(absent)}")
    return sizes


def _download_one(
    asset: Asset,
    home: Home,
    endpoint: str,
    expected: int,
    tqdm_class: type[tqdm] | None,
    cache_dir: str | Path | None,
    token: str | bool | None,
    remaining: list[Asset],
    revision: str = REVISION,
    cancel: threading.Event | None = None,
) -> None:
    path = asset.local_path(home)
    kwargs: dict[str, Any] = {"tqdm_class": tqdm_class}
    if cache_dir is not None:
        kwargs["cache_dir"] = str(cache_dir)
    try:
        hf_hub_download(
            repo_id=REPO_ID,
            filename=asset.repo_path,
            revision=revision,
            local_dir=home.assets,
            endpoint=endpoint,
            token=token,
            # Only reached for a missing file or one the caller chose to replace.
            force_download=path.is_file(),
            **kwargs,
        )
    except DownloadCancelled:
        raise  # huggingface_hub keeps the partial file: the next download resumes it
    except LocalEntryNotFoundError as exc:  # hf_hub_download's "metadata request failed"
        raise AssetError(_offline_message(endpoint, home, remaining, exc.__cause__ or exc)) from None
    except Exception as exc:
        if _is_unreachable(exc):
            raise AssetError(_offline_message(endpoint, home, remaining, exc)) from None
        if isinstance(exc, (HfHubHTTPError, OSError)):
            # Includes hf's own check that the body matches the announced Content-Length.
            raise AssetError(f"download of {asset.repo_path} from {endpoint} failed: {_reason(exc)}") from None
        raise
    actual = path.stat().st_size if path.is_file() else None
    if actual != expected:
        _discard(home, asset)
        raise AssetError(
            f"{asset.repo_path}: downloaded {actual} bytes but the Hub lists {expected}; deleted {path}, try again"
        )


def _discard(home: Home, asset: Asset) -> None:
    """Delete a bad download and huggingface_hub's record of it, so a retry fetches it again."""
    asset.local_path(home).unlink(missing_ok=True)
    record = home.assets / ".cache" / "huggingface" / "download" / f"{asset.repo_path}.metadata"
    record.unlink(missing_ok=True)


def _callback_tqdm(
    asset: Asset, offset: int, total: int, on_bytes: ByteProgress | None, cancel: threading.Event | None
) -> type[tqdm]:
    """A tqdm class for huggingface_hub that reports each chunk to `on_bytes` and stops on `cancel`."""

    class CallbackTqdm(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True  # no terminal bar: the caller shows the progress
            super().__init__(*args, **kwargs)
            self._bytes = 0

        def update(self, n: float | None = 1) -> bool | None:
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled(f"download of {asset.repo_path} cancelled")
            self._bytes += int(n or 0)
            if on_bytes is not None:
                on_bytes(offset + self._bytes, total, asset)
            return None

    return CallbackTqdm


def _unreachable_types() -> tuple[type[BaseException], ...]:
    """Connection-level error classes of whichever HTTP client huggingface_hub uses."""
    types: list[type[BaseException]] = [OfflineModeIsEnabled, ConnectionError, TimeoutError]
    for module, names in (("httpx2", ("TransportError",)), ("httpx", ("TransportError",)), ("requests", ("ConnectionError", "Timeout"))):
        try:
            imported = __import__(module)
        except ImportError:
            continue
        types.extend(getattr(imported, name) for name in names if hasattr(imported, name))
    return tuple(types)


def _is_unreachable(exc: BaseException) -> bool:
    if isinstance(exc, HfHubHTTPError):
        status = getattr(exc.response, "status_code", None)
        return status is None or status >= 500  # Hub down or a proxy error page
    return isinstance(exc, _unreachable_types())


def _offline_message(endpoint: str, home: Home, missing: Iterable[Asset], exc: BaseException) -> str:
    targets = ", ".join(str(asset.local_path(home)) for asset in missing)
    return (
        f"cannot reach the Hugging Face Hub at {endpoint} ({_reason(exc)}); download the files by hand from"
        f" {endpoint}/{REPO_ID}/resolve/{REVISION}/<file> and save them as: {targets}"
        f" (<file> is the path after '{home.assets}{os.sep}')"
    )


def _reason(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class _SilentTqdm(tqdm):
    """A progress bar that never shows (progress=False)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)
