"""Downloading a voice from a link: Hugging Face `resolve`/`blob` links and plain https file links.

A link is something a stranger wrote, so before any connection: https only, and every
address the host name resolves to must be public (no loopback, private, link-local,
shared or reserved ranges); every redirect is checked the same way. Plain links are
fetched with http.client on a connection to exactly the address that was checked
(urllib or requests would resolve the name again, so a second DNS answer could point
elsewhere); this is why this part is hand-written. Broken downloads resume from the
partial file with a Range request, automatically and on the next try. Hub links go
through huggingface_hub, and the file is compared with the sha256 the Hub's LFS
metadata lists. Proxies from the environment are not used for plain links.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import re
import shutil
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError
from tqdm.auto import tqdm

from ..synth.file_hash import sha256_file
from .assets import hub_endpoint
from .voice_library import VoiceLibraryError

Progress = Callable[[int, int | None], None]
SUFFIXES = (".pth", ".onnx", ".zip")
_HUB_PATH = re.compile(r"/(?:(?P<type>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+)/(?:resolve|blob)/(?P<rev>[^/]+)/(?P<file>.+)")
_HUB_HOSTS = ("huggingface.co", "hf.co")
_CHUNK = 1 << 16


class LinkError(VoiceLibraryError):
    """A link was refused or its download failed; one line saying why."""


class DownloadCancelled(LinkError):
    """The user cancelled; the partial file is kept so the next try resumes."""


@dataclass(frozen=True)
class LinkPolicy:
    """What may be fetched. A user always gets the defaults: https to public addresses.
    `loopback_for_tests` also allows http and https to 127.0.0.0/8 and ::1 (the tests' own
    server); private networks stay refused either way."""

    loopback_for_tests: bool = False
    max_bytes: int = 8 << 30
    attempts: int = 3  # tries per download, each resuming where the last stopped
    timeout: float = 30.0


@dataclass(frozen=True)
class HubFile:
    endpoint: str
    repo_type: str  # model, dataset, space
    repo_id: str
    revision: str
    filename: str


# --------------------------------------------------------------------------- what may be fetched


def check_link(url: str, policy: LinkPolicy) -> tuple[str, str, int]:
    """(scheme, host, port) of an acceptable link, else LinkError; connects to nothing."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    allowed = ("https", "http") if policy.loopback_for_tests else ("https",)
    if scheme not in allowed:
        raise LinkError(f"{url}: only https:// links can be imported (not {scheme or 'a bare path'}://)")
    if not parts.hostname:
        raise LinkError(f"{url}: the link names no host")
    if parts.username or parts.password:
        raise LinkError(f"{url}: links with a user name or password are not imported")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise LinkError(f"{url}: the port is not a number") from None
    return scheme, parts.hostname, port


