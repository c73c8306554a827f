"""Loaded voices for the live engine, and switching between them while audio flows.

Every RVC voice needs a content encoder and pitch estimators; they do not depend on
the voice, so a `VoicePool` loads them once and every voice shares them. The pool
keeps a few voices loaded (least recently used goes first), keyed by the content of
their base model file, so voices that are adapters on one base share one model.

A switch (`VoiceSwitcher`) is one of two kinds:

- same base: the running model stays; its adapters are read and checked here and
  swapped by the engine's worker between two blocks (no reload, no stream restart);
- another base: loaded and warmed with one block in a background thread while the
  current voice keeps converting, then handed to the engine, which swaps it in
  between two blocks. A newer switch supersedes one still loading.

`VoiceSpec` is what crosses the panel → engine-process boundary: small, frozen,
picklable, never a model.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .block_converter import BuiltinSource, RVCSource, load_checked_adapters, load_rvc_source
from .settings import EngineSettings


@dataclass(frozen=True)
class VoiceSpec:
    """A voice to load: a built-in by name, or a model file (+ index, adapters with weights)."""

    builtin: str | None = None
    model: str | None = None
    index: str | None = None
    adapters: tuple[tuple[str, float], ...] = ()
    force: bool = False  # apply adapters even if made for another base (the user insisted)
    name: str = ""

    def __post_init__(self) -> None:
        if (self.builtin is None) == (self.model is None):
            raise ValueError("a voice is either a built-in name or a model file, not both or neither")

    @property
    def label(self) -> str:
        return self.name or self.builtin or Path(self.model or "").stem


@dataclass(frozen=True)
class PoolConfig:
    """Where the shared models are and how voices run; None = rvclora's home assets."""

    hubert: str | None = None
    rmvpe: str | None = None
    device: str = "auto"
    precision: str = "auto"
    backend: str = "torch"
    capacity: int = 3  # loaded voices kept (each holds its synthesizer and index)


def file_digest(path: str | Path) -> str:
    """A content hash: two copies of one base model are the same base."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class VoicePool:
    """Shared content encoders and pitch estimators, and an LRU of loaded voices.

    Thread-safe: the engine host loads from a background thread while the worker
    converts with voices already handed out. `loads` counts what was read from disk
    (keys "base", "encoder"), so callers and tests can see what a switch cost."""

    def __init__(self, config: PoolConfig | None = None) -> None:
        self.config = config or PoolConfig()
        self._lock = threading.RLock()
        self._voices: OrderedDict[tuple[str, str, str], RVCSource] = OrderedDict()
        self._encoders: dict[str, Any] = {}
        self._estimators: dict[str, Any] = {}  # one dict shared by every voice's source
        self._digests: dict[tuple[str, int, int], str] = {}
        self.loads: dict[str, int] = {"base": 0, "encoder": 0}

    def key(self, spec: VoiceSpec) -> tuple[str, str, str] | None:
        """What identifies the loaded model of a spec (None for built-ins)."""
        if spec.model is None:
            return None
        path = Path(spec.model)
        try:
            st = path.stat()
        except OSError:
            raise ValueError(f"voice model {path} not found; re-import the voice") from None
        stamp = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        with self._lock:
            digest = self._digests.get(stamp)
            if digest is None:
                digest = self._digests[stamp] = file_digest(path)
        return (digest, self.config.backend, spec.index or "")

    def key_of(self, source: Any) -> tuple[str, str, str] | None:
        with self._lock:
            return next((k for k, s in self._voices.items() if s is source), None)

    def base(self, spec: VoiceSpec) -> RVCSource:
        """The loaded model for `spec` (its adapters untouched), loading it if needed."""
        key = self.key(spec)
        assert key is not None and spec.model is not None
        with self._lock:
            source = self._voices.get(key)
            if source is not None:
                self._voices.move_to_end(key)
                return source
        c = self.config
        source = load_rvc_source(
            spec.model, hubert=c.hubert, rmvpe=c.rmvpe, index=spec.index, device=c.device,
            precision=c.precision, backend=c.backend, encoder_for=self._encoder, estimators=self._estimators,
        )
        source.name = spec.label
        with self._lock:
            self.loads["base"] += 1
            self._voices[key] = source
            while len(self._voices) > max(1, c.capacity):
                self._voices.popitem(last=False)  # a voice still playing keeps its own reference
        return source

    def source(self, spec: VoiceSpec) -> Any:
        """A ready voice source for a spec that is NOT playing now (adapters applied directly)."""
        if spec.builtin is not None:
            return BuiltinSource(spec.builtin)
        source = self.base(spec)
        adapters = self.adapters(source, spec)
        if adapters or source.adapters:
            source.apply_adapters(adapters)
        source.name = spec.label
        return source

    def adapters(self, source: Any, spec: VoiceSpec) -> list[tuple[Any, float]]:
        """Read and check the spec's adapter files against `source` (one-line AdapterError)."""
        return load_checked_adapters(source, spec.adapters, force=spec.force) if spec.adapters else []

    def _encoder(self, version: str) -> Any:
        from ..synth.content_encoder import load_content_encoder
        from ..synth.device import resolve_device, resolve_dtype
        from ..synth.errors import MissingAssetError
        from ..synth.home import Home

        with self._lock:
            if version not in self._encoders:
                c = self.config
                path = Path(c.hubert) if c.hubert else Home.from_env().hubert
                if not path.exists():
                    raise MissingAssetError(f"content encoder not found at {path}; run `rvclora assets download`")
                dev = resolve_device(c.device)
                self._encoders[version] = load_content_encoder(
                    path, version=version, device=dev, dtype=resolve_dtype(c.precision, dev)
                )
                self.loads["encoder"] += 1
            return self._encoders[version]


