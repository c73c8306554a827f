"""RVC voice files: the released voice `.pth` and the pretrained base `G*.pth`.

Released voice (what RVC's `savee`/`extract_small_model` write, what every RVC tool loads)::

    {"weight": {key: fp16 tensor, ...},   # generator state dict without enc_q.*
     "config": [18 constructor args],     # SynthConfig.to_list(); config[-1] = sr int
     "info": "300epoch", "sr": "40k", "f0": 1, "version": "v2"}

Pretrained base / training checkpoint: `{"model": full state dict incl. enc_q.*, ...}`
(also accepted: the bare state dict). It carries no config; `infer_config` rebuilds
it from the tensor shapes (see there).

Loading is strict: every tensor of the file must be used and every parameter of
the model must come from the file, unlike RVC's `strict=False`, which silently
leaves missing layers random.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .checkpoint import CheckpointError, load_checkpoint
from .configs import OFFICIAL_DECODERS, SynthConfig, official_config, parse_sr, sr_label
from .synthesizer import Synthesizer
from .voice_meta import VoiceMeta, read_voice_meta, vocoder_problem

_PARAM_SUFFIX = {"original0": "weight_g", "original1": "weight_v"}


class VoiceFileError(ValueError):
    """A voice file cannot be used; the one-line message names the file and what to do."""


@dataclass
class Voice:
    """A loaded voice model and what its file says about it."""

    model: Synthesizer
    version: str  # "v1" (256-d content) or "v2" (768-d)
    sr: int  # output sample rate, Hz
    f0: bool  # pitch-conditioned (NSF decoder) or not
    info: str
    config: SynthConfig
    n_speakers: int
    path: Path | None
    meta: VoiceMeta = field(default_factory=VoiceMeta)  # content encoder, vocoder (Applio's fields)


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
            if f"{stem}.weight_g" in expected and f"{stem}.weight_v" in expected and key not in expected:
                w = out.pop(key)
                out[f"{stem}.weight_v"] = w
                out[f"{stem}.weight_g"] = _norm_except_dim0(w)
    return out


def _few(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def check_state_dict(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> str | None:
    """None when `state` has exactly the keys and shapes of `expected`, else a short reason."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    bad_shape = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    reasons = []
    if missing:
        reasons.append(f"missing {_few(missing)}")
    if unexpected:
        reasons.append(f"unexpected {_few(unexpected)}")
    if bad_shape:
        reasons.append(f"wrong shape {_few(bad_shape, 2)}")
    return "; ".join(reasons) or None


