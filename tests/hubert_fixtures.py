"""Content-encoder files for tests that need one but do not test the encoder itself.

`write_hubert_file` writes a fairseq-layout `hubert_base.pt` (bare state dict under
"model", architecture inferred from shapes by the loader) from the native model with
random weights. The encoder's own tests compare against transformers instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from rvclora.synth.hubert import Hubert, HubertConfig

# Small but shaped like HuBERT-base: 7 conv layers (hop 320), 12 transformer layers.
TINY_CONV = ((16, 10, 5),) + ((16, 3, 2),) * 4 + ((16, 2, 2),) * 2


def tiny_hubert_config(version: str = "v2") -> HubertConfig:
    """v2 voices read 768-d layer-12 features, v1 voices 256-d final_proj(layer 9)."""
    embed = 768 if version == "v2" else 32
    return HubertConfig(
        conv_layers=TINY_CONV, embed_dim=embed, num_layers=12, num_heads=2, ffn_dim=32,
        pos_conv_kernel=16, pos_conv_groups=4, final_dim=256,
    )


# native name → fairseq name
_TO_FAIRSEQ = (
    (r"feature_extractor\.conv_layers\.(\d+)\.conv\.(weight|bias)", r"feature_extractor.conv_layers.\1.0.\2"),
    (r"feature_extractor\.conv_layers\.(\d+)\.norm_(weight|bias)", r"feature_extractor.conv_layers.\1.2.\2"),
    (r"feature_layer_norm\.(weight|bias)", r"layer_norm.\1"),
    (r"pos_conv\.conv\.(weight|bias)", r"encoder.pos_conv.0.\1"),
    (r"encoder_layer_norm\.(weight|bias)", r"encoder.layer_norm.\1"),
    (r"layers\.(\d+)\.(.*)", r"encoder.layers.\1.\2"),
)


def write_hubert_file(path: Path, config: HubertConfig, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = Hubert(config)
    with torch.no_grad():  # scaled so features vary with the input, as a trained model's do
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(std=(p[0].numel()) ** -0.5)
            elif "norm" in name and name.endswith("weight"):
                p.normal_(mean=1.0, std=0.1)
            else:
                p.normal_(std=0.02)
    state = {}
    for name, value in model.state_dict().items():
        for pattern, repl in _TO_FAIRSEQ:
            if re.fullmatch(pattern, name):
                name = re.sub(pattern, repl, name)
                break
        state[name] = value
    # fairseq stores the positional conv weight-normed over dim 2.
    w = state.pop("encoder.pos_conv.0.weight")
    g = torch.linalg.vector_norm(w, dim=(0, 1), keepdim=True)
    state["encoder.pos_conv.0.weight_g"], state["encoder.pos_conv.0.weight_v"] = g, w
    torch.save({"model": state}, path)
    return path
