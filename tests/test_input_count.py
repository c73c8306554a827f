"""The input count runs as if capture were continuous, whatever pieces PortAudio hands it in."""

from __future__ import annotations

import pytest

from rvclora.realtime.clock_books import InputCount

SR = 48000


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize("pieces", [(480,), (417, 63), (417, 62, 1)])
def test_a_burst_in_pieces_counts_as_one(pieces):
    """A 10 ms burst, whole or split into callbacks a tenth of a millisecond apart (as through a
    Pulse monitor): until the next burst is due, the frames captured meanwhile grow steadily to
    the burst's size (else, after a 63-frame piece, they would stop at 63: a level that drops by
    8 ms and the room the ring keeps short of the worker's compute time)."""
    clock = Clock()
    count = InputCount(SR, clock)
    for burst in range(3):
        clock.t = burst * 0.010
        for n in pieces:
            count.note(n)
            clock.t += 0.0001
        last = clock.t - 0.0001
        for ms in (2, 5, 9):
            clock.t = last + ms / 1000
            assert count.pending() == pytest.approx(ms * SR / 1000), (burst, ms)
    assert count.total == 3 * 480


def test_steady_small_periods_are_not_joined():
    """A device with 32-frame periods (0.67 ms apart): each is its own burst."""
    clock = Clock()
    count = InputCount(SR, clock)
    for k in range(100):
        clock.t = k * 32 / SR
        count.note(32)
    assert count.state[2] == 32
    clock.t += 10 / SR
    assert count.pending() == pytest.approx(10)