def _non_finite(state: Mapping[str, torch.Tensor]) -> list[str]:
    return [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


# --------------------------------------------------------------------------- what is this file


def _describe(obj: Any) -> str:
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


def _tensor_dict(obj: Any) -> dict[str, torch.Tensor] | None:
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
    kernels = tuple(_shape(state, f"dec.ups.{i}.weight_v", f"dec.ups.{i}.weight")[-1] for i in range(n_ups))  # type: ignore[index]
    spec = _shape(state, "enc_q.pre.weight")
    strides = tuple(_shape(state, f"dec.noise_convs.{i}.weight")[-1] // 2 for i in range(n_ups - 1)) if f0 else None  # type: ignore[index]

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
        _shape(state, f"dec.resblocks.{j}.{conv}.0.weight_v", f"dec.resblocks.{j}.{conv}.0.weight")[-1]  # type: ignore[index]
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


# --------------------------------------------------------------------------- load


# Widths beyond any real RVC model: refuse them before allocating (a crafted config
# list could otherwise ask for gigabytes before the shape check can say no).
_MAX_WIDTH = 8192


def _build(config: SynthConfig, version: str, f0: bool, posterior: bool) -> Synthesizer:
    """The model a config describes, on the CPU. (Building on the meta device looks cheaper but
    is ~40x slower for small models: weight norm runs through Python decompositions there.)"""
    widths = (config.inter_channels, config.hidden_channels, config.filter_channels,
              config.upsample_initial_channel, config.gin_channels, config.spk_embed_dim)
    if max(widths) > _MAX_WIDTH or config.n_layers > 64:
        raise ValueError(f"implausible model size in the config ({widths}, {config.n_layers} layers)")
    return Synthesizer(config, version=version, f0=f0, posterior=posterior)


def _expected(config: SynthConfig, version: str, f0: bool, posterior: bool) -> dict[str, torch.Tensor]:
    return _build(config, version, f0, posterior).state_dict()


def load_voice(
    path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    remove_weight_norm: bool = False,
) -> Voice:
    """Load an RVC voice (released `.pth` or pretrained `G*.pth`) into a `Synthesizer` in eval mode.

    Raises VoiceFileError (one line) when the file is unreadable, is not a voice, or
    its tensors do not fit the model it describes.
    """
    path = Path(path)
    label = str(path)
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as e:
        hint = "; copy or download the file again" if "corrupt" in str(e) else ""
        raise VoiceFileError(f"{e}{hint}") from None

    info = ""
    if isinstance(ckpt, Mapping) and isinstance(ckpt.get("weight"), Mapping):
        kind = "voice"
        state = _tensor_dict(ckpt["weight"])
        if state is None:
            raise VoiceFileError(f"{label}: 'weight' holds no tensors; the voice file is damaged, re-export it with RVC")
    elif isinstance(ckpt, Mapping) and _tensor_dict(ckpt.get("model")) is not None and "enc_p.emb_phone.weight" in normalize_state_dict(ckpt["model"]):
        kind, state = "base", _tensor_dict(ckpt["model"])
    elif _tensor_dict(ckpt) is not None and "enc_p.emb_phone.weight" in normalize_state_dict(ckpt):
        kind, state = "base", _tensor_dict(ckpt)
    else:
        raise VoiceFileError(f"{label}: this is {_describe(ckpt)}; choose an RVC voice model (.pth)")
    assert state is not None
    meta = read_voice_meta(ckpt) if kind == "voice" else VoiceMeta()
    if vocoder_problem(meta):
        raise VoiceFileError(f"{label}: {vocoder_problem(meta)}")
    state = normalize_state_dict(state)

    bad = _non_finite(state)
    if bad:
        raise VoiceFileError(
            f"{label}: {len(bad)} weight tensor(s) contain NaN/Inf (e.g. {_few(bad, 2)}); "
            "the model is broken (diverged training or a bad fp16 export), use an earlier checkpoint"
        )

    try:
        shape_version, shape_f0 = infer_version_f0(state)
    except ValueError as e:
        raise VoiceFileError(f"{label}: not an RVC voice model ({e})") from None

    if kind == "voice":
        # RVC defaults a missing "version" to v1 and a missing "f0" to 1; genuine old files
        # agree with their shapes, so the shapes decide only when the field is absent.
        version = str(ckpt.get("version", shape_version))
        f0 = bool(int(ckpt.get("f0", 1 if shape_f0 else 0)))
        if version not in ("v1", "v2"):
            raise VoiceFileError(f"{label}: unknown RVC version {version!r} (expected v1 or v2)")
        if version != shape_version:
            raise VoiceFileError(
                f"{label}: file says {version} but its content input is "
                f"{state['enc_p.emb_phone.weight'].shape[1]}-d ({shape_version}); the file is inconsistent, re-export it"
            )
        if f0 != shape_f0:
            raise VoiceFileError(
                f"{label}: file says f0={int(f0)} but the weights are of a {'pitch' if shape_f0 else 'no-pitch'} "
                "model; the file is inconsistent, re-export it"
            )
        cfg_list = ckpt.get("config")
        try:
            if not isinstance(cfg_list, (list, tuple)):
                raise ValueError("no 18-item 'config' list")
            config = SynthConfig.from_list(list(cfg_list))
        except (ValueError, TypeError) as e:
            raise VoiceFileError(f"{label}: bad synthesizer config ({e}); re-export the voice with RVC") from None
        # As RVC: the speaker count comes from the embedding table, not the list.
        config = config.replace(spk_embed_dim=int(state["emb_g.weight"].shape[0])) if "emb_g.weight" in state else config
        info = str(ckpt.get("info", ""))
    else:
        version, f0 = shape_version, shape_f0
        try:
            sr_hint = ckpt.get("sr") if isinstance(ckpt, Mapping) else None
            config = infer_config(state, version, f0, sr=parse_sr(sr_hint) if sr_hint else None)
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise VoiceFileError(f"{label}: cannot tell the model layout of this base checkpoint: {e}") from None
        info = str(ckpt.get("info", "")) if isinstance(ckpt, Mapping) else ""

    posterior = any(k.startswith("enc_q.") for k in state)
    try:
        model = _build(config, version, f0, posterior)
    except (ValueError, RuntimeError) as e:
        raise VoiceFileError(f"{label}: its config cannot build a model ({e}); re-export the voice") from None
    expected = model.state_dict()
    state = split_folded_weights(state, expected)
    reason = check_state_dict(state, expected)
    if reason:
        raise VoiceFileError(
            f"{label}: weights do not fit an RVC {version} {'f0' if f0 else 'no-f0'} {sr_label(config.sr)} model "
            f"({reason}); the file is damaged or was not written by RVC, re-export it"
        )

    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    if remove_weight_norm:
        model.remove_weight_norm()  # fold in fp32, before any cast
    model.to(device=device, dtype=dtype).eval()
    return Voice(
        model=model,
        version=version,
        sr=config.sr,
        f0=f0,
        info=info,
        config=config,
        n_speakers=config.spk_embed_dim,
        path=path,
        meta=meta,
    )


# --------------------------------------------------------------------------- save


def voice_checkpoint(
    state_dict_or_model: Mapping[str, torch.Tensor] | nn.Module,
    *,
    config: SynthConfig,
    version: str,
    f0: bool,
    info: str = "",
) -> dict[str, Any]:
    """The dict RVC's `savee` writes: fp16 weights without enc_q, weight norm as weight_g/weight_v."""
    state = state_dict_or_model.state_dict() if isinstance(state_dict_or_model, nn.Module) else dict(state_dict_or_model)
    state = {k: v for k, v in normalize_state_dict(state).items() if not k.startswith("enc_q.")}
    if "emb_g.weight" in state:
        config = config.replace(spk_embed_dim=int(state["emb_g.weight"].shape[0]))
    expected = _expected(config, version, f0, posterior=False)
    state = split_folded_weights(state, expected)
    reason = check_state_dict(state, expected)
    if reason:
        raise VoiceFileError(f"cannot save an RVC {version} {'f0' if f0 else 'no-f0'} voice: weights do not fit: {reason}")
    bad = _non_finite(state)
    if bad:
        raise VoiceFileError(f"cannot save a voice with NaN/Inf weights (e.g. {_few(bad, 2)})")
    weight = {k: state[k].detach().to("cpu", torch.float16).contiguous() for k in expected}  # RVC's key order
    return {
        "weight": weight,
        "config": config.to_list(),
        "info": info,
        "sr": sr_label(config.sr),
        "f0": int(bool(f0)),
        "version": version,
    }


def save_voice(
    path: str | os.PathLike,
    state_dict_or_model: Mapping[str, torch.Tensor] | nn.Module,
    *,
    config: SynthConfig,
    version: str,
    f0: bool,
    info: str = "",
) -> Path:
    """Write an official RVC voice `.pth` (loadable by RVC's own tools); returns the path.

    Accepts a Synthesizer or a state dict (with or without enc_q, weight norm legacy,
    new-style or folded). Written atomically: a crash never leaves half a file.
    """
    path = Path(path)
    ckpt = voice_checkpoint(state_dict_or_model, config=config, version=version, f0=f0, info=info)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(ckpt, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
