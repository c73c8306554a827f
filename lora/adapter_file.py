"""The adapter file: one .safetensors, LoRA pairs + extra tensors + header.

Keys: ``<module>.lora_A [r, prod(W.shape[1:])]`` and ``<module>.lora_B [W.shape[0], r]``
for each adapted module (official RVC module names), and any fully trained extra
tensor under its own state-dict name (e.g. ``emb_g.weight``).  Header strings:
``format=rvclora-adapter``, ``format_version=1``, ``rank``, ``alpha``, ``rslora``
(``true``/``false``), ``targets``, ``base_version`` (``v1``/``v2``), ``base_sr``
(Hz, e.g. ``40000``), ``base_f0`` (``1``/``0``), ``base_fingerprint``,
``created_by``.  An adapter made by another tool may lack ``base_fingerprint``:
it then applies only with ``force`` (shapes still checked, an AdapterWarning).
"""
from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from .. import errors
from ..errors import AdapterWarning
from .inject import base_state_dict, canonical_key, lora_modules
from .layers import SUPPORTED, LoRAConfig, lora_shapes, scaling_for
from .lora_errors import LoraKeyError
from .targets import targets_string

FORMAT = "rvclora-adapter"
FORMAT_VERSION = 1
_FORCE_HINT = "pass force=True (--force) to apply it anyway"


class AdapterError(errors.AdapterError):
    """An adapter file that cannot be read, or does not fit this base (one-line message)."""


class AdapterNeedsForce(AdapterError):
    """An adapter whose base cannot be verified (no fingerprint, or another one): ``force`` applies it."""


# --------------------------------------------------------------------------- base identity

_UNHASHED = ("weight",)


def fingerprint(state_dict: Mapping[str, Tensor]) -> str:
    """A stable sha256 (hex) identifying a base model.

    Hashed, in sorted key order: every key's name and shape, with weight norm
    written as the folded weight (``X.weight_v`` → ``X.weight``, ``X.weight_g`` and
    new-style ``original0/1`` likewise), and the values, as fp16 bytes, of every
    tensor that is not a weight: biases, LayerNorm ``gamma``/``beta``, the
    attention's relative embeddings ``emb_rel_k/v``, buffers.  Left out: keys of the
    training-only posterior encoder (``enc_q.``), adapter tensors (``lora_A/B``), and
    the values of every ``weight`` (plain, ``weight_g`` or ``weight_v``).

    Why this cut: the same base must give the same fingerprint whether it was read
    from the fp16 voice file or a fp32 ``G*.pth`` (fp16 bytes: fp16→fp32→fp16 is
    exact), with weight norm kept (legacy or parametrized) or folded (folding
    recomputes weights in float, which is not bit-stable across devices and dtypes,
    but never touches biases or norms).  Every trained RVC conv has a bias that
    training moves, so two different trainings or fine-tunes differ here; a base
    that differs *only* in weights is not told apart (shapes are still checked).
    Because only small tensors are read, it is also fast (a few ms for a v2 model).
    """
    h = hashlib.sha256()
    entries = {}
    for key, value in state_dict.items():
        key = canonical_key(key)
        if key.startswith("enc_q.") or ".enc_q." in key or key.endswith((".lora_A", ".lora_B", ".weight_g")):
            continue
        if key.endswith(".weight_v"):  # v has the folded weight's name-to-be and shape
            key = key[: -len("_v")]
        entries[key] = value
    if not entries:
        raise AdapterError("cannot fingerprint an empty state dict")
    for key in sorted(entries):
        value = entries[key].detach()
        h.update(f"{key}:{tuple(value.shape)};".encode())
        if key.rpartition(".")[2] in _UNHASHED:
            continue
        value = value.to("cpu", torch.float16) if value.is_floating_point() else value.to("cpu")
        h.update(value.contiguous().numpy().tobytes())
    return h.hexdigest()


def model_fingerprint(model: nn.Module) -> str:
    """:func:`fingerprint` of a live model's base (adapters and applied extras undone)."""
    return fingerprint(base_state_dict(model))


