"""`rvclora assets download` you can trust: a pinned commit, sha256 from the Hub's LFS listing,
the total said first, broken downloads resumed. A fake Hub on 127.0.0.1 (HF_ENDPOINT) stands in."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from http.server import ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import pytest

from rvclora.cli.main import main
from rvclora.synth.asset_pins import LOCK_FILE
from rvclora.synth.home import Home
from rvclora.tests.test_assets import REPO_ID, FakeHub, make_handler

FIRST = "1" * 40
LATER = "2" * 40


class PinHub(FakeHub):
    commit: str = FIRST
    drop_once: set = set()
    ranges: list = []

    def gets(self) -> list[tuple[str, str]]:
        """(revision, file) of each GET of a file."""
        prefix = f"/{REPO_ID}/resolve/"
        return [tuple(p[len(prefix):].split("/", 1)) for m, p in self.requests if m == "GET" and p.startswith(prefix)]


def _handler(hub: PinHub):
    class Handler(make_handler(hub)):
        def _resolve(self, send_body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append((self.command, path))
            _, _, filename = path[len(f"/{REPO_ID}/resolve/"):].partition("/")
            body = hub.files.get(filename)
            if body is None:
                return self._error(404, "EntryNotFound")
            rng = self.headers.get("Range")
            start = int(rng[6:].split("-")[0]) if rng and send_body else 0
            if send_body:
                hub.ranges.append((filename, rng))
            self.send_response(206 if start else 200)
            self.send_header("X-Repo-Commit", hub.commit)
            self.send_header("ETag", f'"{hashlib.sha1(body).hexdigest()}"')
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            if not send_body:
                return
            if filename in hub.drop_once:
                hub.drop_once.discard(filename)
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body[start:])

    return Handler


@pytest.fixture
def hub(tmp_path, monkeypatch):
    files = {"hubert_base.pt": b"hubert " * 40000, "rmvpe.pt": b"rmvpe " * 30000, "pretrained_v2/f0G40k.pth": b"G" * 5000}
    fake = PinHub(files)
    fake.lfs_sha, fake.drop_once, fake.ranges = {}, set(), []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.setenv("RVCLORA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    yield fake
    server.shutdown()
    server.server_close()


def test_download_says_the_total_pins_the_commit_and_keeps_it(hub, capsys):
    home = Home.from_env()
    assert main(["assets", "download", "hubert_base", "rmvpe"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    total = len(hub.files["hubert_base.pt"]) + len(hub.files["rmvpe.pt"])
    assert f"({total} bytes)" in first and FIRST[:12] in first and "2 file(s)" in first
    assert {rev for rev, _ in hub.gets()} == {FIRST}  # every file at the commit, not at "main"
    lock = json.loads((home.assets / LOCK_FILE).read_text())
    assert lock["revision"] == FIRST
    assert lock["files"]["rmvpe.pt"]["sha256"] == hashlib.sha256(hub.files["rmvpe.pt"]).hexdigest()
    assert home.rmvpe.read_bytes() == hub.files["rmvpe.pt"]

    hub.commit = LATER  # the branch moves on: later downloads stay on the pinned commit
    hub.requests.clear()
    assert main(["assets", "download", "f0G40k"]) == 0
    assert hub.gets() == [(FIRST, "pretrained_v2/f0G40k.pth")]
    assert set(json.loads((home.assets / LOCK_FILE).read_text())["files"]) == {"hubert_base.pt", "rmvpe.pt", "pretrained_v2/f0G40k.pth"}


def test_a_file_whose_sha256_differs_from_the_listing_is_deleted(hub, capsys):
    home = Home.from_env()
    hub.lfs_sha["rmvpe.pt"] = "e" * 64
    assert main(["assets", "download", "rmvpe"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "sha256" in err and "e" * 64 in err
    assert not home.rmvpe.exists() and not (home.assets / LOCK_FILE).exists()


def test_a_broken_download_resumes(hub, capsys):
    home = Home.from_env()
    # big enough for huggingface_hub to have written some of its 10 MB chunks before the cut
    hub.files["hubert_base.pt"] = bytes(range(256)) * (96 * 1024)  # 24 MiB
    hub.drop_once.add("hubert_base.pt")
    rc = main(["assets", "download", "hubert_base"])
    if rc != 0:  # huggingface_hub may give up on this try; the next one resumes
        assert main(["assets", "download", "hubert_base"]) == 0
    assert home.hubert.read_bytes() == hub.files["hubert_base.pt"]
    cut = len(hub.files["hubert_base.pt"]) // 2
    starts = [int(r[6:].split("-")[0]) for name, r in hub.ranges if name == "hubert_base.pt" and r]
    assert starts and 0 < starts[0] <= cut  # the second request asked only for the rest
