"""Export verification: ONNX Runtime and PyTorch on the same inputs, max abs difference.

The torch side is built independently of the exported graph: the voice file is
loaded again and the adapters are applied *unmerged* (live LoRA layers), so a
wrong merge, a wrong fold of weight norm or a wrong graph all show up.

Randomness: the synthesizer's latent noise is an input (``rnd``), the same array
goes to both sides.  The NSF source's own random draws are switched off on both
sides by the same argument: the graph's ``dec_noise`` input and
``Synthesizer.infer(dec_noise=0)`` (with one harmonic, RVC's only setting, the
random start phase is 0 anyway; the noise term is what goes).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ..synth.onnx_backend import make_session
from ..synth.onnx_contract import DEC_NOISE, FORMANT_INPUT, read_metadata
from ..synth.voice_adapters import load_voice_with_adapters
from .example_inputs import synth_inputs

FP32_TOLERANCE = 1e-4  # ORT vs torch in fp32: the exported graph computes the same function
FP16_TOLERANCE = 5e-2  # fp16 weights and activations vs the fp32 reference: a sanity bound
# (frames, (skip_head, return_length, return_length2)): two lengths prove T dynamic; the
# streaming cases cover a flow head inside the window (101 - 45 frames) and one clamped
# at 0, without and with a formant stretch.
SYNTH_CASES = ((37, (6, 20, 20)), (101, (40, 45, 52)))


@dataclass(frozen=True)
class VerifyReport:
    max_abs_diff: float  # worst over all lengths
    lengths: tuple[int, ...]
    per_length: tuple[float, ...]
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance


def reference_synth(model_path: str | os.PathLike, adapters: Sequence[tuple[str, float]] = (), *, force: bool = False) -> nn.Module:
    """The voice with adapters applied live (unmerged, fp32, weight norm kept)."""
    return load_voice_with_adapters(model_path, adapters, merged=False, force=force).model.eval()


def torch_synth(model: nn.Module, inputs: Mapping[str, Tensor]) -> Tensor:
    """Synthesizer.infer on ONNX-contract inputs (rnd already scaled; decoder noise off)."""
    skip = inputs.get("skip_head")
    length = inputs.get("return_length")
    stretch = inputs.get(FORMANT_INPUT)
    with torch.no_grad():
        return model.infer(
            inputs["phone"], inputs["phone_lengths"], inputs.get("pitch"), inputs.get("pitchf"), inputs["ds"],
            noise=inputs["rnd"], noise_scale=1.0, dec_noise=0.0,
            skip_head=None if skip is None else int(skip), return_length=None if length is None else int(length),
            return_length2=None if stretch is None else int(stretch),
        ).float()


def run_onnx(session, inputs: Mapping[str, Tensor], *, dec_noise: float = 0.0) -> np.ndarray:
    """Run an ORT session on the inputs it declares; the decoder noise gain is set if it has one."""
    wanted = {i.name for i in session.get_inputs()} | {i.name for i in session.get_overridable_initializers()}
    feed = {k: v.numpy() for k, v in inputs.items() if k in wanted and k != DEC_NOISE}
    if DEC_NOISE in wanted:
        feed[DEC_NOISE] = np.array([dec_noise], dtype=np.float32)
    return session.run(None, feed)[0]


def _session(path: str | os.PathLike):  # an onnxruntime.InferenceSession (optional dependency)
    return make_session(path, device="cpu", threads=1)[0]


def _report(diffs: Sequence[float], lengths: Sequence[int], fp16: bool) -> VerifyReport:
    return VerifyReport(
        max_abs_diff=float(max(diffs)), lengths=tuple(lengths), per_length=tuple(float(d) for d in diffs),
        tolerance=FP16_TOLERANCE if fp16 else FP32_TOLERANCE,
    )


def verify_synth(
    onnx_path: str | os.PathLike,
    reference: nn.Module,
    *,
    fp16: bool = False,
    cases: Sequence[tuple[int, tuple[int, int, int]]] = SYNTH_CASES,
) -> VerifyReport:
    """Max |ORT − torch| of an exported synthesizer over ``cases`` (two lengths by default).

    ``reference``: the torch Synthesizer to compare with, e.g. ``reference_synth(voice, adapters)``."""
    session = _session(onnx_path)
    streaming = read_metadata(onnx_path).get("streaming") == "1"
    reference = reference.float().eval()
    diffs, lengths = [], []
    for i, (frames, window) in enumerate(cases):
        inputs = synth_inputs(reference, frames, seed=100 + i, streaming=window if streaming else None)
        got = run_onnx(session, inputs)
        want = torch_synth(reference, inputs).numpy()
        if got.shape != want.shape:
            raise ValueError(f"ONNX output shape {got.shape} differs from torch {want.shape} at T={frames}")
        diffs.append(float(np.abs(got - want).max()))
        lengths.append(frames)
    return _report(diffs, lengths, fp16)


def verify_module(
    onnx_path: str | os.PathLike, module: nn.Module | Callable[[Tensor], Tensor], input_name: str,
    inputs: Sequence[Tensor], *, fp16: bool = False,
) -> VerifyReport:
    """Max |ORT − torch| of a one-input graph (content encoder, RMVPE) over ``inputs``."""
    session = _session(onnx_path)
    diffs, lengths = [], []
    for x in inputs:
        got = session.run(None, {input_name: x.numpy()})[0]
        with torch.no_grad():
            want = module(x).float().numpy()
        if got.shape != want.shape:
            raise ValueError(f"ONNX output shape {got.shape} differs from torch {want.shape}")
        diffs.append(float(np.abs(got - want).max()))
        lengths.append(int(x.shape[-1]))
    return _report(diffs, lengths, fp16)


__all__ = [
    "FP16_TOLERANCE", "FP32_TOLERANCE", "SYNTH_CASES", "VerifyReport", "reference_synth", "run_onnx",
    "torch_synth", "verify_module", "verify_synth",
]
