"""RVC's decoders: HiFi-GAN (`Generator`, no-f0 models) and its NSF variant (`GeneratorNSF`).

The NSF variant adds a sine excitation built from f0, injected after every
upsampling stage. `SineGen` draws its random numbers (initial phases, then
additive noise) in the same order and shapes as RVC, so a seeded run reproduces
RVC's output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .legacy_weight_norm import weight_norm

LRELU_SLOPE = 0.1


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    """Padding that keeps the length of a stride-1 dilated conv ("same")."""
    return (kernel_size * dilation - dilation) // 2


def _init_normal(module: nn.Module, std: float = 0.01) -> None:
    # HiFi-GAN's init (normal(0, 0.01)) for upsampling and resblock convs.
    if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
        module.weight.data.normal_(0.0, std)


def _wn_conv(channels: int, kernel_size: int, dilation: int) -> nn.Module:
    conv = nn.Conv1d(channels, channels, kernel_size, 1, dilation=dilation, padding=get_padding(kernel_size, dilation))
    _init_normal(conv)
    return weight_norm(conv)


class ResBlock1(nn.Module):
    """Three [lrelu, dilated conv, lrelu, conv] branches, each with a residual."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: Sequence[int] = (1, 3, 5)) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(_wn_conv(channels, kernel_size, d) for d in dilation)
        self.convs2 = nn.ModuleList(_wn_conv(channels, kernel_size, 1) for _ in dilation)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor | None = None) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = F.leaky_relu(x, LRELU_SLOPE)
            if x_mask is not None:
                xt = xt * x_mask
            xt = F.leaky_relu(c1(xt), LRELU_SLOPE)
            if x_mask is not None:
                xt = xt * x_mask
            x = c2(xt) + x
        return x * x_mask if x_mask is not None else x


