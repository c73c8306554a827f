"""What an ONNX voice file must hold for the live engine, checked before it is used or imported.

The live engine decodes only the newest frames of a rolling window, so a voice
exported to ONNX must take the streaming inputs `skip_head` and `return_length`
(`rvclora-export --streaming`) and carry rvclora's synthesizer metadata (sample
rate, version, f0). A file without them would import fine and fail at Start.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import FileFormatError
from .onnx_contract import STREAM_INPUTS


class OnnxVoiceError(FileFormatError):
    """An .onnx file the live engine cannot run; the message names the re-export command."""


def reexport_command(path: str | os.PathLike) -> str:
    return f"rvclora-export --model VOICE.pth --streaming --out {Path(path).name}"


def check_onnx_voice(path: str | os.PathLike) -> dict[str, str]:
    """Load `path` in ONNX Runtime and check it is a streaming rvclora synthesizer; returns its metadata."""
    path = Path(path)
    redo = f"re-export it from the voice's .pth: {reexport_command(path)}"
    try:
        import onnxruntime as ort  # noqa: PLC0415 — optional extra (onnx)
    except ImportError:
        raise OnnxVoiceError(f"{path.name}: .onnx voices need onnxruntime; pip install 'rvclora[onnx]'") from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: the message below is what the user sees
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 — ORT raises its own exception types; keep the first line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OnnxVoiceError(f"{path.name}: ONNX Runtime cannot load it ({first[:160]}); {redo}") from None
    meta = dict(session.get_modelmeta().custom_metadata_map)
    if meta.get("rvclora_component", "synth") != "synth" or "sr" not in meta:
        raise OnnxVoiceError(f"{path.name}: not an rvclora voice export (no synthesizer metadata); {redo}")
    missing = [n for n in STREAM_INPUTS if n not in {i.name for i in session.get_inputs()}]
    if missing:
        raise OnnxVoiceError(
            f"{path.name}: exported without --streaming (no {'/'.join(missing)} input), so the live engine "
            f"cannot run it; {redo}"
        )
    return meta
