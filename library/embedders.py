"""Where a voice's content encoder lives in the home folder, by the name its file gives.

The names are Applio's (`embedder_model` in the voice file, read by
rvclora.synth.voice_meta); each encoder other than RVC's own ContentVec is a
Hugging Face folder under `assets/embedders/<name>/`.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import MissingAssetError, ModelFileError
from ..synth.voice_meta import CONTENTVEC, KNOWN_EMBEDDERS
from .home import Home

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def embedder_folder(home: Home, name: str) -> Path:
    """Where a named content encoder goes: a Hugging Face folder (config.json + weights)."""
    if not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise ModelFileError(f"content encoder name {name!r} in the voice file is not a plain name; the file is damaged")
    return home.assets / "embedders" / name


def content_encoder_path(home: Home, embedder: str | None) -> Path:
    """The content encoder a voice needs, from RVCLORA_HOME.

    No field or "contentvec": `assets/hubert_base.pt` as always (else the Hugging Face
    folder `assets/embedders/contentvec`, else the hubert_base.pt path, which the caller
    reports as missing). Any other name: `assets/embedders/<name>/`, which must exist;
    otherwise MissingAssetError, one line naming the encoder and where it goes.
    """
    name = (embedder or CONTENTVEC).lower()
    if name == CONTENTVEC:
        folder = embedder_folder(home, CONTENTVEC)
        if not home.hubert.exists() and (folder / "config.json").is_file():
            return folder
        return home.hubert
    if name == "custom":
        raise MissingAssetError(
            "this voice was trained with a custom content encoder that its file does not name; "
            "pass that encoder with --hubert (a hubert .pt or a Hugging Face folder)"
        )
    folder = embedder_folder(home, name)
    if (folder / "config.json").is_file():
        return folder
    known = "" if name in KNOWN_EMBEDDERS else " (a name rvclora does not know)"
    raise MissingAssetError(
        f"this voice was trained with the {name!r} content encoder{known}, which is not installed: put its "
        f"Hugging Face folder (config.json + model.safetensors or pytorch_model.bin) at {folder}, or pass --hubert"
    )
