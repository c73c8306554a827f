"""Export of merged voices (ONNX, official RVC .pth) and export verification.

- ``export_onnx``: synthesizer (RVC's ONNX contract, optional streaming inputs),
  content encoder or RMVPE to ONNX, each in a fresh process, verified against torch.
- ``write_merged_voice``: base voice + adapters → official RVC voice ``.pth``.

onnx/onnxruntime are imported only when used (the ``onnx`` extra). The ONNX Runtime
backend that runs the exports lives in ``rvclora.synth.onnx_backend``.
"""
from ..synth.onnx_contract import read_metadata
from .merged_voice import write_merged_voice
from .onnx_export import ExportError, ExportResult, export_onnx
from .verify import VerifyReport, verify_synth

__all__ = [
    "ExportError", "ExportResult", "VerifyReport",
    "export_onnx", "read_metadata", "verify_synth", "write_merged_voice",
]
