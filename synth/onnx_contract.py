"""RVC's ONNX synthesizer contract as rvclora writes and runs it: names, noise, embedders, inputs.

The graph (RVC's own export contract):

    inputs   phone [1,T,256|768] f32, phone_lengths [1] i64, pitch [1,T] i64,
             pitchf [1,T] f32, ds [1] i64, rnd [1,inter,T] f32  (noise ALREADY scaled)
             + skip_head [1] i64, return_length [1] i64       (streaming exports only)
             + return_length2 [1] i64, an overridable initializer (default 0 = return_length):
               the decoder stretches its latent and source to that many frames, the
               formant shift (streaming exports since the live set; older ones lack it)
             + dec_noise [1] f32, an overridable initializer (default 1) that scales
               the decoder's random draws; 0 makes the graph deterministic
    output   audio [1,1,T·hop] f32  (return_length·hop when streaming)

No-f0 voices have no ``pitch``/``pitchf`` inputs (their decoder has no source).
The exporter (rvclora.export), the ONNX Runtime backend and the voice checks all
read the names from here; it imports no torch.
"""

from __future__ import annotations

import os

SYNTH_INPUTS = ("phone", "phone_lengths", "pitch", "pitchf", "ds", "rnd")
# Frames of context to skip and frames to decode: the inputs a streaming export adds.
STREAM_INPUTS = ("skip_head", "return_length")
# Frames the decoder stretches to (formant shift); streaming exports take it, older ones lack it.
FORMANT_INPUT = "return_length2"
DEC_NOISE = "dec_noise"  # overridable initializer (default 1): gain of the decoder's random draws
# Which content encoder a voice was trained on (RVC: hubert_base.pt, a ContentVec model).
EMBEDDERS = ("hubert_base", "contentvec")
COMPONENTS = ("synth", "content", "pitch")  # what `rvclora export --component` can write
DEFAULT_OPSET = 17  # RVC's own choice; onnxruntime 1.17+ runs it
MIN_OPSET, MAX_OPSET = 13, 21  # opset ≥ 22 RandomNormalLike has no ORT kernel (ORT 1.31)
EMBEDDER_LAYERS = {"v1": (9, True, 256), "v2": (12, False, 768)}  # (layer, final_proj, dim)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata props of an ONNX file (needs the `onnx` package: the `onnx` extra)."""
    import onnx  # noqa: PLC0415 — optional extra (onnx)

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}
