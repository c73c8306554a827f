"""When is a voice too heavy for the computer, and which block length would keep up."""

import pytest

from rvclora.gui.overload import OverloadWatch, suggest_block_ms


def feed(watch, seconds, compute_ms, block_ms, fixed_ms=1040, *, start=0.0, blocks0=0, overruns0=0, poll=0.1):
    """A stand-in engine: it converts one block per `compute_ms` (slower than real time when
    compute_ms > block_ms), and every late block counts as an overrun."""
    t, verdicts = start, []
    blocks, overruns = blocks0, overruns0
    while t < start + seconds:
        t += poll
        blocks_now = blocks0 + int((t - start) * 1000 / max(compute_ms, block_ms))
        if compute_ms > block_ms:
            overruns = overruns0 + (blocks_now - blocks0)
        blocks = blocks_now
        verdicts.append((t, watch.observe(t, blocks=blocks, overruns=overruns, compute_p95_ms=compute_ms,
                                          block_ms=block_ms, fixed_ms=fixed_ms)))
    return verdicts, blocks, overruns


def test_sustained_overruns_say_too_heavy_after_a_few_seconds_with_a_block_that_keeps_up():
    watch = OverloadWatch()
    verdicts, blocks, overruns = feed(watch, 6.0, compute_ms=150, block_ms=60)
    first = next(t for t, v in verdicts if v is not None)
    assert 3.0 <= first <= 4.5  # not on the first slow block, but within a few seconds
    verdict = verdicts[-1][1]
    assert verdict.block_ms == 60 and verdict.compute_ms == 150
    # Independent check of the suggestion: compute grows with the converted window (fixed + block);
    # the suggested block must fit its own predicted compute with 25 % to spare, one step less must not.
    b = verdict.suggested_block_ms
    predicted = lambda block: 150 * (1040 + block) / (1040 + 60)  # noqa: E731 — a one-line helper local to this function
    assert b % 10 == 0 and predicted(b) * 1.25 <= b and predicted(b - 10) * 1.25 > b - 10
    assert "too heavy" in verdict.message() and f"{b} ms" in verdict.message()

    # Once the overruns stop (a longer block), the notice goes after a while, not at once.
    verdicts, _, _ = feed(watch, 6.0, compute_ms=40, block_ms=60, start=6.0, blocks0=blocks, overruns0=overruns)
    assert verdicts[0][1] is not None and verdicts[-1][1] is None


def test_a_short_burst_or_rare_overruns_are_not_too_heavy():
    watch = OverloadWatch()
    verdicts, _, _ = feed(watch, 2.0, compute_ms=500, block_ms=60)  # slow start, then fine
    assert all(v is None for _, v in verdicts)
    watch.reset()
    # 1 block in 20 late: jitter, not a voice too heavy for the machine.
    for i in range(100):
        t = i * 0.1
        assert watch.observe(t, blocks=2 * i, overruns=i // 10, compute_p95_ms=55, block_ms=60, fixed_ms=1040) is None


def test_no_block_keeps_up_says_so():
    assert suggest_block_ms(2000, 60, 1040, maximum_ms=500) is None
    watch = OverloadWatch()
    verdicts, _, _ = feed(watch, 5.0, compute_ms=2000, block_ms=60)
    verdict = verdicts[-1][1]
    assert verdict is not None and verdict.suggested_block_ms is None and "No block length keeps up" in verdict.message()


@pytest.mark.parametrize("compute, block, fixed", [(75, 60, 200), (120, 100, 400), (30, 60, 1000)])
def test_suggestion_is_the_shortest_step_that_fits(compute, block, fixed):
    b = suggest_block_ms(compute, block, fixed)
    brute = next(c for c in range(10, 501, 10) if c >= block and compute * (fixed + c) / (fixed + block) * 1.25 <= c)
    assert b == brute
