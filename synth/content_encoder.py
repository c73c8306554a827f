"""The content encoder RVC feeds its synthesizer: HuBERT / ContentVec features.

`load_content_encoder` reads either fairseq's `hubert_base.pt` (ContentVec
checkpoints share the layout) or a Hugging Face folder (`config.json` plus
`model.safetensors` / `pytorch_model.bin`) into the native `Hubert` module;
neither fairseq nor transformers is needed. `ContentEncoder` then returns what
RVC reads: layer 12 (768-d) for v2 models, final_proj(layer 9) (256-d) for v1.
"""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from ..errors import ModelFileError
from .checkpoint import CheckpointError, InertObject, load_checkpoint
from .constants import SR_16K
from .hubert import BASE_CONV_LAYERS, ConvSpec, Hubert, HubertConfig, fold_weight_norm

SAMPLE_RATE = SR_16K
# RVC's choice per model version: (transformer layer, apply final_proj).
VERSION_LAYERS: dict[str, tuple[int, bool]] = {"v1": (9, True), "v2": (12, False)}

_HINT = "expected fairseq hubert_base.pt / a ContentVec .pt, or a Hugging Face folder with config.json and model weights"


class ContentEncoderError(ModelFileError):
    """A content-encoder file could not be used; the one-line message says why and what to do."""


class ContentEncoder(nn.Module):
    """wav [B, N] at 16 kHz → content features [B, frames, out_dim].

    `version` ("v1" or "v2") may be changed at any time; the weights serve both.
    """

    sample_rate: int = SAMPLE_RATE

    def __init__(self, model: Hubert, version: str = "v2"):
        super().__init__()
        self.model = model
        self.hop: int = model.cfg.hop
        self.version = version

    @property
    def version(self) -> str:
        return self._version

    @version.setter
    def version(self, value: str) -> None:
        if value not in VERSION_LAYERS:
            raise ValueError(f"version must be 'v1' or 'v2', got {value!r}")
        layer, project = VERSION_LAYERS[value]
        if layer > self.model.cfg.num_layers:
            raise ContentEncoderError(
                f"{value} features need layer {layer}, but this model has {self.model.cfg.num_layers} layers"
            )
        if project and self.model.final_proj is None:
            raise ContentEncoderError(f"{value} features need final_proj, which this model's weights lack")
        self._version = value

    @property
    def out_dim(self) -> int:
        _, project = VERSION_LAYERS[self._version]
        return self.model.cfg.final_dim if project else self.model.cfg.embed_dim

    @property
    def config(self) -> HubertConfig:
        return self.model.cfg

    def num_frames(self, num_samples: int) -> int:
        """Frames returned for `num_samples` input samples (about N/320 − 1)."""
        return self.model.cfg.num_frames(num_samples)

    def extract(self, wav: Tensor, output_layer: int, project: bool) -> Tensor:
        """Output of transformer layer `output_layer` (1-based), optionally through final_proj.

        Equals fairseq `final_proj?(extract_features(wav, padding_mask=all False,
        output_layer=output_layer)[0])`. The input is cast to the model's device and dtype.
        """
        if wav.dim() != 2:
            raise ValueError(f"wav must be [batch, samples], got shape {tuple(wav.shape)}")
        if wav.shape[1] < self.model.cfg.min_samples:
            raise ValueError(
                f"wav has {wav.shape[1]} samples; the content encoder needs at least {self.model.cfg.min_samples}"
            )
        p = self.model.post_extract_proj.weight
        return self.model.extract(wav.to(device=p.device, dtype=p.dtype), output_layer, project)

    def forward(self, wav: Tensor) -> Tensor:
        layer, project = VERSION_LAYERS[self._version]
        return self.extract(wav, layer, project)


