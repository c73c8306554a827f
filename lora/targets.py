"""Which modules get a LoRA: name patterns and named presets for RVC synthesizers.

Names are the module names of the official RVC state dict (``dec.ups.0``,
``enc_p.encoder.attn_layers.3.conv_q``, ``flow.flows.0.enc.in_layers.1``,
``dec.resblocks.4.convs1.2``).  A pattern is either

* a dotted glob, matched one segment at a time (``*`` never crosses a dot):
  ``dec.ups.*`` matches ``dec.ups.0`` but not ``dec.ups.0.parametrizations.weight``;
* a regular expression after ``re:``, matched against the whole name
  (``re:dec\\.resblocks\\.[0-2]\\..*``).

Only Linear / Conv1d / ConvTranspose1d modules are ever selected.

Presets (RVC v1/v2, f0 and no-f0 alike; ``enc_q``, the training-only posterior
encoder, is never matched):

``encoder``  text encoder, per layer i of 6:
             ``enc_p.encoder.attn_layers.i.conv_{q,k,v,o}`` (1×1, 192→192) and
             ``enc_p.encoder.ffn_layers.i.conv_{1,2}`` (k=3, 192→768→192).
             Not ``enc_p.emb_phone`` / ``enc_p.proj``.
``flow``     per coupling layer ``flow.flows.{0,2,4,6}``: ``pre`` (96→192, 1×1),
             ``post`` (192→96, 1×1), ``enc.in_layers.{0,1,2}`` (k=5, weight-normed),
             ``enc.res_skip_layers.{0,1,2}`` (1×1, weight-normed).
             Not ``enc.cond_layer``: its input is the speaker embedding, a constant
             for one voice, so a delta there is only a per-channel bias shift, which
             unfreezing ``emb_g.weight`` already gives.
``decoder``  the generator (the seed project's choice): ``dec.conv_pre``,
             ``dec.ups.*`` (ConvTranspose1d, weight-normed),
             ``dec.resblocks.*.convs1.*`` / ``convs2.*`` (ResBlock1; ``convs.*`` for
             ResBlock2; weight-normed, dilated), ``dec.conv_post``.
             Not ``dec.cond`` (speaker constant, as above), ``dec.noise_convs.*``
             (harmonic source injection) or ``dec.m_source.l_linear`` (1×1 scalar).
``all``      encoder + flow + decoder.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import fnmatchcase

from torch import nn

from .layers import SUPPORTED
from .lora_errors import LoraConfigError

_ENCODER = (
    "enc_p.encoder.attn_layers.*.conv_q",
    "enc_p.encoder.attn_layers.*.conv_k",
    "enc_p.encoder.attn_layers.*.conv_v",
    "enc_p.encoder.attn_layers.*.conv_o",
    "enc_p.encoder.ffn_layers.*.conv_1",
    "enc_p.encoder.ffn_layers.*.conv_2",
)
_FLOW = (
    "flow.flows.*.pre",
    "flow.flows.*.post",
    "flow.flows.*.enc.in_layers.*",
    "flow.flows.*.enc.res_skip_layers.*",
)
_DECODER = (
    "dec.conv_pre",
    "dec.ups.*",
    "dec.resblocks.*.convs1.*",
    "dec.resblocks.*.convs2.*",
    "dec.resblocks.*.convs.*",
    "dec.conv_post",
)
PRESETS: dict[str, tuple[str, ...]] = {
    "encoder": _ENCODER,
    "flow": _FLOW,
    "decoder": _DECODER,
    "all": _ENCODER + _FLOW + _DECODER,
}


def split_targets(targets: str | Iterable[str]) -> list[str]:
    """``"decoder,flow"`` or ``["decoder", "re:..."]`` → list of items."""
    if isinstance(targets, str):
        targets = targets.split(",")
    items = [t.strip() for t in targets if t.strip()]
    if not items:
        raise LoraConfigError("no LoRA targets given")
    return items


def targets_string(targets: str | Iterable[str]) -> str:
    """The canonical string stored in the adapter header (``targets``)."""
    return ",".join(split_targets(targets))


def matches(pattern: str, name: str) -> bool:
    if pattern.startswith("re:"):
        return re.fullmatch(pattern[3:], name) is not None
    parts, segs = pattern.split("."), name.split(".")
    return len(parts) == len(segs) and all(fnmatchcase(s, p) for p, s in zip(parts, segs))


def select_modules(model: nn.Module, targets: str | Iterable[str]) -> list[str]:
    """Names (in model order) of the supported modules matched by presets/patterns.

    A preset may match partially (ResBlock1 has no ``convs``); an explicit pattern
    that matches no supported module is an error, as is an empty selection."""
    items = split_targets(targets)
    candidates = [n for n, m in model.named_modules() if n and isinstance(m, SUPPORTED)]
    chosen: set[str] = set()
    for item in items:
        patterns = PRESETS.get(item, (item,))
        hit = {n for n in candidates if any(matches(p, n) for p in patterns)}
        if not hit:
            kind = "preset" if item in PRESETS else "pattern"
            raise LoraConfigError(f"LoRA target {kind} {item!r} matches no Linear/Conv1d/ConvTranspose1d module")
        chosen |= hit
    return [n for n in candidates if n in chosen]
