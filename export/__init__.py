"""Export of merged voices (ONNX, official RVC .pth), export verification, the ONNX Runtime backend.

- ``export_onnx``: synthesizer (RVC's ONNX contract, optional streaming inputs),
  content encoder or RMVPE to ONNX, each in a fresh process, verified against torch.
- ``write_merged_voice``: base voice + adapters → official RVC voice ``.pth``.
- ``make_session`` / ``OnnxSynthesizer``: run exports in ONNX Runtime (CPU or CUDA),
  reporting the providers really in use.

onnx/onnxruntime are imported only when used (the ``onnx`` extra).
"""
from .backend import BackendError, OnnxSynthesizer, make_session
from .merged_voice import write_merged_voice
from .onnx_export import ExportError, ExportResult, export_onnx, read_metadata
from .verify import VerifyReport, verify_synth

__all__ = [
    "BackendError", "ExportError", "ExportResult", "OnnxSynthesizer", "VerifyReport",
    "export_onnx", "make_session", "read_metadata", "verify_synth", "write_merged_voice",
]
