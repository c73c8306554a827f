"""RMVPE pitch estimator: the E2E network, its mel front-end and salience decoding.

The module tree mirrors RVC's `rmvpe.pt` state dict key for key (`unet.encoder.*`,
`unet.intermediate.*`, `unet.decoder.*`, `cnn.*`, `fc.0.gru.*`, `fc.1.*`), so the
released weights load with `strict=True`. The front-end and the decoder are pure
functions: 16 kHz audio → log-mel [128, N//160 + 1] → salience [T, 360] → f0 (Hz).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import BUDGET_SLACK, load_checkpoint, memory_budget
from .errors import ModelFileError
from .pitch import PitchError

SAMPLE_RATE = 16_000
HOP = 160  # 10 ms frames
N_BINS = 360  # 20-cent pitch bins
N_MELS = 128
TIME_MULTIPLE = 32  # the U-Net pools time 5× by 2
# Cents of bin 0 (≈ 31.7 Hz); f0 = 10 · 2^(cents/1200).
CENTS_OFFSET = 1997.3794084376191
CENTS_PER_BIN = 20.0
DEFAULT_THRESHOLD = 0.03  # every RVC caller passes 0.03 (the function default 0.05 is unused)
_BN_MOMENTUM = 0.01


# ---------------------------------------------------------------------------
# Mel front-end
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MelConfig:
    """RMVPE's log-mel settings (fixed by the trained weights)."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = HOP
    n_mels: int = N_MELS
    fmin: float = 30.0
    fmax: float = 8000.0
    clamp: float = 1e-5


