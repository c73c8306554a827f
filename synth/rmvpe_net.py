"""RMVPE's E2E network: log-mel [B, 128, T] → pitch salience [B, T, 360].

The module tree mirrors RVC's `rmvpe.pt` state dict key for key (`unet.encoder.*`,
`unet.intermediate.*`, `unet.decoder.*`, `cnn.*`, `fc.0.gru.*`, `fc.1.*`), so the
released weights load with `strict=True`. The mel front end rides along as a
submodule whose buffers are not part of the state dict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .pitch_options import PitchError
from .rmvpe_decode import DEFAULT_THRESHOLD, N_BINS, decode_salience, decode_salience_torch
from .rmvpe_mel import N_MELS, MelFrontEnd

TIME_MULTIPLE = 32  # the U-Net pools time 5× by 2
_BN_MOMENTUM = 0.01

class ConvBlockRes(nn.Module):
    """Two 3×3 conv-BN-ReLU layers with a residual; 1×1 `shortcut` when channels change."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch, momentum=_BN_MOMENTUM),
            nn.ReLU(),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch, momentum=_BN_MOMENTUM),
            nn.ReLU(),
        )
        # Only present when needed, so the key exists exactly where rmvpe.pt has it.
        self.shortcut: nn.Module | None = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) + (x if self.shortcut is None else self.shortcut(x))


class ResEncoderBlock(nn.Module):
    """`n_blocks` ConvBlockRes, then (optionally) 2-D average pooling."""

    def __init__(self, in_ch: int, out_ch: int, pool: tuple[int, int] | None, n_blocks: int) -> None:
        super().__init__()
        self.conv = nn.ModuleList(
            [ConvBlockRes(in_ch if i == 0 else out_ch, out_ch) for i in range(n_blocks)]
        )
        self.pool = nn.AvgPool2d(pool) if pool is not None else None

    def forward(self, x: Tensor) -> Tensor:
        for block in self.conv:
            x = block(x)
        return x


class Encoder(nn.Module):
    def __init__(self, in_ch: int, n_layers: int, pool: tuple[int, int], n_blocks: int, out_ch: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_ch, momentum=_BN_MOMENTUM)
        layers = []
        for _ in range(n_layers):
            layers.append(ResEncoderBlock(in_ch, out_ch, pool, n_blocks))
            in_ch, out_ch = out_ch, out_ch * 2
        self.layers = nn.ModuleList(layers)
        self.out_channels = in_ch  # channels of the last block's output

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        skips: list[Tensor] = []
        x = self.bn(x)
        for layer in self.layers:
            skip = layer(x)
            skips.append(skip)
            x = layer.pool(skip)
        return x, skips


class Intermediate(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, n_layers: int, n_blocks: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [ResEncoderBlock(in_ch if i == 0 else out_ch, out_ch, None, n_blocks) for i in range(n_layers)]
        )

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class ResDecoderBlock(nn.Module):
    """Transposed-conv upsampling, concatenation with the encoder skip, ConvBlockRes stack."""

    def __init__(self, in_ch: int, out_ch: int, stride: tuple[int, int], n_blocks: int) -> None:
        super().__init__()
        out_pad = (0, 1) if tuple(stride) == (1, 2) else (1, 1)
        self.conv1 = nn.Sequential(
            nn.ConvTranspose2d(in_ch, out_ch, 3, stride=stride, padding=1, output_padding=out_pad, bias=False),
            nn.BatchNorm2d(out_ch, momentum=_BN_MOMENTUM),
            nn.ReLU(),
        )
        self.conv2 = nn.ModuleList(
            [ConvBlockRes(out_ch * 2 if i == 0 else out_ch, out_ch) for i in range(n_blocks)]
        )

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = torch.cat((self.conv1(x), skip), dim=1)
        for block in self.conv2:
            x = block(x)
        return x


