"""RVC's multi-period discriminator (HiFi-GAN MPD + one scale discriminator).

v1 voices were trained against periods [2,3,5,7,11,17], v2 against
[2,3,5,7,11,17,23,37]; module and key names follow RVC (`discriminators.N.convs.M.weight_g`),
so a pretrained `D*.pth` loads strictly.  Layer widths are parameters (read back
from a checkpoint's shapes), which lets tests use a narrow discriminator of the
same structure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import FileFormatError
from ..synth.checkpoint import CheckpointError, load_checkpoint
from ..synth.legacy_weight_norm import weight_norm

LRELU_SLOPE = 0.1
PERIODS = {"v1": (2, 3, 5, 7, 11, 17), "v2": (2, 3, 5, 7, 11, 17, 23, 37)}

# DiscriminatorS: (out channels, kernel, stride, groups, padding) per conv, input 1 channel.
S_LAYERS = ((16, 15, 1, 1, 7), (64, 41, 4, 4, 20), (256, 41, 4, 16, 20), (1024, 41, 4, 64, 20), (1024, 41, 4, 256, 20), (1024, 5, 1, 1, 2))
P_CHANNELS = (32, 128, 512, 1024, 1024)  # DiscriminatorP convs, kernel (5, 1), stride 3 (1 for the last)


class DiscriminatorError(FileFormatError):
    """A discriminator file that does not fit; one-line message."""


@dataclass(frozen=True)
class DiscriminatorWidths:
    s: tuple[tuple[int, int], ...] = tuple((c, g) for c, _, _, g, _ in S_LAYERS)  # (channels, groups)
    p: tuple[int, ...] = P_CHANNELS

    @classmethod
    def scaled(cls, divisor: int) -> DiscriminatorWidths:
        """Every width divided by `divisor` (groups shrunk to stay valid): a cheap D for tests."""
        s, cin = [], 1
        for c, _, _, g, _ in S_LAYERS:
            c2 = max(1, c // divisor)
            g2 = max(1, min(g // divisor if g > 1 else 1, cin, c2))
            while cin % g2 or c2 % g2:
                g2 -= 1
            s.append((c2, g2))
            cin = c2
        return cls(tuple(s), tuple(max(1, c // divisor) for c in P_CHANNELS))


class DiscriminatorS(nn.Module):
    """Scale discriminator on the raw waveform."""

    def __init__(self, widths: tuple[tuple[int, int], ...]) -> None:
        super().__init__()
        convs, cin = [], 1
        for (c, g), (_, k, s, _, pad) in zip(widths, S_LAYERS):
            convs.append(weight_norm(nn.Conv1d(cin, c, k, s, groups=g, padding=pad)))
            cin = c
        self.convs = nn.ModuleList(convs)
        self.conv_post = weight_norm(nn.Conv1d(cin, 1, 3, 1, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _conv_stack(self.convs, self.conv_post, x)


def _conv_stack(convs: nn.ModuleList, conv_post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Leaky-ReLU conv stack; every layer's output is a feature map (for feature matching)."""
    fmap = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        fmap.append(x)
    x = conv_post(x)
    fmap.append(x)
    return torch.flatten(x, 1, -1), fmap