class ResBlock2(nn.Module):
    """Two [lrelu, dilated conv] branches with residuals (unused by official configs)."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: Sequence[int] = (1, 3)) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_wn_conv(channels, kernel_size, d) for d in dilation)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor | None = None) -> torch.Tensor:
        for c in self.convs:
            xt = F.leaky_relu(x, LRELU_SLOPE)
            if x_mask is not None:
                xt = xt * x_mask
            x = c(xt) + x
        return x * x_mask if x_mask is not None else x


class SineGen(nn.Module):
    """f0 [B, T] (Hz, 0 = unvoiced) -> sine excitation [B, T*upp, dim] plus noise, and uv.

    Computed in float32 whatever the model dtype: the running phase is a cumsum
    over every output sample, which fp16 cannot hold. `noise_gain` scales every
    random draw: 1 is RVC, 0 is deterministic (export verification compares so).
    """

    def __init__(
        self,
        samp_rate: int,
        harmonic_num: int = 0,
        sine_amp: float = 0.1,
        noise_std: float = 0.003,
        voiced_threshold: float = 0.0,
    ) -> None:
        super().__init__()
        self.sampling_rate = samp_rate
        self.dim = harmonic_num + 1
        self.sine_amp = sine_amp
        self.noise_std = noise_std
        self.voiced_threshold = voiced_threshold

    @torch.no_grad()
    def forward(self, f0: torch.Tensor, upp: int, noise_gain: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        f0 = f0.float().unsqueeze(-1)  # [B, T, 1]
        harmonics = torch.arange(1, self.dim + 1, device=f0.device, dtype=f0.dtype)
        rad = (f0 * harmonics / self.sampling_rate) % 1  # phase increment per sample, in cycles
        # Random initial phase for the overtones; the fundamental starts at 0.
        phase0 = torch.rand(f0.shape[0], self.dim, device=f0.device) * noise_gain
        phase0[:, 0] = 0
        rad = torch.cat([rad[:, :1] + phase0[:, None, :], rad[:, 1:]], dim=1)

        # Frame-level running phase, stretched to samples by linear interpolation; only
        # its wrap points are used, to keep the sample-level cumsum bounded.
        up = float(upp)
        phase = torch.cumsum(rad, 1) * upp
        phase = F.interpolate(phase.transpose(2, 1), scale_factor=up, mode="linear", align_corners=True).transpose(2, 1)
        rad = F.interpolate(rad.transpose(2, 1), scale_factor=up, mode="nearest").transpose(2, 1)
        phase = phase % 1
        wrapped = (phase[:, 1:] - phase[:, :-1]) < 0
        shift = torch.zeros_like(rad)
        shift[:, 1:] = wrapped * -1.0
        sine = torch.sin(torch.cumsum(rad + shift, dim=1) * 2 * torch.pi) * self.sine_amp

        uv = (f0 > self.voiced_threshold).float()
        uv = F.interpolate(uv.transpose(2, 1), scale_factor=up, mode="nearest").transpose(2, 1)
        noise_amp = uv * self.noise_std + (1 - uv) * self.sine_amp / 3
        noise = noise_amp * torch.randn_like(sine) * noise_gain  # × 1.0 is exact: RVC's numbers
        return sine * uv + noise, uv


class SourceModuleHnNSF(nn.Module):
    """Harmonic-plus-noise source: SineGen -> Linear(dim, 1) -> tanh."""

    def __init__(
        self,
        sampling_rate: int,
        harmonic_num: int = 0,
        sine_amp: float = 0.1,
        add_noise_std: float = 0.003,
        voiced_threshold: float = 0.0,
    ) -> None:
        super().__init__()
        self.l_sin_gen = SineGen(sampling_rate, harmonic_num, sine_amp, add_noise_std, voiced_threshold)
        self.l_linear = nn.Linear(harmonic_num + 1, 1)

    def forward(self, f0: torch.Tensor, upp: int = 1, noise_gain: float | torch.Tensor = 1.0) -> torch.Tensor:
        sine, _ = self.l_sin_gen(f0, upp, noise_gain)
        return torch.tanh(self.l_linear(sine.to(self.l_linear.weight.dtype)))  # [B, T*upp, 1]


class Generator(nn.Module):
    """HiFi-GAN decoder: latent [B, C, T] (+ speaker g) -> audio [B, 1, T*hop]."""

    def __init__(
        self,
        initial_channel: int,
        resblock: str,
        resblock_kernel_sizes: Sequence[int],
        resblock_dilation_sizes: Sequence[Sequence[int]],
        upsample_rates: Sequence[int],
        upsample_initial_channel: int,
        upsample_kernel_sizes: Sequence[int],
        gin_channels: int = 0,
    ) -> None:
        super().__init__()
        self.num_kernels = len(resblock_kernel_sizes)
        self.num_upsamples = len(upsample_rates)
        self.upp = math.prod(upsample_rates)
        self.conv_pre = nn.Conv1d(initial_channel, upsample_initial_channel, 7, 1, padding=3)
        block = ResBlock1 if str(resblock) == "1" else ResBlock2
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        ch = upsample_initial_channel
        for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes)):
            ch = upsample_initial_channel // (2 ** (i + 1))
            up = nn.ConvTranspose1d(2 * ch, ch, k, u, padding=(k - u) // 2)
            _init_normal(up)
            self.ups.append(weight_norm(up))
            for rk, rd in zip(resblock_kernel_sizes, resblock_dilation_sizes):
                self.resblocks.append(block(ch, rk, rd))
        self.conv_post = nn.Conv1d(ch, 1, 7, 1, padding=3, bias=False)
        if gin_channels:
            self.cond = nn.Conv1d(gin_channels, upsample_initial_channel, 1)

    def _resize(self, x: torch.Tensor, n_res: int | None) -> torch.Tensor:
        # Formant shift: stretch the latent to n_res frames (linear).
        if n_res is not None and n_res != x.shape[-1]:
            x = F.interpolate(x, size=int(n_res), mode="linear")
        return x

    def _stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        # Mean of the stage's resblocks (multi-receptive-field fusion).
        xs = self.resblocks[i * self.num_kernels](x)
        for j in range(1, self.num_kernels):
            xs = xs + self.resblocks[i * self.num_kernels + j](x)
        return xs / self.num_kernels

    def _head(self, x: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        x = self.conv_pre(x)
        return x + self.cond(g) if g is not None else x

    def _tail(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv_post(F.leaky_relu(x)))  # default slope 0.01, as RVC

    def forward(self, x: torch.Tensor, g: torch.Tensor | None = None, n_res: int | None = None) -> torch.Tensor:
        x = self._head(self._resize(x, n_res), g)
        for i in range(self.num_upsamples):
            x = self.ups[i](F.leaky_relu(x, LRELU_SLOPE))
            x = self._stage(i, x)
        return self._tail(x)


class GeneratorNSF(Generator):
    """HiFi-GAN + neural source filter: f0 drives a sine source added after each upsampling."""

    def __init__(
        self,
        initial_channel: int,
        resblock: str,
        resblock_kernel_sizes: Sequence[int],
        resblock_dilation_sizes: Sequence[Sequence[int]],
        upsample_rates: Sequence[int],
        upsample_initial_channel: int,
        upsample_kernel_sizes: Sequence[int],
        gin_channels: int,
        sr: int,
    ) -> None:
        super().__init__(
            initial_channel,
            resblock,
            resblock_kernel_sizes,
            resblock_dilation_sizes,
            upsample_rates,
            upsample_initial_channel,
            upsample_kernel_sizes,
            gin_channels,
        )
        self.m_source = SourceModuleHnNSF(sampling_rate=sr, harmonic_num=0)
        # Strided convs bring the sample-rate source down to each stage's rate.
        self.noise_convs = nn.ModuleList()
        for i in range(len(upsample_rates)):
            c = upsample_initial_channel // (2 ** (i + 1))
            if i + 1 < len(upsample_rates):
                s = math.prod(upsample_rates[i + 1 :])
                self.noise_convs.append(nn.Conv1d(1, c, kernel_size=2 * s, stride=s, padding=s // 2))
            else:
                self.noise_convs.append(nn.Conv1d(1, c, kernel_size=1))
        # Registration order is state-dict order: keep RVC's (source modules first).
        for name in ("conv_pre", "ups", "resblocks", "conv_post", "cond"):
            if name in self._modules:
                self._modules[name] = self._modules.pop(name)

    def forward(  # type: ignore[override]  # RVC's NSF decoder takes f0 besides x
        self, x: torch.Tensor, f0: torch.Tensor, g: torch.Tensor | None = None, n_res: int | None = None,
        noise_gain: float | torch.Tensor = 1.0,
    ) -> torch.Tensor:
        source = self.m_source(f0, self.upp, noise_gain).transpose(1, 2)  # [B, 1, T*upp]
        if n_res is not None and n_res * self.upp != source.shape[-1]:
            source = F.interpolate(source, size=int(n_res) * self.upp, mode="linear")
        x = self._head(self._resize(x, n_res), g)
        for i in range(self.num_upsamples):
            x = self.ups[i](F.leaky_relu(x, LRELU_SLOPE))
            x = x + self.noise_convs[i](source)
            x = self._stage(i, x)
        return self._tail(x)