def parse_sr(sr: int | float | str) -> int:
    """``40000``, ``"40000"`` or ``"40k"`` → 40000 (RVC writes sample rates both ways)."""
    if isinstance(sr, str):
        s = sr.strip().lower()
        return int(float(s[:-1]) * 1000) if s.endswith("k") else int(s)
    return int(sr)


@dataclass(frozen=True)
class BaseInfo:
    """What an adapter was made for: RVC version, sample rate (Hz), f0, fingerprint."""

    version: str
    sr: int
    f0: bool
    fingerprint: str

    def __post_init__(self):
        object.__setattr__(self, "sr", parse_sr(self.sr))
        object.__setattr__(self, "f0", bool(int(self.f0)))

    def describe(self) -> str:
        f0 = "f0" if self.f0 else "no-f0"
        fp = f"fingerprint {self.fingerprint[:12]}" if self.fingerprint else "no fingerprint"
        return f"{self.version} {self.sr // 1000}k {f0} ({fp})"


# --------------------------------------------------------------------------- the adapter


@dataclass(frozen=True, eq=False)  # eq by identity: fields hold tensors
class Adapter:
    """An adapter in memory: LoRA pairs by module name, extra tensors, header."""

    lora: Mapping[str, tuple[Tensor, Tensor]]
    rank: int
    alpha: float
    rslora: bool
    targets: str
    base: BaseInfo
    extras: Mapping[str, Tensor] = field(default_factory=dict)
    created_by: str = "rvclora"
    source: str = "adapter"  # file name, for messages

    @property
    def scaling(self) -> float:
        return scaling_for(self.rank, self.alpha, self.rslora)

    def delta(self, name: str) -> Tensor:
        """``scaling · B @ A`` for one module, flat ``[W.shape[0], prod(W.shape[1:])]``, fp32."""
        a, b = self.lora[name]
        return self.scaling * (b.float() @ a.float())

    def to(self, device=None, dtype: torch.dtype | None = None) -> Adapter:
        """A copy with tensors moved/cast (e.g. kept on the GPU next to a live model,
        so a hot-swap copies nothing across the bus)."""
        move = lambda t: t.to(device=device, dtype=dtype if t.is_floating_point() else None)  # noqa: E731 — a one-line helper local to this function
        lora = {n: (move(a), move(b)) for n, (a, b) in self.lora.items()}
        return replace(self, lora=lora, extras={n: move(t) for n, t in self.extras.items()})

    def num_parameters(self) -> int:
        return sum(a.numel() + b.numel() for a, b in self.lora.values()) + sum(
            t.numel() for t in self.extras.values()
        )


def extract_adapter(
    model: nn.Module,
    config: LoRAConfig,
    *,
    base: BaseInfo,
    targets: str | Iterable[str],
    extras: Iterable[str] = (),
    created_by: str = "rvclora",
) -> Adapter:
    """Snapshot the LoRA tensors (and named extra tensors) of a model as an Adapter.

    ``base`` must describe the model *before* training (its fingerprint taken then):
    an extra that is a bias would otherwise fold the trained value into it."""
    lora = {n: (m.lora_A.detach().clone(), m.lora_B.detach().clone()) for n, m in lora_modules(model).items()}
    if not lora:
        raise AdapterError("model has no LoRA modules")
    state = {canonical_key(k): v for k, v in model.state_dict().items()}
    extra = {}
    for name in extras:
        if name not in state:
            raise LoraKeyError(f"no tensor named {name!r} in the model")
        extra[name] = state[name].detach().clone()
    return Adapter(lora, config.rank, config.alpha, config.rslora, targets_string(targets), base, extra, created_by)


# --------------------------------------------------------------------------- file I/O


