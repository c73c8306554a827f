"""ONNX export of merged voices, the content encoder and RMVPE.

What the synthesizer graph looks like (DESIGN.md §3.2, RVC's own export contract):

    inputs   phone [1,T,256|768] f32, phone_lengths [1] i64, pitch [1,T] i64,
             pitchf [1,T] f32, ds [1] i64, rnd [1,inter,T] f32  (noise ALREADY scaled)
             + skip_head [1] i64, return_length [1] i64       (--streaming only)
    output   audio [1,1,T·hop] f32  (return_length·hop with --streaming)

No-f0 voices have no ``pitch``/``pitchf`` inputs (their decoder has no source).

Choices, and why:

- **Legacy TorchScript exporter** (``dynamo=False``).  The dynamo exporter works
  too but takes ~60× longer (research note §B: 18 s vs 0.3 s on a toy model),
  freezes dynamic axes after a GRU export in the same process and writes wrong
  output-shape metadata with ``optimize=True``.  The legacy one gives symbolic
  output dims and exports in seconds, which keeps the test suite usable.
- **One fresh process per export** (``python -m rvclora.export._worker``): torch's
  exporters keep state between exports; a fresh process also frees the exporter's
  memory.  After each export the parent checks that every time axis is symbolic.
- **Decoder randomness.**  RVC's NSF source draws Gaussian noise (and random
  overtone phases) on every call; the exported graph keeps that
  (``RandomNormalLike``), as RVC's export does.  The draw is multiplied by an extra
  graph input ``dec_noise`` that has a default value of 1 stored in the file (an
  *overridable initializer*): tools that feed only RVC's six inputs get RVC's
  behaviour, ``sess.get_inputs()`` lists only those six, and verification feeds
  ``dec_noise = 0`` to make the graph deterministic, against a torch model whose
  source noise is switched off the same way (see ``verify.py``).
- **A portable sine source.**  RVC's SineGen finds phase wraps with exact float
  comparisons of a linearly interpolated phase and then cumsums over every output
  sample; ONNX Runtime's Resize rounds differently, finds spurious wraps in
  unvoiced stretches, and its float32 CumSum then drifts (measured 0.05–0.09 abs
  error on a tiny model).  The graph instead computes the same sum in closed form
  per frame, ``S[f,k] = upp·Σ_{j<f} rad[j] + (k+1)·rad[f]`` (frame-level cumsum in
  float64, wrapped to [0,1)), which equals RVC's running phase up to whole cycles.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..lora import apply_adapters, bake
from ..synth.errors import ModelFileError
from ..synth.onnx_voice import STREAM_INPUTS
from ..synth.output_file import check_output_path, staged_output
from ..synth.rmvpe import load_pitch_model
from ..synth.synthesizer import FLOW_CONTEXT, Synthesizer
from ..synth.voice_adapters import base_info, load_checked_adapters, load_voice_with_adapters
from ..synth.voice_file import load_voice

COMPONENTS = ("synth", "content", "pitch")
DEFAULT_OPSET = 17  # RVC's own choice; onnxruntime 1.17+ runs it
MIN_OPSET, MAX_OPSET = 13, 21  # opset ≥ 22 RandomNormalLike has no ORT kernel (ORT 1.31)
SYNTH_INPUTS = ("phone", "phone_lengths", "pitch", "pitchf", "ds", "rnd")
DEC_NOISE = "dec_noise"  # overridable initializer (default 1): gain of the decoder's random draws
EXPORT_FRAMES = 64  # example length for tracing; any T works afterwards
# Which content encoder a voice was trained on (RVC: hubert_base.pt, a ContentVec model).
EMBEDDERS = ("hubert_base", "contentvec")
EMBEDDER_LAYERS = {"v1": (9, True, 256), "v2": (12, False, 768)}  # (layer, final_proj, dim)


class ExportFileError(ModelFileError):
    """The export process refused an input model file (its one-line message)."""


class ExportError(ValueError):
    """An export that cannot be done or failed; the one-line message says why."""


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and how it checked out."""

    path: Path
    component: str
    max_abs_diff: float | None  # ORT vs torch, worst over the verified lengths (None: not verified)
    lengths: tuple[int, ...]  # time lengths run in the check (≥ 2: T proven dynamic)
    metadata: dict[str, str]
    seconds: float


# --------------------------------------------------------------------------- graph modules