def vet_address(host: str, port: int, policy: LinkPolicy) -> str:
    """The address to connect to: every address `host` resolves to must be public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise LinkError(f"cannot find the host {host} ({e.strerror}); check the link and your connection") from None
    addresses = [info[4][0] for info in infos]
    for text in addresses:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
        if getattr(ip, "ipv4_mapped", None):
            ip = ip.ipv4_mapped
        if policy.loopback_for_tests and ip.is_loopback:
            continue
        if not ip.is_global or ip.is_multicast:
            raise LinkError(
                f"{host} is at {ip}, an address on this machine or a private network; only links to public "
                "servers are imported (download the file yourself and import it)"
            )
    return addresses[0]


def hub_file(url: str) -> HubFile | None:
    """The Hub file a `…/resolve/…` or `…/blob/…` link names, when its host is the Hub (or HF_ENDPOINT's)."""
    parts = urlsplit(url)
    mirror = urlsplit(hub_endpoint()).netloc.lower()
    if parts.netloc.lower() not in (*_HUB_HOSTS, mirror):
        return None
    match = _HUB_PATH.fullmatch(unquote(parts.path))
    if not match:
        return None
    repo_type = {"datasets": "dataset", "spaces": "space"}.get(match["type"] or "", "model")
    return HubFile(f"{parts.scheme}://{parts.netloc}", repo_type, match["repo"], match["rev"], match["file"])


def _wanted_sha(url: str, sha256: str | None) -> str | None:
    fragment = urlsplit(url).fragment
    if sha256 is None and fragment.startswith("sha256="):
        sha256 = fragment[len("sha256="):]
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise LinkError(f"sha256 {sha256!r}: expected 64 hex digits")
    return sha256.lower() if sha256 else None


def _file_name(name: str, url: str) -> str:
    name = Path(unquote(name).replace("\\", "/")).name
    if Path(name).suffix.lower() not in SUFFIXES:
        raise LinkError(f"{url}: the link leads to {name or 'a page'!r}, not a .pth, .onnx or .zip file; link the file itself")
    return name


# --------------------------------------------------------------------------- plain links


class _PinnedHTTPS(http.client.HTTPSConnection):
    """An https connection to an address checked beforehand (certificate checked for the host name)."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def _open(url: str, headers: dict[str, str], policy: LinkPolicy) -> tuple[http.client.HTTPResponse, str]:
    """GET `url`, following up to 5 redirects, each hop checked; returns (response, final url)."""
    for _ in range(6):
        scheme, host, port = check_link(url, policy)
        address = vet_address(host, port, policy)
        conn_type = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
        conn = conn_type(host, port, address, policy.timeout)
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", target, headers={"User-Agent": "rvclora", "Accept-Encoding": "identity", **headers})
        response = conn.getresponse()
        if response.status in (301, 302, 303, 307, 308) and response.getheader("Location"):
            url = urljoin(url, response.getheader("Location"))
            response.close()
            conn.close()
            continue
        return response, url
    raise LinkError(f"{url}: too many redirects")


def _content_name(response: http.client.HTTPResponse) -> str | None:
    disposition = response.getheader("Content-Disposition") or ""
    match = re.search(r"filename\*?=(?:UTF-8'')?\"?([^\";]+)\"?", disposition, re.IGNORECASE)
    return match.group(1) if match else None


def _fetch_plain(url: str, part: Path, policy: LinkPolicy, progress: Progress | None,
                 cancelled: Callable[[], bool] | None) -> str:
    """Download into `part` (resuming it); returns the file name the server gives."""
    name = None
    last_error = ""
    for _ in range(max(policy.attempts, 1)):
        offset = part.stat().st_size if part.exists() else 0
        try:
            response, final = _open(url, {"Range": f"bytes={offset}-"} if offset else {}, policy)
        except (OSError, http.client.HTTPException) as e:
            last_error = str(e) or type(e).__name__
            continue
        with response:
            if response.status == 416 and offset:  # nothing left to send: the part is whole
                return name or _file_name(_content_name(response) or urlsplit(final).path, url)
            if response.status not in (200, 206):
                raise LinkError(f"{url}: the server answered {response.status} {response.reason}")
            name = _file_name(_content_name(response) or urlsplit(final).path, url)
            resumed = response.status == 206 and (response.getheader("Content-Range") or "").startswith(f"bytes {offset}-")
            length = response.getheader("Content-Length")
            done = offset if resumed else 0
            total = done + int(length) if length and length.isdigit() else None
            if total is not None and total > policy.max_bytes:
                raise LinkError(f"{url}: {total} bytes, over the {policy.max_bytes}-byte limit for a voice")
            try:
                with open(part, "ab" if resumed else "wb") as out:
                    while block := response.read(_CHUNK):
                        done += len(block)
                        if done > policy.max_bytes:
                            raise LinkError(f"{url}: more than {policy.max_bytes} bytes, over the limit for a voice")
                        out.write(block)
                        if progress is not None:
                            progress(done, total)
                        if cancelled is not None and cancelled():
                            raise DownloadCancelled(f"download of {name} cancelled; import the link again to resume")
            except (OSError, http.client.HTTPException) as e:
                last_error = str(e) or type(e).__name__
                continue
            if total is None or done == total:
                return name
            last_error = f"the connection closed after {done} of {total} bytes"
    raise LinkError(f"{url}: download failed ({last_error}); import the link again to resume")


# --------------------------------------------------------------------------- hub links


def _fetch_hub(hub: HubFile, folder: Path, progress: Progress | None, cancelled: Callable[[], bool] | None,
               max_bytes: int) -> tuple[Path, str | None]:
    """Download with huggingface_hub into `folder`; returns (file, the sha256 the Hub lists or None)."""
    class Forward(tqdm):
        """huggingface_hub's progress bar, turned into our callback (and our cancel)."""

        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self.done = int(kwargs.get("initial") or 0)

        def update(self, n=1):
            self.done += int(n or 0)
            if progress is not None:
                progress(self.done, self.total)
            if cancelled is not None and cancelled():
                raise DownloadCancelled(f"download of {hub.filename} cancelled; import the link again to resume")

    try:
        infos = HfApi(endpoint=hub.endpoint).get_paths_info(hub.repo_id, [hub.filename], revision=hub.revision,
                                                             repo_type=hub.repo_type)
        if not infos:
            raise LinkError(f"{hub.filename} is not in {hub.repo_id} at {hub.revision}")
        lfs = getattr(infos[0], "lfs", None)
        size = lfs.size if lfs is not None else getattr(infos[0], "size", None)
        if size is not None and size > max_bytes:
            raise LinkError(f"{hub.repo_id}/{hub.filename}: {size} bytes, over the {max_bytes}-byte limit for a voice")
        path = hf_hub_download(hub.repo_id, hub.filename, revision=hub.revision, repo_type=hub.repo_type,
                               endpoint=hub.endpoint, local_dir=folder, tqdm_class=Forward)
    except HfHubHTTPError as e:
        raise LinkError(f"{hub.repo_id}/{hub.filename}: the Hub refused ({str(e).splitlines()[0]})") from None
    except (OSError, ValueError) as e:
        if isinstance(e, LinkError):
            raise
        raise LinkError(f"{hub.repo_id}/{hub.filename}: download failed ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                        "import the link again to resume") from None
    return Path(path), (lfs.sha256 if lfs is not None else None)


# --------------------------------------------------------------------------- both


def download_link(
    url: str,
    downloads: Path,
    *,
    sha256: str | None = None,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    policy: LinkPolicy = LinkPolicy(),
) -> Path:
    """Download what `url` links to into `downloads/<key>/<file name>` and return that path.

    Refused before connecting: non-https links, hosts on this machine or a private network.
    Verified after: the sha256 given (or `#sha256=` in the link) and, for hub links, the
    Hub's own LFS sha256. A refused file is deleted; a broken download keeps its part
    for the next try. The caller deletes the returned file when done with it.
    """
    wanted = _wanted_sha(url, sha256)
    _, host, port = check_link(url, policy)
    vet_address(host, port, policy)  # also the hub's host: refused before huggingface_hub connects
    key = hashlib.sha256(url.split("#", 1)[0].encode()).hexdigest()[:16]
    folder = downloads / key
    hub = hub_file(url)
    if hub is not None:
        _file_name(hub.filename, url)
        hub_dir = downloads / f"{key}.hub"
        fetched, listed = _fetch_hub(hub, hub_dir, progress, cancelled, policy.max_bytes)
        folder.mkdir(parents=True, exist_ok=True)
        result = folder / Path(hub.filename).name
        shutil.move(str(fetched), result)
        shutil.rmtree(hub_dir, ignore_errors=True)
        _verify(result, listed, f"the Hub lists sha256 {listed}" if listed else "", folder)
    else:
        part = downloads / f"{key}.part"
        name = _fetch_plain(url.split("#", 1)[0], part, policy, progress, cancelled)
        folder.mkdir(parents=True, exist_ok=True)
        result = folder / name
        part.replace(result)
    _verify(result, wanted, f"the expected sha256 is {wanted}", folder)
    return result


def _verify(path: Path, expected: str | None, what: str, folder: Path) -> None:
    if expected is None:
        return
    actual = sha256_file(path)
    if actual != expected.lower():
        shutil.rmtree(folder, ignore_errors=True)
        raise LinkError(f"{path.name}: checksum mismatch ({what}, the download's is {actual}); refused and deleted")
