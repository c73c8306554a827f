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

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelFileError
from .checkpoint import CheckpointError, load_checkpoint, memory_budget
from .configs import SynthConfig, parse_sr, sr_label
from .output_file import replaced_atomically
from .synthesizer import Synthesizer
from .voice_layout import (
    check_state_dict,
    describe,
    few,
    infer_config,
    infer_version_f0,
    non_finite,
    normalize_state_dict,
    split_folded_weights,
    tensor_dict,
)
from .voice_meta import VoiceMeta, read_voice_meta, vocoder_problem
from .voice_shapes import (
    ConfigLimitError,
    check_config,
    expected_shapes,
    parameter_count,
)


class VoiceFileError(ModelFileError):
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


# --------------------------------------------------------------------------- load


@dataclass(frozen=True, eq=False)
class VoiceSummary:
    """What a voice file holds, checked against its config, without building the model."""

    path: Path
    kind: str  # "voice" (released) or "base" (pretrained G*.pth / training checkpoint)
    version: str
    sr: int
    f0: bool
    info: str
    config: SynthConfig
    parameters: int
    dtypes: tuple[str, ...]
    state: Mapping[str, torch.Tensor]  # normalized, weight norm split as the model expects
    posterior: bool
    meta: VoiceMeta = field(default_factory=VoiceMeta)  # content encoder, vocoder (Applio's fields)

    @property
    def n_speakers(self) -> int:
        return self.config.spk_embed_dim


def _file_fields(ckpt: Mapping[str, Any], label: str, shape_version: str, shape_f0: bool) -> tuple[str, bool]:
    # RVC defaults a missing "version" to v1 and a missing "f0" to 1; genuine old files
    # agree with their shapes, so the shapes decide only when the field is absent.
    version = str(ckpt.get("version", shape_version))[:20]
    raw_f0 = ckpt.get("f0", 1 if shape_f0 else 0)
    if not isinstance(raw_f0, (int, str)) or raw_f0 not in (0, 1, "0", "1"):
        raise VoiceFileError(f"{label}: its f0 field is {str(raw_f0)[:20]!r}, expected 0 or 1; re-export the voice")
    f0 = bool(int(raw_f0))
    if version not in ("v1", "v2"):
        raise VoiceFileError(f"{label}: unknown RVC version {version!r} (expected v1 or v2)")
    if version != shape_version:
        raise VoiceFileError(
            f"{label}: file says {version} but its content input is "
            f"{'256' if shape_version == 'v1' else '768'}-d ({shape_version}); the file is inconsistent, re-export it"
        )
    if f0 != shape_f0:
        raise VoiceFileError(
            f"{label}: file says f0={int(f0)} but the weights are of a {'pitch' if shape_f0 else 'no-pitch'} "
            "model; the file is inconsistent, re-export it"
        )
    return version, f0


