"""The export itself, run inside the worker process: load, trace, write metadata, verify.

- **Legacy TorchScript exporter** (``dynamo=False``).  The dynamo exporter works
  too but takes ~60× longer (18 s vs 0.3 s on a toy model), freezes dynamic axes
  after a GRU export in the same process and writes wrong output-shape metadata
  with ``optimize=True``.  The legacy one gives symbolic output dims and exports
  in seconds, which keeps the test suite usable.
- The synthesizer is exported with its adapters merged into the weights; the
  verification reference is the same voice with the adapters as live LoRA layers,
  loaded separately, so a wrong merge shows up as a difference.
"""
from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from torch import Tensor, nn

from ..lora import apply_adapters, bake
from ..synth.constants import HOP_16K, SR_16K
from ..synth.content_encoder import load_content_encoder
from ..synth.onnx_contract import DEC_NOISE, EMBEDDER_LAYERS, FORMANT_INPUT
from ..synth.rmvpe import load_pitch_model
from ..synth.rmvpe_mel import N_MELS
from ..synth.rmvpe_net import TIME_MULTIPLE
from ..synth.synthesizer import FLOW_CONTEXT
from ..synth.voice_adapters import base_info, load_checked_adapters, load_voice_with_adapters
from ..synth.voice_file import Voice, load_voice
from .example_inputs import synth_inputs
from .graphs import ContentGraph, PitchGraph, SynthesizerGraph
from .jobs import ExportJob, ExportOutcome
from .verify import VerifyReport, verify_module, verify_synth

EXPORT_FRAMES = 64  # example length for tracing; any T works afterwards


def _rvclora_version() -> str:
    try:
        return version("rvclora")
    except PackageNotFoundError:  # not installed (source checkout)
        return "unknown"


def load_merged(
    model_path: str | os.PathLike,
    adapters: Sequence[tuple[str, float]],
    *,
    force: bool = False,
    keep_reference: bool = False,
) -> tuple[Voice, dict[str, str], nn.Module | None]:
    """Voice + adapters merged into its weights (fp32), and what the merge was.

    Returns ``(voice, info, reference)``: ``info`` holds the metadata strings of the
    merge, ``base_fingerprint`` (of the voice before merging) and ``adapters``
    (JSON list of ``{"file", "weight", "rank", "targets"}``); ``reference`` (with
    ``keep_reference``) is a copy of the base with the adapters applied *unmerged*
    (live LoRA layers, weight norm kept), the model verification compares against."""
    voice = load_voice(model_path)
    base = base_info(voice)  # of the voice before merging
    loaded = load_checked_adapters(voice, adapters, force=force)
    # A second load, not a deepcopy: legacy weight norm cannot be deep-copied.
    reference = load_voice_with_adapters(model_path, adapters, merged=False, force=force).model if keep_reference else None
    if loaded:
        apply_adapters(voice.model, loaded, merged=True)
        bake(voice.model)
    listed = [
        {"file": Path(p).name, "weight": float(w), "rank": a.rank, "targets": a.targets}
        for (p, w), (a, _) in zip(adapters, loaded)
    ]
    return voice, {"base_fingerprint": base.fingerprint, "adapters": json.dumps(listed)}, reference


def synth_metadata(voice: Voice, merge_info: Mapping[str, str], *, streaming: bool, fp16: bool, opset: int, embedder: str) -> dict[str, str]:
    layer, proj, dim = EMBEDDER_LAYERS[voice.version]
    cfg = voice.config
    return {
        "rvclora_component": "synth",
        "sr": str(voice.sr),
        "version": voice.version,
        "f0": "1" if voice.f0 else "0",
        "embedder": embedder,
        "embedder_output_layer": str(layer),
        "embedder_final_proj": "1" if proj else "0",
        "embedding_dim": str(dim),
        "hop": str(cfg.hop),
        "inter_channels": str(cfg.inter_channels),
        "n_speakers": str(voice.n_speakers),
        "streaming": "1" if streaming else "0",
        "formant": "1" if streaming else "0",  # streaming graphs take return_length2
        "precision": "fp16" if fp16 else "fp32",
        "opset": str(opset),
        "dec_noise": f"input '{DEC_NOISE}' (default 1) scales the decoder's random draws; 0 = deterministic",
        "base_fingerprint": merge_info["base_fingerprint"],
        "adapters": merge_info["adapters"],
        "info": voice.info,
        "rvclora_version": _rvclora_version(),
    }


def _legacy_export(
    module: nn.Module, args: tuple[Tensor, ...], path: Path, *,
    input_names: Sequence[str], output_names: Sequence[str], dynamic_axes: Mapping[str, Mapping[int, str]], opset: int,
) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # deprecation and tracer warnings: the checks below decide
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )


def _finish_model(path: Path, metadata: Mapping[str, str], defaults: Mapping[str, Tensor]) -> None:
    """Add metadata props and give ``defaults`` inputs a stored default value."""
    import onnx  # noqa: PLC0415 — optional extra (onnx)
    from onnx import numpy_helper  # noqa: PLC0415 — optional extra (onnx)

    proto = onnx.load(str(path))
    inputs = {i.name for i in proto.graph.input}
    for name, value in defaults.items():
        if name not in inputs:  # unused, so the exporter dropped it (no-f0: no NSF source)
            continue
        proto.graph.initializer.append(numpy_helper.from_array(value.numpy(), name))
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(proto, str(path))


