"""The native HuBERT content encoder against transformers' HubertModel as an independent reference.

The checkpoints are written by these tests in the exact on-disk formats: a fairseq
`hubert_base.pt` (renamed keys, config held in omegaconf / fairseq / argparse
objects whose pickled globals name the real fairseq and omegaconf modules) and a
Hugging Face folder. Weights are random, with every norm and bias perturbed, so a
wrongly mapped key shows as a numeric difference.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

transformers = pytest.importorskip("transformers")

from rvclora.synth.content_encoder import ContentEncoder, ContentEncoderError, load_content_encoder  # noqa: E402 — after the importorskip above

# Compared with transformers' HubertModel.
pytestmark = pytest.mark.reference

TOL = 1e-4
BASE_CONV = [(10, 5)] + [(3, 2)] * 4 + [(2, 2)] * 2


# --- reference models ---------------------------------------------------------------------------


def _hf_config(hidden: int, layers: int, heads: int, ffn: int, conv_dim: int, pos_kernel: int, pos_groups: int, **kw: Any):
    return transformers.HubertConfig(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        conv_dim=[conv_dim] * 7,
        conv_kernel=[k for k, _ in BASE_CONV],
        conv_stride=[s for _, s in BASE_CONV],
        num_conv_pos_embeddings=pos_kernel,
        num_conv_pos_embedding_groups=pos_groups,
        classifier_proj_size=kw.pop("final_dim", 8),
        **kw,
    )


def _build_reference(cfg: Any, seed: int) -> tuple[Any, torch.nn.Linear]:
    """A transformers HubertModel plus RVC's final_proj, with every parameter randomised."""
    torch.manual_seed(seed)
    model = transformers.HubertModel(cfg).eval()
    proj = torch.nn.Linear(cfg.hidden_size, cfg.classifier_proj_size).eval()
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(proj.named_parameters()):
            if "original0" in name:  # weight-norm gain: make it differ from ‖v‖
                p.mul_(torch.rand_like(p) + 0.5)
            elif p.dim() == 1 and name.endswith("weight"):  # norm scales
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif p.dim() == 1:  # biases, mask embedding
                p.copy_(0.1 * torch.randn_like(p))
    return model, proj


@torch.no_grad()
def _reference_features(model: Any, proj: torch.nn.Linear, wav: torch.Tensor) -> dict[str, torch.Tensor]:
    out = model(wav, output_hidden_states=True)
    # Post-LN HuBERT: hidden_states[0] is the encoder input (after its LayerNorm),
    # hidden_states[i] the output of layer i, and the last one is last_hidden_state.
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    return {"v2": out.hidden_states[12], "v1": proj(out.hidden_states[9]), "layer3": out.hidden_states[3]}


# --- writing the fairseq format -----------------------------------------------------------------


class _Fake:
    """Plain attribute bag; the tests re-home copies of it into fake fairseq/omegaconf modules."""


def _fake_class(module: str, name: str, base: type = _Fake) -> type:
    return type(name, (base,), {"__module__": module, "__qualname__": name})


@contextlib.contextmanager
def _fake_fairseq_modules() -> Iterator[dict[str, Any]]:
    """Register fake `fairseq.*` / `omegaconf.*` modules while a test pickles objects of their classes.

    The file then references `omegaconf.dictconfig.DictConfig`,
    `fairseq.data.dictionary.Dictionary` etc. as a real hubert_base.pt does. The
    modules are removed again before anything is loaded.
    """
    classes = {
        "DictConfig": _fake_class("omegaconf.dictconfig", "DictConfig"),
        "ListConfig": _fake_class("omegaconf.listconfig", "ListConfig"),
        "AnyNode": _fake_class("omegaconf.nodes", "AnyNode"),
        "EnumNode": _fake_class("omegaconf.nodes", "EnumNode"),
        "ContainerMetadata": _fake_class("omegaconf.base", "ContainerMetadata"),
        "Metadata": _fake_class("omegaconf.base", "Metadata"),
        "Dictionary": _fake_class("fairseq.data.dictionary", "Dictionary"),
    }
    choice = enum.Enum("ChoiceEnum", {"default": "default", "layer_norm": "layer_norm"})
    choice.__module__ = "fairseq.dataclass.constants"
    classes["ChoiceEnum"] = choice
    modules: dict[str, types.ModuleType] = {}
    for cls in classes.values():
        parts = cls.__module__.split(".")
        for i in range(1, len(parts) + 1):
            modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
        setattr(modules[cls.__module__], cls.__name__, cls)
    assert not any(name in sys.modules for name in modules), "real fairseq/omegaconf must not be installed"
    sys.modules.update(modules)
    try:
        yield classes
    finally:
        for name in modules:
            del sys.modules[name]


