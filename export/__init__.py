"""Export of merged voices (ONNX, official RVC .pth) and export verification.

- ``onnx_export.export_onnx``: synthesizer (RVC's ONNX contract, optional streaming inputs),
  content encoder or RMVPE to ONNX, each in a fresh process, verified against torch.
- ``merged_voice.write_merged_voice``: base voice + adapters → official RVC voice ``.pth``.

This package imports nothing itself (the command line loads `export.cli` without torch);
onnx/onnxruntime are imported only when used (the ``onnx`` extra). The ONNX Runtime
backend that runs the exports lives in ``rvclora.synth.onnx_backend``.
"""
