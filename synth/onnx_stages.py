"""The live chain's other stages in ONNX Runtime: the content encoder and RMVPE.

Each wraps an exported graph (``rvclora export --component content|pitch``, or the
live set) behind the call the torch module answers, so the live converter runs
either without knowing which: `OnnxContentEncoder` is called like
``ContentEncoder`` (wav [1, N] → features [1, frames, C]); `OnnxRMVPE` has
``RMVPE.infer``/``infer_from_audio`` (16 kHz audio → f0 in Hz). RMVPE's log-mel
front end stays in torch: it is one small STFT, and the graph contract is mel in,
salience out. Tensors come back on the CPU as float32.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .onnx_backend import BackendError, make_session
from .rmvpe_decode import DEFAULT_THRESHOLD, decode_salience, decode_salience_torch
from .rmvpe_mel import MelFrontEnd
from .rmvpe_net import TIME_MULTIPLE


def _component(session, path: Path, want: str) -> dict[str, str]:
    meta = dict(session.get_modelmeta().custom_metadata_map)
    if meta.get("rvclora_component") != want:
        raise BackendError(f"{path.name}: not an rvclora {want} export (rvclora_component is "
                           f"{meta.get('rvclora_component', 'missing')!r}); export it with --component {want}")
    return meta


class OnnxContentEncoder:
    """An exported content encoder called like ``ContentEncoder``: wav [B, N] → [B, frames, C]."""

    def __init__(self, path: str | os.PathLike, *, device: str = "cpu", threads: int | None = None) -> None:
        self.path = Path(path)
        self.session, self.providers = make_session(path, device=device, threads=threads)
        self.metadata = _component(self.session, self.path, "content")
        self.version = self.metadata["version"]
        self.out_dim = int(self.metadata["embedding_dim"])
        self.hop = int(self.metadata["hop"])
        self.precision = self.metadata.get("precision", "fp32")

    def __call__(self, wav: Tensor) -> Tensor:
        if wav.dim() != 2:
            raise ValueError(f"wav must be [batch, samples], got shape {tuple(wav.shape)}")
        x = wav.detach().float().cpu().numpy()
        return torch.from_numpy(self.session.run(None, {"wav": x})[0])


class OnnxRMVPE:
    """An exported RMVPE with ``RMVPE``'s inference calls (torch log-mel in front)."""

    def __init__(self, path: str | os.PathLike, *, device: str = "cpu", threads: int | None = None) -> None:
        self.path = Path(path)
        self.session, self.providers = make_session(path, device=device, threads=threads)
        self.metadata = _component(self.session, self.path, "pitch")
        self.front_end = MelFrontEnd()

    def salience(self, mel: Tensor) -> Tensor:
        """Salience [B, T, 360] for a log-mel of any length (padded to a multiple of 32, cropped back)."""
        n = mel.shape[-1]
        padded = F.pad(mel.float().cpu(), (0, -n % TIME_MULTIPLE))
        out = self.session.run(None, {"mel": padded.numpy()})[0]
        return torch.from_numpy(out[:, :n])

    def _mel(self, audio16k: np.ndarray | Tensor) -> Tensor:
        audio = torch.as_tensor(np.asarray(audio16k) if not isinstance(audio16k, Tensor) else audio16k)
        with torch.inference_mode():
            return self.front_end(audio.detach().cpu().float().reshape(1, -1))

    def infer(self, audio16k: Tensor, threshold: float = DEFAULT_THRESHOLD) -> Tensor:
        """f0 in Hz (float32 tensor, CPU); audio [N] → [N//160 + 1]."""
        return decode_salience_torch(self.salience(self._mel(audio16k))[0], threshold)

    def infer_from_audio(self, audio16k: np.ndarray | Tensor, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
        """f0 in Hz (float64 numpy), as ``RMVPE.infer_from_audio``."""
        return decode_salience(self.salience(self._mel(audio16k))[0].numpy(), threshold)


__all__ = ["OnnxContentEncoder", "OnnxRMVPE"]