def _omegaconf(classes: dict[str, Any], value: Any, parent: Any = None) -> Any:
    """Mimic omegaconf 2.x pickled state: containers hold `_content`, leaves are value nodes."""
    if isinstance(value, dict):
        node = classes["DictConfig"]()
        node.__dict__.update(_metadata=classes["ContainerMetadata"](), _parent=parent)
        node._content = {k: _omegaconf(classes, v, node) for k, v in value.items()}
        return node
    if isinstance(value, list):
        node = classes["ListConfig"]()
        node.__dict__.update(_metadata=classes["ContainerMetadata"](), _parent=parent)
        node._content = [_omegaconf(classes, v, node) for v in value]
        return node
    leaf = classes["EnumNode"]() if isinstance(value, enum.Enum) else classes["AnyNode"]()
    leaf.__dict__.update(_metadata=classes["Metadata"](), _parent=parent, _val=value)
    return leaf


def _fairseq_state_dict(model: Any, proj: torch.nn.Linear) -> dict[str, torch.Tensor]:
    """transformers names → fairseq HubertModel names (the mapping checked numerically by these tests)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        k = key
        if k == "masked_spec_embed":
            k = "mask_emb"
        elif k.startswith("feature_extractor.conv_layers."):
            k = k.replace(".conv.", ".0.").replace(".layer_norm.", ".2.")
        elif k.startswith("feature_projection.layer_norm."):
            k = k.replace("feature_projection.layer_norm.", "layer_norm.")
        elif k.startswith("feature_projection.projection."):
            k = k.replace("feature_projection.projection.", "post_extract_proj.")
        elif k.startswith("encoder.pos_conv_embed.conv."):
            k = (
                k.replace("encoder.pos_conv_embed.conv.", "encoder.pos_conv.0.")
                .replace("parametrizations.weight.original0", "weight_g")
                .replace("parametrizations.weight.original1", "weight_v")
            )
        elif k.startswith("encoder.layers."):
            k = (
                k.replace(".attention.", ".self_attn.")
                .replace(".layer_norm.", ".self_attn_layer_norm.")
                .replace(".feed_forward.intermediate_dense.", ".fc1.")
                .replace(".feed_forward.output_dense.", ".fc2.")
            )
        out[k] = value.clone()
    out["final_proj.weight"] = proj.weight.detach().clone()
    out["final_proj.bias"] = proj.bias.detach().clone()
    out["label_embs_concat"] = torch.randn(504, proj.out_features)
    return out


def _fairseq_model_cfg(cfg: Any, classes: dict[str, Any]) -> dict[str, Any]:
    spec = f"[({cfg.conv_dim[0]},10,5)] + [({cfg.conv_dim[0]},3,2)] * 4 + [({cfg.conv_dim[0]},2,2)] * 2"
    return {
        "_name": "hubert",
        "label_rate": 50.0,
        "extractor_mode": classes["ChoiceEnum"]("default"),
        "encoder_layers": cfg.num_hidden_layers,
        "encoder_embed_dim": cfg.hidden_size,
        "encoder_ffn_embed_dim": cfg.intermediate_size,
        "encoder_attention_heads": cfg.num_attention_heads,
        "activation_fn": "gelu",
        "layer_type": "transformer",
        "dropout": 0.1,
        "final_dim": cfg.classifier_proj_size,
        "layer_norm_first": False,
        "conv_feature_layers": spec,
        "conv_bias": False,
        "conv_pos": cfg.num_conv_pos_embeddings,
        "conv_pos_groups": cfg.num_conv_pos_embedding_groups,
        "mask_prob": 0.8,
    }


def _write_fairseq(path: Path, model: Any, proj: torch.nn.Linear, style: str = "cfg", normalize: bool = False) -> Path:
    """Write `path` like fairseq 0.12 does: {"args", "cfg", "model", "task_state", ...}."""
    state = _fairseq_state_dict(model, proj)
    with _fake_fairseq_modules() as classes:
        model_cfg = _fairseq_model_cfg(model.config, classes)
        task = {"_name": "hubert_pretraining", "normalize": normalize, "sample_rate": 16000, "labels": ["km"]}
        dictionary = classes["Dictionary"]()
        dictionary.__dict__.update(symbols=["<s>", "<pad>", "</s>", "<unk>", "0", "1"], count=[1] * 6, indices={})
        ckpt: dict[str, Any] = {
            "model": state,
            "optimizer_history": [{"criterion_name": "HubertCriterion", "num_updates": 400000}],
            "extra_state": {"epoch": 1},
            "last_optimizer_state": None,
            "task_state": {"dictionaries": [dictionary]},
        }
        if style == "cfg":
            ckpt["args"] = None
            ckpt["cfg"] = _omegaconf(classes, {"_name": None, "model": model_cfg, "task": task, "common": {"fp16": True}})
        elif style == "args":  # fairseq < 0.10: one flat argparse.Namespace
            flat = {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in model_cfg.items() if k != "_name"}
            ckpt["args"] = argparse.Namespace(**flat, normalize=normalize, arch="hubert")
        # style "bare": no config at all, the loader must infer everything from shapes
        torch.save(ckpt, path)
    raw = path.read_bytes()
    assert b"omegaconf.dictconfig" in raw or style != "cfg"
    assert b"fairseq.data.dictionary" in raw
    return path


def _write_hf_folder(
    folder: Path, model: Any, proj: torch.nn.Linear, *, safetensors: bool, prefix: str, legacy_wn: bool
) -> Path:
    folder.mkdir()
    model.config.to_json_file(str(folder / "config.json"))
    state = {}
    for k, v in model.state_dict().items():
        if legacy_wn:  # transformers < 4.3x saved torch's old weight_norm names
            k = k.replace("parametrizations.weight.original0", "weight_g")
            k = k.replace("parametrizations.weight.original1", "weight_v")
        state[prefix + k] = v.contiguous()
    state["final_proj.weight"] = proj.weight.detach().contiguous()
    state["final_proj.bias"] = proj.bias.detach().contiguous()
    if safetensors:
        save_file(state, str(folder / "model.safetensors"))
    else:
        torch.save(state, folder / "pytorch_model.bin")
    return folder


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


def _check_against_reference(enc: ContentEncoder, ref: dict[str, torch.Tensor], wav: torch.Tensor) -> dict[str, float]:
    diffs = {}
    with torch.no_grad():
        for version in ("v2", "v1"):
            enc.version = version
            out = enc(wav)
            assert out.shape[-1] == enc.out_dim
            diffs[version] = _max_diff(out, ref[version])
        diffs["layer3"] = _max_diff(enc.extract(wav, 3, project=False), ref["layer3"])
    assert all(d <= TOL for d in diffs.values()), diffs
    return diffs


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, torch.nn.Linear]:
    cfg = _hf_config(hidden=128, layers=12, heads=4, ffn=64, conv_dim=16, pos_kernel=16, pos_groups=4)
    return _build_reference(cfg, seed=0)


@pytest.fixture(scope="module")
def wav() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    # Two different clips of ~0.4 s (a length that is not a multiple of the hop).
    return 0.3 * torch.randn(2, 6543, generator=g)


# --- equivalence -----------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["cfg", "args"])
def test_fairseq_checkpoint_matches_transformers(tmp_path: Path, tiny, wav, style: str) -> None:
    model, proj = tiny
    path = _write_fairseq(tmp_path / "hubert_base.pt", model, proj, style=style)
    enc = load_content_encoder(path)
    assert enc.version == "v2" and enc.out_dim == 128
    assert enc.config.num_heads == 4  # from the config: shapes alone would say 2
    diffs = _check_against_reference(enc, _reference_features(model, proj, wav), wav)
    print(f"fairseq/{style} tiny max|Δ|: {diffs}")


@pytest.mark.parametrize(
    "safetensors,prefix,legacy_wn",
    [(True, "hubert.", False), (False, "", True)],
    ids=["safetensors-prefixed-parametrized", "bin-plain-weight_g"],
)
def test_hf_folder_matches_transformers(tmp_path: Path, tiny, wav, safetensors: bool, prefix: str, legacy_wn: bool) -> None:
    model, proj = tiny
    folder = _write_hf_folder(
        tmp_path / "hubert_base", model, proj, safetensors=safetensors, prefix=prefix, legacy_wn=legacy_wn
    )
    enc = load_content_encoder(folder, version="v1")
    assert enc.version == "v1" and enc.out_dim == 8
    diffs = _check_against_reference(enc, _reference_features(model, proj, wav), wav)
    print(f"hf tiny max|Δ|: {diffs}")
    # config.json itself names the folder too
    assert load_content_encoder(folder / "config.json").out_dim == 128


def test_bare_state_dict_infers_architecture(tmp_path: Path, wav) -> None:
    # Without any saved config, dims come from shapes and heads from 64-d heads.
    cfg = _hf_config(hidden=128, layers=12, heads=2, ffn=96, conv_dim=24, pos_kernel=12, pos_groups=8, final_dim=16)
    model, proj = _build_reference(cfg, seed=3)
    enc = load_content_encoder(_write_fairseq(tmp_path / "contentvec.pt", model, proj, style="bare"))
    c = enc.config
    assert (c.embed_dim, c.num_layers, c.num_heads, c.ffn_dim, c.pos_conv_kernel, c.pos_conv_groups, c.final_dim) == (
        128, 12, 2, 96, 12, 8, 16
    )
    _check_against_reference(enc, _reference_features(model, proj, wav), wav)


def test_layer_norm_extractor_mode(tmp_path: Path, wav) -> None:
    cfg = _hf_config(
        hidden=64, layers=12, heads=2, ffn=32, conv_dim=8, pos_kernel=7, pos_groups=4, feat_extract_norm="layer", conv_bias=True
    )
    model, proj = _build_reference(cfg, seed=4)
    folder = _write_hf_folder(tmp_path / "m", model, proj, safetensors=True, prefix="", legacy_wn=False)
    enc = load_content_encoder(folder)
    assert enc.config.extractor_mode == "layer_norm" and enc.config.conv_bias
    _check_against_reference(enc, _reference_features(model, proj, wav), wav)


def test_normalize_flag_layer_norms_the_waveform(tmp_path: Path, tiny, wav) -> None:
    model, proj = tiny
    enc = load_content_encoder(_write_fairseq(tmp_path / "n.pt", model, proj, normalize=True))
    assert enc.config.normalize
    normed = torch.nn.functional.layer_norm(wav, wav.shape[-1:])
    _check_against_reference(enc, _reference_features(model, proj, normed), wav)


def test_full_size_base_random_weights(tmp_path: Path) -> None:
    model, proj = _build_reference(transformers.HubertConfig(), seed=5)  # HuBERT-base defaults
    wav = 0.3 * torch.randn(1, 16000, generator=torch.Generator().manual_seed(6))
    ref = _reference_features(model, proj, wav)
    enc = load_content_encoder(_write_fairseq(tmp_path / "hubert_base.pt", model, proj))
    del model
    c = enc.config
    assert (c.embed_dim, c.num_layers, c.num_heads, c.final_dim, enc.hop, enc.sample_rate) == (768, 12, 12, 256, 320, 16000)
    assert enc.num_frames(16000) == 49 == ref["v2"].shape[1]  # ≈ N/320 − 1
    diffs = _check_against_reference(enc, ref, wav)
    print(f"fairseq full-size base max|Δ|: {diffs}")


# --- behaviour -----------------------------------------------------------------------------------------


def test_v1_runs_only_nine_layers(tmp_path: Path, tiny, wav) -> None:
    model, proj = tiny
    enc = load_content_encoder(_write_fairseq(tmp_path / "h.pt", model, proj), version="v1")
    calls: list[int] = []
    for i, layer in enumerate(enc.model.layers):
        layer.register_forward_hook(lambda *_, i=i: calls.append(i))
    with torch.no_grad():
        out = enc(wav)
    assert calls == list(range(9)) and out.shape == (2, enc.num_frames(wav.shape[1]), 8)
    calls.clear()
    enc.version = "v2"  # switch without reloading
    with torch.no_grad():
        assert enc(wav).shape[-1] == 128 == enc.out_dim
    assert calls == list(range(12))
    with pytest.raises(ValueError):
        enc.version = "v3"


def test_frame_counts(tmp_path: Path, tiny) -> None:
    model, proj = tiny
    enc = load_content_encoder(_write_fairseq(tmp_path / "h.pt", model, proj))
    for n in (400, 719, 720, 16000, 16319, 16320):
        wav = torch.zeros(1, n)
        with torch.no_grad():
            frames = enc(wav).shape[1]
            assert frames == enc.num_frames(n) == model(wav).last_hidden_state.shape[1]
    with pytest.raises(ValueError, match="at least 400"):
        enc(torch.zeros(1, 399))


def test_reduced_precision_by_casting(tmp_path: Path, tiny, wav) -> None:
    model, proj = tiny
    path = _write_fairseq(tmp_path / "h.pt", model, proj)
    ref = _reference_features(model, proj, wav)["v2"]
    devices = [("cpu", torch.bfloat16), ("cpu", torch.float16)]
    if torch.cuda.is_available():
        devices.append(("cuda", torch.float16))
    for device, dtype in devices:
        enc = load_content_encoder(path, device=device, dtype=dtype)
        with torch.no_grad():
            out = enc(wav)  # fp32 CPU input is cast to the model's device and dtype
        assert out.dtype == dtype and out.device.type == device
        assert torch.isfinite(out).all()
        # Post-LN outputs are O(1): compare loosely to the fp32 reference.
        assert (out.float().cpu() - ref).abs().mean() < 0.05


# --- errors ----------------------------------------------------------------------------------------------


def _one_line_error(path: Path, match: str) -> str:
    with pytest.raises(ContentEncoderError) as info:
        load_content_encoder(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and match in message, message
    assert isinstance(info.value, ValueError)
    return message


def test_missing_file(tmp_path: Path) -> None:
    _one_line_error(tmp_path / "hubert_base.pt", "not found")


def test_malformed_checkpoints(tmp_path: Path, tiny) -> None:
    model, proj = tiny
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    _one_line_error(garbage, "checkpoint")

    no_model = tmp_path / "no_model.pt"
    torch.save({"weight": {"x": 1}}, no_model)
    _one_line_error(no_model, "no 'model' state dict")

    wrong = tmp_path / "other.pt"
    torch.save({"model": {"enc_p.emb_phone.weight": torch.zeros(3, 3)}}, wrong)
    _one_line_error(wrong, "no HuBERT positional conv")

    state = _fairseq_state_dict(model, proj)
    del state["encoder.layers.3.fc1.bias"]
    state["encoder.layers.0.cond_layer_norm.weight"] = torch.ones(128)
    broken = tmp_path / "broken.pt"
    torch.save({"model": state}, broken)
    msg = _one_line_error(broken, "missing: layers.3.fc1.bias")
    assert "unexpected: encoder.layers.0.cond_layer_norm.weight" in msg

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, evil)
    _one_line_error(evil, "refused to load")


def test_malformed_hf_folders(tmp_path: Path, tiny) -> None:
    model, proj = tiny
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_error(empty, "no config.json")

    bad_json = tmp_path / "bad_json"
    bad_json.mkdir()
    (bad_json / "config.json").write_text("{oops")
    _one_line_error(bad_json, "not valid JSON")

    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text(json.dumps({"model_type": "hubert"}))
    _one_line_error(no_weights, "neither model.safetensors nor pytorch_model.bin")

    truncated = _write_hf_folder(tmp_path / "trunc", model, proj, safetensors=True, prefix="", legacy_wn=False)
    st = truncated / "model.safetensors"
    st.write_bytes(st.read_bytes()[:1000])
    _one_line_error(truncated, "not a readable safetensors file")

    large = _write_hf_folder(tmp_path / "large", model, proj, safetensors=True, prefix="", legacy_wn=False)
    cfg = json.loads((large / "config.json").read_text())
    (large / "config.json").write_text(json.dumps({**cfg, "do_stable_layer_norm": True}))
    _one_line_error(large, "not supported")