class PortableSineGen(nn.Module):
    """Drop-in for RVC's SineGen that exports to ONNX with RVC's numbers.

    Same outputs as ``synth.generator.SineGen`` (sine·uv + noise, uv), computed
    without sample-level wrap detection (see the module docstring).  ``gain``
    (a 1-element tensor, set by the graph before each call) scales every random
    draw: 1 = RVC, 0 = deterministic (no noise, overtones start at phase 0).
    """

    def __init__(self, src: nn.Module) -> None:
        super().__init__()
        self.sampling_rate = int(src.sampling_rate)
        self.dim = int(src.dim)
        self.sine_amp = float(src.sine_amp)
        self.noise_std = float(src.noise_std)
        self.voiced_threshold = float(src.voiced_threshold)
        self.gain: Tensor | None = None

    def forward(self, f0: Tensor, upp: int) -> tuple[Tensor, Tensor]:
        gain = self.gain if self.gain is not None else torch.ones(1, device=f0.device)
        f0 = f0.float().unsqueeze(-1)  # [B, T, 1]
        b, t = f0.shape[0], f0.shape[1]
        harmonics = torch.arange(1, self.dim + 1, device=f0.device, dtype=f0.dtype)
        rad = (f0 * harmonics / self.sampling_rate) % 1  # cycles per sample, per frame [B, T, dim]
        if self.dim > 1:  # random start phase for the overtones only (RVC adds it to frame 0)
            phase0 = torch.rand(b, self.dim - 1, device=f0.device) * gain
            phase0 = torch.cat([torch.zeros(b, 1, device=f0.device), phase0], 1)
            rad = torch.cat([rad[:, :1] + phase0[:, None, :], rad[:, 1:]], dim=1)
        # Phase at the start of each frame, wrapped: upp·(sum of earlier frames' rad).
        per_frame = (rad.double() * upp) % 1
        start = (torch.cumsum(per_frame, 1) - per_frame) % 1  # exclusive cumsum, float64
        k = torch.arange(1, upp + 1, device=f0.device, dtype=torch.float64).reshape(1, 1, upp, 1)
        phase = (start.unsqueeze(2) + rad.double().unsqueeze(2) * k) % 1  # [B, T, upp, dim]
        sine = torch.sin(phase.float().reshape(b, t * upp, self.dim) * (2 * math.pi)) * self.sine_amp
        uv = (f0 > self.voiced_threshold).float()
        uv = uv.unsqueeze(2).expand(b, t, upp, 1).reshape(b, t * upp, 1)  # nearest upsampling
        noise_amp = uv * self.noise_std + (1 - uv) * self.sine_amp / 3
        noise = noise_amp * torch.randn_like(sine) * gain
        return sine * uv + noise, uv


class SynthesizerGraph(nn.Module):
    """The exported function: RVC's ONNX contract around a (merged) Synthesizer.

    ``forward(*inputs)`` takes the tensors named by ``input_names`` in that order.
    The wrapped model is changed in place (weight norm folded, portable sine source).
    """

    def __init__(self, model: Synthesizer, *, streaming: bool = False) -> None:
        super().__init__()
        if model.has_weight_norm:
            model.remove_weight_norm()  # one constant weight per conv in the graph
        self.model = model.eval()
        self.streaming = streaming
        self.sine: PortableSineGen | None = None
        if model.f0:
            source = model.dec.m_source
            self.sine = PortableSineGen(source.l_sin_gen)
            source.l_sin_gen = self.sine

    @property
    def input_names(self) -> tuple[str, ...]:
        names = SYNTH_INPUTS if self.model.f0 else tuple(n for n in SYNTH_INPUTS if n not in ("pitch", "pitchf"))
        return names + (STREAM_INPUTS if self.streaming else ()) + (DEC_NOISE,)

    def forward(self, *inputs: Tensor) -> Tensor:
        x = dict(zip(self.input_names, inputs))
        m = self.model
        dtype = m.emb_g.weight.dtype
        if self.sine is not None:
            self.sine.gain = x[DEC_NOISE]
        phone, lengths, ds, rnd = x["phone"].to(dtype), x["phone_lengths"], x["ds"], x["rnd"].to(dtype)
        pitch, pitchf = x.get("pitch"), x.get("pitchf")
        try:
            if not self.streaming:
                # rnd is already scaled (RVC's contract): noise_scale 1 inside the graph.
                audio = m.infer(phone, lengths, pitch, pitchf, ds, noise=rnd, noise_scale=1.0)
            else:
                audio = self._streaming(phone, lengths, pitch, pitchf, ds, rnd, x["skip_head"], x["return_length"])
        finally:
            if self.sine is not None:
                self.sine.gain = None
        return audio.float()

    def _streaming(self, phone, lengths, pitch, pitchf, ds, rnd, skip_head, return_length) -> Tensor:
        # Synthesizer.infer's skip_head/return_length path with tensor offsets, so the
        # offsets stay graph inputs (infer turns them into Python ints, which tracing
        # would freeze).  Attention sees all T frames; the flow runs from
        # skip_head - 24; the decoder only on [skip_head, skip_head + return_length).
        m = self.model
        g = m.emb_g(ds).unsqueeze(-1)
        m_p, logs_p, x_mask = m.enc_p(phone, pitch, lengths)
        head, length = skip_head.reshape(()), return_length.reshape(())
        flow_head = torch.clamp(head - FLOW_CONTEXT, min=0)
        keep = torch.arange(flow_head, m_p.shape[2], device=m_p.device)
        m_p, logs_p, x_mask, rnd = (t.index_select(2, keep) for t in (m_p, logs_p, x_mask, rnd))
        z = m.flow((m_p + torch.exp(logs_p) * rnd) * x_mask, x_mask, g=g, reverse=True)
        dec = torch.arange(head - flow_head, head - flow_head + length, device=z.device)
        z, x_mask = z.index_select(2, dec), x_mask.index_select(2, dec)
        if pitchf is not None:
            pitchf = pitchf.index_select(1, torch.arange(head, head + length, device=pitchf.device))
        return m._decode(z * x_mask, pitchf, g)