class DiscriminatorP(nn.Module):
    """Period discriminator: the waveform folded into [T/period, period] columns."""

    def __init__(self, period: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.period = period
        convs, cin = [], 1
        for i, c in enumerate(channels):
            stride = 3 if i < len(channels) - 1 else 1
            convs.append(weight_norm(nn.Conv2d(cin, c, (5, 1), (stride, 1), padding=(2, 0))))
            cin = c
        self.convs = nn.ModuleList(convs)
        self.conv_post = weight_norm(nn.Conv2d(cin, 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = x.shape
        if t % self.period:
            pad = self.period - t % self.period
            x = F.pad(x, (0, pad), "reflect")
            t += pad
        x = x.view(b, c, t // self.period, self.period)
        return _conv_stack(self.convs, self.conv_post, x)


class MultiPeriodDiscriminator(nn.Module):
    """`discriminators[0]` is the scale discriminator, then one per period."""

    def __init__(self, version: str = "v2", widths: DiscriminatorWidths = DiscriminatorWidths()) -> None:
        super().__init__()
        if version not in PERIODS:
            raise ValueError(f"unknown RVC version {version!r}")
        self.version = version
        self.widths = widths
        self.discriminators = nn.ModuleList([DiscriminatorS(widths.s)] + [DiscriminatorP(p, widths.p) for p in PERIODS[version]])
        # Keep only each sub-discriminator's input for the backward pass and recompute
        # its layers then: the feature maps of 8 discriminators are most of a step's memory.
        self.checkpointing = False

    def _run(self, d: nn.Module, x: torch.Tensor):
        needs_graph = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in d.parameters()))
        if self.checkpointing and needs_graph:
            return checkpoint(d, x, use_reentrant=False)
        return d(x)

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor):
        """Returns (real scores, fake scores, real feature maps, fake feature maps), one entry per discriminator."""
        rs, gs, frs, fgs = [], [], [], []
        for d in self.discriminators:
            r, fr = self._run(d, y)
            g, fg = self._run(d, y_hat)
            rs.append(r)
            gs.append(g)
            frs.append(fr)
            fgs.append(fg)
        return rs, gs, frs, fgs


def light_training(d: MultiPeriodDiscriminator) -> int:
    """Train only each layer's weight-norm gains and biases and the output convolutions
    (a pretrained discriminator adapts; its filters stay): the optimizer state of the
    whole 71 M-parameter discriminator is most of a LoRA run's memory.  Returns the
    number of trainable parameters."""
    d.requires_grad_(False)
    n = 0
    for name, p in d.named_parameters():
        if name.endswith((".weight_g", ".bias")) or ".conv_post." in name:
            p.requires_grad_(True)
            n += p.numel()
    return n


def _widths_from_state(state: dict[str, torch.Tensor]) -> DiscriminatorWidths:
    s, cin = [], 1
    for i in range(len(S_LAYERS)):
        w = state[f"discriminators.0.convs.{i}.weight_v"]
        c = int(w.shape[0])
        s.append((c, cin // int(w.shape[1])))
        cin = c
    p = tuple(int(state[f"discriminators.1.convs.{i}.weight_v"].shape[0]) for i in range(len(P_CHANNELS)))
    return DiscriminatorWidths(tuple(s), p)


def load_discriminator(path: str | Path, version: str) -> MultiPeriodDiscriminator:
    """A pretrained `D*.pth` (`{"model": state_dict}` or a bare state dict) for a `version` base."""
    label = str(path)
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as e:
        raise DiscriminatorError(str(e)) from None
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not any(str(k).startswith("discriminators.") for k in state):
        raise DiscriminatorError(f"{label}: not a discriminator checkpoint (D*.pth); no 'discriminators.*' tensors")
    state = {str(k).removeprefix("module."): v for k, v in state.items()}
    n = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("discriminators."))
    found = {len(p) + 1: v for v, p in PERIODS.items()}.get(n)
    if found != version:
        what = f"a {found} discriminator" if found else f"{n} discriminators"
        raise DiscriminatorError(f"{label}: holds {what}, but the base is {version}; use the D*.pth matching the G*.pth")
    try:
        d = MultiPeriodDiscriminator(version, _widths_from_state(state))
        d.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except (KeyError, RuntimeError, ValueError, ZeroDivisionError) as e:
        reason = str(e).splitlines()[0][:200]
        raise DiscriminatorError(f"{label}: does not fit RVC's {version} discriminator ({reason})") from None
    return d


def save_discriminator(path: str | Path, d: MultiPeriodDiscriminator) -> Path:
    """Write `{"model": state_dict, "iteration": 0}` like RVC's pretrained D files."""
    torch.save({"model": d.state_dict(), "iteration": 0}, path)
    return Path(path)
