"""The content encoder RVC feeds its synthesizer: HuBERT / ContentVec features.

`load_content_encoder` reads either fairseq's `hubert_base.pt` (ContentVec
checkpoints share the layout) or a Hugging Face folder (`config.json` plus
`model.safetensors` / `pytorch_model.bin`) into the native `Hubert` module;
neither fairseq nor transformers is needed. `ContentEncoder` then returns what
RVC reads: layer 12 (768-d) for v2 models, final_proj(layer 9) (256-d) for v1.
Reading the files is `content_encoder_files`; the architecture a file implies,
`content_encoder_layout`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from .constants import SR_16K
from .content_encoder_files import read_checkpoint_file, read_hf_folder
from .content_encoder_layout import FILE_HINT, ContentEncoderError
from .hubert import Hubert, HubertConfig

SAMPLE_RATE = SR_16K
# RVC's choice per model version: (transformer layer, apply final_proj).
VERSION_LAYERS: dict[str, tuple[int, bool]] = {"v1": (9, True), "v2": (12, False)}

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
        raise ContentEncoderError(f"{p}: not found; {FILE_HINT}")
    try:
        cfg, weights = read_hf_folder(p) if p.is_dir() else read_checkpoint_file(p)
    except ContentEncoderError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError, KeyError) as e:  # odd shapes in a stranger's file
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ContentEncoderError(f"{p}: weights do not fit a HuBERT-base model ({reason}); {FILE_HINT}") from None
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
        raise ContentEncoderError(f"{label}: weight {not_float[0]} holds {what}, not floats; {FILE_HINT}")
    e, layers = cfg.embed_dim, cfg.num_layers
    lower = layers * (4 * e * e + 2 * e * cfg.ffn_dim) + e * (e // max(cfg.pos_conv_groups, 1)) * cfg.pos_conv_kernel
    stored = sum(v.numel() for v in weights.values()) + e * e  # + the identity projection fairseq may omit
    if min(e, layers, cfg.ffn_dim, cfg.num_heads, cfg.pos_conv_kernel) < 1 or lower > stored:
        raise ContentEncoderError(f"{label}: its config ({layers} layers, width {e}, FFN {cfg.ffn_dim}) asks for a "
                                  f"bigger model than the {stored} weights the file holds; {FILE_HINT}")


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
