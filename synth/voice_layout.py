"""How an RVC voice state dict is laid out: key fixes, shape checks, and the config of a
pretrained base (`G*.pth`) rebuilt from its tensor shapes; what a non-voice file is."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from .configs import OFFICIAL_DECODERS, SynthConfig, official_config, sr_label

_PARAM_SUFFIX = {"original0": "weight_g", "original1": "weight_v"}


# --------------------------------------------------------------------------- state dicts


def normalize_state_dict(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Key fixes that do not change the weights: strip `module.` (DataParallel) and map new-style
    weight norm (`X.parametrizations.weight.original0/1`) to legacy `X.weight_g/weight_v`."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key[len("module.") :] if key.startswith("module.") else key
        parts = key.rsplit(".", 3)
        if len(parts) == 4 and parts[1:3] == ["parametrizations", "weight"] and parts[3] in _PARAM_SUFFIX:
            key = f"{parts[0]}.{_PARAM_SUFFIX[parts[3]]}"
        out[key] = value
    return out


def _norm_except_dim0(w: torch.Tensor) -> torch.Tensor:
    # Legacy weight_norm(dim=0): one L2 norm per slice along dim 0, kept as [n, 1, 1].
    n = torch.linalg.vector_norm(w.float().reshape(w.shape[0], -1), dim=1)
    return n.reshape(-1, *([1] * (w.dim() - 1))).to(w.dtype)


def split_folded_weights(state: Mapping[str, torch.Tensor], expected: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Turn folded `X.weight` into `X.weight_g` = ||W|| and `X.weight_v` = W where the model
    expects weight norm (e.g. a state dict taken after `remove_weight_norm()`); exact."""
    out = dict(state)
    for key in list(out):
        if key.endswith(".weight"):
            stem = key[: -len(".weight")]
            if f"{stem}.weight_g" in expected and f"{stem}.weight_v" in expected and key not in expected and out[key].dim():
                w = out.pop(key)
                out[f"{stem}.weight_v"] = w
                out[f"{stem}.weight_g"] = _norm_except_dim0(w)
    return out


