"""Latency measured through the engine's own path: a probe takes the converter's place.

While a measurement runs, the worker hands each block to a `LatencyProbe` instead of
the voice: it plays distinct band-limited noise bursts (300 Hz–6 kHz, 100 ms,
spaced 350 ms) into the output port (same ring, margin, drift corrector and device
as the voice) and records what comes back through the input (same device, ring and
resampler). The output must reach the input: a loopback cable, or a virtual sink's
monitor. A burst counts when its correlation peak stands ≥ 20 dB above the median
of the correlation; the measurement is the median of the bursts found, valid only
when more than half agree within 2 ms and nothing was skipped, trimmed or starved
meanwhile (the caller checks the counters).

Both streams are indexed in "stream time": input block k covers input samples
[kB, (k+1)B) and the probe's output for it covers output samples [kB, (k+1)B), so
a burst played at output time t₀ and heard at input time t₁ took t₁ − t₀ =
everything between the input device and the output device (block, compute, rings,
margin, resamplers, device buffers) plus the loop outside. The voice's own
look-ahead (SOLA's crossfade + search, a DSP voice's window) is not in the probe
and is added by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr
from scipy.signal import correlate

from .engine_types import LatencyMeasurement

BURSTS = 4
BURST_S = 0.1
SPACING_S = 0.35
LEAD_S = 0.3
TAIL_S = 1.2  # listen this long after the last burst: the largest delay measurable
MIN_SNR_DB = 20.0
AGREE_MS = 2.0


def bursts(sr: int, count: int = BURSTS, seconds: float = BURST_S, seed: int = 11) -> list[np.ndarray]:
    """`count` different noise bursts band-limited to 300 Hz–6 kHz (or Nyquist), Hann-windowed, peak 0.5."""
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    band = (f >= 300) & (f <= min(6000.0, 0.45 * sr))
    out = []
    for _ in range(count):
        spec = np.zeros(len(f), np.complex128)
        spec[band] = np.exp(2j * np.pi * rng.random(band.sum()))
        x = np.fft.irfft(spec, n) * np.hanning(n)
        out.append((0.5 * x / np.abs(x).max()).astype(np.float32))
    return out


@dataclass(frozen=True)
class ProbeResult:
    delays_ms: list[float]  # one per burst found (stream time, before the voice's look-ahead)
    snr_db: list[float]  # per burst found
    found: int
    agree: bool  # at least half of the bursts within AGREE_MS of the median

    @property
    def median_ms(self) -> float:
        return float(np.median(self.delays_ms)) if self.delays_ms else float("nan")

    @property
    def jitter_ms(self) -> float:
        return float(np.max(self.delays_ms) - np.min(self.delays_ms)) if self.delays_ms else float("nan")


class LatencyProbe:
    """Stands in for the block chain: `process(block_in samples at sr_in) → block_out samples at sr_out`."""

    def __init__(self, sr_in: int, sr_out: int, block_in: int, block_out: int) -> None:
        self.sr_in, self.sr_out = int(sr_in), int(sr_out)
        self.block_in, self.block_out = int(block_in), int(block_out)
        self.refs_out = bursts(self.sr_out)
        self.refs_in = [soxr.resample(b, self.sr_out, self.sr_in).astype(np.float32) for b in self.refs_out]
        self.starts_s = [LEAD_S + i * SPACING_S for i in range(BURSTS)]
        total_s = self.starts_s[-1] + BURST_S + TAIL_S
        self.play = np.zeros(int(total_s * self.sr_out) + self.block_out, np.float32)
        for s, b in zip(self.starts_s, self.refs_out):
            i = int(round(s * self.sr_out))
            self.play[i : i + len(b)] = b
        self.rec = np.zeros(int(total_s * self.sr_in) + self.block_in, np.float32)
        self.blocks = 0
        self.blocks_needed = int(np.ceil(total_s * self.sr_out / self.block_out))

    @property
    def done(self) -> bool:
        return self.blocks >= self.blocks_needed

    def process(self, block: np.ndarray) -> np.ndarray:
        k = self.blocks
        if k < self.blocks_needed:
            self.rec[k * self.block_in : (k + 1) * self.block_in] = block[: self.block_in]
            out = self.play[k * self.block_out : (k + 1) * self.block_out].copy()
        else:
            out = np.zeros(self.block_out, np.float32)
        self.blocks += 1
        return out

    def result(self) -> ProbeResult:
        # Stream time runs in whole blocks on both sides: block k starts at k·block_ms on each.
        delays, snrs = [], []
        for s, ref in zip(self.starts_s, self.refs_in):
            # Output time of the burst is s (by construction, in output samples); convert block-exact.
            t0 = round(s * self.sr_out) / self.sr_out
            first = int(t0 * self.sr_in)
            seg = self.rec[first:]
            if len(seg) < len(ref) * 2:
                continue
            corr = correlate(seg, ref, mode="valid", method="fft")
            k = int(np.argmax(np.abs(corr)))
            floor = float(np.median(np.abs(corr))) + 1e-12
            snr = 20.0 * np.log10(abs(corr[k]) / floor)
            if snr < MIN_SNR_DB:
                continue
            frac = 0.0
            if 0 < k < len(corr) - 1:
                a, b, c = np.abs(corr[k - 1 : k + 2])
                den = a - 2 * b + c
                if den < 0:
                    frac = 0.5 * (a - c) / den
            delays.append(1000.0 * ((first + k + frac) / self.sr_in - t0))
            snrs.append(float(snr))
        med = float(np.median(delays)) if delays else 0.0
        close = [i for i, d in enumerate(delays) if abs(d - med) <= AGREE_MS]
        agree = len(close) * 2 > BURSTS  # more than half of the bursts sent
        if agree:  # the outliers (a burst smeared by a device hiccup) are reported as not found
            delays, snrs = [delays[i] for i in close], [snrs[i] for i in close]
        return ProbeResult(delays, snrs, len(delays), agree)


def measurement(probe: LatencyProbe, *, disturbed: int, lookahead_ms: float, estimated_ms: float) -> LatencyMeasurement:
    """The verdict on a finished probe: median, jitter, SNR, and why it is not valid if it is not."""
    result = probe.result()
    reason = ""
    if not probe.done:
        reason = "timed out"
    elif disturbed:
        reason = f"{disturbed} samples skipped, trimmed or starved during the measurement"
    elif result.found < 2 or not result.agree:
        reason = f"only {result.found} of the test bursts came back consistently: is the output routed to the input?"
    return LatencyMeasurement(
        measured_ms=result.median_ms + lookahead_ms if result.delays_ms else float("nan"),
        estimated_ms=estimated_ms, jitter_ms=result.jitter_ms, bursts=result.found,
        snr_db=float(np.median(result.snr_db)) if result.snr_db else 0.0, valid=not reason, reason=reason,
        tries_ms=[float(d) + lookahead_ms for d in result.delays_ms],
    )
