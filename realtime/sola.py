"""SOLA: join independently synthesised blocks without clicks.

Each block's synthesis starts from fresh noise and fresh context, so its waveform
near the seam does not line up sample-for-sample with the previous block. SOLA
(synchronised overlap-add) slides the new block's head by up to ``search`` samples
to the position that best matches the previous block's "future" tail, then
crossfades the two with sin² windows (the scheme RVC's real-time loop uses,
gui_v1.py `audio_callback`).

Per call an RVC-style inference returns ``crossfade + search + block`` samples:

    infer_wav = [ head: crossfade + search | ... block ... | next tail: crossfade ]

and the output is ``block`` samples starting at the best offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def fade_windows(n: int) -> tuple[np.ndarray, np.ndarray]:
    """sin²(π/2·linspace(0, 1, n)) and its complement; they sum to exactly 1."""
    fade_in = np.sin(0.5 * np.pi * np.linspace(0.0, 1.0, n)) ** 2
    fade_in = fade_in.astype(np.float32)
    return fade_in, (1.0 - fade_in).astype(np.float32)


def find_offset(head: np.ndarray, prev_tail: np.ndarray, search: int) -> int:
    """Offset in ``0..search`` where ``head`` best matches ``prev_tail``.

    Normalised cross-correlation as in RVC: conv(head, tail) / sqrt(conv(head², 1) + 1e-8).
    Only the head's energy normalises: the tail is the same for every candidate offset.
    """
    n = len(prev_tail)
    if search <= 0 or n == 0:
        return 0
    seg = np.asarray(head[: n + search], dtype=np.float64)
    if len(seg) < n + search:
        raise ValueError(f"head has {len(head)} samples, need crossfade + search = {n + search}")
    num = np.correlate(seg, np.asarray(prev_tail, dtype=np.float64), mode="valid")
    # Energy of each length-n window of the head, via a running sum of squares.
    csum = np.concatenate(([0.0], np.cumsum(seg * seg)))
    energy = csum[n:] - csum[:-n]
    return int(np.argmax(num / np.sqrt(np.maximum(energy, 0.0) + 1e-8)))


@dataclass(frozen=True)
class SolaConfig:
    """Lengths in samples at the output rate."""

    crossfade: int
    search: int

    def __post_init__(self):
        if self.crossfade < 0 or self.search < 0:
            raise ValueError("crossfade and search must be ≥ 0")


class SolaCrossfader:
    """Stateful SOLA joiner: keeps the previous block's tail between calls."""

    def __init__(self, config: SolaConfig):
        self.config = config
        self._fade_in, self._fade_out = fade_windows(config.crossfade)
        self._tail = np.zeros(config.crossfade, np.float32)
        self._scratch = np.zeros(config.crossfade, np.float32)
        self._has_tail = False

    def reset(self) -> None:
        """Forget the stored tail: the next block is output as is (offset 0, no fade)."""
        self._tail[:] = 0.0
        self._has_tail = False

    def future(self) -> np.ndarray:
        """The stored tail (a copy): where the voice goes next, `crossfade` samples; empty before a block."""
        return self._tail.copy() if self._has_tail else np.zeros(0, np.float32)

    def process(self, infer_wav: np.ndarray, block: int, out: np.ndarray | None = None) -> np.ndarray:
        """Return ``block`` output samples joined onto the previous call's output.

        ``infer_wav`` needs ≥ block + crossfade + search samples. Pass ``out`` (float32,
        ≥ ``block`` long) to write into a preallocated array instead of a new one.
        """
        cf, search = self.config.crossfade, self.config.search
        if block < cf:
            raise ValueError(f"block ({block}) must be ≥ crossfade ({cf})")
        if len(infer_wav) < block + cf + search:
            raise ValueError(
                f"infer_wav has {len(infer_wav)} samples, need block + crossfade + search = {block + cf + search}")
        out = np.empty(block, np.float32) if out is None else out[:block]

        offset = find_offset(infer_wav, self._tail, search) if (self._has_tail and cf) else 0
        seg = infer_wav[offset: offset + block]
        out[:] = seg
        if self._has_tail and cf:
            # out[:cf] = seg[:cf]·fade_in + tail·fade_out, without temporaries.
            head = out[:cf]
            head *= self._fade_in
            np.multiply(self._tail, self._fade_out, out=self._scratch)
            head += self._scratch
        # The "future" tail: where the next block's head should land.
        self._tail[:] = infer_wav[offset + block: offset + block + cf]
        self._has_tail = True
        return out
