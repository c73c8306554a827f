"""Tiny RVC models and files in the exact official formats, for tests.

No real weights can be downloaded here, so tests build their own: the official
module structure and key names (upsample rates, kernel sizes, resblocks, layer
counts as RVC ships them) with small channel counts, random non-zero weights
(the zero-initialised flow `post` convs included, so every layer matters), saved
as the released voice `.pth` or the pretrained base `G*.pth`.

Typical use::

    from tests.rvc_fixtures import make_voice_file, make_inputs
    path = make_voice_file(tmp_path, version="v2", sr=40000, f0=True)
    voice = load_voice(path)
    audio = voice.model.infer(**make_inputs(voice.version, frames=50, f0=voice.f0))

Everything here uses rvclora's own Synthesizer, never the RVC reference package.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from rvclora.lora import (
    BaseInfo,
    LoRAConfig,
    extract_adapter,
    inject,
    lora_modules,
    model_fingerprint,
    save_adapter,
)
from rvclora.synth.configs import SynthConfig, content_dim, official_config, sr_label
from rvclora.synth.synthesizer import Synthesizer
from rvclora.synth.voice_file import load_voice, save_voice

# Small widths; everything structural (layers, kernels, upsampling) stays official.
TINY_WIDTHS = dict(
    inter_channels=8,
    hidden_channels=8,
    filter_channels=16,
    upsample_initial_channel=32,  # 32 -> 16 -> 8 -> 4 -> 2 (-> 1 for 5-stage decoders)
    gin_channels=8,
    spk_embed_dim=4,
)


def tiny_config(version: str = "v2", sr: int | str = 40000) -> SynthConfig:
    """The official config of (version, sr) with tiny channel counts."""
    return official_config(version, sr).replace(**TINY_WIDTHS)


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0, *, fp16_exact: bool = True) -> nn.Module:
    """Give every parameter random, non-zero, well-scaled values (in place, deterministic).

    Matrices get N(0, 1/fan_in); weight-norm magnitudes (`weight_g`) U(0.5, 1.5);
    vectors (biases, LayerNorm) small noise around their neutral value. With
    `fp16_exact` values are rounded to fp16 so saving a voice file loses nothing.
    Works on any module by parameter name (also on RVC's own classes).
    """
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("weight_g"):
            v = torch.rand(p.shape, generator=gen) + 0.5
        elif p.dim() >= 2:
            v = torch.randn(p.shape, generator=gen) / math.sqrt(max(math.prod(p.shape[1:]), 1))
            if name.endswith(("emb_g.weight", "emb_pitch.weight")):
                v = v * math.sqrt(p.shape[1]) * (0.1 if "emb_pitch" in name else 1.0)
        else:
            v = torch.randn(p.shape, generator=gen) * 0.1 + (1.0 if name.endswith("gamma") else 0.0)
        if fp16_exact:
            v = v.half().float()
        p.copy_(v.to(p.dtype))
    return model


def make_synthesizer(
    version: str = "v2",
    sr: int | str = 40000,
    f0: bool = True,
    seed: int = 0,
    *,
    posterior: bool = True,
    config: SynthConfig | None = None,
) -> Synthesizer:
    """A tiny (or `config`-sized) Synthesizer with random weights, in eval mode."""
    model = Synthesizer(config or tiny_config(version, sr), version=version, f0=f0, posterior=posterior)
    return randomize_(model, seed).eval()


def _name(prefix: str, version: str, sr: int | str, f0: bool) -> str:
    return f"{prefix}{version}_{sr_label(sr)}_{'f0' if f0 else 'nof0'}.pth"


def make_voice_file(
    tmp_path: str | Path,
    version: str = "v2",
    sr: int | str = 40000,
    f0: bool = True,
    seed: int = 0,
    *,
    name: str | None = None,
    info: str = "fixture",
    config: SynthConfig | None = None,
) -> Path:
    """Write a released-format voice `.pth` (fp16 `weight` without enc_q, 18-item `config`,
    `sr` "40k", `f0` int, `version`, `info`) and return its path."""
    model = make_synthesizer(version, sr, f0, seed, posterior=False, config=config)
    path = Path(tmp_path) / (name or _name("voice_", version, sr, f0))
    return save_voice(path, model, config=model.config, version=version, f0=f0, info=info)


def make_base_file(
    tmp_path: str | Path,
    version: str = "v2",
    sr: int | str = 40000,
    f0: bool = True,
    seed: int = 0,
    *,
    name: str | None = None,
    half: bool = False,
    with_enc_q: bool = True,
    config: SynthConfig | None = None,
) -> Path:
    """Write a pretrained-base `G*.pth`: `{"model": full state dict incl. enc_q, "iteration": 0}`,
    named like RVC's (`f0G40k.pth`, `G48k.pth`) unless `name` is given."""
    model = make_synthesizer(version, sr, f0, seed, posterior=True, config=config)
    state = {k: (v.half() if half else v.clone()) for k, v in model.state_dict().items()}
    if not with_enc_q:
        state = {k: v for k, v in state.items() if not k.startswith("enc_q.")}
    path = Path(tmp_path) / (name or f"{'f0' if f0 else ''}G{sr_label(sr)}.pth")
    torch.save({"model": state, "iteration": 0}, path)
    return path


def coarse_pitch(f0_hz: torch.Tensor) -> torch.Tensor:
    """RVC's f0 -> coarse pitch (mel scale, 50..1100 Hz -> 1..255; unvoiced -> 1)."""
    mel = 1127.0 * torch.log1p(f0_hz / 700.0)
    lo, hi = 1127.0 * math.log1p(50 / 700), 1127.0 * math.log1p(1100 / 700)
    mel = torch.where(mel > 0, (mel - lo) * 254 / (hi - lo) + 1, mel)
    return mel.clamp(1, 255).round().long()


def make_inputs(
    version: str = "v2",
    frames: int = 50,
    *,
    f0: bool = True,
    batch: int = 1,
    lengths: list[int] | None = None,
    seed: int = 0,
    sid: int = 0,
) -> dict[str, torch.Tensor | None]:
    """Keyword arguments for `Synthesizer.infer`: content features, lengths, a pitch contour
    (80-300 Hz with unvoiced gaps) and speaker ids; pitch/pitchf are None for no-f0 models."""
    gen = torch.Generator().manual_seed(seed)
    phone = torch.randn(batch, frames, content_dim(version), generator=gen)
    t = torch.arange(frames, dtype=torch.float32)
    pitchf = 150 + 70 * torch.sin(t / 7)[None].repeat(batch, 1) + 10 * torch.rand(batch, frames, generator=gen)
    pitchf[:, (t.long() % 17) < 3] = 0.0  # unvoiced frames
    return {
        "phone": phone,
        "phone_lengths": torch.tensor(lengths or [frames] * batch),
        "pitch": coarse_pitch(pitchf) if f0 else None,
        "pitchf": pitchf if f0 else None,
        "sid": torch.full((batch,), sid, dtype=torch.long),
    }


__all__ = [
    "TINY_WIDTHS",
    "coarse_pitch",
    "make_base_file",
    "make_foreign_adapter_file",
    "make_inputs",
    "make_synthesizer",
    "make_voice_file",
    "randomize_",
    "tiny_config",
]


def make_adapter_file(voice_path: str | Path, path: str | Path, seed: int = 0, targets: str = "all", rank: int = 4) -> Path:
    """An adapter for the voice at `voice_path`, as after training: random non-zero B on every
    targeted module and a changed speaker embedding (a trained extra tensor)."""
    voice = load_voice(voice_path)
    model, config = voice.model, LoRAConfig(rank=rank, alpha=2.0 * rank)
    base = BaseInfo(voice.version, voice.sr, voice.f0, model_fingerprint(model))
    inject(model, targets, config, extras=["emb_g.weight"], generator=torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in lora_modules(model).values():
            m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g) * 0.1)
        model.emb_g.weight.add_(torch.randn(model.emb_g.weight.shape, generator=g) * 0.2)
    adapter = extract_adapter(model, config, base=base, targets=targets, extras=["emb_g.weight"])
    return save_adapter(path, adapter)


def make_foreign_adapter_file(adapter_path: str | Path, path: str | Path, **tensor_changes: torch.Tensor) -> Path:
    """The same tensors in the documented adapter format as another tool would write it:
    no ``base_fingerprint`` header (and its own ``created_by``). ``tensor_changes``
    replace tensors by key, e.g. to give one a wrong shape."""
    with safe_open(str(adapter_path), framework="pt") as f:
        meta = {k: v for k, v in (f.metadata() or {}).items() if k != "base_fingerprint"}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 — safe_open is not a dict: keys() is how it lists
    meta["created_by"] = "another-lora-tool"
    tensors.update(tensor_changes)
    save_file(tensors, str(path), metadata=meta)
    return Path(path)
