"""The devices' own delays, as the streams report them in every callback.

PortAudio's per-callback time info says when the first input sample of the buffer
was captured (`inputBufferAdcTime`) and when the first output sample will be heard
(`outputBufferDacTime`), both against `currentTime`. Through a sound server (ALSA's
pulse plugin, measured on a null sink) these follow the server's real buffering,
while the stream's fixed `latency` attribute is only the buffer size PortAudio asked
for: 64 ms reported where the loop measured 23 ms. So the latency estimate uses the
median of the last callbacks' time info, and the fixed figure only where a host API
reports no times.
"""

from __future__ import annotations

from typing import Any

import numpy as np

WINDOW = 64  # callbacks in the median (≈0.7 s at 10 ms periods)
_MAX_S = 1.0  # a reported delay beyond this (or below 0) is a host API's placeholder, not a delay


class DeviceDelay:
    """Input and output device delays from the callbacks' time info (seconds, median of the last WINDOW)."""

    def __init__(self) -> None:
        self._in = np.full(WINDOW, np.nan)
        self._out = np.full(WINDOW, np.nan)
        self._i = 0
        self._o = 0

    def clear(self) -> None:
        """New streams: forget the old ones' delays."""
        self._in.fill(np.nan)
        self._out.fill(np.nan)

    def note_input(self, time_info: Any) -> None:
        """From an input (or duplex) callback; never raises."""
        now, adc = time_info.currentTime, time_info.inputBufferAdcTime
        if now > 0 and adc > 0 and 0.0 <= now - adc < _MAX_S:
            self._in[self._i % WINDOW] = now - adc
            self._i += 1

    def note_output(self, time_info: Any) -> None:
        """From an output (or duplex) callback; never raises."""
        now, dac = time_info.currentTime, time_info.outputBufferDacTime
        if now > 0 and dac > 0 and 0.0 <= dac - now < _MAX_S:
            self._out[self._o % WINDOW] = dac - now
            self._o += 1

    @staticmethod
    def _median(values: np.ndarray) -> float | None:
        seen = values[~np.isnan(values)]
        return float(np.median(seen)) if len(seen) else None

    def input_s(self, fallback: float) -> float:
        got = self._median(self._in)
        return fallback if got is None else got

    def output_s(self, fallback: float) -> float:
        got = self._median(self._out)
        return fallback if got is None else got


def reported_s(opened: Any) -> tuple[float, float]:
    """The fixed (input, output) latency PortAudio reports for open streams (the fallback)."""
    first = opened.streams[0]
    if opened.duplex:
        lat_in, lat_out = first.latency
        return float(lat_in), float(lat_out)
    return float(first.latency), float(opened.streams[1].latency)