class _FixedWidthNormBlock(nn.Module):
    """HuBERT's conv → fp32 norm → GELU block with the channel count as a Python int.

    The native block passes ``y.shape[1]`` as group_norm's group count, which the
    tracer turns into a graph value that ONNX's GroupNorm cannot take; same math."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block
        self.channels = int(block.conv.out_channels)

    def forward(self, x: Tensor) -> Tensor:
        blk = self.block
        x = blk.conv(x)
        y, w, b = x.float(), blk.norm_weight.float(), blk.norm_bias.float()
        if blk.norm_kind == "group":
            y = torch.nn.functional.group_norm(y, self.channels, w, b, blk.eps)
        else:
            y = torch.nn.functional.layer_norm(y.transpose(1, 2), (self.channels,), w, b, blk.eps).transpose(1, 2)
        return torch.nn.functional.gelu(y.to(x.dtype))


class ContentGraph(nn.Module):
    """wav [B, N] at 16 kHz → features [B, frames, 256|768] (the encoder's version decides)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder.eval()
        layers = encoder.model.feature_extractor.conv_layers
        for i, block in enumerate(layers):
            if getattr(block, "norm_kind", None) is not None:
                layers[i] = _FixedWidthNormBlock(block)

    def forward(self, wav: Tensor) -> Tensor:
        return self.encoder(wav).float()


class PitchGraph(nn.Module):
    """log-mel [B, 128, T] (T a multiple of 32) → RMVPE salience [B, T, 360]."""

    def __init__(self, rmvpe: nn.Module) -> None:
        super().__init__()
        self.rmvpe = rmvpe.eval()

    def forward(self, mel: Tensor) -> Tensor:
        return self.rmvpe(mel).float()


# --------------------------------------------------------------------------- example inputs


def synth_inputs(
    model_or_meta: Synthesizer | Mapping[str, str],
    frames: int,
    *,
    seed: int = 0,
    streaming: tuple[int, int] | None = None,
    dec_noise: float = 0.0,
) -> dict[str, Tensor]:
    """Random inputs of the ONNX contract for ``frames`` frames (speech-like pitch with
    unvoiced gaps); with ``streaming=(skip_head, return_length)`` the two offsets too."""
    if isinstance(model_or_meta, Synthesizer):
        version, f0, inter = model_or_meta.version, model_or_meta.f0, model_or_meta.config.inter_channels
    else:
        version, f0, inter = model_or_meta["version"], model_or_meta["f0"] == "1", int(model_or_meta["inter_channels"])
    gen = torch.Generator().manual_seed(seed)
    dim = EMBEDDER_LAYERS[version][2]
    t = torch.arange(frames, dtype=torch.float32)
    pitchf = (150 + 70 * torch.sin(t / 7) + 10 * torch.rand(frames, generator=gen))[None]
    pitchf[:, (t.long() % 17) < 3] = 0.0  # unvoiced frames
    mel = 1127.0 * torch.log1p(pitchf / 700.0)
    lo, hi = 1127.0 * math.log1p(50 / 700), 1127.0 * math.log1p(1100 / 700)
    pitch = torch.where(mel > 0, (mel - lo) * 254 / (hi - lo) + 1, mel).clamp(1, 255).round().long()
    out = {
        "phone": torch.randn(1, frames, dim, generator=gen),
        "phone_lengths": torch.tensor([frames]),
        "pitch": pitch,
        "pitchf": pitchf,
        "ds": torch.tensor([0]),
        "rnd": torch.randn(1, inter, frames, generator=gen) * 0.66666,
    }
    if not f0:
        del out["pitch"], out["pitchf"]
    if streaming is not None:
        out["skip_head"], out["return_length"] = torch.tensor([streaming[0]]), torch.tensor([streaming[1]])
    out[DEC_NOISE] = torch.tensor([float(dec_noise)])
    return out


# --------------------------------------------------------------------------- loading (in the worker)


def _rvclora_version() -> str:
    try:
        from importlib.metadata import version

        return version("rvclora")
    except Exception:  # not installed (source checkout)
        return "unknown"


def load_merged(
    model_path: str | os.PathLike,
    adapters: Sequence[tuple[str, float]],
    *,
    force: bool = False,
    keep_reference: bool = False,
):
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


def check_inputs(model_path: str | os.PathLike, adapters: Sequence[tuple[str, float]], *, force: bool = False) -> None:
    """The voice loads and every adapter fits it (one-line errors), before any process starts."""
    load_checked_adapters(load_voice(model_path), adapters, force=force)


def synth_metadata(voice, merge_info: Mapping[str, str], *, streaming: bool, fp16: bool, opset: int, embedder: str) -> dict[str, str]:
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
        "precision": "fp16" if fp16 else "fp32",
        "opset": str(opset),
        "dec_noise": f"input '{DEC_NOISE}' (default 1) scales the decoder's random draws; 0 = deterministic",
        "base_fingerprint": merge_info["base_fingerprint"],
        "adapters": merge_info["adapters"],
        "info": voice.info,
        "rvclora_version": _rvclora_version(),
    }


