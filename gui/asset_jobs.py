"""The shared model files from the panel's side (no Qt here): what is missing, what a
Start needs, the download job the worker pool runs, and the by-hand instructions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..library import assets as synth_assets
from ..library.assets import Asset
from ..library.home import Home

PANEL_ASSETS = ("hubert_base", "rmvpe")  # what library voices need to run (training bases are not needed here)
DOWNLOAD_HINT = "click \u201cDownload models\u201d (bottom left) to get it"


def missing_assets(home: Home, names: tuple[str, ...] = PANEL_ASSETS) -> list[Asset]:
    return [s.asset for s in synth_assets.check_assets(home, synth_assets.select_assets(names)) if not s.present]


def mb(n: int) -> str:
    return f"{n / 1e6:.0f} MB"


def size_text(assets: list[Asset]) -> str:
    """The true download size, e.g. "371 MB"."""
    return mb(sum(a.size for a in assets))


def needed_to_start(home: Home, *, builtin: bool, f0_method: str) -> list[Asset]:
    """Files a Start would need that are not there (checked in an instant, before any loading).

    Built-in voices need none. A library voice needs the content encoder, and the RMVPE
    pitch tracker when that is the chosen method ("auto" falls back to Praat without it).
    """
    if builtin:
        return []
    names = ("hubert_base", "rmvpe") if f0_method == "rmvpe" else ("hubert_base",)
    return missing_assets(home, names)


def start_refusal(missing: list[Asset]) -> str:
    """One line: what is missing and what to do in the panel."""
    files = " and ".join(f"{a.repo_path} (the {a.description.split(' (')[0]})" for a in missing)
    verb = "is" if len(missing) == 1 else "are"
    return f"this voice needs {files}, which {verb} not downloaded yet: {DOWNLOAD_HINT}"


def by_hand_text(home: Home, missing: list[Asset], endpoint: str | None = None) -> str:
    """Every missing file with where it comes from and where it goes, one per line (selectable)."""
    lines = ["Download these files by hand and save each one at the path shown:"]
    for asset in missing:
        lines.append(f"\u2022 {asset.repo_path} ({mb(asset.size)}): {asset.url(endpoint)}\n    \u2192 {asset.local_path(home)}")
    return "\n".join(lines)


def download(
    home: Home, names: tuple[str, ...], cancel: threading.Event, progress: Callable[[int, int, str], None]
) -> list:
    """Run on a worker: fetch the missing files, reporting kilobytes (Qt signals carry 32-bit ints)."""

    def on_bytes(done: int, total: int, asset: Asset) -> None:
        progress(done // 1000, total // 1000, asset.repo_path)

    return synth_assets.download_assets(names, home, progress=False, on_bytes=on_bytes, cancel=cancel)
