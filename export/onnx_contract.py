"""Options of an ONNX export that the command line offers: opsets and content-encoder names.

Torch-free, so `rvclora export --help` lists them without loading the exporter.
"""

from __future__ import annotations

COMPONENTS = ("synth", "content", "pitch")
DEFAULT_OPSET = 17  # RVC's own choice; onnxruntime 1.17+ runs it
MIN_OPSET, MAX_OPSET = 13, 21  # opset ≥ 22 RandomNormalLike has no ORT kernel (ORT 1.31)
# Which content encoder a voice was trained on (RVC: hubert_base.pt, a ContentVec model).
EMBEDDERS = ("hubert_base", "contentvec")
