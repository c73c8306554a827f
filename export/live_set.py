"""``rvclora export --live``: a voice's whole live chain as ONNX files side by side, with a manifest.

The synthesizer (streaming, with the formant input), the content encoder the voice
was trained on and RMVPE each go through `export_onnx` (a fresh process each, two
at a time, verified against torch), into a staging folder next to the output; the files move
into place and the manifest is written last, so a failed export leaves no
half set behind. ``int8`` adds ``content_int8.onnx``: ONNX Runtime's dynamic
quantisation of the content encoder's linear layers (MatMul weights to int8,
activations quantised per call), opt-in because it changes the features a little.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ExportError, MissingAssetError
from ..library.embedders import content_encoder_path
from ..library.home import Home
from ..synth.file_hash import sha256_file
from ..synth.onnx_contract import DEFAULT_OPSET
from ..synth.voice_file import load_voice
from .live_manifest import FILES, MANIFEST, write_manifest
from .onnx_export import ExportResult, check_inputs, export_onnx

QUANTIZED_OPS = ("MatMul",)  # the linear layers; the convolutional front end stays fp32


@dataclass(frozen=True)
class LiveSetResult:
    folder: Path
    results: dict[str, ExportResult]  # per exported part (not content_int8)
    manifest: dict
    seconds: float


def quantize_content(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """int8 dynamic quantisation of an exported content encoder's linear layers; metadata says int8."""
    import onnx  # noqa: PLC0415 — optional extra (onnx)
    from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: PLC0415 — optional extra (onnx)

    logging.disable(logging.WARNING)  # its advice to pre-process goes to the root logger, i.e. the user's terminal
    try:
        quantize_dynamic(str(src), str(dst), op_types_to_quantize=list(QUANTIZED_OPS), weight_type=QuantType.QInt8,
                         per_channel=True)
    finally:
        logging.disable(logging.NOTSET)
    proto = onnx.load(str(dst))
    meta = {p.key: p.value for p in proto.metadata_props} | {"precision": "int8", "quantized": ",".join(QUANTIZED_OPS)}
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(dst))


def _check_folder(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a folder; a live set is a folder (--out FOLDER)")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out}: folder is not empty; pick a new folder or pass --overwrite to replace the set")
    if not out.parent.is_dir():
        raise ExportError(f"{out.parent}: folder not found; create it first")


def export_live_set(
    model: str | os.PathLike,
    out: str | os.PathLike,
    *,
    hubert: str | os.PathLike | None = None,
    rmvpe: str | os.PathLike | None = None,
    adapters: Sequence[tuple[str | os.PathLike, float]] = (),
    int8: bool = False,
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
    overwrite: bool = False,
    force: bool = False,
) -> LiveSetResult:
    """Export the live chain of ``model`` into the folder ``out``; see the module docstring.

    ``hubert``/``rmvpe`` default to the home folder's assets (the voice's own embedder);
    without an rmvpe.pt the set has no pitch graph (the engine then uses pm or fcpe)."""
    start = time.perf_counter()
    out = Path(out)
    _check_folder(out, overwrite)
    if not Path(model).is_file():
        raise ExportError(f"{model}: file not found")
    specs = tuple((str(p), float(w)) for p, w in adapters)
    check_inputs(model, specs, force=force)
    voice = load_voice(model)
    home = Home.from_env()
    hubert_path = Path(hubert) if hubert is not None else content_encoder_path(home, voice.meta.embedder)
    if not hubert_path.exists():
        raise MissingAssetError(f"content encoder not found at {hubert_path}; run `rvclora assets download` or pass --hubert")
    if rmvpe is not None and not Path(rmvpe).is_file():
        raise MissingAssetError(f"{rmvpe}: rmvpe.pt not found; pass the right --rmvpe, or leave it out to use pm")
    rmvpe_path = Path(rmvpe) if rmvpe is not None else (home.rmvpe if home.rmvpe.is_file() else None)
    embedder = voice.meta.embedder or "contentvec"
    jobs: dict[str, dict[str, Any]] = {
        "synth": dict(model=model, component="synth", adapters=specs, streaming=True, force=force),
        "content": dict(model=hubert_path, component="content", version=voice.version),
    }
    if rmvpe_path is not None:
        jobs["pitch"] = dict(model=rmvpe_path, component="pitch")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}-", dir=out.parent) as tmp:
        stage = Path(tmp)
        with ThreadPoolExecutor(max_workers=2) as pool:  # each export is its own process
            futures = {part: pool.submit(export_onnx, job.pop("model"), stage / FILES[part], fp16=fp16, opset=opset,
                                         verify=verify, **job) for part, job in jobs.items()}
            results = {part: f.result() for part, f in futures.items()}
        if int8:
            quantize_content(stage / FILES["content"], stage / FILES["content_int8"])
        parts = [p for p in FILES if (stage / FILES[p]).is_file()]
        synth_meta = results["synth"].metadata
        info = {
            "name": Path(model).stem, "opset": int(opset), "precision": "fp16" if fp16 else "fp32",
            "version": synth_meta["version"], "sr": int(synth_meta["sr"]), "f0": synth_meta["f0"] == "1",
            "embedder": embedder, "base_fingerprint": synth_meta["base_fingerprint"], "adapters": json.loads(synth_meta["adapters"]),
            "sources": {
                "voice": sha256_file(model), "content_encoder": _hash_source(hubert_path),
                "rmvpe": sha256_file(rmvpe_path) if rmvpe_path is not None else None,
            },
        }
        out.mkdir(exist_ok=True)
        (out / MANIFEST).unlink(missing_ok=True)  # the old set stops being one before its files change
        for part in FILES:
            if part not in parts:
                (out / FILES[part]).unlink(missing_ok=True)  # left from an older set: not in this one
        for part in parts:
            shutil.move(str(stage / FILES[part]), out / FILES[part])
        manifest = write_manifest(out, files={p: out / FILES[p] for p in parts}, info=info)
    return LiveSetResult(folder=out, results=results, manifest=manifest, seconds=time.perf_counter() - start)


def _hash_source(path: Path) -> str:
    """sha256 of a file; of a Hugging Face folder, of its config and weights' hashes in name order."""
    if path.is_file():
        return sha256_file(path)
    listed = ",".join(f"{f.name}:{sha256_file(f)}" for f in sorted(path.iterdir()) if f.is_file())
    return hashlib.sha256(listed.encode()).hexdigest()


__all__ = ["LiveSetResult", "QUANTIZED_OPS", "export_live_set", "quantize_content"]