def _balanced(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Same B@A with each rank component's column of B and row of A at equal norm,
    so neither factor sinks into fp16 subnormals (a fresh A is ~1/√fan, a trained B
    often far smaller)."""
    na, nb = a.float().norm(dim=1), b.float().norm(dim=0)
    c = torch.where((na > 0) & (nb > 0), (na / nb.clamp_min(1e-30)).sqrt(), torch.ones_like(na))
    return a.float() / c[:, None], b.float() * c[None, :]


def save_adapter(path: str | Path, adapter: Adapter, *, dtype: torch.dtype = torch.float16) -> Path:
    """Write the adapter file.  fp16 (the default, like RVC voice files) halves the
    size; the delta then differs from fp32 by fp16 rounding (~1e-3 relative of the
    delta, far below the base's own fp16 rounding).  ``dtype=torch.float32`` is exact."""
    tensors = {}
    for name, (a, b) in adapter.lora.items():
        if dtype in (torch.float16, torch.bfloat16):
            a, b = _balanced(a, b)
        tensors[f"{name}.lora_A"] = a.detach().to("cpu", dtype).contiguous()
        tensors[f"{name}.lora_B"] = b.detach().to("cpu", dtype).contiguous()
    for name, t in adapter.extras.items():
        if name in tensors:
            raise AdapterError(f"extra tensor {name!r} collides with a LoRA key")
        t = t.detach().to("cpu")
        tensors[name] = (t.to(dtype) if t.is_floating_point() else t).contiguous()
    meta = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "rank": str(adapter.rank),
        "alpha": repr(float(adapter.alpha)),
        "rslora": "true" if adapter.rslora else "false",
        "targets": adapter.targets,
        "base_version": adapter.base.version,
        "base_sr": str(adapter.base.sr),
        "base_f0": "1" if adapter.base.f0 else "0",
        "base_fingerprint": adapter.base.fingerprint,
        "created_by": adapter.created_by,
    }
    path = Path(path)
    save_file(tensors, str(path), metadata=meta)
    return path


def load_adapter(path: str | Path) -> Adapter:
    """Read and validate an adapter file (format, header, A/B pairing); tensors stay
    as stored (fp16 or fp32) on CPU.  Any problem → one-line AdapterError."""
    path = Path(path)
    where = path.name
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 — safe_open is not a dict: keys() is how it lists
    except FileNotFoundError:
        raise AdapterError(f"{where}: no such adapter file") from None
    except Exception as e:  # noqa: BLE001 — safetensors raises its own error types on a bad header
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AdapterError(f"{where}: not a readable safetensors adapter ({first})") from None
    if meta.get("format") != FORMAT:
        raise AdapterError(f"{where}: not an rvclora adapter (header format={meta.get('format')!r})")
    if meta.get("format_version") != str(FORMAT_VERSION):
        raise AdapterError(
            f"{where}: adapter format_version {meta.get('format_version')!r} is not supported "
            f"(this rvclora reads version {FORMAT_VERSION})"
        )
    try:
        # "" = unknown: adapters made by other tools may not carry one (check_adapter wants force then)
        base = BaseInfo(meta["base_version"], meta["base_sr"], meta["base_f0"], meta.get("base_fingerprint", ""))
        rank, alpha = int(meta["rank"]), float(meta["alpha"])
        rslora = {"true": True, "false": False}[meta["rslora"]]
        targets, created_by = meta["targets"], meta.get("created_by", "")
    except (KeyError, ValueError) as e:
        raise AdapterError(f"{where}: adapter header is missing or has a bad field ({e})") from None
    if rank < 1 or not math.isfinite(alpha):
        raise AdapterError(f"{where}: adapter header has rank={rank}, alpha={alpha}")
    _check_tensor_values(where, tensors, rank)
    lora, extras = {}, {}
    for key, t in tensors.items():
        if key.endswith(".lora_A"):
            name = key[: -len(".lora_A")]
            b = tensors.get(name + ".lora_B")
            if b is None:
                raise AdapterError(f"{where}: {key} has no matching {name}.lora_B")
            if t.ndim != 2 or b.ndim != 2 or t.shape[0] != b.shape[1]:
                raise AdapterError(
                    f"{where}: {name} has inconsistent LoRA shapes A{tuple(t.shape)} B{tuple(b.shape)}"
                )
            lora[name] = (t, b)
        elif key.endswith(".lora_B"):
            if key[: -len(".lora_B")] + ".lora_A" not in tensors:
                raise AdapterError(f"{where}: {key} has no matching lora_A")
        else:
            extras[key] = t
    if not lora and not extras:
        raise AdapterError(f"{where}: adapter holds no tensors")
    return Adapter(lora, rank, alpha, rslora, targets, base, extras, created_by, where)


def _check_tensor_values(where: str, tensors: Mapping[str, Tensor], rank: int) -> None:
    """Every tensor floating point and finite; LoRA factors 2-D with the header's rank
    (A [r, fan_in], B [fan_out, r]; their fit to the base is `check_adapter`'s job)."""
    for key, t in tensors.items():
        if not t.is_floating_point():
            raise AdapterError(f"{where}: tensor {key} holds {t.dtype}, adapters hold floating-point weights")
        if not bool(torch.isfinite(t).all()):
            raise AdapterError(f"{where}: tensor {key} contains NaN/Inf; the adapter is broken, train or export it again")
        if key.endswith((".lora_A", ".lora_B")):
            r = t.shape[0] if key.endswith(".lora_A") else (t.shape[1] if t.ndim == 2 else -1)
            if t.ndim != 2 or r != rank:
                raise AdapterError(f"{where}: {key} has shape {list(t.shape)}, expected rank {rank} "
                                   f"({'[r, fan_in]' if key.endswith('.lora_A') else '[fan_out, r]'})")


def check_adapter(adapter: Adapter, model: nn.Module, base: BaseInfo, *, force: bool = False) -> None:
    """Refuse an adapter that was not made for this base (one-line AdapterError).

    A different version / sample rate / f0 or any shape mismatch is always refused;
    a base that differs only in its fingerprint, or an adapter without one (made by
    another tool), is refused unless ``force``, which then warns (AdapterWarning)."""
    made_for = f"{adapter.source}: made for base {adapter.base.describe()}"
    if (adapter.base.version, adapter.base.sr, adapter.base.f0) != (base.version, base.sr, base.f0):
        raise AdapterError(f"{made_for}, not for this {base.describe()}")
    modules = dict(model.named_modules())
    for name, (a, b) in adapter.lora.items():
        m = modules.get(name)
        if m is None or not isinstance(m, SUPPORTED):
            raise AdapterError(f"{made_for}; this base has no adaptable module {name}")
        (_, fan), (out, _) = lora_shapes(m, a.shape[0])
        if a.shape[1] != fan or b.shape[0] != out:
            raise AdapterError(
                f"{made_for}; {name} expects A [r, {fan}], B [{out}, r], "
                f"file has A{list(a.shape)} B{list(b.shape)}"
            )
    if adapter.extras:
        state = base_state_dict(model)
        for name, t in adapter.extras.items():
            if name not in state or state[name].shape != t.shape:
                have = list(state[name].shape) if name in state else "nothing"
                raise AdapterError(f"{made_for}; extra tensor {name} {list(t.shape)} does not fit {have}")
    if not adapter.base.fingerprint:
        if not force:
            raise AdapterNeedsForce(
                f"{adapter.source}: no base_fingerprint in its header (made by another tool?), so it cannot be "
                f"checked against this voice; {_FORCE_HINT} (shapes are still checked)"
            )
        warnings.warn(f"{adapter.source}: no base fingerprint, applied unverified because of --force", AdapterWarning, stacklevel=2)
    elif adapter.base.fingerprint != base.fingerprint:
        if not force:
            raise AdapterNeedsForce(f"{made_for}, not for this {base.describe()}; {_FORCE_HINT}")
        warnings.warn(f"{made_for}, applied to this {base.describe()} because of --force", AdapterWarning, stacklevel=2)