# --------------------------------------------------------------------------- the export itself (worker side)


def _legacy_export(module: nn.Module, args: tuple, path: Path, *, input_names, output_names, dynamic_axes, opset: int) -> None:
    import warnings

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
    import onnx
    from onnx import numpy_helper

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


def export_synth_in_process(job: Mapping[str, Any]) -> dict[str, Any]:
    """Export (and verify) a merged synthesizer in this process; see ``export_onnx``."""
    from . import verify as _verify

    streaming, fp16, opset = bool(job["streaming"]), bool(job["fp16"]), int(job["opset"])
    adapters = [(p, float(w)) for p, w in job["adapters"]]
    voice, merge_info, reference = load_merged(job["model"], adapters, force=bool(job["force"]), keep_reference=bool(job["verify"]))
    model = voice.model
    if fp16:
        model = model.half()
    graph = SynthesizerGraph(model, streaming=streaming)
    t = EXPORT_FRAMES
    example = synth_inputs(model, t, streaming=(FLOW_CONTEXT + 8, t - FLOW_CONTEXT - 16) if streaming else None)
    names = graph.input_names
    time_axes = {n: {1: "T"} for n in ("phone", "pitch", "pitchf") if n in names} | {"rnd": {2: "T"}}
    path = Path(job["tmp_out"])
    _legacy_export(
        graph, tuple(example[n] for n in names), path,
        input_names=names, output_names=["audio"], dynamic_axes=time_axes | {"audio": {2: "samples"}}, opset=opset,
    )
    meta = synth_metadata(voice, merge_info, streaming=streaming, fp16=fp16, opset=opset, embedder=job["embedder"])
    _finish_model(path, meta, {DEC_NOISE: torch.ones(1)})
    result: dict[str, Any] = {"metadata": meta, "max_abs_diff": None, "lengths": []}
    if job["verify"]:
        report = _verify.verify_synth(path, reference, fp16=fp16)
        result.update(max_abs_diff=report.max_abs_diff, lengths=list(report.lengths), tolerance=report.tolerance)
    return result


