"""Importing a voice from a link: a local server and a fake Hub (HF_ENDPOINT) stand in for the internet.
No test sends a packet anywhere but 127.0.0.1: other addresses are refused before any connection."""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import pytest

from rvclora.library.home import Home
from rvclora.library.voice_import import import_source
from rvclora.library.voice_library import VoiceLibrary
from rvclora.library.voice_links import DownloadCancelled, LinkError, LinkPolicy
from tests.rvc_fixtures import make_voice_file
from tests.test_assets import REPO_ID, FakeHub, make_handler

LOCAL = LinkPolicy(loopback_for_tests=True)


class FileServer:
    """Serves `files` with Range support; paths in `drop_once` send half their body, then hang up."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.drop_once: set[str] = set()
        self.redirects: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = unquote(urlsplit(self.path).path)
                server.requests.append((path, self.headers.get("Range")))
                if path in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[path])
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                body = server.files.get(path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                start = int(self.headers["Range"][6:].split("-")[0]) if self.headers.get("Range") else 0
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if path in server.drop_once:
                    server.drop_once.discard(path)
                    self.wfile.write(body[start : start + (len(body) - start) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def gets(self, path: str) -> list[str | None]:
        return [rng for p, rng in self.requests if p == path]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> bytes:
    d = tmp_path_factory.mktemp("link_src")
    voice = make_voice_file(d, version="v2", sr=40000, seed=0, name="Alto.pth")
    with zipfile.ZipFile(d / "Alto.zip", "w") as z:
        z.write(voice, "Alto/Alto.pth")
    return (d / "Alto.zip").read_bytes()


@pytest.fixture
def server(bundle):
    s = FileServer({"/voices/Alto.zip": bundle, "/page.html": b"<html>"})
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    return Home(tmp_path / "home")


@pytest.fixture
def library(home):
    return VoiceLibrary(home)


def _left(home: Home) -> list[str]:
    return sorted(str(p.relative_to(home.root)) for p in home.root.rglob("*") if "voices" not in p.parts)


@pytest.fixture
def only_loopback(monkeypatch):
    """Fail the test if anything connects anywhere but 127.0.0.1."""
    real = socket.create_connection
    seen = []

    def guarded(address, *args, **kwargs):
        seen.append(address[0])
        assert address[0] in ("127.0.0.1", "::1", "localhost"), f"connection to {address[0]} attempted"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    return seen


def test_a_dropped_download_resumes_and_reports_progress(library, home, server, bundle, only_loopback):
    server.drop_once.add("/voices/Alto.zip")
    seen = []
    report = import_source(library, f"{server.url}/voices/Alto.zip", link_policy=LOCAL, progress=lambda d, t: seen.append((d, t)))
    assert [e.name for e in report.voices] == ["Alto"]
    assert report.voices[0].model_path.read_bytes() == zipfile.ZipFile(io.BytesIO(bundle)).read("Alto/Alto.pth")
    ranges = server.gets("/voices/Alto.zip")
    assert ranges[0] is None and ranges[1] == f"bytes={len(bundle) // 2}-"  # resumed where the server hung up
    done = [d for d, _ in seen]
    assert done == sorted(done) and seen[-1] == (len(bundle), len(bundle))
    assert _left(home) == []  # the download is gone once the voice is in the library


def test_a_broken_download_is_kept_and_the_next_try_resumes(library, home, server, bundle, only_loopback):
    server.drop_once.add("/voices/Alto.zip")
    once = LinkPolicy(loopback_for_tests=True, attempts=1)
    with pytest.raises(LinkError, match="again to resume") as exc:
        import_source(library, f"{server.url}/voices/Alto.zip", link_policy=once)
    assert "\n" not in str(exc.value) and library.list() == []
    (part,) = (home.root / ".downloads").glob("*.part")
    assert part.stat().st_size == len(bundle) // 2
    import_source(library, f"{server.url}/voices/Alto.zip", link_policy=once)
    assert server.gets("/voices/Alto.zip")[1] == f"bytes={len(bundle) // 2}-"
    assert [e.name for e in library.list()] == ["Alto"] and _left(home) == []


def test_a_cancelled_download_keeps_its_part_for_the_next_try(library, home, server, bundle, only_loopback):
    with pytest.raises(DownloadCancelled):
        import_source(library, f"{server.url}/voices/Alto.zip", link_policy=LOCAL, cancelled=lambda: True)
    (part,) = (home.root / ".downloads").glob("*.part")
    cut = part.stat().st_size
    assert 0 < cut < len(bundle) and library.list() == []
    import_source(library, f"{server.url}/voices/Alto.zip", link_policy=LOCAL)
    assert server.gets("/voices/Alto.zip")[1] == f"bytes={cut}-"
    assert [e.name for e in library.list()] == ["Alto"] and _left(home) == []


def test_a_checksum_mismatch_is_refused_and_deleted(library, home, server, bundle, only_loopback):
    with pytest.raises(LinkError, match="checksum mismatch"):
        import_source(library, f"{server.url}/voices/Alto.zip", link_policy=LOCAL, sha256="0" * 64)
    assert library.list() == [] and _left(home) == []
    good = hashlib.sha256(bundle).hexdigest()
    assert import_source(library, f"{server.url}/voices/Alto.zip#sha256={good}", link_policy=LOCAL).voices


@pytest.mark.parametrize(
    "link, policy, reason",
    [
        ("file:///etc/passwd", LOCAL, "only https"),
        ("ftp://example.com/a.pth", LOCAL, "only https"),
        ("http://127.0.0.1:{port}/voices/Alto.zip", LinkPolicy(), "only https"),
        ("https://127.0.0.1:{port}/voices/Alto.zip", LinkPolicy(), "this machine or a private network"),
        ("https://[::1]/a.pth", LinkPolicy(), "this machine or a private network"),
        ("http://10.0.0.1/a.pth", LOCAL, "this machine or a private network"),
        ("https://10.0.0.1/a.pth", LinkPolicy(), "this machine or a private network"),
        ("https://192.168.1.20/a.pth", LinkPolicy(), "this machine or a private network"),
        ("https://169.254.169.254/latest/a.pth", LinkPolicy(), "this machine or a private network"),
        ("https://user:pw@example.com/a.pth", LinkPolicy(), "user name or password"),
    ],
)
def test_links_to_other_schemes_and_local_addresses_are_refused_before_connecting(library, home, server, only_loopback, link, policy, reason):
    with pytest.raises(LinkError, match=reason) as exc:
        import_source(library, link.format(port=server.url.rsplit(":", 1)[1]), link_policy=policy)
    assert "\n" not in str(exc.value)
    assert only_loopback == [] and server.requests == [] and library.list() == []


def test_a_name_that_resolves_to_a_private_address_and_a_redirect_there_are_refused(library, server, monkeypatch, only_loopback):
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 443))]
                        if host == "voices.example" else real(host, *a, **k))
    with pytest.raises(LinkError, match="10.1.2.3"):
        import_source(library, "https://voices.example/a.pth")
    server.redirects["/go.zip"] = "http://10.0.0.1/a.zip"
    with pytest.raises(LinkError, match="private network"):
        import_source(library, f"{server.url}/go.zip", link_policy=LOCAL)
    assert all(addr == "127.0.0.1" for addr in only_loopback)


def test_a_link_to_a_page_is_refused(library, server):
    with pytest.raises(LinkError, match="not a .pth, .onnx or .zip"):
        import_source(library, f"{server.url}/page.html", link_policy=LOCAL)


# --------------------------------------------------------------------------- the Hub


@pytest.fixture
def fake_hub(bundle, monkeypatch):
    lfs = {"voices/Alto.zip": hashlib.sha256(bundle).hexdigest()}
    hub = FakeHub({"voices/Alto.zip": bundle}, lfs_sha=lfs)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(hub))
    hub.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield hub, lfs
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("kind", ["resolve", "blob"])
def test_a_hub_link_downloads_through_huggingface_hub_and_is_checked(library, home, fake_hub, kind):
    hub, _ = fake_hub
    seen = []
    report = import_source(library, f"{hub.url}/{REPO_ID}/{kind}/main/voices/Alto.zip", link_policy=LOCAL,
                           progress=lambda d, t: seen.append((d, t)))
    assert [e.name for e in report.voices] == ["Alto"]
    assert hub.downloads() == ["voices/Alto.zip"] and seen[-1][0] == len(hub.files["voices/Alto.zip"])
    assert _left(home) == []


def test_a_hub_file_that_differs_from_its_lfs_sha256_is_refused(library, home, fake_hub):
    hub, lfs = fake_hub
    lfs["voices/Alto.zip"] = "f" * 64
    with pytest.raises(LinkError, match="checksum mismatch") as exc:
        import_source(library, f"{hub.url}/{REPO_ID}/resolve/main/voices/Alto.zip", link_policy=LOCAL)
    assert "f" * 64 in str(exc.value) and library.list() == [] and _left(home) == []


def test_the_hub_on_a_local_address_is_refused_without_the_test_opt_in(library, fake_hub):
    hub, _ = fake_hub
    with pytest.raises(LinkError, match="only https"):
        import_source(library, f"{hub.url}/{REPO_ID}/resolve/main/voices/Alto.zip")
    assert hub.requests == []
