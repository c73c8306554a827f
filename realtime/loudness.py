"""Loudness mix: make the converted voice follow the input's loudness envelope.

RVC's "loudness factor" (gui_v1.py `audio_callback`): RMS envelopes of
input and output (windows of 4·frame samples hopping by ``frame``, centred, zero
padded), linearly interpolated to one value per output sample, and the output
scaled by (rms_in / max(rms_out, 1e-3))^(1 − rate). rate 1 keeps the model's own
loudness; rate 0 imposes the input's.
"""

from __future__ import annotations

import numpy as np

from ..synth.levels import framed_rms


def _to_samples(env: np.ndarray, n: int) -> np.ndarray:
    # Linear interpolation with the end points aligned (align_corners), onto n+1 points
    # and the last dropped: RVC's mapping of frame envelopes onto samples.
    if len(env) == 1:
        return np.full(n, env[0])
    pos = np.linspace(0.0, len(env) - 1, n + 1)[:-1]
    return np.interp(pos, np.arange(len(env)), env)


def rms_mix(inp: np.ndarray, out: np.ndarray, rate: float, frame: int,
            inp_frame: int | None = None) -> np.ndarray:
    """Scale ``out`` towards the loudness of ``inp`` (both 1-D, covering the same time).

    ``frame`` is the hop (10 ms) at the output's rate; the window is 4·frame. When
    ``inp`` has another sample rate (16 kHz input vs model-rate output) its hop is
    ``inp_frame``, by default ``frame`` scaled by len(inp)/len(out).
    """
    if rate >= 1.0 or len(out) == 0:
        return out
    if inp_frame is None:
        inp_frame = max(1, round(frame * len(inp) / len(out)))
    rms_in = _to_samples(framed_rms(inp, 4 * inp_frame, inp_frame), len(out))
    rms_out = _to_samples(framed_rms(out, 4 * frame, frame), len(out))
    gain = (rms_in / np.maximum(rms_out, 1e-3)) ** (1.0 - rate)
    return (out * gain).astype(out.dtype, copy=False)