def inspect_voice(path: str | os.PathLike) -> VoiceSummary:
    """Read and check an RVC voice file without building its model: the config against RVC's
    real limits, every tensor against the shape the config implies, the model's memory against
    a budget from the file size. Raises VoiceFileError (one line) when anything is off."""
    path = Path(path)
    label = str(path)
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as e:
        hint = "; copy or download the file again" if "corrupt" in str(e) else ""
        raise VoiceFileError(f"{e}{hint}") from None

    if isinstance(ckpt, Mapping) and isinstance(ckpt.get("weight"), Mapping):
        kind = "voice"
        state = tensor_dict(ckpt["weight"])
        if state is None:
            raise VoiceFileError(f"{label}: 'weight' holds no tensors; the voice file is damaged, re-export it with RVC")
    elif isinstance(ckpt, Mapping) and tensor_dict(ckpt.get("model")) is not None and "enc_p.emb_phone.weight" in normalize_state_dict(ckpt["model"]):
        kind, state = "base", tensor_dict(ckpt["model"])
    elif tensor_dict(ckpt) is not None and "enc_p.emb_phone.weight" in normalize_state_dict(ckpt):
        kind, state = "base", tensor_dict(ckpt)
    else:
        raise VoiceFileError(f"{label}: this is {describe(ckpt)}; choose an RVC voice model (.pth)")
    assert state is not None
    meta = read_voice_meta(ckpt) if kind == "voice" else VoiceMeta()
    if vocoder_problem(meta):
        raise VoiceFileError(f"{label}: {vocoder_problem(meta)}")
    state = normalize_state_dict(state)

    not_float = [k for k, v in state.items() if not v.is_floating_point()]
    if not_float:
        raise VoiceFileError(f"{label}: {len(not_float)} weight tensor(s) are not floating point "
                             f"(e.g. {few(not_float, 2)} is {state[not_float[0]].dtype}); the file was not written by RVC")
    try:
        shape_version, shape_f0 = infer_version_f0(state)
    except ValueError as e:
        raise VoiceFileError(f"{label}: not an RVC voice model ({e})") from None

    info = str(ckpt.get("info", ""))[:1000] if isinstance(ckpt, Mapping) else ""
    if kind == "voice":
        version, f0 = _file_fields(ckpt, label, shape_version, shape_f0)
        cfg_list = ckpt.get("config")
        try:
            if not isinstance(cfg_list, (list, tuple)):
                raise ValueError("no 18-item 'config' list")
            config = SynthConfig.from_list(list(cfg_list))
        except (ValueError, TypeError, OverflowError) as e:
            raise VoiceFileError(f"{label}: bad synthesizer config ({str(e)[:200]}); re-export the voice with RVC") from None
        # As RVC: the speaker count comes from the embedding table, not the list.
        emb_g = state.get("emb_g.weight")
        config = config.replace(spk_embed_dim=int(emb_g.shape[0])) if emb_g is not None and emb_g.dim() == 2 else config
    else:
        version, f0 = shape_version, shape_f0
        try:
            sr_hint = ckpt.get("sr") if isinstance(ckpt, Mapping) else None
            config = infer_config(state, version, f0, sr=parse_sr(sr_hint) if sr_hint else None)
        except (ValueError, KeyError, TypeError, IndexError, ZeroDivisionError, AttributeError) as e:
            raise VoiceFileError(f"{label}: cannot tell the model layout of this base checkpoint: {str(e)[:200]}") from None
    try:
        check_config(config)
    except ConfigLimitError as e:
        raise VoiceFileError(f"{label}: {e}; the file is damaged or was not written by RVC") from None

    posterior = any(k.startswith("enc_q.") for k in state)
    expected = expected_shapes(config, version, f0, posterior)
    state = split_folded_weights(state, expected)
    reason = check_state_dict(state, expected)
    if reason:
        raise VoiceFileError(
            f"{label}: weights do not fit an RVC {version} {'f0' if f0 else 'no-f0'} {sr_label(config.sr)} model "
            f"({reason}); the file is damaged or was not written by RVC, re-export it"
        )
    n_params = parameter_count(expected)
    # Second line of defence: the fp32 model may not need much more than the file holds.
    budget = memory_budget(path.stat().st_size, factor=4)
    if 4 * n_params > budget:
        raise VoiceFileError(f"{label}: its model would need {4 * n_params / 1e6:.0f} MB, more than a file of this "
                             f"size can describe (budget {budget / 1e6:.0f} MB); the file is corrupt or hostile")
    bad = non_finite(state)
    if bad:
        raise VoiceFileError(
            f"{label}: {len(bad)} weight tensor(s) contain NaN/Inf (e.g. {few(bad, 2)}); "
            "the model is broken (diverged training or a bad fp16 export), use an earlier checkpoint"
        )
    dtypes = tuple(sorted({str(t.dtype).removeprefix("torch.") for t in state.values()}))
    return VoiceSummary(path, kind, version, config.sr, f0, info, config, n_params, dtypes, state, posterior, meta)


def load_voice(
    path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    remove_weight_norm: bool = False,
) -> Voice:
    """Load an RVC voice (released `.pth` or pretrained `G*.pth`) into a `Synthesizer` in eval mode.

    Raises VoiceFileError (one line) when the file is unreadable, is not a voice, or
    its tensors do not fit the model it describes; all of it is checked (`inspect_voice`)
    before the model is built.
    """
    s = inspect_voice(path)
    model = Synthesizer(s.config, version=s.version, f0=s.f0, posterior=s.posterior)
    model.load_state_dict({k: v.float() for k, v in s.state.items()}, strict=True)
    if remove_weight_norm:
        model.remove_weight_norm()  # fold in fp32, before any cast
    model.to(device=device, dtype=dtype).eval()
    return Voice(model=model, version=s.version, sr=s.sr, f0=s.f0, info=s.info, config=s.config,
                 n_speakers=s.n_speakers, path=s.path, meta=s.meta)


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
    expected = Synthesizer(config, version=version, f0=f0, posterior=False).state_dict()
    state = split_folded_weights(state, expected)
    reason = check_state_dict(state, expected)
    if reason:
        raise VoiceFileError(f"cannot save an RVC {version} {'f0' if f0 else 'no-f0'} voice: weights do not fit: {reason}")
    bad = non_finite(state)
    if bad:
        raise VoiceFileError(f"cannot save a voice with NaN/Inf weights (e.g. {few(bad, 2)})")
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
    with replaced_atomically(path) as tmp:
        torch.save(ckpt, tmp)
    return path