def few(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def _dims(x: Any) -> tuple[int, ...]:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else tuple(x)


def check_state_dict(state: Mapping[str, torch.Tensor], expected: Mapping[str, Any]) -> str | None:
    """None when `state` has exactly the keys and shapes of `expected` (tensors or shapes), else a short reason."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    bad_shape = [
        f"{k} {tuple(state[k].shape)} vs {_dims(expected[k])}"
        for k in expected
        if k in state and tuple(state[k].shape) != _dims(expected[k])
    ]
    reasons = []
    if missing:
        reasons.append(f"missing {few(missing)}")
    if unexpected:
        reasons.append(f"unexpected {few(unexpected)}")
    if bad_shape:
        reasons.append(f"wrong shape {few(bad_shape, 2)}")
    return "; ".join(reasons) or None


def non_finite(state: Mapping[str, torch.Tensor]) -> list[str]:
    return [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


# --------------------------------------------------------------------------- what is this file


def describe(obj: Any) -> str:
    """What a checkpoint that is not a voice looks like, for error messages."""
    if not isinstance(obj, Mapping):
        return f"a {type(obj).__name__}, not a dict"
    keys = [str(k) for k in obj]
    inner = obj.get("model") if isinstance(obj.get("model"), Mapping) else obj
    names = [str(k) for k in inner]

    def any_start(*prefixes: str) -> bool:
        return any(n.startswith(prefixes) for n in names)

    if "cfg" in obj or "args" in obj or any_start("feature_extractor.", "encoder.layers.", "feature_projection.", "final_proj."):
        return "a HuBERT/ContentVec content encoder (hubert_base.pt), not a voice"
    if any_start("unet.", "cnn.") or any(n.startswith("fc.") for n in names):
        return "an RMVPE pitch model (rmvpe.pt), not a voice"
    if any_start("discriminators."):
        return "a discriminator checkpoint (D*.pth); load the matching G*.pth instead"
    if any("lora_A" in n or "lora_B" in n for n in names):
        return "a LoRA adapter; load it on top of its base voice instead"
    shown = ", ".join(keys[:4]) + (" …" if len(keys) > 4 else "")
    return f"a dict with keys {shown or '(none)'}, not an RVC voice"


def tensor_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {str(k): v for k, v in obj.items()}
    return None


# --------------------------------------------------------------------------- config of base files


def _shape(state: Mapping[str, torch.Tensor], *keys: str) -> tuple[int, ...] | None:
    for k in keys:
        if k in state:
            return tuple(state[k].shape)
    return None


def _count(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    idx = {int(k[len(prefix) :].split(".", 1)[0]) for k in state if k.startswith(prefix) and k[len(prefix) :].split(".", 1)[0].isdigit()}
    return max(idx) + 1 if idx else 0


def infer_version_f0(state: Mapping[str, torch.Tensor]) -> tuple[str, bool]:
    """v1/v2 from the content input width of `enc_p.emb_phone`; f0 from `enc_p.emb_pitch`."""
    shape = _shape(state, "enc_p.emb_phone.weight")
    if shape is None or len(shape) != 2 or shape[1] not in (256, 768):
        raise ValueError("no enc_p.emb_phone.weight of width 256 or 768")
    return ("v1" if shape[1] == 256 else "v2"), "enc_p.emb_pitch.weight" in state


def infer_config(state: Mapping[str, torch.Tensor], version: str, f0: bool, sr: int | None = None) -> SynthConfig:
    """Rebuild the config of a state dict that carries none (pretrained `G*.pth`).

    - Decoder layout -> sample rate: the number of `dec.ups`, their kernel sizes, the
      strides of `dec.noise_convs` (kernel = 2 x prod(later upsample rates), f0 models
      only) and the posterior's spectrogram bins (`enc_q.pre`: 513 at 32k, 1025 at
      40k/48k) are matched against RVC's official decoders; exactly one sample rate
      must fit (or pass `sr`). Upsample rates and resblock dilations (which leave no
      trace in shapes) then come from that official config.
    - Widths come from the tensors: inter (`enc_p.proj`), hidden (`emb_phone`), filter
      (`ffn_layers.0.conv_1`), heads (hidden / `emb_rel_k` width), layers, FFN kernel,
      decoder width (`dec.conv_pre`), resblock kernels, speakers and gin (`emb_g`).
    The strict load that follows checks every tensor against the result.
    """
    n_ups = _count(state, "dec.ups.")
    kernels = tuple(_shape(state, f"dec.ups.{i}.weight_v", f"dec.ups.{i}.weight")[-1] for i in range(n_ups))  # type: ignore[index]  # n_ups counted these keys
    spec = _shape(state, "enc_q.pre.weight")
    strides = tuple(_shape(state, f"dec.noise_convs.{i}.weight")[-1] // 2 for i in range(n_ups - 1)) if f0 else None  # type: ignore[index]  # assumed present in an f0 decoder; a missing one raises TypeError, not a file-format error (debt)

    def fits(key: tuple[str, int]) -> bool:
        spec_c, _, rates, ks = OFFICIAL_DECODERS[key]
        if ks != kernels or (spec is not None and spec[1] != spec_c):
            return False
        return strides is None or strides == tuple(math.prod(rates[i + 1 :]) for i in range(len(rates) - 1))

    rates_found = sorted({s for (v, s) in OFFICIAL_DECODERS if fits((v, s)) and (sr is None or s == sr)})
    if len(rates_found) != 1:
        if rates_found:
            found = ", ".join(sr_label(s) for s in rates_found)
            raise ValueError(f"its decoder fits several official RVC configs ({found}); add the key \"sr\" (e.g. \"{found.split(', ')[-1]}\") to the checkpoint dict")
        raise ValueError(f"its decoder (upsample kernels {list(kernels)}) matches no official RVC 32k/40k/48k config")
    base = official_config(version, rates_found[0])

    hidden, _ = state["enc_p.emb_phone.weight"].shape
    n_layers = _count(state, "enc_p.encoder.attn_layers.")
    filter_c, _, ffn_k = state["enc_p.encoder.ffn_layers.0.conv_1.weight"].shape
    k_channels = state["enc_p.encoder.attn_layers.0.emb_rel_k"].shape[-1]
    n_res = _count(state, "dec.resblocks.")
    n_kernels = n_res // max(n_ups, 1)
    rb1 = "dec.resblocks.0.convs1.0.weight_v" in state or "dec.resblocks.0.convs1.0.weight" in state
    conv = "convs1" if rb1 else "convs"
    rb_kernels = tuple(
        _shape(state, f"dec.resblocks.{j}.{conv}.0.weight_v", f"dec.resblocks.{j}.{conv}.0.weight")[-1]  # type: ignore[index]  # assumed present; a missing one raises TypeError, not a file-format error (debt)
        for j in range(n_kernels)
    )
    dilations = base.resblock_dilation_sizes if rb1 else ((1, 3),) * n_kernels
    if len(dilations) != n_kernels:
        raise ValueError(f"{n_kernels} resblocks per stage, official configs have {len(dilations)}")
    n_spk, gin = state["emb_g.weight"].shape
    return base.replace(
        spec_channels=spec[1] if spec is not None else base.spec_channels,
        inter_channels=state["enc_p.proj.weight"].shape[0] // 2,
        hidden_channels=hidden,
        filter_channels=filter_c,
        n_heads=hidden // k_channels,
        n_layers=n_layers,
        kernel_size=ffn_k,
        resblock="1" if rb1 else "2",
        resblock_kernel_sizes=rb_kernels,
        resblock_dilation_sizes=dilations,
        upsample_initial_channel=state["dec.conv_pre.weight"].shape[0],
        spk_embed_dim=n_spk,
        gin_channels=gin,
    )
