"""What a voice config may say, and the tensor shapes it implies, without building a model.

A voice file is a stranger's file: its 18-item config could ask for 20,000 resblocks or
layers 8192 wide, and building that model exhausts memory before any shape check can
refuse it. `check_config` holds a config to the ranges RVC's own configs live in (with
room for community variants of widths and counts), and `expected_shapes` computes the
state-dict shapes of the `Synthesizer` the config describes by arithmetic, so a file can
be checked against its config, and described, before one tensor of the model exists.
`tests/test_hostile_files.py` compares `expected_shapes` with the real model's state dict.
"""

from __future__ import annotations

import math

from ..errors import FileFormatError
from .configs import SAMPLE_RATES, SynthConfig, content_dim, sr_label

# Ranges a config must lie in. Official RVC: inter/hidden 192, filter 768, 2 heads,
# 6 layers, FFN kernel 3, decoder width 512, 4-5 upsample stages of rates 2..12 with
# kernels 4..24, resblock kernels 3/7/11 with dilations 1/3/5, gin 256, 109 speakers.
LIMITS = {
    "spec_channels": (1, 4097),  # n_fft // 2 + 1 for n_fft up to 8192
    "segment_size": (1, 4096),  # training slice in frames (24..40 official)
    "inter_channels": (1, 1024),
    "hidden_channels": (1, 1024),
    "filter_channels": (1, 4096),
    "n_heads": (1, 16),
    "n_layers": (1, 24),
    "kernel_size": (1, 31),
    "upsample_initial_channel": (2, 2048),
    "gin_channels": (1, 1024),
    "spk_embed_dim": (1, 4096),  # speakers: 109 in every official base
}
MAX_STAGES = 6  # upsample stages (4 or 5 official)
MAX_RATE = 16  # one stage's upsample rate
MAX_UP_KERNEL = 64
MAX_RES_KERNELS = 4  # resblock kernels per stage (3 official)
MAX_RES_KERNEL = 31
MAX_DILATIONS = 4  # convs per resblock (3 for type 1, 2 for type 2)
MAX_DILATION = 32

_WINDOW = 10  # relative-attention window of RVC's text encoder
_FLOWS, _FLOW_LAYERS, _FLOW_KERNEL = 4, 3, 5
_POST_LAYERS, _POST_KERNEL = 16, 5


class ConfigLimitError(FileFormatError):
    """A synthesizer config outside what RVC produces; the message names the field."""


def _int_in(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigLimitError(f"config {name} is {value!r}, not a whole number")
    if not lo <= value <= hi:
        raise ConfigLimitError(f"config {name} is {value}, outside RVC's range {lo}..{hi}")
    return value


def check_config(c: SynthConfig) -> None:
    """Raise ConfigLimitError (one line) unless every field lies where real RVC configs do."""
    for name, (lo, hi) in LIMITS.items():
        _int_in(name, getattr(c, name), lo, hi)
    if c.sr not in SAMPLE_RATES:
        raise ConfigLimitError(f"sample rate {c.sr} Hz is not one RVC produces (32000, 40000 or 48000)")
    if c.hidden_channels % c.n_heads:
        raise ConfigLimitError(f"config hidden_channels {c.hidden_channels} is not divisible by its {c.n_heads} heads")
    if c.inter_channels % 2:
        raise ConfigLimitError(f"config inter_channels {c.inter_channels} is odd; the flow splits it in halves")
    p = c.p_dropout
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ConfigLimitError(f"config p_dropout is {p!r}, expected a number in [0, 1)")
    if c.resblock not in ("1", "2"):
        raise ConfigLimitError(f"config resblock is {c.resblock!r}, expected \"1\" or \"2\"")
    n_stages = len(c.upsample_rates)
    if not 1 <= n_stages <= MAX_STAGES:
        raise ConfigLimitError(f"config has {n_stages} upsample stages, RVC uses 1..{MAX_STAGES}")
    for u, k in zip(c.upsample_rates, c.upsample_kernel_sizes):
        _int_in("upsample rate", u, 1, MAX_RATE)
        _int_in("upsample kernel", k, u, MAX_UP_KERNEL)
        if (k - u) % 2:
            raise ConfigLimitError(f"config upsample kernel {k} and rate {u} differ by an odd number")
    if c.hop * 100 != c.sr:
        raise ConfigLimitError(f"config upsample rates {list(c.upsample_rates)} give a hop of {c.hop}, "
                               f"not {c.sr // 100} for {sr_label(c.sr)} (10 ms frames)")
    if c.upsample_initial_channel >> n_stages < 1:
        raise ConfigLimitError(f"config decoder width {c.upsample_initial_channel} halves to 0 over {n_stages} stages")
    if not 1 <= len(c.resblock_kernel_sizes) <= MAX_RES_KERNELS:
        raise ConfigLimitError(f"config has {len(c.resblock_kernel_sizes)} resblock kernels, RVC uses 1..{MAX_RES_KERNELS}")
    for k, ds in zip(c.resblock_kernel_sizes, c.resblock_dilation_sizes):
        _int_in("resblock kernel", k, 1, MAX_RES_KERNEL)
        if not 1 <= len(ds) <= MAX_DILATIONS:
            raise ConfigLimitError(f"config resblock has {len(ds)} dilations, RVC uses 1..{MAX_DILATIONS}")
        for d in ds:
            _int_in("resblock dilation", d, 1, MAX_DILATION)


def _conv(out: int, inp: int, k: int, bias: bool = True) -> dict[str, tuple[int, ...]]:
    return {"weight": (out, inp, k), **({"bias": (out,)} if bias else {})}


def _wn(out: int, inp: int, k: int, *, transposed: bool = False) -> dict[str, tuple[int, ...]]:
    # Legacy weight norm over dim 0 of the weight (dim 0 is the input for a transposed conv).
    w = (inp, out, k) if transposed else (out, inp, k)
    return {"bias": (out,), "weight_g": (w[0], 1, 1), "weight_v": w}


def _wavenet(h: int, kernel: int, n_layers: int, gin: int) -> dict[str, dict[str, tuple[int, ...]]]:
    mods = {"cond_layer": _wn(2 * h * n_layers, gin, 1)}
    for i in range(n_layers):
        mods[f"in_layers.{i}"] = _wn(2 * h, h, kernel)
        mods[f"res_skip_layers.{i}"] = _wn(2 * h if i < n_layers - 1 else h, h, 1)
    return mods


def _flatten(prefix: str, mods: dict[str, dict[str, tuple[int, ...]]]) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}{m}.{p}": shape for m, params in mods.items() for p, shape in params.items()}