def export_content_in_process(job: Mapping[str, Any]) -> dict[str, Any]:
    from ..synth.content_encoder import load_content_encoder
    from . import verify as _verify

    version, opset = job["version"], int(job["opset"])
    dtype = torch.float16 if job["fp16"] else torch.float32
    encoder = load_content_encoder(job["model"], version=version, dtype=dtype)
    n = 16000 // 2
    path = Path(job["tmp_out"])
    _legacy_export(
        ContentGraph(encoder), (torch.randn(1, n),), path, input_names=["wav"], output_names=["feats"],
        dynamic_axes={"wav": {0: "batch", 1: "samples"}, "feats": {0: "batch", 1: "frames"}}, opset=opset,
    )
    layer, proj, dim = EMBEDDER_LAYERS[version]
    meta = {
        "rvclora_component": "content", "version": version, "embedder": job["embedder"],
        "embedder_output_layer": str(layer), "embedder_final_proj": "1" if proj else "0",
        "embedding_dim": str(encoder.out_dim), "sample_rate": "16000", "hop": str(encoder.hop),
        "precision": "fp16" if job["fp16"] else "fp32", "opset": str(opset), "rvclora_version": _rvclora_version(),
    }
    _finish_model(path, meta, {})
    result: dict[str, Any] = {"metadata": meta, "max_abs_diff": None, "lengths": []}
    if job["verify"]:
        # The reference is the native encoder, untouched (ContentGraph swaps a block).
        report = _verify.verify_module(path, load_content_encoder(job["model"], version=version),
                                       "wav", [torch.randn(1, 6400, generator=torch.Generator().manual_seed(1)),
                                               torch.randn(1, 11200, generator=torch.Generator().manual_seed(2))],
                                       fp16=bool(job["fp16"]))
        result.update(max_abs_diff=report.max_abs_diff, lengths=list(report.lengths), tolerance=report.tolerance)
    return result


def export_pitch_in_process(job: Mapping[str, Any]) -> dict[str, Any]:
    from . import verify as _verify

    opset = int(job["opset"])
    model = load_pitch_model(job["model"])
    if job["fp16"]:
        model = model.half()
    path = Path(job["tmp_out"])
    _legacy_export(
        PitchGraph(model), (torch.randn(1, 128, 64),), path, input_names=["mel"], output_names=["salience"],
        dynamic_axes={"mel": {0: "batch", 2: "T"}, "salience": {0: "batch", 1: "T"}}, opset=opset,
    )
    meta = {
        "rvclora_component": "pitch", "model": "rmvpe", "sample_rate": "16000", "hop": "160", "n_mels": "128",
        "time_multiple": "32", "precision": "fp16" if job["fp16"] else "fp32", "opset": str(opset),
        "rvclora_version": _rvclora_version(),
    }
    _finish_model(path, meta, {})
    result: dict[str, Any] = {"metadata": meta, "max_abs_diff": None, "lengths": []}
    if job["verify"]:
        gen = torch.Generator().manual_seed(3)
        mels = [torch.randn(1, 128, 32, generator=gen) - 4, torch.randn(1, 128, 96, generator=gen) - 4]
        report = _verify.verify_module(path, load_pitch_model(job["model"]), "mel", mels, fp16=bool(job["fp16"]))
        result.update(max_abs_diff=report.max_abs_diff, lengths=list(report.lengths), tolerance=report.tolerance)
    return result


def run_job(job: Mapping[str, Any]) -> dict[str, Any]:
    """Entry point of the worker process (``python -m rvclora.export._worker``)."""
    return {"synth": export_synth_in_process, "content": export_content_in_process, "pitch": export_pitch_in_process}[
        job["component"]
    ](job)


# --------------------------------------------------------------------------- parent side