def load_voice(spec: VoiceSpec, pool: VoicePool | None = None) -> Any:
    """Load one voice source for a spec (a one-off pool unless one is given)."""
    return (pool or VoicePool()).source(spec)


def warm(source: Any, settings: EngineSettings) -> None:
    """Run one silent block so first-call costs (lazy estimators, kernel set-up) are paid here."""
    converter = source.make_converter(settings)
    n = settings.block_ms * converter.input_sr // 1000
    converter.convert(np.zeros(n, dtype=np.float32), settings)


class VoiceSwitcher:
    """Switches a running engine's voice; see the module docstring for the two kinds.

    `current` is the source last handed to the engine (set it when the engine starts).
    `report(kind, message)` tells the user about a switch that failed in the background
    (the current voice keeps playing)."""

    def __init__(self, pool: VoicePool, report: Callable[[str, str], None], current: Any = None) -> None:
        self.pool = pool
        self.report = report
        self.current = current
        self._generation = 0
        self._lock = threading.Lock()
        self._loading = threading.Lock()  # one background load at a time: loads share models
        self._thread: threading.Thread | None = None

    def switch(self, engine: Any, spec: VoiceSpec) -> str:
        """Start switching; returns "adapters" (queued for the next block) or "loading" (in the background).

        A same-base switch checks the adapter files here and raises their one-line error."""
        with self._lock:
            self._generation += 1
            generation = self._generation
            current = self.current
        key = self.pool.key(spec)
        if key is not None and isinstance(current, RVCSource) and self.pool.key_of(current) == key:
            adapters = self.pool.adapters(current, spec)
            current.name = spec.label
            engine.switch_voice(current, adapters)
            return "adapters"
        self._thread = threading.Thread(
            target=self._load, args=(engine, spec, generation), name="rvclora-voice-load", daemon=True
        )
        self._thread.start()
        return "loading"

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a background load (tests, shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _load(self, engine: Any, spec: VoiceSpec, generation: int) -> None:
        with self._loading:
            if generation != self._generation:
                return  # a newer switch came while this one waited
            try:
                source = self.pool.source(spec)
                warm(source, engine.settings)
            except Exception as e:  # noqa: BLE001 - the user hears the current voice and reads why
                text = str(e).splitlines()[0] if str(e) else type(e).__name__
                playing = getattr(self.current, "name", "the current voice")
                self.report("warning", f"could not switch to {spec.label!r}: {text}; still playing {playing!r}")
                return
            with self._lock:
                if generation != self._generation or not engine.running:
                    return
                self.current = source
                engine.switch_voice(source, None)


__all__ = ["PoolConfig", "VoicePool", "VoiceSpec", "VoiceSwitcher", "file_digest", "load_voice", "warm"]
