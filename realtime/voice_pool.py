"""Loaded voices for the live engine, and switching between them while audio flows.

Every RVC voice needs a content encoder and pitch estimators; they do not depend on
the voice, so a `VoicePool` loads them once and every voice shares them. The pool
keeps a few voices loaded (least recently used goes first), keyed by the content of
their base model file, so voices that are adapters on one base share one model.

A switch (`VoiceSwitcher`) is one of two kinds:

- same base: no reload: the adapters are read and checked at once, merged into a
  copy of the playing synthesizer in a background thread, and the engine's worker
  swaps that copy in between two blocks (no stream restart, no worker stall);
- another base: loaded and warmed with one block in a background thread while the
  current voice keeps converting, then handed to the engine, which swaps it in
  between two blocks. A newer switch supersedes one still loading.

`VoiceSpec` is what crosses the panel → engine-process boundary: small, frozen,
picklable, never a model.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LibraryError, UsageError
from ..export.live_manifest import MANIFEST, is_live_set
from ..synth.content_encoder import load_content_encoder
from ..synth.device import resolve_device, resolve_dtype
from .block_converter import (
    BuiltinSource,
    RVCSource,
    load_checked_adapters,
    load_rvc_source,
)


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
        self._encoders: dict[tuple[str, str], Any] = {}
        self._estimators: dict[str, Any] = {}  # one dict shared by every voice's source
        self._digests: dict[tuple[str, int, int], str] = {}
        self.loads: dict[str, int] = {"base": 0, "encoder": 0}

    def key(self, spec: VoiceSpec) -> tuple[str, str, str] | None:
        """What identifies the loaded model of a spec (None for built-ins)."""
        if spec.model is None:
            return None
        path = Path(spec.model)
        if is_live_set(path):
            # A live set is a folder; its manifest holds the hash of every file in it.
            path = path / MANIFEST if path.is_dir() else path
        try:
            st = path.stat()
        except OSError:
            raise LibraryError(f"voice model {path} not found; re-import the voice") from None
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

    def adopt(self, key: tuple[str, str, str] | None, source: RVCSource) -> None:
        """Make `source` the pool's voice for `key` (a re-adapted copy replacing its original)."""
        if key is None:
            return
        with self._lock:
            self._voices[key] = source
            self._voices.move_to_end(key)

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

    def _encoder(self, path: Path, version: str) -> Any:
        """The shared content encoder for (file, version): voices naming the same encoder share it."""
        key = (str(Path(path).resolve()), version)
        with self._lock:
            if key not in self._encoders:
                c = self.config
                dev = resolve_device(c.device)
                self._encoders[key] = load_content_encoder(
                    path, version=version, device=dev, dtype=resolve_dtype(c.precision, dev)
                )
                self.loads["encoder"] += 1
            return self._encoders[key]


def load_voice(spec: VoiceSpec, pool: VoicePool | None = None) -> Any:
    """Load one voice source for a spec (a one-off pool unless one is given)."""
    return (pool or VoicePool()).source(spec)


class VoiceSwitcher:
    """Switches a running engine's voice; see the module docstring for the two kinds.

    Nothing is changed in place under the worker: adapters are merged into a copy of
    the playing synthesizer (a few hundred ms for a full-size model) in the background,
    and the worker swaps whole sources between two blocks (microseconds). `current`
    is the source last handed to the engine (set it when the engine starts).
    `report(kind, message)` tells the user about a switch that failed in the background
    (the current voice keeps playing)."""

    def __init__(self, pool: VoicePool, report: Callable[[str, str], None], current: Any = None) -> None:
        self.pool = pool
        self.report = report
        self.current = current
        self._generation = 0
        self._lock = threading.Lock()
        self._loading = threading.Lock()  # one background job at a time: jobs share models
        self._thread: threading.Thread | None = None

    def switch(self, engine: Any, spec: VoiceSpec) -> str:
        """Start switching; returns "adapters" (same base) or "loading" (another base).

        A same-base switch checks the adapter files here and raises their one-line error."""
        current = self.current
        key = self.pool.key(spec)
        if key is not None and isinstance(current, RVCSource) and self.pool.key_of(current) == key:
            adapters = self._checked(current, spec.adapters, spec.force)
            self._start(engine, spec.label, lambda: self._adapted(current, adapters, spec.label, key), warm=False)
            return "adapters"
        self._start(engine, spec.label, lambda: self._loaded(spec), warm=True)
        return "loading"

    def set_adapters(self, engine: Any, adapters: Sequence[tuple[str, float]], force: bool = False) -> None:
        """Re-weight or change the playing voice's adapters, the same way (one-line error on a bad file)."""
        current = self.current
        if not isinstance(current, RVCSource):
            raise UsageError("built-in voices take no adapters")
        loaded = self._checked(current, adapters, force)
        key = self.pool.key_of(current)
        self._start(engine, current.name, lambda: self._adapted(current, loaded, current.name, key), warm=False)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the background job (tests, shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _checked(self, current: RVCSource, adapters: Sequence[tuple[str, float]], force: bool) -> list:
        if current.backend != "torch":
            raise UsageError("adapters can only be changed live on the torch backend; export a merged ONNX model instead")
        return load_checked_adapters(current, adapters, force=force) if adapters else []

    def _adapted(self, current: RVCSource, adapters: list, name: str, key: tuple | None) -> RVCSource:
        # A copy shares the content encoder, pitch estimators and index; only the synthesizer is new.
        new = dataclasses.replace(current, synth=copy.deepcopy(current.synth), name=name)
        new.apply_adapters(adapters)
        self.pool.adopt(key, new)
        return new

    def _loaded(self, spec: VoiceSpec) -> Any:
        return self.pool.source(spec)  # the engine's switch_voice prepares and warms it, off the worker

    def _start(self, engine: Any, label: str, make: Callable[[], Any], *, warm: bool) -> None:
        with self._lock:
            self._generation += 1
            generation = self._generation
        self._thread = threading.Thread(
            target=self._run, args=(engine, label, make, generation, warm), name="rvclora-voice-switch", daemon=True
        )
        self._thread.start()

    def _run(self, engine: Any, label: str, make: Callable[[], Any], generation: int, warm: bool) -> None:
        with self._loading:
            if generation != self._generation:
                return  # a newer switch came while this one waited
            try:
                source = make()
            except Exception as e:  # noqa: BLE001 - the user hears the current voice and reads why
                text = str(e).splitlines()[0] if str(e) else type(e).__name__
                playing = self.current.name if self.current is not None else "the current voice"
                self.report("warning", f"could not switch to {label!r}: {text}; still playing {playing!r}")
                return
            with self._lock:
                if generation != self._generation or not engine.running:
                    return
                self.current = source
            # Outside the lock, so a newer switch is not kept waiting for this one's warm-up (`_loading`
            # keeps the jobs in order). An adapter copy runs the playing voice's shapes and code
            # paths, already warm: a warm-up would only compete with the worker.
            engine.switch_voice(source, warm=warm)


__all__ = ["PoolConfig", "VoicePool", "VoiceSpec", "VoiceSwitcher", "file_digest", "load_voice"]
