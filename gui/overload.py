"""Is the voice too heavy for this computer at this block length? (no Qt here)

A block must be converted in less time than it lasts; when it is not, the engine
counts an overrun and the listener hears gaps, and the delay the panel computes from
the settings is not what anyone hears. `OverloadWatch` is fed the engine's readout on
every poll and decides, with hysteresis, when overruns have been sustained for a few
seconds (not one slow block at start) and when they have stopped again. It also
estimates the shortest block that would keep up, from the measured compute time.

The estimate: each block converts the block itself plus a fixed window around it
(left context, crossfade, search), so compute time grows with (fixed + block), not
with the block alone; the block that keeps up is the shortest slider step whose
predicted compute, with headroom for jitter, fits inside it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

SUSTAIN_S = 3.0  # overruns must go on this long before the panel says the voice is too heavy
CLEAR_S = 5.0  # and stop this long before the warning goes away
OVERRUN_SHARE = 0.3  # of the blocks converted in the last SUSTAIN_S
MIN_OVERRUNS = 3
HEADROOM = 1.25  # the suggested block leaves a quarter of its time free for jitter


@dataclass(frozen=True)
class Overload:
    """The verdict shown by the panel: too heavy, and what would keep up."""

    compute_ms: float  # measured time per block (95th percentile)
    block_ms: int  # the block length that is too short
    suggested_block_ms: int | None  # the shortest block predicted to keep up; None: none up to the maximum

    def message(self) -> str:
        head = (
            f"This voice is too heavy for this computer at {self.block_ms} ms blocks: each block takes "
            f"\u2248{self.compute_ms:.0f} ms to convert, so the sound breaks up."
        )
        if self.suggested_block_ms is None:
            return head + " No block length keeps up: pick a lighter pitch tracker or a built-in voice."
        return head + f" {self.suggested_block_ms} ms blocks would keep up (with more delay)."


def suggest_block_ms(
    compute_ms: float, block_ms: int, fixed_ms: int, *, step_ms: int = 10, maximum_ms: int = 500, headroom: float = HEADROOM
) -> int | None:
    """The shortest block (a multiple of `step_ms`, up to `maximum_ms`) predicted to keep up, or None."""
    per_ms = compute_ms / max(1, fixed_ms + block_ms)  # compute per millisecond of converted window
    candidate = max(step_ms, -(-block_ms // step_ms) * step_ms)
    while candidate <= maximum_ms:
        if per_ms * (fixed_ms + candidate) * headroom <= candidate:
            return candidate
        candidate += step_ms
    return None


class OverloadWatch:
    """Feed `observe` the readout on every poll; `current` is the verdict, None while the engine keeps up."""

    def __init__(self, *, sustain_s: float = SUSTAIN_S, clear_s: float = CLEAR_S, maximum_block_ms: int = 500) -> None:
        self.sustain_s, self.clear_s, self.maximum_block_ms = sustain_s, clear_s, maximum_block_ms
        self._history: deque[tuple[float, int, int]] = deque()  # (time, blocks, overruns)
        self._last_overrun_t: float | None = None
        self.current: Overload | None = None

    def reset(self) -> None:
        """Start over: the engine stopped or restarted, or the block length changed."""
        self._history.clear()
        self._last_overrun_t = None
        self.current = None

    def observe(
        self, t: float, *, blocks: int, overruns: int, compute_p95_ms: float, block_ms: int, fixed_ms: int
    ) -> Overload | None:
        if self._history and (blocks < self._history[-1][1] or overruns < self._history[-1][2]):
            self.reset()  # counters went back: a new engine run
        if self._history and overruns > self._history[-1][2]:
            self._last_overrun_t = t
        self._history.append((t, blocks, overruns))
        while len(self._history) > 1 and t - self._history[1][0] >= self.sustain_s:
            self._history.popleft()  # keep one sample at least sustain_s old
        t0, blocks0, overruns0 = self._history[0]
        new_blocks, new_overruns = blocks - blocks0, overruns - overruns0
        # Many late blocks, or (a very slow voice converts few blocks at all) every block late.
        sustained = t - t0 >= self.sustain_s and (
            (new_overruns >= MIN_OVERRUNS and new_overruns >= OVERRUN_SHARE * max(1, new_blocks))
            or (new_overruns >= 1 and new_overruns >= new_blocks)
        )
        if sustained:
            suggested = suggest_block_ms(compute_p95_ms, block_ms, fixed_ms, maximum_ms=self.maximum_block_ms)
            self.current = Overload(compute_p95_ms, block_ms, suggested)
        elif self.current is not None and (self._last_overrun_t is None or t - self._last_overrun_t >= self.clear_s):
            self.current = None
        return self.current