class Decoder(nn.Module):
    def __init__(self, in_ch: int, n_layers: int, stride: tuple[int, int], n_blocks: int) -> None:
        super().__init__()
        layers = []
        for _ in range(n_layers):
            layers.append(ResDecoderBlock(in_ch, in_ch // 2, stride, n_blocks))
            in_ch //= 2
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor, skips: list[Tensor]) -> Tensor:
        for layer, skip in zip(self.layers, reversed(skips)):
            x = layer(x, skip)
        return x


class DeepUnet(nn.Module):
    def __init__(
        self, pool: tuple[int, int], n_blocks: int, en_de_layers: int, inter_layers: int, in_ch: int, base_ch: int
    ) -> None:
        super().__init__()
        self.encoder = Encoder(in_ch, en_de_layers, pool, n_blocks, base_ch)
        bottom = self.encoder.out_channels
        self.intermediate = Intermediate(bottom, bottom * 2, inter_layers, n_blocks)
        self.decoder = Decoder(bottom * 2, en_de_layers, pool, n_blocks)

    def forward(self, x: Tensor) -> Tensor:
        x, skips = self.encoder(x)
        return self.decoder(self.intermediate(x), skips)


class BiGRU(nn.Module):
    def __init__(self, in_features: int, hidden: int, num_layers: int) -> None:
        super().__init__()
        self.gru = nn.GRU(in_features, hidden, num_layers=num_layers, batch_first=True, bidirectional=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.gru(x)[0]


@dataclass(frozen=True)
class RMVPEConfig:
    """Architecture of the released rmvpe.pt (`E2E(4, 1, (2, 2))`)."""

    n_blocks: int = 4
    n_gru: int = 1
    pool: tuple[int, int] = (2, 2)
    en_de_layers: int = 5
    inter_layers: int = 4
    in_channels: int = 1
    base_channels: int = 16


class RMVPE(nn.Module):
    """RMVPE E2E network: log-mel [B, 128, T] → pitch salience [B, T, 360]."""

    def __init__(self, config: RMVPEConfig = RMVPEConfig()) -> None:
        super().__init__()
        if config.n_gru < 1:
            raise PitchError("RMVPE without a GRU head is not supported (rmvpe.pt has one)")
        self.config = config
        self.unet = DeepUnet(
            config.pool, config.n_blocks, config.en_de_layers, config.inter_layers, config.in_channels,
            config.base_channels,
        )
        self.cnn = nn.Conv2d(config.base_channels, 3, 3, padding=1)
        self.fc = nn.Sequential(
            BiGRU(3 * N_MELS, 256, config.n_gru),
            nn.Linear(512, N_BINS),
            nn.Dropout(0.25),
            nn.Sigmoid(),
        )
        # Real buffers even when the network is built on the meta device to be loaded by
        # assignment: they are not in rmvpe.pt, so loading never fills them.
        with torch.device("cpu"):
            self.front_end = MelFrontEnd()

    def forward(self, mel: Tensor) -> Tensor:
        """mel [B, 128, T] with T a multiple of 32 → salience [B, T, 360]."""
        x = self.unet(mel.transpose(-1, -2).unsqueeze(1))  # [B, 16, T, 128]
        x = self.cnn(x).transpose(1, 2).flatten(-2)  # [B, T, 3·128]
        return self.fc(x)

    def salience(self, mel: Tensor) -> Tensor:
        """Salience [B, T, 360] (float32) for a log-mel of any length T.

        Pads time with zeros to a multiple of 32 (as RVC does) and crops back.
        """
        ref = next(self.parameters())
        n_frames = mel.shape[-1]
        n_pad = -n_frames % TIME_MULTIPLE
        mel = F.pad(mel, (0, n_pad)).to(device=ref.device, dtype=ref.dtype)
        with torch.inference_mode():
            out = self(mel)
        return out[:, :n_frames].float()

    def infer(self, audio16k: Tensor, threshold: float = DEFAULT_THRESHOLD) -> Tensor:
        """f0 in Hz as a float32 tensor on the model's device; audio [N] → [N//160 + 1]."""
        ref = next(self.parameters())
        mel = self.front_end(audio16k.to(ref.device).float().reshape(1, -1))
        return decode_salience_torch(self.salience(mel)[0], threshold)

    def infer_from_audio(self, audio16k: np.ndarray | Tensor, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
        """f0 in Hz (float64 numpy) for 16 kHz mono audio, one frame per 10 ms: N//160 + 1 frames."""
        ref = next(self.parameters())
        audio = torch.as_tensor(np.asarray(audio16k) if not isinstance(audio16k, Tensor) else audio16k)
        mel = self.front_end(audio.to(ref.device).float().reshape(1, -1))
        return decode_salience(self.salience(mel)[0].cpu().numpy(), threshold)

