"""The HuBERT-base architecture a content-encoder file implies: from its weight shapes,
with fairseq's saved config or a Hugging Face config.json where they say more.

A stranger's file is read without running any of it: fairseq's config objects are
flattened to plain values, and its conv-layer spec (a Python literal string) is
evaluated only as literals.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from ..errors import ModelFileError
from .checkpoint import InertObject
from .hubert import BASE_CONV_LAYERS, ConvSpec, HubertConfig

FILE_HINT = "expected fairseq hubert_base.pt / a ContentVec .pt, or a Hugging Face folder with config.json and model weights"


class ContentEncoderError(ModelFileError):
    """A content-encoder file could not be used; the one-line message says why and what to do."""


def make_config(weights: Mapping[str, Tensor], overrides: dict[str, Any], label: Path) -> HubertConfig:
    """Architecture from the weight shapes, with the checkpoint's config where it says more."""
    fields = {**_infer_from_shapes(weights, label), **overrides}
    if fields.get("conv_layers") is None:
        raise ContentEncoderError(f"{label}: conv strides are not in the file and not the HuBERT-base ones; {FILE_HINT}")
    try:
        return HubertConfig(**fields)
    except (TypeError, ValueError) as e:
        raise ContentEncoderError(f"{label}: unsupported architecture ({e})") from None


