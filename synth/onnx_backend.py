"""The ONNX Runtime backend: session factory and a Synthesizer-compatible wrapper.

``make_session`` is what the live engine and ``rvclora convert --backend onnx``
use.  It never trusts ``ort.get_available_providers()`` (onnxruntime-gpu lists
CUDA even without a GPU or cuDNN) nor ``ort.get_device()``: it asks for CUDA,
then reads ``sess.get_providers()``, which names the providers the session
really runs on (ORT silently falls back to CPU when the CUDA libraries fail).
"""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .constants import NOISE_SCALE
from .onnx_contract import DEC_NOISE, FORMANT_INPUT
from .ort_providers import CPU, CUDA, DML, ORT_DEVICES, BackendError, choose_providers

DEVICES = ORT_DEVICES


def _ort():
    try:
        import onnxruntime  # noqa: PLC0415 — optional extra (onnx)
    except ImportError:
        raise BackendError("onnxruntime is not installed; pip install 'rvclora[onnx]' (or [gpu] for CUDA)") from None
    return onnxruntime


def make_session(
    path: str | os.PathLike,
    *,
    device: str = "auto",
    threads: int | None = None,
    log_level: int = 3,
) -> tuple[Any, list[str]]:
    """An ``onnxruntime.InferenceSession`` for ``path`` and the providers it really uses.

    - ``device="auto"``: CUDA when onnxruntime-gpu can run on a GPU here, CPU otherwise.
    - ``"cuda"``: CUDA or a BackendError (never a silent CPU fallback).
    - ``"cpu"``: CPU only.
    ``threads`` sets intra-op threads (None: ORT's default).  ``log_level`` 3
    (errors only) hides ORT's warnings, e.g. about the exported ``dec_noise``
    initializer that doubles as an optional input.
    """
    if device not in DEVICES:
        choose_providers(device, [], sys.platform)  # the one-line error naming the choices
    ort = _ort()
    if not Path(path).is_file():
        raise BackendError(f"{path}: ONNX model not found")
    opts = ort.SessionOptions()
    opts.log_severity_level = log_level
    if threads:
        opts.intra_op_num_threads = int(threads)
    providers = choose_providers(device, ort.get_available_providers(), sys.platform)
    if DML in providers:  # DirectML runs without memory patterns and parallel execution
        opts.enable_mem_pattern = False
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        with warnings.catch_warnings():
            # "Specified provider ... not in available provider names": checked just below.
            warnings.filterwarnings("ignore", message="Specified provider")
            session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as e:  # noqa: BLE001 — ORT raises its own exception types; keep the first line
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BackendError(f"{path}: ONNX Runtime cannot load it ({msg})") from None
    in_use = list(session.get_providers())
    if device not in ("auto", "cpu", "mps") and providers[0] not in in_use:
        raise BackendError(
            f"{device} requested but ONNX Runtime fell back to CPU (no GPU, or its libraries missing, "
            "e.g. CUDA/cuDNN for onnxruntime-gpu); use --device cpu or install the GPU runtime"
        )
    return session, in_use


class OnnxSynthesizer:
    """An exported synthesizer behind ``Synthesizer.infer``'s signature, so callers swap backends.

    Reads the model's metadata (sample rate, version, f0, hop, streaming).  Inputs
    and output are torch tensors (CPU); batches run item by item (the ONNX contract
    is batch 1).  ``skip_head``/``return_length`` need a ``--streaming`` export;
    ``return_length2`` (formant shift) a streaming export that has that input
    (``formant``; exports made before it lack it).
    """

    def __init__(self, path: str | os.PathLike, *, device: str = "auto", threads: int | None = None) -> None:
        self.path = Path(path)
        self.session, self.providers = make_session(path, device=device, threads=threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("rvclora_component", "synth") != "synth" or "sr" not in meta:
            raise BackendError(f"{path}: not an rvclora synthesizer export (no synth metadata)")
        self.metadata: dict[str, str] = dict(meta)
        self.sr = int(meta["sr"])
        self.version = meta["version"]
        self.f0 = meta["f0"] == "1"
        self.hop = int(meta["hop"])
        self.inter_channels = int(meta["inter_channels"])
        self.streaming = meta.get("streaming") == "1"
        self._inputs = {i.name for i in self.session.get_inputs()}
        self._optional = {i.name for i in self.session.get_overridable_initializers()}
        self.formant = FORMANT_INPUT in self._inputs | self._optional

    @property
    def device(self) -> str:
        return "cuda" if CUDA in self.providers else "cpu"

    def infer(
        self,
        phone: Tensor,
        phone_lengths: Tensor,
        pitch: Tensor | None,
        pitchf: Tensor | None,
        sid: Tensor,
        *,
        noise_scale: float = NOISE_SCALE,
        noise: Tensor | None = None,
        skip_head: int | Tensor | None = None,
        return_length: int | Tensor | None = None,
        return_length2: int | Tensor | None = None,
        dec_noise: float = 1.0,
    ) -> Tensor:
        """Same as ``Synthesizer.infer`` (audio [B, 1, samples], float32 CPU).

        ``noise`` is standard normal [B, inter, T] (drawn when None) and scaled by
        ``noise_scale`` here, as the graph takes it scaled.  ``dec_noise`` scales
        the NSF source's random draws inside the graph (0: deterministic)."""
        if return_length2 is not None and not self.formant:
            raise BackendError(f"{self.path.name} has no return_length2 input, so no formant shift; re-export it: "
                               "rvclora export --live (or --streaming)")
        if (skip_head is not None or return_length is not None) and not self.streaming:
            raise BackendError(f"{self.path.name} was exported without --streaming; it cannot take skip_head/return_length")
        if self.f0 and (pitch is None or pitchf is None):
            raise ValueError("this voice model needs pitch and pitchf")
        b, t = phone.shape[0], phone.shape[1]
        if noise is None:
            noise = torch.randn(b, self.inter_channels, t)
        outs = []
        for i in range(b):
            feed: dict[str, np.ndarray] = {
                "phone": phone[i : i + 1].float().cpu().numpy(),
                "phone_lengths": phone_lengths[i : i + 1].long().cpu().numpy(),
                "ds": sid[i : i + 1].long().cpu().numpy(),
                "rnd": (noise[i : i + 1].float().cpu() * noise_scale).numpy(),
            }
            if self.f0:
                feed["pitch"] = pitch[i : i + 1].long().cpu().numpy()
                feed["pitchf"] = pitchf[i : i + 1].float().cpu().numpy()
            if self.streaming:
                head = int(skip_head or 0)
                length = int(return_length) if return_length is not None else t - head
                feed["skip_head"] = np.array([head], dtype=np.int64)
                feed["return_length"] = np.array([length], dtype=np.int64)
                if self.formant:
                    stretch = int(return_length2) if return_length2 is not None else length
                    feed[FORMANT_INPUT] = np.array([stretch], dtype=np.int64)
            if DEC_NOISE in self._optional or DEC_NOISE in self._inputs:
                feed[DEC_NOISE] = np.array([dec_noise], dtype=np.float32)
            outs.append(torch.from_numpy(self.session.run(None, feed)[0]))
        return torch.cat(outs, 0)

    __call__ = infer


__all__ = ["BackendError", "CPU", "CUDA", "DEVICES", "OnnxSynthesizer", "make_session"]
