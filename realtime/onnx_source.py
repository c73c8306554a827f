"""A voice's live chain from a live set (``rvclora export --live``): every stage in ONNX Runtime.

The set's synthesizer, content encoder and RMVPE run as ORT sessions behind the
calls the torch modules answer, so the same `RVCBlockConverter` (same window,
pitch cache, index blend, skip_head/return_length, formant stretch) runs them;
`block_converter.load_rvc_source` builds the voice from the `LiveStages` loaded here.
Before anything loads, the manifest is checked (every file present and exported
with this voice); the synthesizer's own base fingerprint must match it too.
``content_int8`` picks the int8 content encoder, which the set must hold.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..export.live_manifest import REEXPORT, LiveSetError, read_live_set
from ..synth.onnx_backend import OnnxSynthesizer
from ..synth.onnx_stages import OnnxContentEncoder, OnnxRMVPE
from ..synth.pitch import RMVPEPitch


@dataclass(frozen=True)
class LiveStages:
    """The loaded sessions of a live set and what the voice needs to know about them."""

    name: str
    synth: OnnxSynthesizer
    encoder: OnnxContentEncoder
    pitch_path: Path | None  # pitch.onnx (None: the set has no RMVPE)
    rmvpe: Any  # an RMVPEPitch over the ORT RMVPE, or None
    embedder: str | None
    n_speakers: int


def load_live_stages(
    path: str | os.PathLike, *, device: str = "auto", content_int8: bool = False, threads: int | None = None
) -> LiveStages:
    """Check the live set at ``path`` (folder or live.json) and load its sessions on ``device``."""
    live = read_live_set(path)
    encoder_path = live.path("content_int8" if content_int8 else "content")
    if encoder_path is None:
        raise UsageError(f"{live.folder.name}: this live set has no int8 content encoder; re-export it with --int8")
    synth = OnnxSynthesizer(live.files["synth"], device=device, threads=threads)
    if synth.metadata.get("base_fingerprint") != live.manifest.get("base_fingerprint"):
        raise LiveSetError(f"{live.files['synth'].name}: belongs to another voice (its base fingerprint differs "
                           f"from {live.folder.name}'s manifest); {REEXPORT}")
    if not synth.streaming:
        raise LiveSetError(f"{live.files['synth'].name}: exported without the streaming inputs; {REEXPORT}")
    encoder = OnnxContentEncoder(encoder_path, device=device, threads=threads)
    if encoder.out_dim != int(synth.metadata["embedding_dim"]):
        raise LiveSetError(f"{encoder_path.name}: gives {encoder.out_dim}-d features, the synthesizer reads "
                           f"{synth.metadata['embedding_dim']}-d; {REEXPORT}")
    pitch = live.path("pitch")
    rmvpe = RMVPEPitch(OnnxRMVPE(pitch, device=device, threads=threads)) if pitch is not None else None  # type: ignore[arg-type]
    return LiveStages(
        name=live.name, synth=synth, encoder=encoder, pitch_path=pitch, rmvpe=rmvpe,
        embedder=live.manifest.get("embedder"), n_speakers=int(synth.metadata.get("n_speakers", "1")),
    )


__all__ = ["LiveStages", "load_live_stages"]