def dynamic_axes_of(path: str | os.PathLike) -> dict[str, list[str | int]]:
    """Each graph input/output's shape: a str for a symbolic dim, an int for a fixed one."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    out = {}
    for value in list(proto.graph.input) + list(proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        out[value.name] = [d.dim_param if d.dim_param else d.dim_value for d in dims]
    return out


_EXPECTED_DYNAMIC = {
    "synth": {"phone": 1, "pitch": 1, "pitchf": 1, "rnd": 2, "audio": 2},
    "content": {"wav": 1, "feats": 1},
    "pitch": {"mel": 2, "salience": 1},
}


def check_dynamic(path: str | os.PathLike, component: str) -> None:
    """Raise ExportError unless every time axis of the exported graph is symbolic."""
    shapes = dynamic_axes_of(path)
    for name, axis in _EXPECTED_DYNAMIC[component].items():
        if name in shapes and not isinstance(shapes[name][axis], str):
            raise ExportError(f"export produced a fixed length {shapes[name][axis]} for {name} axis {axis}; report this bug")


def _run_worker(job: Mapping[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rvclora-export-") as tmp:
        job_file, result_file = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_file.write_text(json.dumps(job))
        proc = subprocess.run(
            [sys.executable, "-m", "rvclora.export._worker", str(job_file), str(result_file)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        if result_file.exists():
            result = json.loads(result_file.read_text())
            if "error" in result:
                raise (ExportFileError if result.get("bad_file") else ExportError)(result["error"])
            return result
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        raise ExportError(f"export process failed (exit {proc.returncode}): {lines[-1] if lines else 'no message'}")


def export_onnx(
    model: str | os.PathLike,
    out: str | os.PathLike,
    *,
    component: str = "synth",
    adapters: Sequence[tuple[str | os.PathLike, float]] = (),
    streaming: bool = False,
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
    overwrite: bool = False,
    force: bool = False,
    embedder: str = "hubert_base",
    version: str = "v2",
) -> ExportResult:
    """Export ``component`` of ``model`` to the ONNX file ``out`` in a fresh process.

    - ``synth``: the voice ``model`` (.pth) with ``adapters`` ``[(file, weight), …]``
      merged in; ``streaming`` adds ``skip_head``/``return_length`` inputs.
    - ``content``: a HuBERT/ContentVec file, ``version`` v1 (256-d) or v2 (768-d) features.
    - ``pitch``: an ``rmvpe.pt``.
    ``verify`` runs ONNX Runtime and torch on the same inputs at two lengths and
    raises ExportError above the tolerance (1e-4 fp32).  The file appears only
    after everything passed; an existing ``out`` is kept unless ``overwrite``.
    """
    start = time.perf_counter()
    if component not in COMPONENTS:
        raise ExportError(f"unknown component {component!r}; choose one of {', '.join(COMPONENTS)}")
    if not MIN_OPSET <= int(opset) <= MAX_OPSET:
        raise ExportError(f"opset {opset} is not supported; use {MIN_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET})")
    if embedder not in EMBEDDERS:
        raise ExportError(f"unknown embedder {embedder!r}; choose one of {', '.join(EMBEDDERS)}")
    if version not in EMBEDDER_LAYERS:
        raise ExportError(f"unknown version {version!r}; choose v1 or v2")
    if component != "synth" and (adapters or streaming):
        raise ExportError(f"--adapter and --streaming apply to the synthesizer, not to --component {component}")
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ExportError(f"{out}: an ONNX export needs a .onnx file name")
    for path in [model, *(p for p, _ in adapters)]:
        if not Path(path).is_file():
            raise ExportError(f"{path}: file not found")
    check_output_path(out, overwrite=overwrite)
    if component == "synth":
        check_inputs(model, adapters, force=force)
    with staged_output(out, overwrite=overwrite) as tmp:
        job = {
            "component": component, "model": str(model), "adapters": [[str(p), float(w)] for p, w in adapters],
            "streaming": streaming, "fp16": fp16, "opset": int(opset), "verify": verify, "force": force,
            "embedder": embedder, "version": version, "tmp_out": str(tmp),
        }
        result = _run_worker(job)
        check_dynamic(tmp, component)
        if verify and result.get("max_abs_diff") is not None and result["max_abs_diff"] > result["tolerance"]:
            raise ExportError(
                f"verification failed: ONNX Runtime and torch differ by {result['max_abs_diff']:.3g} "
                f"(> {result['tolerance']:g}); the file was not written"
            )
    return ExportResult(
        path=out, component=component, max_abs_diff=result.get("max_abs_diff"), lengths=tuple(result.get("lengths", ())),
        metadata=dict(result["metadata"]), seconds=time.perf_counter() - start,
    )


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata props of an ONNX file."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


__all__ = [
    "COMPONENTS", "DEC_NOISE", "DEFAULT_OPSET", "EMBEDDERS", "SYNTH_INPUTS", "STREAM_INPUTS",
    "ContentGraph", "ExportError", "ExportResult", "PitchGraph", "PortableSineGen", "SynthesizerGraph",
    "check_dynamic", "dynamic_axes_of", "export_onnx", "load_merged", "load_pitch_model", "read_metadata",
    "synth_inputs",
]
