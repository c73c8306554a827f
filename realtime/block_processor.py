"""The per-block chain: input gain → denoise → gate → convert → SOLA → loudness → denoise → output gain → finite check.

No threads, no devices: the engine's worker and the benchmark both drive it.
`warm_up` runs every path the settings can switch to (gate closed and open, formant,
index, rms-mix) before the first real block, so no path pays its first-call cost
(allocations, kernel selection, lazy imports) while audio flows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .denoise import StreamDenoiser
from .denoise_models import FrameDenoiser, make_frame_denoiser
from .gate import NoiseGate
from .loudness import rms_mix
from .settings import EngineSettings
from .sola import SolaConfig, SolaCrossfader
from .voice_source import BlockConverter, VoiceSource


def gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def warmup_variants(source: VoiceSource, settings: EngineSettings) -> list[EngineSettings]:
    """`settings` plus each switchable path live changes can take without a rebuild."""
    variants = [settings]
    for change in (dict(threshold_db=-20.0), dict(threshold_db=-60.0), dict(rms_mix_rate=0.5),
                   dict(index_rate=0.5), dict(formant=1.0), dict(passthrough=False, pitch=2.0)):
        try:
            v = settings.replace(**change)
            source.check_settings(v)
        except ValueError:  # a path this voice cannot take (e.g. formant on ONNX): nothing to warm
            continue
        variants.append(v)
    return variants


class BlockProcessor:
    """gate → input gain → convert → SOLA → loudness → output gain → finite check, one block at a time.

    No threads, no devices: the engine's worker and the benchmark both drive it.
    `process` takes `block_in` samples at `input_sr` and returns `block_out` at `output_sr`.
    """

    def __init__(self, source: VoiceSource, settings: EngineSettings, *, naive: bool = False) -> None:
        self.source = source
        self.naive = naive
        self.nonfinite = 0
        # The denoisers' models, loaded when first turned on (a one-time pause of about a second if that
        # happens live) and kept across rebuilds and voice switches.
        self._models: dict[str, FrameDenoiser] = {}
        self.configure(settings)

    def configure(self, settings: EngineSettings) -> None:
        """(Re)build buffers for `settings`' block shape."""
        self.converter: BlockConverter = self.source.make_converter(settings, naive=self.naive)
        self.settings = settings
        c = self.converter
        self.input_sr, self.output_sr = c.input_sr, c.output_sr
        self.block_in = settings.block_ms * c.input_sr // 1000
        self.block_out = settings.block_ms * c.output_sr // 1000
        cf = settings.crossfade_ms * c.output_sr // 1000
        search = settings.search_ms * c.output_sr // 1000
        self._sola = SolaCrossfader(SolaConfig(crossfade=cf, search=search)) if c.uses_sola else None
        # The input span that matches the converter's output (block + crossfade + search), for rms_mix.
        tail = (settings.block_ms + settings.crossfade_ms + settings.search_ms) * c.input_sr // 1000
        self._history = np.zeros(max(tail, self.block_in), dtype=np.float32)
        self._block = np.zeros(self.block_in, dtype=np.float32)
        self._out = np.zeros(self.block_out, dtype=np.float32)
        # Always present: it keeps its 30 ms of history even while off, so turning it on live has context.
        self._gate = NoiseGate(settings.threshold_db, c.input_sr // 100)
        self._denoisers: dict[str, StreamDenoiser] = {}
        self._use_denoisers(settings)

    def _use_denoisers(self, settings: EngineSettings) -> None:
        """Build the denoisers `settings` turn on (model loads once; its queues restart when turned on)."""
        for where, on, sr, block in (("input", settings.denoise_input, self.input_sr, self.block_in),
                                     ("output", settings.denoise_output, self.output_sr, self.block_out)):
            if not on:
                self._denoisers.pop(where, None)
                continue
            if where not in self._denoisers:
                if where not in self._models:
                    self._models[where] = make_frame_denoiser()
                self._denoisers[where] = StreamDenoiser(sr, block, self._models[where])
            self._denoisers[where].set_strength(settings.denoise_strength)

    def update(self, settings: EngineSettings) -> None:
        """Take new settings; rebuilds only when the block shape changes."""
        if self.settings.reshapes(settings):
            self.configure(settings)
        else:
            self.settings = settings
            self._gate.threshold_db = float(settings.threshold_db)
            self._use_denoisers(settings)

    def continue_from(self, old: BlockProcessor) -> None:
        """Take over a previous voice's stream state where the rates match (a live voice switch):
        the SOLA tail crossfades the seam; the gate, rms-mix and converter keep their input history."""
        if old.input_sr == self.input_sr and len(old._history) == len(self._history):
            self._history, self._gate = old._history, old._gate
        if (self._sola is not None and old._sola is not None and old.output_sr == self.output_sr
                and old._sola.config == self._sola.config):
            self._sola = old._sola
        self.converter.continue_from(old.converter)
        # One denoiser per side for the whole session: take over the old chain's (model state, history).
        self._models = {**self._models, **old._models}
        for where, den in old._denoisers.items():
            mine = self._denoisers.get(where)
            if mine is not None and (den.sr, den.block) == (mine.sr, mine.block):
                self._denoisers[where] = den

    def future(self) -> np.ndarray:
        """The voice's next samples beyond its last block, at `output_sr` (SOLA's tail; empty without
        SOLA), before the output gain: what a switch to a voice of another rate fades out."""
        return self._sola.future() if self._sola is not None else np.zeros(0, np.float32)

    @property
    def extra_latency_s(self) -> float:
        """Delay beyond block, crossfade and search: the converter's look-ahead and the denoisers'."""
        return self.converter.latency_s + sum(d.delay_s for d in self._denoisers.values())

    @property
    def algorithmic_latency_ms(self) -> float:
        s = self.settings
        ms = s.block_ms + (s.crossfade_ms + s.search_ms if self.converter.uses_sola else 0)
        return ms + 1000.0 * self.extra_latency_s

    def reset(self) -> None:
        self.converter.reset()
        if self._sola is not None:
            self._sola.reset()
        self._history[:] = 0.0
        for d in self._denoisers.values():
            d.reset()

    def process(self, block: np.ndarray) -> np.ndarray:
        s = self.settings
        x = self._block
        np.copyto(x, block)
        if not np.isfinite(x).all():  # a broken driver or file: never feed NaN to a model
            np.nan_to_num(x, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        if s.input_gain_db:
            x *= gain(s.input_gain_db)
        if "input" in self._denoisers:
            x[:] = self._denoisers["input"].process(x)
        self._gate.apply(x)
        n = len(x)
        h = self._history
        h[: len(h) - n] = h[n:]  # numpy copes with the overlap
        h[len(h) - n :] = x
        out = self.converter.convert(x, s)
        if s.rms_mix_rate < 1.0:
            # Input and output cover the same span (block + crossfade + search) at their own rates.
            span = len(h) if self.converter.uses_sola else n
            out = rms_mix(h[len(h) - span :], out, s.rms_mix_rate, self.output_sr // 100)
        if self._sola is not None:
            out = self._sola.process(out, self.block_out, out=self._out)
        if "output" in self._denoisers:
            out = self._denoisers["output"].process(np.asarray(out, dtype=np.float32)[: self.block_out])
        if s.output_gain_db:
            out = out * gain(s.output_gain_db)
        if not np.isfinite(out).all():
            self.nonfinite += 1
            if self._sola is not None:
                self._sola.reset()  # its saved tail may hold the NaNs too
            return np.zeros(self.block_out, dtype=np.float32)
        return np.asarray(out, dtype=np.float32)[: self.block_out]

    def warm_up(self, blocks_per_path: int = 2, pace: Callable[[], None] | None = None) -> None:
        """Run low noise through every path (see `warmup_variants`), then reset the state.
        `pace` is called before each block (a live switch waits there for the worker's idle time)."""
        rng = np.random.default_rng(0)
        settings = self.settings
        for variant in warmup_variants(self.source, settings):
            self.update(variant)
            for _ in range(blocks_per_path):
                if pace is not None:
                    pace()
                self.process((0.05 * rng.standard_normal(self.block_in)).astype(np.float32))
        self.update(settings)
        self.nonfinite = 0
        self.reset()
