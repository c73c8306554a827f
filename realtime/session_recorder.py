"""Record a live session: the input and the converted output as two channels of one file.

The output channel is what the voice changer sent (output gain included); the input
channel is the voice that went into the converter, delayed by the chain's content lag
(crossfade + search + the converter's look-ahead, the same lag the file driver takes
off), so the two line up sample for sample and a listener can compare them directly.

The worker thread only hands blocks over (`add`, a queue put); resampling and disk
writes happen on the recorder's own thread, so a slow disk never delays a block.
Both channels are resampled to the file's rate with soxr streams, whose output is
time-aligned with their input by sample count.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from ..synth.audio_io import check_audio_output
from .resample import StreamResampler

if TYPE_CHECKING:
    from .block_processor import BlockProcessor
    from .engine import Engine

_END = None


def content_lag_s(proc: BlockProcessor) -> float:
    """How far a block's output lags its input in content (everything but the block itself)."""
    return (proc.algorithmic_latency_ms - proc.settings.block_ms) / 1000.0


class _Channel:
    """One channel resampled to the file's rate; follows rate changes (a voice switch)."""

    def __init__(self, sr_file: int) -> None:
        self.sr_file = sr_file
        self.rs: StreamResampler | None = None
        self.pending = np.zeros(0, np.float32)

    def push(self, x: np.ndarray, sr: int) -> None:
        if self.rs is None or self.rs.sr_in != sr:
            self.rs = StreamResampler(sr, self.sr_file, quality="HQ")
        self.pending = np.concatenate([self.pending, self.rs.process(x)])

    def pad(self, n: int) -> None:
        if n > 0:
            self.pending = np.concatenate([self.pending, np.zeros(n, np.float32)])
        elif n < 0:
            self.pending = self.pending[min(-n, len(self.pending)):]

    def take(self, n: int) -> np.ndarray:
        out, self.pending = self.pending[:n], self.pending[n:]
        return out


class SessionRecorder:
    """Writes (input, output) pairs of blocks to `path` (wav, flac, ogg) until `close()`.

    The file's rate is `sr`, or when None the output rate of the first block."""

    def __init__(self, path: str | os.PathLike, sr: int | None = None, *, overwrite: bool = False) -> None:
        self.path: Path = check_audio_output(path, overwrite=overwrite)
        self.sr = int(sr) if sr else 0
        self.frames = 0
        self.error: str | None = None
        self._file: sf.SoundFile | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._inp = self._out = _Channel(0)
        self._lag = 0  # file-rate samples the input channel is delayed by now
        self._thread = threading.Thread(target=self._write_loop, name="rvclora-recorder", daemon=True)
        self._thread.start()

    def add(self, inp: np.ndarray, in_sr: int, out: np.ndarray, out_sr: int, lag_s: float) -> None:
        """From the worker: one block of input (at `in_sr`) and what it became (at `out_sr`)."""
        if not self._closed:
            self._queue.put((np.array(inp, np.float32), in_sr, np.array(out, np.float32), out_sr, lag_s))

    def add_block(self, proc: BlockProcessor, block: np.ndarray, out: np.ndarray) -> None:
        self.add(block, proc.input_sr, out, proc.output_sr, content_lag_s(proc))

    def close(self) -> Path:
        """Write what is left and close the file; returns its path."""
        if not self._closed:
            self._closed = True
            self._queue.put(_END)
            self._thread.join(timeout=30)
        return self.path

    @property
    def seconds(self) -> float:
        return self.frames / self.sr if self.sr else 0.0

    def _write_loop(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    break
                self._write(*item)
            self._flush()
        except (OSError, RuntimeError, ValueError) as e:  # a full disk: keep what was written, say why
            self.error = f"recording stopped: {e}"
        finally:
            if self._file is not None:
                self._file.close()

    def _write(self, inp: np.ndarray, in_sr: int, out: np.ndarray, out_sr: int, lag_s: float) -> None:
        if self._file is None:
            self.sr = self.sr or int(out_sr)
            self._inp, self._out = _Channel(self.sr), _Channel(self.sr)
            self._file = sf.SoundFile(self.path, "w", samplerate=self.sr, channels=2)
        lag = int(round(lag_s * self.sr))
        if lag != self._lag:
            self._inp.pad(lag - self._lag)  # a new block shape or voice: keep the channels in line
            self._lag = lag
        self._inp.push(inp, in_sr)
        self._out.push(out, out_sr)
        n = min(len(self._inp.pending), len(self._out.pending))
        if n:
            self._file.write(np.stack([self._inp.take(n), self._out.take(n)], axis=1))
            self.frames += n

    def _flush(self) -> None:
        if self._file is None:
            return
        for ch in (self._inp, self._out):
            if ch.rs is not None:
                ch.pending = np.concatenate([ch.pending, ch.rs.flush()])
        n = max(len(self._inp.pending), len(self._out.pending))
        if n:
            a, b = (np.pad(c.pending, (0, n - len(c.pending))) for c in (self._inp, self._out))
            self._file.write(np.stack([a, b], axis=1))
            self.frames += n


def use_recorder(engine: Engine, recorder: SessionRecorder | None) -> None:
    """Record every block of `engine` from the next one on (None: stop; the caller closes the old one).
    The engine closes its recorder when it stops, so the file is always complete."""
    engine.recorder = recorder
    if engine.pipeline is not None:
        engine.pipeline.recorder = recorder


def switch_recording(engine: Engine | None, path: str | os.PathLike | None) -> str:
    """Start recording the running `engine` into `path`, or stop (None); returns a line for the user."""
    current = engine.recorder if engine is not None else None
    if path is None:
        if engine is None or not isinstance(current, SessionRecorder):
            return "not recording"
        use_recorder(engine, None)
        current.close()
        return current.error or f"recorded {current.path} ({current.seconds:.1f} s; left: your voice, right: converted)"
    if engine is None or not engine.running:
        raise RuntimeError("start the voice changer first: a recording holds what it converts")
    if current is not None:
        raise RuntimeError("already recording; stop that recording first")
    recorder = SessionRecorder(path)
    use_recorder(engine, recorder)
    return f"recording to {recorder.path}"