def _infer_from_shapes(w: Mapping[str, Tensor], label: Path) -> dict[str, Any]:
    def shape(name: str) -> tuple[int, ...]:
        if name not in w:
            raise ContentEncoderError(f"{label}: weights lack {name!r}; not a HuBERT-base model ({FILE_HINT})")
        return tuple(w[name].shape)

    convs = []
    while f"feature_extractor.conv_layers.{len(convs)}.conv.weight" in w:
        c_out, _, kernel = shape(f"feature_extractor.conv_layers.{len(convs)}.conv.weight")
        convs.append((c_out, kernel))
    if not convs:
        shape("feature_extractor.conv_layers.0.conv.weight")
    # Strides are not stored in weights; HuBERT-base's kernels imply its strides.
    base_strides = {kernel: stride for _, kernel, stride in BASE_CONV_LAYERS}
    conv_layers: ConvSpec | None = None
    if len(convs) == len(BASE_CONV_LAYERS) and all(k in base_strides for _, k in convs):
        conv_layers = tuple((c, k, base_strides[k]) for c, k in convs)

    ffn_dim, embed_dim = shape("layers.0.fc1.weight")
    num_layers = 0
    while f"layers.{num_layers}.fc1.weight" in w:
        num_layers += 1
    pos_out, pos_in, pos_kernel = shape("pos_conv.conv.weight")
    return {
        "conv_layers": conv_layers,
        "conv_bias": "feature_extractor.conv_layers.0.conv.bias" in w,
        "extractor_mode": "layer_norm" if "feature_extractor.conv_layers.1.norm_weight" in w else "default",
        "embed_dim": embed_dim,
        "num_layers": num_layers,
        "num_heads": max(1, embed_dim // 64),  # 64-d heads in every HuBERT/wav2vec2 size
        "ffn_dim": ffn_dim,
        "pos_conv_kernel": pos_kernel,
        "pos_conv_groups": pos_out // pos_in,
        "final_dim": shape("final_proj.weight")[0] if "final_proj.weight" in w else 0,
        "feature_layer_norm": "feature_layer_norm.weight" in w,
    }


def _plain(obj: Any, depth: int = 0) -> Any:
    """Turn inert stand-ins of omegaconf / argparse / enum objects into dicts, lists and values."""
    if depth > 50:
        return None
    if isinstance(obj, InertObject):
        state = obj.__dict__
        if "_content" in state:  # omegaconf DictConfig / ListConfig
            return _plain(state["_content"], depth + 1)
        if "_val" in state:  # omegaconf value node
            return _plain(state["_val"], depth + 1)
        if "_state" in state:
            return _plain(state["_state"], depth + 1)
        public = {k: v for k, v in state.items() if not k.startswith("_")}
        if not public and state.get("_args"):  # an Enum member rebuilt from its value
            return _plain(state["_args"][0], depth + 1)
        return {k: _plain(v, depth + 1) for k, v in public.items()}
    if isinstance(obj, Mapping):
        return {k: _plain(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, depth + 1) for v in obj]
    return obj


def _renamed(config: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """The values `config` sets (not None), under our field names."""
    return {ours: config[theirs] for theirs, ours in names.items() if config.get(theirs) is not None}


def fairseq_overrides(ckpt: Mapping[str, Any], label: Path) -> dict[str, Any]:
    """HubertConfig fields from fairseq's saved config: `cfg` (≥ 0.10) or the older `args`."""
    cfg = _plain(ckpt.get("cfg"))
    if isinstance(cfg, dict) and isinstance(cfg.get("model"), dict):
        model, task = cfg["model"], cfg.get("task") or {}
    else:
        args = _plain(ckpt.get("args"))
        if not isinstance(args, dict):
            return {}
        model, task = args, args
    task = task if isinstance(task, dict) else {}

    def check(name: str, ok: Callable[[Any], bool], what: str) -> None:
        if name in model and model[name] is not None and not ok(model[name]):
            raise ContentEncoderError(f"{label}: {name}={model[name]!r} is not supported ({what})")

    check("layer_norm_first", lambda v: not v, "only post-LN HuBERT-base models")
    check("activation_fn", lambda v: v == "gelu", "only GELU")
    check("layer_type", lambda v: v == "transformer", "only transformer layers")
    check("pos_conv_depth", lambda v: v == 1, "only one positional conv")

    out = _renamed(model, {
        "encoder_layers": "num_layers",
        "encoder_embed_dim": "embed_dim",
        "encoder_ffn_embed_dim": "ffn_dim",
        "encoder_attention_heads": "num_heads",
        "conv_pos": "pos_conv_kernel",
        "conv_pos_groups": "pos_conv_groups",
        "conv_bias": "conv_bias",
        "extractor_mode": "extractor_mode",
    })
    if isinstance(model.get("conv_feature_layers"), str):
        out["conv_layers"] = _parse_conv_spec(model["conv_feature_layers"], label)
    normalize = task.get("normalize", model.get("normalize"))
    if normalize is not None:
        out["normalize"] = bool(normalize)
    return out


def _parse_conv_spec(spec: str, label: Path) -> ConvSpec:
    """Evaluate fairseq's conv_feature_layers string, e.g. "[(512,10,5)] + [(512,3,2)] * 4",
    allowing only list/tuple/int literals, + and * (never `eval`)."""

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            return [ev(e) for e in node.elts]
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            a, b = ev(node.left), ev(node.right)
            return a + b if isinstance(node.op, ast.Add) else a * b
        raise ValueError(ast.dump(node))

    try:
        layers = ev(ast.parse(spec.strip(), mode="eval").body)
        result = tuple((int(c), int(k), int(s)) for c, k, s in layers)
    except (SyntaxError, ValueError, TypeError) as e:
        raise ContentEncoderError(f"{label}: cannot read conv_feature_layers {spec!r} ({e})") from None
    return result


def hf_overrides(hf: Mapping[str, Any], label: Path) -> dict[str, Any]:
    """HubertConfig fields from a transformers config.json."""
    if hf.get("do_stable_layer_norm"):
        raise ContentEncoderError(f"{label}: do_stable_layer_norm=true (pre-LN, 'large') models are not supported")
    if hf.get("conv_pos_batch_norm"):
        raise ContentEncoderError(f"{label}: conv_pos_batch_norm=true is not supported")
    for key in ("hidden_act", "feat_extract_activation"):
        if hf.get(key, "gelu") != "gelu":
            raise ContentEncoderError(f"{label}: {key}={hf[key]!r} is not supported (only gelu)")
    out = _renamed(hf, {
        "hidden_size": "embed_dim",
        "num_hidden_layers": "num_layers",
        "num_attention_heads": "num_heads",
        "intermediate_size": "ffn_dim",
        "num_conv_pos_embeddings": "pos_conv_kernel",
        "num_conv_pos_embedding_groups": "pos_conv_groups",
        "conv_bias": "conv_bias",
        "layer_norm_eps": "layer_norm_eps",
    })
    norm = hf.get("feat_extract_norm")
    if norm is not None:
        if norm not in ("group", "layer"):
            raise ContentEncoderError(f"{label}: feat_extract_norm={norm!r} is not supported")
        out["extractor_mode"] = "default" if norm == "group" else "layer_norm"
    conv = [hf.get(k) for k in ("conv_dim", "conv_kernel", "conv_stride")]
    if all(isinstance(c, list) for c in conv):
        if len({len(c) for c in conv}) != 1:
            raise ContentEncoderError(f"{label}: conv_dim, conv_kernel and conv_stride differ in length")
        out["conv_layers"] = tuple((int(c), int(k), int(s)) for c, k, s in zip(*conv))
    # The waveform normalisation of a transformers folder lives in the feature
    # extractor (preprocessor_config.json), which RVC does not apply at inference.
    return out