def _hz_to_mel_htk(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_to_hz_htk(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(config: MelConfig = MelConfig()) -> np.ndarray:
    """Triangular HTK-mel filters with Slaney area normalisation, [n_mels, n_fft//2 + 1] float32.

    Same construction as librosa.filters.mel(htk=True, norm="slaney"): triangles
    between consecutive mel-spaced edge frequencies, each scaled by 2/(bandwidth in Hz)
    so every filter has unit area.
    """
    fft_freqs = np.linspace(0.0, config.sample_rate / 2.0, config.n_fft // 2 + 1)
    mel_edges = np.linspace(
        _hz_to_mel_htk(np.float64(config.fmin)), _hz_to_mel_htk(np.float64(config.fmax)), config.n_mels + 2
    )
    edges = _mel_to_hz_htk(mel_edges)
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


@functools.lru_cache(maxsize=16)
def _front_end_tensors(config: MelConfig, device: torch.device) -> tuple[Tensor, Tensor]:
    """(filterbank, hann window) on `device`, built once per device; callers must not mutate them."""
    basis = torch.from_numpy(mel_filterbank(config)).to(device)
    window = torch.hann_window(config.win_length, device=device)
    return basis, window


def mel_spectrogram(audio: Tensor, config: MelConfig = MelConfig()) -> Tensor:
    """Log-mel spectrogram of 16 kHz audio, computed in float32.

    audio: [N] or [B, N]; returns [n_mels, N//hop + 1] or [B, n_mels, N//hop + 1].
    Frame i is centred on sample i·hop (centre=True, reflect padding).
    """
    squeeze = audio.dim() == 1
    x = audio.unsqueeze(0) if squeeze else audio
    if x.dim() != 2:
        raise PitchError(f"mel_spectrogram expects audio [N] or [B, N], got shape {tuple(audio.shape)}")
    x = x.float()
    n = x.shape[-1]
    half = config.n_fft // 2
    if n <= half:
        # Reflect padding needs more than n_fft/2 samples: extend very short clips with
        # silence, then keep the frame count that the original length implies.
        x = F.pad(x, (0, half + 1 - n))
    basis, window = _front_end_tensors(config, x.device)
    spec = torch.stft(
        x,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window=window,
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    spec = spec[..., : n // config.hop_length + 1]
    magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2))
    mel = torch.log(torch.clamp(torch.matmul(basis, magnitude), min=config.clamp))
    return mel.squeeze(0) if squeeze else mel


# ---------------------------------------------------------------------------
# Salience decoding
# ---------------------------------------------------------------------------


def _padded_cents() -> np.ndarray:
    # Four zero-cent bins on each side so the ±4 window never leaves the array;
    # zero padding of the salience makes them weigh nothing.
    return np.pad(CENTS_PER_BIN * np.arange(N_BINS) + CENTS_OFFSET, (4, 4))


_CENTS = _padded_cents()
_WINDOW = np.arange(9)


def decode_salience(salience: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Salience [T, 360] → f0 in Hz [T] (float64); 0 where the peak is ≤ threshold.

    The pitch is the salience-weighted mean of cents over the argmax bin ± 4.
    """
    sal = np.asarray(salience)
    if sal.ndim != 2 or sal.shape[1] != N_BINS:
        raise PitchError(f"salience must be [frames, {N_BINS}], got shape {sal.shape}")
    if sal.shape[0] == 0:
        return np.zeros(0)
    padded = np.pad(sal, ((0, 0), (4, 4)))
    cols = np.argmax(sal, axis=1)[:, None] + _WINDOW[None, :]  # argmax-4 … argmax+4 in padded coords
    weights = np.take_along_axis(padded, cols, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cents = np.sum(weights * _CENTS[cols], axis=1) / np.sum(weights, axis=1)
    cents[np.max(sal, axis=1) <= threshold] = 0.0
    f0 = 10.0 * 2.0 ** (cents / 1200.0)
    f0[f0 == 10.0] = 0.0
    return f0


def decode_salience_torch(salience: Tensor, threshold: float = DEFAULT_THRESHOLD) -> Tensor:
    """Torch twin of `decode_salience` for [..., T, 360] on any device (float32 result)."""
    sal = salience.float()
    cents_table = torch.as_tensor(_CENTS, dtype=torch.float32, device=sal.device)
    padded = F.pad(sal, (4, 4))
    peak, arg = sal.max(dim=-1)
    cols = arg.unsqueeze(-1) + torch.arange(9, device=sal.device)
    weights = padded.gather(-1, cols)
    cents = (weights * cents_table[cols]).sum(-1) / weights.sum(-1)
    voiced = (peak > threshold) & torch.isfinite(cents)
    f0 = 10.0 * torch.pow(2.0, cents / 1200.0)
    return torch.where(voiced, f0, torch.zeros_like(f0))


# ---------------------------------------------------------------------------
# Network (names follow RVC's rmvpe.pt)
# ---------------------------------------------------------------------------


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
        mel = mel_spectrogram(audio16k.to(ref.device).float().reshape(1, -1))
        return decode_salience_torch(self.salience(mel)[0], threshold)

    def infer_from_audio(self, audio16k: np.ndarray | Tensor, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
        """f0 in Hz (float64 numpy) for 16 kHz mono audio, one frame per 10 ms: N//160 + 1 frames."""
        ref = next(self.parameters())
        audio = torch.as_tensor(np.asarray(audio16k) if not isinstance(audio16k, Tensor) else audio16k)
        mel = mel_spectrogram(audio.to(ref.device).float().reshape(1, -1))
        return decode_salience(self.salience(mel)[0].cpu().numpy(), threshold)


class RMVPEFileError(PitchError, ModelFileError):
    """rmvpe.pt is not RMVPE weights (a pitch error and a model-file error)."""


def _state_dict_of(obj: Any, label: str) -> dict[str, Tensor]:
    # rmvpe.pt is a plain state dict; tolerate the common {"model": …} wrappers too.
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise RMVPEFileError(f"{label}: not an RMVPE checkpoint (expected a state dict of tensors)")
    return obj


def load_rmvpe(
    path: str | os.PathLike, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> RMVPE:
    """Load RVC's `rmvpe.pt` (strict) into an eval-mode RMVPE on `device`/`dtype`.

    Raises CheckpointError (missing, corrupt or unsafe file) or PitchError (a file
    that is not RMVPE weights), both ValueErrors with a one-line message.
    """
    label = str(path)
    with torch.device("meta"):  # skip random init of 90 M parameters that the file replaces
        model = RMVPE()
    # The architecture is fixed, so its own size bounds what the file's tensors may describe.
    model_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    size = Path(path).stat().st_size if Path(path).is_file() else 0
    state = _state_dict_of(load_checkpoint(path, map_location="cpu",
                                           max_tensor_bytes=max(memory_budget(size), model_bytes + BUDGET_SLACK)), label)
    not_float = [k for k, v in state.items() if not v.is_floating_point() and not k.endswith("num_batches_tracked")]
    if not_float:
        raise RMVPEFileError(f"{label}: not an RMVPE checkpoint: {not_float[0]} holds {state[not_float[0]].dtype}, not floats")
    missing, unexpected = _key_mismatch(model, state)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        raise RMVPEFileError(f"{label}: not an RMVPE checkpoint: {', '.join(parts)}")
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:
        detail = next((ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln), "shape mismatch")
        raise RMVPEFileError(f"{label}: not an RMVPE checkpoint: {detail.rstrip('.')}") from None
    return model.to(device=device, dtype=dtype).eval()


def _key_mismatch(model: nn.Module, state: dict[str, Tensor]) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    got = set(state)
    return sorted(expected - got), sorted(got - expected)
