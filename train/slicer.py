"""Cut a recording at its pauses, keeping every sounding stretch (RVC's slicer recipe).

A frame (hop 15 ms, window 2 hops) is silent when its RMS is below -42 dBFS. A
pause is a silent run of at least 0.4 s. A cut is only made in a pause when the
chunk so far has at least 1.5 s of audio (short phrases stay glued to the next
one instead of becoming useless scraps); at a cut, up to 0.5 s of the pause is
kept, split between the end of one chunk and the start of the next, so words are
never clipped at their edges. Leading and trailing silence is trimmed likewise.
"""

from __future__ import annotations

import numpy as np

from ..synth.levels import amplitude_db, framed_rms
from .config import PreprocessConfig


def slice_on_silence(audio: np.ndarray, sr: int, cfg: PreprocessConfig = PreprocessConfig()) -> list[tuple[int, int]]:
    """Sample ranges [(start, end)) of the sounding chunks of `audio` (mono)."""
    hop = max(1, int(round(cfg.hop * sr)))
    frames = (len(audio) + hop - 1) // hop  # one per hop that starts inside the audio
    db = amplitude_db(framed_rms(audio, 2 * hop, hop)[:frames], 1e-10)
    loud = db >= cfg.threshold_db
    if not loud.any():
        return []
    n = len(loud)
    min_gap = max(1, int(round(cfg.min_interval * sr / hop)))
    keep = int(round(cfg.max_sil_kept * sr / hop))
    min_len = int(round(cfg.min_length * sr / hop))

    # silent runs [a, b) in frames
    edges = np.flatnonzero(np.diff(np.concatenate(([1], loud.astype(np.int8), [1]))))
    runs = list(zip(edges[::2], edges[1::2]))  # starts of silence, ends of silence

    chunks: list[tuple[int, int]] = []
    first = int(np.argmax(loud))
    start = max(0, first - keep // 2)  # trim leading silence, keep a little
    for a, b in runs:
        if a <= first or b >= n:  # leading run handled above, trailing below
            continue
        if b - a < min_gap or a - start < min_len:
            continue  # short pause, or the chunk is still too short: keep going
        chunks.append((start, a + min(keep // 2, (b - a) // 2)))
        start = b - min(keep // 2, (b - a) // 2)
    last = n - int(np.argmax(loud[::-1]))  # one past the last loud frame
    chunks.append((start, min(n, last + keep // 2)))
    return [(s * hop, min(e * hop, len(audio))) for s, e in chunks if e > s]


def segment(start: int, end: int, sr: int, cfg: PreprocessConfig = PreprocessConfig()) -> list[tuple[int, int]]:
    """Split one chunk into RVC's overlapping training segments: `per` s every
    `per - overlap` s; once no more than `tail` s remain, the rest is the last one."""
    per, step, tail = int(cfg.per * sr), int((cfg.per - cfg.overlap) * sr), int(cfg.tail * sr)
    out, pos = [], start
    while True:
        if end - pos > tail:
            out.append((pos, pos + per))
            pos += step
        else:
            out.append((pos, end))
            return out