def _outcome(meta: dict[str, str], report: VerifyReport | None) -> ExportOutcome:
    if report is None:
        return ExportOutcome(metadata=meta)
    return ExportOutcome(metadata=meta, max_abs_diff=report.max_abs_diff, lengths=report.lengths, tolerance=report.tolerance)


def export_synth(job: ExportJob) -> ExportOutcome:
    """Export (and verify) a merged synthesizer in this process; see ``export_onnx``."""
    voice, merge_info, reference = load_merged(job.model, job.adapters, force=job.force, keep_reference=job.verify)
    model = voice.model
    if job.fp16:
        model = model.half()
    graph = SynthesizerGraph(model, streaming=job.streaming)
    t = EXPORT_FRAMES
    example = synth_inputs(model, t, streaming=(FLOW_CONTEXT + 8, t - FLOW_CONTEXT - 16) if job.streaming else None)
    names = graph.input_names
    time_axes = {n: {1: "T"} for n in ("phone", "pitch", "pitchf") if n in names} | {"rnd": {2: "T"}}
    path = Path(job.tmp_out)
    _legacy_export(
        graph, tuple(example[n] for n in names), path,
        input_names=names, output_names=["audio"], dynamic_axes=time_axes | {"audio": {2: "samples"}}, opset=job.opset,
    )
    meta = synth_metadata(voice, merge_info, streaming=job.streaming, fp16=job.fp16, opset=job.opset, embedder=job.embedder)
    _finish_model(path, meta, {DEC_NOISE: torch.ones(1), FORMANT_INPUT: torch.zeros(1, dtype=torch.long)})
    report = verify_synth(path, reference, fp16=job.fp16) if job.verify and reference is not None else None
    return _outcome(meta, report)


def export_content(job: ExportJob) -> ExportOutcome:
    dtype = torch.float16 if job.fp16 else torch.float32
    encoder = load_content_encoder(job.model, version=job.version, dtype=dtype)
    path = Path(job.tmp_out)
    _legacy_export(
        ContentGraph(encoder), (torch.randn(1, SR_16K // 2),), path, input_names=["wav"], output_names=["feats"],
        dynamic_axes={"wav": {0: "batch", 1: "samples"}, "feats": {0: "batch", 1: "frames"}}, opset=job.opset,
    )
    layer, proj, _dim = EMBEDDER_LAYERS[job.version]
    meta = {
        "rvclora_component": "content", "version": job.version, "embedder": job.embedder,
        "embedder_output_layer": str(layer), "embedder_final_proj": "1" if proj else "0",
        "embedding_dim": str(encoder.out_dim), "sample_rate": str(SR_16K), "hop": str(encoder.hop),
        "precision": "fp16" if job.fp16 else "fp32", "opset": str(job.opset), "rvclora_version": _rvclora_version(),
    }
    _finish_model(path, meta, {})
    report = None
    if job.verify:
        # The reference is the native encoder, untouched (ContentGraph swaps a block).
        report = verify_module(path, load_content_encoder(job.model, version=job.version),
                               "wav", [torch.randn(1, 6400, generator=torch.Generator().manual_seed(1)),
                                       torch.randn(1, 11200, generator=torch.Generator().manual_seed(2))],
                               fp16=job.fp16)
    return _outcome(meta, report)


def export_pitch(job: ExportJob) -> ExportOutcome:
    model = load_pitch_model(job.model)
    if job.fp16:
        model = model.half()
    path = Path(job.tmp_out)
    _legacy_export(
        PitchGraph(model), (torch.randn(1, N_MELS, 64),), path, input_names=["mel"], output_names=["salience"],
        dynamic_axes={"mel": {0: "batch", 2: "T"}, "salience": {0: "batch", 1: "T"}}, opset=job.opset,
    )
    meta = {
        "rvclora_component": "pitch", "model": "rmvpe", "sample_rate": str(SR_16K), "hop": str(HOP_16K),
        "n_mels": str(N_MELS), "time_multiple": str(TIME_MULTIPLE), "precision": "fp16" if job.fp16 else "fp32",
        "opset": str(job.opset), "rvclora_version": _rvclora_version(),
    }
    _finish_model(path, meta, {})
    report = None
    if job.verify:
        gen = torch.Generator().manual_seed(3)
        mels = [torch.randn(1, N_MELS, 32, generator=gen) - 4, torch.randn(1, N_MELS, 96, generator=gen) - 4]
        report = verify_module(path, load_pitch_model(job.model), "mel", mels, fp16=job.fp16)
    return _outcome(meta, report)


EXPORTERS: dict[str, Callable[[ExportJob], ExportOutcome]] = {
    "synth": export_synth, "content": export_content, "pitch": export_pitch,
}


def run_job(job: ExportJob) -> ExportOutcome:
    """Entry point of the worker process (``python -m rvclora.export._worker``)."""
    return EXPORTERS[job.component](job)
