"""Assets you can trust: one pinned Hub revision, each file's sha256, the total size up front.

The first `rvclora assets download` resolves the repo's branch to its commit and records
it in `assets/assets.lock.json` together with each file's size and sha256 as the Hub's
LFS metadata lists them; every file is fetched at that commit, and later runs reuse the
recorded commit, so files fetched months apart still come from one snapshot (delete the
lock file to move to the newest). Each file downloaded is hashed and compared with the
listing; a mismatch deletes it. Partial files are resumed by huggingface_hub (it keeps
them as `.incomplete` under assets/.cache until the next try).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url

from ..synth.file_hash import sha256_file
from ..synth.output_file import staged_output
from . import assets as _assets
from .assets import REPO_ID, REVISION, Asset, AssetError, hub_endpoint, select_assets
from .home import Home

LOCK_FILE = "assets.lock.json"


@dataclass(frozen=True)
class RemoteFile:
    size: int
    sha256: str | None  # None for files the Hub does not keep in LFS


@dataclass(frozen=True)
class AssetPlan:
    revision: str  # the commit every file is fetched at
    listing: tuple[tuple[str, RemoteFile], ...]  # repo path -> size, sha256
    todo: tuple[Asset, ...]  # not on disk yet

    @property
    def total_bytes(self) -> int:
        sizes = dict(self.listing)
        return sum(sizes[a.repo_path].size for a in self.todo)

    def describe(self) -> str:
        if not self.todo:
            return f"all {len(self.listing)} asset file(s) present ({REPO_ID} at {self.revision[:12]})"
        return (f"downloading {len(self.todo)} file(s), {self.total_bytes / 1e6:.1f} MB in all ({self.total_bytes} bytes), "
                f"from {REPO_ID} at {self.revision[:12]}")


def lock_path(home: Home) -> Path:
    return home.assets / LOCK_FILE


def read_lock(home: Home) -> dict | None:
    try:
        data = json.loads(lock_path(home).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise AssetError(f"{lock_path(home)}: unreadable ({e}); delete it to pin the newest revision") from None
    if not isinstance(data, dict) or not isinstance(data.get("revision"), str):
        raise AssetError(f"{lock_path(home)}: not an rvclora asset lock; delete it to pin the newest revision")
    return data


def write_lock(home: Home, revision: str, listing: Iterable[tuple[str, RemoteFile]]) -> None:

    old = (read_lock(home) or {}).get("files", {}) if lock_path(home).is_file() else {}
    files = {**old, **{path: {"size": f.size, "sha256": f.sha256} for path, f in listing}}
    home.assets.mkdir(parents=True, exist_ok=True)
    with staged_output(lock_path(home), overwrite=True) as tmp:
        tmp.write_text(json.dumps({"repo": REPO_ID, "revision": revision, "files": files}, indent=2), encoding="utf-8")


def resolve_revision(endpoint: str, token: str | bool | None, branch: str = REVISION) -> str:
    """The commit `branch` points at now (from the Hub's answer for one of its files)."""
    url = hf_hub_url(REPO_ID, _assets.HUBERT.repo_path, revision=branch, endpoint=endpoint)
    meta = get_hf_file_metadata(url, token=token, endpoint=endpoint)
    return meta.commit_hash or branch


def list_remote(assets: Iterable[Asset], endpoint: str, token: str | bool | None, revision: str) -> dict[str, RemoteFile]:
    """Size and sha256 of each asset at `revision`, from the Hub's LFS metadata (one request)."""
    wanted = [a.repo_path for a in assets]
    entries = HfApi(endpoint=endpoint, token=token).get_paths_info(REPO_ID, wanted, revision=revision)
    out: dict[str, RemoteFile] = {}
    for entry in entries:
        lfs = getattr(entry, "lfs", None)
        size = lfs.size if lfs is not None else getattr(entry, "size", None)
        if size is not None:
            out[entry.path] = RemoteFile(int(size), lfs.sha256 if lfs is not None else None)
    absent = [p for p in wanted if p not in out]
    if absent:
        raise AssetError(f"not found in {REPO_ID} at {revision[:12]}: {', '.join(absent)}")
    return out


def plan_download(assets: Iterable[Asset | str], home: Home, *, endpoint: str | None = None,
                  token: str | bool | None = None) -> AssetPlan:
    """What `download_pinned` will fetch: the pinned revision, each file's size and sha256."""
    wanted = select_assets(assets)
    url = hub_endpoint(endpoint)
    lock = read_lock(home)
    revision = lock["revision"] if lock else resolve_revision(url, token)
    listing = list_remote(wanted, url, token, revision)
    todo = tuple(a for a in wanted if not a.local_path(home).is_file())
    return AssetPlan(revision, tuple(sorted(listing.items())), todo)


def check_sha256(home: Home, asset: Asset, expected: str | None) -> None:
    """Delete a downloaded file whose sha256 is not the listed one, and say so."""
    path = asset.local_path(home)
    if expected is None or not path.is_file():
        return
    actual = sha256_file(path)
    if actual != expected:
        _assets._discard(home, asset)
        raise AssetError(f"{asset.repo_path}: sha256 {actual} is not the {expected} the Hub lists; deleted {path}, try again")


def download_pinned(
    assets: Iterable[Asset | str],
    home: Home,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> list[Path]:
    """`download_assets` at the pinned revision, with the total said first and each new file's sha256 checked."""
    wanted = select_assets(assets)
    try:
        plan = plan_download(wanted, home, endpoint=endpoint, token=token)
    except AssetError:
        raise
    except Exception as exc:  # noqa: BLE001 — the Hub client fails many ways; unreachable ones fall back, others re-raise
        if not _assets._is_unreachable(exc):
            raise AssetError(f"cannot list {REPO_ID} at {hub_endpoint(endpoint)}: {_assets._reason(exc)}") from None
        return _assets.download_assets(wanted, home, endpoint=endpoint, progress=progress, token=token)  # its offline rules
    say(plan.describe())
    paths = _assets.download_assets(wanted, home, endpoint=endpoint, progress=progress, token=token, revision=plan.revision)
    listing = dict(plan.listing)
    for asset in plan.todo:
        check_sha256(home, asset, listing[asset.repo_path].sha256)
    write_lock(home, plan.revision, plan.listing)
    return paths
