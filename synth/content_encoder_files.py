"""Reading content-encoder files: fairseq `hubert_base.pt` / ContentVec checkpoints and
Hugging Face folders, with their tensor names mapped onto the native `Hubert` module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from .checkpoint import CheckpointError, load_checkpoint
from .content_encoder_layout import FILE_HINT, ContentEncoderError, fairseq_overrides, hf_overrides, make_config
from .hubert import HubertConfig, fold_weight_norm


def read_checkpoint_file(path: Path) -> tuple[HubertConfig, dict[str, Tensor]]:
    if path.suffix == ".safetensors":
        raise ContentEncoderError(f"{path}: a bare .safetensors file; pass the folder that holds it and config.json")
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as e:
        raise ContentEncoderError(f"{e} ({FILE_HINT})") from None
    if not isinstance(ckpt, dict):
        raise ContentEncoderError(f"{path}: holds a {type(ckpt).__name__}, not a checkpoint dict; {FILE_HINT}")
    raw = ckpt.get("model", ckpt)
    if not isinstance(raw, dict) or not any(isinstance(v, Tensor) for v in raw.values()):
        raise ContentEncoderError(f"{path}: has no 'model' state dict; {FILE_HINT}")
    if any(k.startswith("encoder.pos_conv.") for k in raw):
        weights = _map_keys(raw, _FAIRSEQ_RULES, path)
        overrides = fairseq_overrides(ckpt, path)
    elif any("pos_conv_embed." in k for k in raw):  # a transformers state dict saved as .pt/.bin
        weights = _map_keys(raw, _HF_RULES, path)
        overrides = {}
    else:
        raise ContentEncoderError(f"{path}: no HuBERT positional conv in its weights; {FILE_HINT}")
    return make_config(weights, overrides, path), weights


def read_hf_folder(folder: Path) -> tuple[HubertConfig, dict[str, Tensor]]:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ContentEncoderError(f"{folder}: no config.json; {FILE_HINT}")
    try:
        hf = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ContentEncoderError(f"{config_file}: not valid JSON ({e})") from None
    if not isinstance(hf, dict):
        raise ContentEncoderError(f"{config_file}: expected a JSON object")
    raw = _read_hf_weights(folder)
    weights = _map_keys(raw, _HF_RULES, folder)
    return make_config(weights, hf_overrides(hf, config_file), folder), weights


def _read_hf_weights(folder: Path) -> dict[str, Tensor]:
    st, pt = folder / "model.safetensors", folder / "pytorch_model.bin"
    if st.is_file():
        try:
            return load_file(str(st))
        except (SafetensorError, OSError) as e:
            raise ContentEncoderError(f"{st}: not a readable safetensors file ({str(e).splitlines()[0]})") from None
    if pt.is_file():
        try:
            raw = load_checkpoint(pt)
        except CheckpointError as e:
            raise ContentEncoderError(str(e)) from None
        if not isinstance(raw, dict):
            raise ContentEncoderError(f"{pt}: holds a {type(raw).__name__}, not a state dict")
        return raw
    if (folder / "model.safetensors.index.json").is_file():
        raise ContentEncoderError(f"{folder}: sharded weights are not supported; save the model as one file")
    raise ContentEncoderError(f"{folder}: neither model.safetensors nor pytorch_model.bin found")


# --- key mapping ------------------------------------------------------------------------------

Rule = tuple[str, str]
_POS_WEIGHT = r"(bias|weight|weight_g|weight_v|parametrizations\.weight\.original[01])"

# fairseq HubertModel → native names. Conv blocks are Sequential(conv, dropout, norm, gelu);
# in "layer_norm" mode the norm is Sequential(transpose, LayerNorm, transpose), hence "2.1".
_FAIRSEQ_RULES: tuple[Rule, ...] = (
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)", r"feature_extractor.conv_layers.\1.conv.\2"),
    (r"feature_extractor\.conv_layers\.(\d+)\.2\.(?:1\.)?(weight|bias)", r"feature_extractor.conv_layers.\1.norm_\2"),
    (r"layer_norm\.(weight|bias)", r"feature_layer_norm.\1"),
    (r"post_extract_proj\.(weight|bias)", r"post_extract_proj.\1"),
    (r"encoder\.pos_conv\.0\." + _POS_WEIGHT, r"pos_conv.conv.\1"),
    (r"encoder\.layer_norm\.(weight|bias)", r"encoder_layer_norm.\1"),
    (
        r"encoder\.layers\.(\d+)\.(self_attn\.(?:q|k|v|out)_proj|self_attn_layer_norm|fc1|fc2|final_layer_norm)"
        r"\.(weight|bias)",
        r"layers.\1.\2.\3",  # same sub-names as ours
    ),
    (r"final_proj\.(weight|bias)", r"final_proj.\1"),
)

# transformers HubertModel (optionally under "hubert.") → native names.
_HF_RULES: tuple[Rule, ...] = (
    (r"feature_extractor\.conv_layers\.(\d+)\.conv\.(weight|bias)", r"feature_extractor.conv_layers.\1.conv.\2"),
    (r"feature_extractor\.conv_layers\.(\d+)\.layer_norm\.(weight|bias)", r"feature_extractor.conv_layers.\1.norm_\2"),
    (r"feature_projection\.layer_norm\.(weight|bias)", r"feature_layer_norm.\1"),
    (r"feature_projection\.projection\.(weight|bias)", r"post_extract_proj.\1"),
    (r"encoder\.pos_conv_embed\.conv\." + _POS_WEIGHT, r"pos_conv.conv.\1"),
    (r"encoder\.layer_norm\.(weight|bias)", r"encoder_layer_norm.\1"),
    (r"encoder\.layers\.(\d+)\.attention\.(q|k|v|out)_proj\.(weight|bias)", r"layers.\1.self_attn.\2_proj.\3"),
    (r"encoder\.layers\.(\d+)\.layer_norm\.(weight|bias)", r"layers.\1.self_attn_layer_norm.\2"),
    (r"encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.(weight|bias)", r"layers.\1.fc1.\2"),
    (r"encoder\.layers\.(\d+)\.feed_forward\.output_dense\.(weight|bias)", r"layers.\1.fc2.\2"),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", r"layers.\1.final_layer_norm.\2"),
    (r"final_proj\.(weight|bias)", r"final_proj.\1"),
)

# Training-only tensors (mask embedding, cluster-label embeddings, task heads).
_IGNORED = re.compile(r"(hubert\.)?(mask_emb|masked_spec_embed|label_embs_concat|lm_head\..*|projector\..*|classifier\..*)")


def _map_keys(raw: Mapping[str, Any], rules: tuple[Rule, ...], label: Path) -> dict[str, Tensor]:
    compiled = [(re.compile(pattern), repl) for pattern, repl in rules]
    out: dict[str, Tensor] = {}
    for key, value in raw.items():
        if not isinstance(value, Tensor) or _IGNORED.fullmatch(key):
            continue
        name = key[len("hubert.") :] if key.startswith("hubert.") else key
        for pattern, repl in compiled:
            if pattern.fullmatch(name):
                name = pattern.sub(repl, name)
                break
        else:
            name = "?" + key  # unknown: reported by _load_weights as unexpected
        out[name] = value.float()
    _fold_pos_conv(out, label)
    return out


def _fold_pos_conv(weights: dict[str, Tensor], label: Path) -> None:
    """Replace the weight-normed pos conv (g, v) by the plain weight it stands for."""
    prefix = "pos_conv.conv."
    pairs = (("weight_g", "weight_v"), ("parametrizations.weight.original0", "parametrizations.weight.original1"))
    for g_name, v_name in pairs:
        if prefix + g_name in weights or prefix + v_name in weights:
            try:
                g, v = weights.pop(prefix + g_name), weights.pop(prefix + v_name)
            except KeyError:
                raise ContentEncoderError(f"{label}: positional conv has only half of its weight norm") from None
            axes = [d for d in range(g.dim()) if g.shape[d] != 1]
            weights[prefix + "weight"] = fold_weight_norm(g, v, axes[0] if len(axes) == 1 else 2)
