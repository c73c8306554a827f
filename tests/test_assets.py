"""Asset download against a local stand-in for the Hugging Face Hub."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from rvclora.library import assets as assets_module
from rvclora.library.assets import (
    ASSETS,
    GROUPS,
    REPO_ID,
    AssetError,
    DownloadCancelled,
    check_assets,
    download_assets,
    download_size,
    select_assets,
)
from rvclora.library.home import Home

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class FakeHub:
    """Serves just the requests that `download_assets` makes."""

    files: dict[str, bytes]
    listed_sizes: dict[str, int] = field(default_factory=dict)  # paths-info size overrides
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""
    seconds_per_kb: float = 0.0  # > 0 serves bodies slowly, 1 KB at a time (to cancel mid-download)
    # Set: paths-info also lists each file's LFS sha256, as the real Hub does (a name not in it: the true hash).
    lfs_sha: dict[str, str] | None = None

    def downloads(self) -> list[str]:
        prefix = f"/{REPO_ID}/resolve/main/"
        return [path[len(prefix) :] for method, path in self.requests if method == "GET" and path.startswith(prefix)]


def make_handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    resolve_prefix = f"/{REPO_ID}/resolve/"
    paths_info = f"/api/models/{REPO_ID}/paths-info/"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
            pass

        def _resolve(self, send_body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append((self.command, path))
            if not path.startswith(resolve_prefix):
                return self._error(404, "RepoNotFound")
            _revision, _, filename = path[len(resolve_prefix) :].partition("/")
            body = hub.files.get(filename)
            if body is None:
                return self._error(404, "EntryNotFound")
            self.send_response(200)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{hashlib.sha1(body).hexdigest()}"')
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if send_body and hub.seconds_per_kb > 0:
                for start in range(0, len(body), 1024):
                    try:
                        self.wfile.write(body[start : start + 1024])
                        self.wfile.flush()
                    except OSError:  # the client hung up (a cancelled download)
                        return
                    time.sleep(hub.seconds_per_kb)
            elif send_body:
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self._resolve(send_body=False)

        def do_GET(self) -> None:
            self._resolve(send_body=True)

        def do_POST(self) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append(("POST", path))
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            if not path.startswith(paths_info):
                return self._error(404, "RepoNotFound")
            entries = [_paths_info_entry(hub, name) for name in form.get("paths", []) if name in hub.files]
            payload = json.dumps(entries).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _error(self, status: int, code: str) -> None:
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


def _paths_info_entry(hub: FakeHub, name: str) -> dict:
    data = hub.files[name]
    entry = {"type": "file", "path": name, "size": hub.listed_sizes.get(name, len(data)), "oid": hashlib.sha1(data).hexdigest()}
    if hub.lfs_sha is not None:
        sha = hub.lfs_sha.get(name, hashlib.sha256(data).hexdigest())
        entry["lfs"] = {"oid": sha, "size": len(data), "pointerSize": 134}
    return entry


def serve_hub(files: dict[str, bytes]) -> Iterator[FakeHub]:
    """A FakeHub serving `files` on 127.0.0.1 (its `url` set) until the generator is closed."""
    fake = FakeHub(files)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    yield from serve_hub({asset.repo_path: f"{asset.name} weights ".encode() * (50 + i) for i, asset in enumerate(ASSETS)})


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    monkeypatch.setenv("RVCLORA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    return Home.from_env()


def test_home_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Home.from_env({"RVCLORA_HOME": str(tmp_path / "h")})
    assert home.root == tmp_path / "h"
    assert home.assets == tmp_path / "h" / "assets" and home.voices == tmp_path / "h" / "voices"
    assert home.settings_file == tmp_path / "h" / "settings.json"
    assert home.pretrained("G", "40k") == home.assets / "pretrained_v2" / "f0G40k.pth"
    assert home.pretrained("D", "48k", f0=False) == home.assets / "pretrained_v2" / "D48k.pth"
    assert home.hubert == home.assets / "hubert_base.pt" and home.rmvpe == home.assets / "rmvpe.pt"
    home.ensure()
    assert home.assets.is_dir() and home.voices.is_dir()
    with pytest.raises(ValueError):
        home.voice_dir("../escape")
    # Without RVCLORA_HOME: the platform's user data dir, which ends in "rvclora".
    assert Home.from_env({}).root.name.lower() == "rvclora"
    monkeypatch.setenv("RVCLORA_HOME", str(tmp_path / "from-env"))
    assert Home.from_env().root == tmp_path / "from-env"


def test_asset_catalogue(home: Home) -> None:
    paths = {asset.repo_path for asset in ASSETS}
    assert {"hubert_base.pt", "rmvpe.pt", "pretrained_v2/f0G40k.pth", "pretrained_v2/D32k.pth"} <= paths
    assert len(paths) == 2 + 12
    assert [a.repo_path for a in GROUPS["default"]] == [
        "hubert_base.pt",
        "rmvpe.pt",
        "pretrained_v2/f0G40k.pth",
        "pretrained_v2/f0D40k.pth",
    ]
    assert select_assets(["default", "rmvpe", "G48k"])[-1].repo_path == "pretrained_v2/G48k.pth"
    assert len(select_assets(["default", "rmvpe", "G48k"])) == 5
    assert GROUPS["default"][2].local_path(home) == home.pretrained("G", "40k")
    with pytest.raises(AssetError):
        select_assets(["nope"])


def test_download_via_hf_endpoint_then_skip(hub: FakeHub, home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # huggingface_hub is imported long before this: the endpoint must be read at call time.
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    wanted = GROUPS["default"]
    assert not any(status.present for status in check_assets(home, wanted))

    paths = download_assets(wanted, home, progress=False, token=False, cache_dir=tmp_path / "hf-cache")
    assert paths == [asset.local_path(home) for asset in wanted]
    assert paths[2] == home.root / "assets" / "pretrained_v2" / "f0G40k.pth"
    for asset, path in zip(wanted, paths):
        assert path.read_bytes() == hub.files[asset.repo_path]
    assert sorted(hub.downloads()) == sorted(a.repo_path for a in wanted)
    statuses = check_assets(home, wanted)
    assert all(s.present and s.size == len(hub.files[s.asset.repo_path]) for s in statuses)

    # A second run, and a file placed by hand with the right size, are left untouched.
    by_hand = select_assets(["f0G48k"])[0]
    placed = by_hand.local_path(home)
    placed.parent.mkdir(parents=True, exist_ok=True)
    placed.write_bytes(b"x" * len(hub.files[by_hand.repo_path]))
    hub.requests.clear()
    download_assets([*wanted, by_hand], home, progress=False, token=False, cache_dir=tmp_path / "hf-cache")
    assert hub.downloads() == []
    assert placed.read_bytes() == b"x" * len(hub.files[by_hand.repo_path])
    assert not (tmp_path / "hf-cache").exists()


def test_existing_file_of_other_size_is_kept_unless_replaced(hub: FakeHub, home: Home) -> None:
    rmvpe = select_assets(["rmvpe"])
    custom = rmvpe[0].local_path(home)
    custom.parent.mkdir(parents=True)
    custom.write_bytes(b"my own pitch model")
    with pytest.raises(AssetError) as exc:
        download_assets(rmvpe, home, endpoint=hub.url, progress=False, token=False)
    assert "\n" not in str(exc.value) and str(custom) in str(exc.value)
    assert custom.read_bytes() == b"my own pitch model" and hub.downloads() == []

    download_assets(rmvpe, home, endpoint=hub.url, progress=False, token=False, replace_mismatched=True)
    assert custom.read_bytes() == hub.files["rmvpe.pt"]


def test_size_mismatch_deletes_download(hub: FakeHub, home: Home) -> None:
    hub.listed_sizes["rmvpe.pt"] = len(hub.files["rmvpe.pt"]) + 1  # the Hub's listing disagrees with the bytes served
    with pytest.raises(AssetError) as exc:
        download_assets(["hubert_base", "rmvpe"], home, endpoint=hub.url, progress=True, token=False)
    message = str(exc.value)
    assert "\n" not in message and "rmvpe.pt" in message and "bytes" in message
    assert not home.rmvpe.exists()
    assert home.hubert.read_bytes() == hub.files["hubert_base.pt"]  # the good one stays

    # Once the Hub is consistent again, a retry fetches it (no stale hf metadata left behind).
    del hub.listed_sizes["rmvpe.pt"]
    download_assets(["rmvpe"], home, endpoint=hub.url, progress=False, token=False)
    assert home.rmvpe.read_bytes() == hub.files["rmvpe.pt"]


def test_offline_gives_one_line_with_manual_paths(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", closed)
    with pytest.raises(AssetError) as exc:
        download_assets(GROUPS["default"], home, progress=False, token=False)
    message = str(exc.value)
    assert "\n" not in message
    assert "cannot reach" in message and closed in message
    assert f"{closed}/{REPO_ID}/resolve/main/<file>" in message
    for asset in GROUPS["default"]:
        assert str(asset.local_path(home)) in message
    assert str(home.root / "assets" / "hubert_base.pt") in message

    # Offline but everything already present: nothing to do, no error.
    for asset in GROUPS["default"]:
        asset.local_path(home).parent.mkdir(parents=True, exist_ok=True)
        asset.local_path(home).write_bytes(b"weights")
    assert download_assets(GROUPS["default"], home, progress=False, token=False) == [a.local_path(home) for a in GROUPS["default"]]


def test_download_reports_every_chunk_and_can_be_cancelled(hub: FakeHub, home: Home, monkeypatch: pytest.MonkeyPatch) -> None:


    monkeypatch.setattr("huggingface_hub.constants.DOWNLOAD_CHUNK_SIZE", 64)  # many chunks from small files
    wanted = select_assets(["hubert_base", "rmvpe"])
    total = sum(len(hub.files[a.repo_path]) for a in wanted)
    seen: list[tuple[int, int, str]] = []
    download_assets(wanted, home, endpoint=hub.url, token=False, on_bytes=lambda d, t, a: seen.append((d, t, a.name)))
    # Byte by byte, over both files, against the Hub's own total; never backwards.
    assert len(seen) >= total // 64 and {t for _, t, _ in seen} == {total}
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen) and seen[-1][0] == total
    assert {n for _, _, n in seen} == {"hubert_base", "rmvpe"}
    assert download_size(wanted, home) == 0  # nothing left to fetch

    # Cancel in the middle of the first file: stops there, nothing half-written in place.
    for a in wanted:
        a.local_path(home).unlink()
    cancel = threading.Event()

    def stop_early(done: int, _total: int, _asset) -> None:
        if done > 200:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        download_assets(wanted, home, endpoint=hub.url, token=False, on_bytes=stop_early, cancel=cancel)
    assert not any(a.local_path(home).exists() for a in wanted)
    assert download_size(wanted, home) == sum(a.size for a in wanted) > 300_000_000  # the catalogue's true sizes
    assert assets_module.HUBERT.size + assets_module.RMVPE.size < 400_000_000  # not the "550 MB" once stated
