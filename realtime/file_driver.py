"""Files through the live engine: the same rings, chain and output port as devices.

Fast mode feeds the file as fast as the worker converts and aligns the result with
the input (the output's content lag of crossfade + search, the safety margin, the
converter's look-ahead and the output limiter's delay are removed). `realtime=True` paces input and output like a
pair of devices, underflows and all, and returns what a device would have played.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import numpy as np

from ..synth.audio_io import read_audio, to_mono, write_audio

if TYPE_CHECKING:
    from .engine import Engine
    from .pipeline import Pipeline


def convert_file(engine: Engine, in_path: str | os.PathLike, out_path: str | os.PathLike | None = None, *,
                 realtime: bool = False, out_sr: int | None = None) -> np.ndarray:
    audio, sr = read_audio(in_path)
    audio = np.asarray(to_mono(audio), dtype=np.float32)
    pipe = engine.attach(sr, out_sr or 0)
    pipe.skip_stale = realtime  # fast mode feeds ahead of real time on purpose
    try:
        proc = pipe.proc
        s = proc.settings
        chunk = max(sr // 100, 1)  # 10 ms "device period"
        # Enough trailing silence to push the last input sample out of every buffer.
        flush_ms = s.block_ms * 2 + s.crossfade_ms + s.search_ms + s.buffer_ms + 1000.0 * proc.extra_latency_s + 50
        signal = np.concatenate([audio, np.zeros(int(sr * flush_ms / 1000) + chunk, np.float32)])
        out = _realtime(engine, pipe, signal, sr, chunk) if realtime else _fast(engine, pipe, signal, chunk)
    finally:
        engine.stop()
    events = engine.drain_events()
    for e in events:  # left for the caller to read
        engine.events.put(e)
    errors = [e for e in events if e.kind == "error"]
    if errors:
        raise RuntimeError(errors[0].message)
    sr_out = pipe.sr_out
    n = int(round(len(audio) * sr_out / sr))
    if realtime:
        result = out[:n]
    else:
        lag_ms = (s.crossfade_ms + s.search_ms if proc.converter.uses_sola else 0) + s.buffer_ms
        lag_ms += 1000.0 * proc.extra_latency_s
        lag = int(round(lag_ms * sr_out / 1000)) + pipe.out.limiter.delay
        result = out[lag : lag + n]
        result = np.pad(result, (0, n - len(result)))
    if out_path is not None:
        write_audio(out_path, result, sr_out)
    return result


def _fast(engine: Engine, pipe: Pipeline, signal: np.ndarray, chunk: int) -> np.ndarray:
    pieces: list[np.ndarray] = []
    ring = pipe.out.ring
    buf = np.zeros(ring.capacity, dtype=np.float32)

    def drain() -> None:
        k = ring.available
        if k:
            got = ring.read_into(buf[:k])
            pieces.append(buf[:got].copy())

    pos = 0
    while pos < len(signal) and engine.running:
        piece = signal[pos : pos + chunk]
        if pipe.in_ring.space >= len(piece):
            pipe.on_input(piece)
            engine.wake()
            pos += len(piece)
        else:
            time.sleep(0.0005)
        drain()
    while engine.running and not engine.idle:
        time.sleep(0.001)
        drain()
    drain()
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


def _realtime(engine: Engine, pipe: Pipeline, signal: np.ndarray, sr: int, chunk: int) -> np.ndarray:
    period = chunk / sr
    out_chunk = max(int(round(period * pipe.sr_out)), 1)
    n_periods = -(-len(signal) // chunk)
    out = np.zeros(n_periods * out_chunk, dtype=np.float32)
    t0 = time.perf_counter()
    for k in range(n_periods):
        if not engine.running:
            break
        pipe.on_input(signal[k * chunk : (k + 1) * chunk])
        engine.wake()
        pipe.out.read(out[k * out_chunk : (k + 1) * out_chunk])
        delay = t0 + (k + 1) * period - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    return out
