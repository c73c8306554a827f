"""Synthesizer hyper-parameters: RVC's 18-item constructor list as a typed config.

RVC stores the constructor arguments of its synthesizer as a plain 18-item list in
every released voice file (`cpt["config"]`). `SynthConfig` mirrors that list field
by field, with tuples instead of lists so configs are hashable and frozen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from ..lora.adapter_file import parse_sr

_SR_LABELS = {32000: "32k", 40000: "40k", 48000: "48k"}


def sr_label(sr: int | str) -> str:
    """40000 -> "40k" (the string form RVC writes into `cpt["sr"]`)."""
    sr = parse_sr(sr)
    return _SR_LABELS.get(sr, f"{sr // 1000}k" if sr % 1000 == 0 else str(sr))


@dataclass(frozen=True)
class SynthConfig:
    """RVC synthesizer constructor arguments, in RVC's order."""

    spec_channels: int  # linear-spectrogram bins fed to the posterior encoder
    segment_size: int  # training slice, in frames (the official list holds frames too)
    inter_channels: int  # latent z channels
    hidden_channels: int
    filter_channels: int  # FFN width of the text encoder
    n_heads: int
    n_layers: int  # attention layers
    kernel_size: int  # FFN kernel
    p_dropout: float
    resblock: str  # "1" or "2"
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    upsample_rates: tuple[int, ...]
    upsample_initial_channel: int
    upsample_kernel_sizes: tuple[int, ...]
    spk_embed_dim: int  # number of speakers (rows of emb_g)
    gin_channels: int  # speaker embedding width
    sr: int  # output sample rate in Hz

    def __post_init__(self) -> None:
        # Normalise lists (as read from a file) to tuples so the config stays hashable.
        set_ = object.__setattr__
        set_(self, "resblock", str(self.resblock))
        set_(self, "resblock_kernel_sizes", tuple(int(k) for k in self.resblock_kernel_sizes))
        set_(self, "resblock_dilation_sizes", tuple(tuple(int(d) for d in ds) for ds in self.resblock_dilation_sizes))
        set_(self, "upsample_rates", tuple(int(u) for u in self.upsample_rates))
        set_(self, "upsample_kernel_sizes", tuple(int(k) for k in self.upsample_kernel_sizes))
        set_(self, "sr", parse_sr(self.sr))
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes differ in length")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError("resblock_kernel_sizes and resblock_dilation_sizes differ in length")

    @property
    def hop(self) -> int:
        """Output samples per frame (= sr / 100 for every official config)."""
        return math.prod(self.upsample_rates)

    @classmethod
    def from_list(cls, lst: Sequence[Any]) -> SynthConfig:
        """Build from RVC's 18-item list (`sr` may be 40000 or "40k")."""
        if len(lst) != 18:
            raise ValueError(f"expected RVC's 18-item synthesizer config, got {len(lst)} items")
        return cls(*lst)

    def to_list(self) -> list[Any]:
        """RVC's 18-item list: lists instead of tuples, `sr` as int, dropout 0 as int 0."""
        out: list[Any] = []
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "resblock_dilation_sizes":
                v = [list(d) for d in v]
            elif isinstance(v, tuple):
                v = list(v)
            elif f.name == "p_dropout" and float(v).is_integer():
                v = int(v)  # RVC writes 0, not 0.0
            out.append(v)
        return out

    def replace(self, **changes: Any) -> SynthConfig:
        return replace(self, **changes)


_RB_KERNELS = (3, 7, 11)
_RB_DILATIONS = ((1, 3, 5), (1, 3, 5), (1, 3, 5))

# (spec_channels, segment frames, upsample_rates, upsample_kernel_sizes) per
# configs/{v1,v2}/{sr}.json; segment frames = train.segment_size // hop_length.
OFFICIAL_DECODERS: dict[tuple[str, int], tuple[int, int, tuple[int, ...], tuple[int, ...]]] = {
    ("v1", 32000): (513, 40, (10, 4, 2, 2, 2), (16, 16, 4, 4, 4)),
    ("v1", 40000): (1025, 32, (10, 10, 2, 2), (16, 16, 4, 4)),
    ("v1", 48000): (1025, 24, (10, 6, 2, 2, 2), (16, 16, 4, 4, 4)),
    ("v2", 32000): (513, 40, (10, 8, 2, 2), (20, 16, 4, 4)),
    ("v2", 48000): (1025, 36, (12, 10, 2, 2), (24, 20, 4, 4)),
}
# RVC has no v2/40k.json: a v2 40k model is trained with the v1 40k config.
OFFICIAL_DECODERS[("v2", 40000)] = OFFICIAL_DECODERS[("v1", 40000)]

VERSIONS = ("v1", "v2")
SAMPLE_RATES = (32000, 40000, 48000)


def official_config(version: str, sr: int | str) -> SynthConfig:
    """The config RVC uses for `version` ("v1"/"v2") at `sr` (32k/40k/48k)."""
    key = (version, parse_sr(sr))
    if key not in OFFICIAL_DECODERS:
        raise ValueError(f"no official RVC config for {version} at {sr}; expected v1/v2 and 32k/40k/48k")
    spec, seg, rates, kernels = OFFICIAL_DECODERS[key]
    return SynthConfig(
        spec_channels=spec,
        segment_size=seg,
        inter_channels=192,
        hidden_channels=192,
        filter_channels=768,
        n_heads=2,
        n_layers=6,
        kernel_size=3,
        p_dropout=0,
        resblock="1",
        resblock_kernel_sizes=_RB_KERNELS,
        resblock_dilation_sizes=_RB_DILATIONS,
        upsample_rates=rates,
        upsample_initial_channel=512,
        upsample_kernel_sizes=kernels,
        spk_embed_dim=109,
        gin_channels=256,
        sr=key[1],
    )


def content_dim(version: str) -> int:
    """Width of the content features a model of `version` takes (v1: 256, v2: 768)."""
    if version not in VERSIONS:
        raise ValueError(f"unknown RVC version {version!r}; expected 'v1' or 'v2'")
    return 256 if version == "v1" else 768
