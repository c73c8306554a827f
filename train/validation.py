"""Validation: held-out segments converted through the inference path, compared with the recordings.

Each segment goes prior encoder -> reverse flow -> decoder with fixed noise, which
is what a user will hear; with several processes each converts its share.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..synth.audio_io import resample
from .dataset import SegmentData
from .distributed import World
from .generator import GeneratorSetup
from .losses import mel_l1
from .mel import SpecConfig, linear_spectrogram, mel_spectrogram, spec_to_mel
from .metrics import f0_correlation, mel_cepstral_distortion, spectral_convergence

VAL_SEED = 20_240_601  # validation noise: the same every evaluation, independent of training


@torch.no_grad()
def convert_item(setup: GeneratorSetup, sample: dict, device: torch.device) -> torch.Tensor:
    """Inference path on one cached segment with fixed noise -> audio [N] (float32, CPU)."""
    g = setup.model
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(VAL_SEED)  # SineGen draws from the global generator
        phone = torch.from_numpy(sample["phone"])[None].to(device)
        n = phone.shape[1]
        noise = torch.randn(1, g.config.inter_channels, n, generator=torch.Generator().manual_seed(VAL_SEED)).to(device)
        f0 = setup.voice.f0
        audio = g.infer(
            phone, torch.tensor([n], device=device),
            torch.from_numpy(sample["pitch"])[None].to(device) if f0 else None,
            torch.from_numpy(sample["pitchf"])[None].to(device) if f0 else None,
            torch.zeros(1, dtype=torch.long, device=device), noise=noise,
        )
    return audio[0, 0].float().cpu()


def evaluate(setup: GeneratorSetup, val: SegmentData, spec: SpecConfig, device: torch.device, *, keep: int = 0, world: World | None = None):
    """Mean mel L1 over the validation segments, and the first `keep` (audio, mel, ref mel)
    of this process's share."""
    world = world or World()
    g = setup.model
    was_training = g.training
    g.eval()
    losses: list[float] = []
    shown: list[tuple] = []
    for i in world.share(range(len(val))):
        s = val.load(i)
        audio = convert_item(setup, s, device)
        ref = spec_to_mel(torch.from_numpy(s["spec"]), spec)
        hyp = mel_spectrogram(audio, spec)[:, : ref.shape[1]]
        losses.append(float(mel_l1(ref[:, : hyp.shape[1]], hyp)))
        if len(shown) < keep:
            shown.append((audio, hyp, ref))
    g.train(was_training)
    total = world.sum_(torch.tensor([sum(losses), len(losses)], dtype=torch.float64, device=device))
    return float(total[0] / total[1]), shown


def quality_metrics(setup: GeneratorSetup, val: SegmentData, spec: SpecConfig, device: torch.device, pitch=None) -> dict[str, Any]:
    """MCD, F0 correlation and spectral convergence over the validation segments."""
    g = setup.model
    was_training = g.training
    g.eval()
    mcd, sc, f0c = [], [], []
    for i in range(len(val)):
        s = val.load(i)
        audio = convert_item(setup, s, device)
        ref_spec = torch.from_numpy(s["spec"])
        hyp_spec = linear_spectrogram(audio, spec)
        n = min(ref_spec.shape[1], hyp_spec.shape[1])
        mcd.append(mel_cepstral_distortion(spec_to_mel(ref_spec[:, :n], spec), spec_to_mel(hyp_spec[:, :n], spec)))
        sc.append(spectral_convergence(ref_spec[:, :n], hyp_spec[:, :n]))
        if pitch is not None and setup.voice.f0:
            c = f0_correlation(s["pitchf"], pitch(resample(audio.numpy(), spec.sr, 16000)))
            if c is not None:
                f0c.append(c)
    g.train(was_training)
    return {
        "mcd_db": float(np.mean(mcd)),
        "f0_correlation": float(np.mean(f0c)) if f0c else None,
        "spectral_convergence": float(np.mean(sc)),
    }