def load_content_encoder(
    path: str | os.PathLike[str],
    *,
    version: str = "v2",
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> ContentEncoder:
    """Load HuBERT/ContentVec weights into an inference-ready `ContentEncoder`.

    Raises ContentEncoderError (a ValueError) with a one-line message when the
    file is missing, unreadable, or not a supported HuBERT-base layout.
    """
    p = Path(path)
    if p.name == "config.json":
        p = p.parent
    if not p.exists():
        raise ContentEncoderError(f"{p}: not found; {_HINT}")
    try:
        cfg, weights = _read_hf_folder(p) if p.is_dir() else _read_checkpoint_file(p)
    except ContentEncoderError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError, KeyError) as e:  # odd shapes in a stranger's file
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ContentEncoderError(f"{p}: weights do not fit a HuBERT-base model ({reason}); {_HINT}") from None
    _check_size(cfg, weights, p)
    model = Hubert(cfg)
    _load_weights(model, weights, p)
    encoder = ContentEncoder(model, version)
    return encoder.to(device=device, dtype=dtype).eval().requires_grad_(False)


def _check_size(cfg: HubertConfig, weights: Mapping[str, Tensor], label: Path) -> None:
    """Refuse a config that asks for a bigger model than the file holds, before building it: a
    lower bound of the model's parameters (attention, FFN, positional conv; the strict load
    needs every one from the file) against the stored tensors, and every tensor floating point."""
    not_float = [k for k, v in weights.items() if not isinstance(v, Tensor) or not v.is_floating_point()]
    if not_float:
        what = getattr(weights[not_float[0]], "dtype", type(weights[not_float[0]]).__name__)
        raise ContentEncoderError(f"{label}: weight {not_float[0]} holds {what}, not floats; {_HINT}")
    e, layers = cfg.embed_dim, cfg.num_layers
    lower = layers * (4 * e * e + 2 * e * cfg.ffn_dim) + e * (e // max(cfg.pos_conv_groups, 1)) * cfg.pos_conv_kernel
    stored = sum(v.numel() for v in weights.values()) + e * e  # + the identity projection fairseq may omit
    if min(e, layers, cfg.ffn_dim, cfg.num_heads, cfg.pos_conv_kernel) < 1 or lower > stored:
        raise ContentEncoderError(f"{label}: its config ({layers} layers, width {e}, FFN {cfg.ffn_dim}) asks for a "
                                  f"bigger model than the {stored} weights the file holds; {_HINT}")


# --- reading files ----------------------------------------------------------------------------


def _read_checkpoint_file(path: Path) -> tuple[HubertConfig, dict[str, Tensor]]:
    if path.suffix == ".safetensors":
        raise ContentEncoderError(f"{path}: a bare .safetensors file; pass the folder that holds it and config.json")
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as e:
        raise ContentEncoderError(f"{e} ({_HINT})") from None
    if not isinstance(ckpt, dict):
        raise ContentEncoderError(f"{path}: holds a {type(ckpt).__name__}, not a checkpoint dict; {_HINT}")
    raw = ckpt.get("model", ckpt)
    if not isinstance(raw, dict) or not any(isinstance(v, Tensor) for v in raw.values()):
        raise ContentEncoderError(f"{path}: has no 'model' state dict; {_HINT}")
    if any(k.startswith("encoder.pos_conv.") for k in raw):
        weights = _map_keys(raw, _FAIRSEQ_RULES, path)
        overrides = _fairseq_overrides(ckpt, path)
    elif any("pos_conv_embed." in k for k in raw):  # a transformers state dict saved as .pt/.bin
        weights = _map_keys(raw, _HF_RULES, path)
        overrides = {}
    else:
        raise ContentEncoderError(f"{path}: no HuBERT positional conv in its weights; {_HINT}")
    return _make_config(weights, overrides, path), weights


def _read_hf_folder(folder: Path) -> tuple[HubertConfig, dict[str, Tensor]]:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ContentEncoderError(f"{folder}: no config.json; {_HINT}")
    try:
        hf = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ContentEncoderError(f"{config_file}: not valid JSON ({e})") from None
    if not isinstance(hf, dict):
        raise ContentEncoderError(f"{config_file}: expected a JSON object")
    raw = _read_hf_weights(folder)
    weights = _map_keys(raw, _HF_RULES, folder)
    return _make_config(weights, _hf_overrides(hf, config_file), folder), weights


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


# --- architecture ------------------------------------------------------------------------------


def _make_config(weights: Mapping[str, Tensor], overrides: dict[str, Any], label: Path) -> HubertConfig:
    """Architecture from the weight shapes, with the checkpoint's config where it says more."""
    fields = {**_infer_from_shapes(weights, label), **overrides}
    if fields.get("conv_layers") is None:
        raise ContentEncoderError(f"{label}: conv strides are not in the file and not the HuBERT-base ones; {_HINT}")
    try:
        return HubertConfig(**fields)
    except (TypeError, ValueError) as e:
        raise ContentEncoderError(f"{label}: unsupported architecture ({e})") from None


def _infer_from_shapes(w: Mapping[str, Tensor], label: Path) -> dict[str, Any]:
    def shape(name: str) -> tuple[int, ...]:
        if name not in w:
            raise ContentEncoderError(f"{label}: weights lack {name!r}; not a HuBERT-base model ({_HINT})")
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


def _fairseq_overrides(ckpt: Mapping[str, Any], label: Path) -> dict[str, Any]:
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

    out: dict[str, Any] = {}
    names = {
        "encoder_layers": "num_layers",
        "encoder_embed_dim": "embed_dim",
        "encoder_ffn_embed_dim": "ffn_dim",
        "encoder_attention_heads": "num_heads",
        "conv_pos": "pos_conv_kernel",
        "conv_pos_groups": "pos_conv_groups",
        "conv_bias": "conv_bias",
        "extractor_mode": "extractor_mode",
    }
    for src, dst in names.items():
        if model.get(src) is not None:
            out[dst] = model[src]
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


def _hf_overrides(hf: Mapping[str, Any], label: Path) -> dict[str, Any]:
    """HubertConfig fields from a transformers config.json."""
    if hf.get("do_stable_layer_norm"):
        raise ContentEncoderError(f"{label}: do_stable_layer_norm=true (pre-LN, 'large') models are not supported")
    if hf.get("conv_pos_batch_norm"):
        raise ContentEncoderError(f"{label}: conv_pos_batch_norm=true is not supported")
    for key in ("hidden_act", "feat_extract_activation"):
        if hf.get(key, "gelu") != "gelu":
            raise ContentEncoderError(f"{label}: {key}={hf[key]!r} is not supported (only gelu)")
    out: dict[str, Any] = {}
    names = {
        "hidden_size": "embed_dim",
        "num_hidden_layers": "num_layers",
        "num_attention_heads": "num_heads",
        "intermediate_size": "ffn_dim",
        "num_conv_pos_embeddings": "pos_conv_kernel",
        "num_conv_pos_embedding_groups": "pos_conv_groups",
        "conv_bias": "conv_bias",
        "layer_norm_eps": "layer_norm_eps",
    }
    for src, dst in names.items():
        if hf.get(src) is not None:
            out[dst] = hf[src]
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


def _load_weights(model: Hubert, weights: dict[str, Tensor], label: Path) -> None:
    expected = model.state_dict()
    if "post_extract_proj.weight" not in weights and model.cfg.feature_dim == model.cfg.embed_dim:
        # fairseq has no projection when the sizes agree: it is the identity.
        weights["post_extract_proj.weight"] = torch.eye(model.cfg.embed_dim)
        weights["post_extract_proj.bias"] = torch.zeros(model.cfg.embed_dim)
    missing = [k for k in expected if k not in weights]
    unexpected = [k.lstrip("?") for k in weights if k not in expected]
    wrong = [
        f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in weights and weights[k].shape != v.shape
    ]
    problems = []
    for what, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            problems.append(f"{what}: {', '.join(items[:3])}{' …' if len(items) > 3 else ''}")
    if problems:
        raise ContentEncoderError(f"{label}: weights do not fit a HuBERT-base model ({'; '.join(problems)})")
    model.load_state_dict(weights, strict=True)