def expected_shapes(c: SynthConfig, version: str, f0: bool, posterior: bool) -> dict[str, tuple[int, ...]]:
    """State-dict key -> shape of `Synthesizer(c, version=version, f0=f0, posterior=posterior)`."""
    h, inter, gin = c.hidden_channels, c.inter_channels, c.gin_channels
    out: dict[str, tuple[int, ...]] = {"enc_p.emb_phone.weight": (h, content_dim(version)), "enc_p.emb_phone.bias": (h,)}
    if f0:
        out["enc_p.emb_pitch.weight"] = (256, h)
    for i in range(c.n_layers):
        attn = {f"conv_{x}": _conv(h, h, 1) for x in "qkvo"}
        out[f"enc_p.encoder.attn_layers.{i}.emb_rel_k"] = (1, 2 * _WINDOW + 1, h // c.n_heads)
        out[f"enc_p.encoder.attn_layers.{i}.emb_rel_v"] = (1, 2 * _WINDOW + 1, h // c.n_heads)
        out.update(_flatten(f"enc_p.encoder.attn_layers.{i}.", attn))
        out.update(_flatten("enc_p.encoder.", {f"norm_layers_1.{i}": {"gamma": (h,), "beta": (h,)},
                                                f"norm_layers_2.{i}": {"gamma": (h,), "beta": (h,)}}))
        out.update(_flatten(f"enc_p.encoder.ffn_layers.{i}.", {"conv_1": _conv(c.filter_channels, h, c.kernel_size),
                                                               "conv_2": _conv(h, c.filter_channels, c.kernel_size)}))
    out.update(_flatten("enc_p.", {"proj": _conv(2 * inter, h, 1)}))

    dec: dict[str, dict[str, tuple[int, ...]]] = {"conv_pre": _conv(c.upsample_initial_channel, inter, 7)}
    n_stages = len(c.upsample_rates)
    for i, k in enumerate(c.upsample_kernel_sizes):
        ch = c.upsample_initial_channel // 2 ** (i + 1)
        dec[f"ups.{i}"] = _wn(ch, 2 * ch, k, transposed=True)
        if f0:
            s = math.prod(c.upsample_rates[i + 1 :])
            dec[f"noise_convs.{i}"] = _conv(ch, 1, 2 * s if i + 1 < n_stages else 1)
        for j, (rk, ds) in enumerate(zip(c.resblock_kernel_sizes, c.resblock_dilation_sizes)):
            n = i * len(c.resblock_kernel_sizes) + j
            lists = ("convs1", "convs2") if c.resblock == "1" else ("convs",)
            for name in lists:
                for m in range(len(ds)):
                    dec[f"resblocks.{n}.{name}.{m}"] = _wn(ch, ch, rk)
    dec["conv_post"] = _conv(1, c.upsample_initial_channel // 2**n_stages, 7, bias=False)
    dec["cond"] = _conv(c.upsample_initial_channel, gin, 1)
    if f0:
        dec["m_source.l_linear"] = {"weight": (1, 1), "bias": (1,)}
    out.update(_flatten("dec.", dec))

    if posterior:
        out.update(_flatten("enc_q.", {"pre": _conv(h, c.spec_channels, 1), "proj": _conv(2 * inter, h, 1)}))
        out.update(_flatten("enc_q.enc.", _wavenet(h, _POST_KERNEL, _POST_LAYERS, gin)))
    for i in range(0, 2 * _FLOWS, 2):
        half = inter // 2
        out.update(_flatten(f"flow.flows.{i}.", {"pre": _conv(h, half, 1), "post": _conv(half, h, 1)}))
        out.update(_flatten(f"flow.flows.{i}.enc.", _wavenet(h, _FLOW_KERNEL, _FLOW_LAYERS, gin)))
    out["emb_g.weight"] = (c.spk_embed_dim, gin)
    return out


def parameter_count(shapes: dict[str, tuple[int, ...]]) -> int:
    return sum(math.prod(s) for s in shapes.values())
