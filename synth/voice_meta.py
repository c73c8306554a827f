"""What a voice file says about the models around it: content encoder and vocoder.

RVC's WebUI writes neither; Applio (and tools following it) add to the voice dict::

    "embedder_model": "contentvec" | "spin" | "spin-v2" | "chinese-hubert-base"
                      | "japanese-hubert-base" | "korean-hubert-base" | "custom" | None
    "vocoder": "HiFi-GAN" | "MRF HiFi-GAN" | "RefineGAN"

A voice trained on another content encoder runs, but sounds wrong, on ContentVec
features; a voice with another vocoder has decoder weights our HiFi-GAN (NSF) decoder
cannot hold. So the encoder is looked up by name in RVCLORA_HOME (rvclora.library.embedders), and a foreign
vocoder is refused by name when the file is loaded (that is, at import).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CONTENTVEC = "contentvec"
# The encoders Applio trains on, all HuBERT-base shaped (our content encoder reads them).
KNOWN_EMBEDDERS = (CONTENTVEC, "spin", "spin-v2", "chinese-hubert-base", "japanese-hubert-base", "korean-hubert-base")
# Vocoder names that mean the decoder RVC itself uses (HiFi-GAN, NSF for f0 voices), compared lowercase.
RUNNABLE_VOCODERS = frozenset({"hifi-gan", "hifigan", "hifi gan", "nsf", "nsf-hifigan", "nsf-hifi-gan", "nsf hifi-gan"})


@dataclass(frozen=True)
class VoiceMeta:
    """The fields beyond RVC's own; None where the file does not say."""

    embedder: str | None = None  # content encoder the voice was trained on; None: ContentVec (RVC's)
    vocoder: str | None = None  # None: RVC's HiFi-GAN / NSF decoder
    model_name: str | None = None
    author: str | None = None
    created: str | None = None
    epoch: int | None = None

    @property
    def embedder_name(self) -> str:
        """The encoder to use: the file's, else ContentVec (what RVC WebUI voices are trained on)."""
        return self.embedder or CONTENTVEC


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def read_voice_meta(ckpt: Any) -> VoiceMeta:
    """The metadata of a loaded voice checkpoint dict (anything else: no metadata)."""
    if not isinstance(ckpt, Mapping):
        return VoiceMeta()
    epoch = ckpt.get("epoch")
    embedder = _text(ckpt.get("embedder_model"))
    return VoiceMeta(
        embedder=embedder.lower() if embedder else None,
        vocoder=_text(ckpt.get("vocoder")),
        model_name=_text(ckpt.get("model_name")),
        author=_text(ckpt.get("author")),
        created=_text(ckpt.get("creation_date")),
        epoch=int(epoch) if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
    )


def vocoder_problem(meta: VoiceMeta) -> str | None:
    """None when rvclora can run the voice's vocoder, else a one-line reason naming it."""
    if meta.vocoder is None or meta.vocoder.lower() in RUNNABLE_VOCODERS:
        return None
    return (
        f"its vocoder is {meta.vocoder!r}; rvclora runs only RVC's HiFi-GAN (NSF) vocoder, "
        "so this voice cannot be used here (retrain it with the HiFi-GAN vocoder)"
    )
