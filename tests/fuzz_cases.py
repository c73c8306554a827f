"""Property-based fuzzing of every model-file loader (hypothesis).

Seeds are valid tiny files of each kind (released voice .pth in zip and legacy form,
pretrained G*.pth, hubert_base.pt, rmvpe.pt, adapter .safetensors, faiss .index); each
example mutates one (truncate, flip bytes, rewrite a config value to an extreme, rewrite
a pickle global, inflate a declared integer, swap in a payload pickle) and loads it. The
property: the loader returns a model or raises the kind's one-line user error, within a
time and memory bound, and no payload ever runs (it would create a marker file).

Run in a subprocess (`python -m rvclora.tests.fuzz_cases --examples N`): it caps its own
address space with RLIMIT_AS, so a memory bomb that slipped through ends as a reported
failure, not as the OOM killer taking the test session. tests/test_hostile_files.py runs
a short bounded fuzz this way; benchmarks/fuzz_model_files.py runs a long one.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import pickle
import pickletools
import random
import resource
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from rvclora.tests.hostile_files import marker_path, payload_pickles

KINDS = ("voice_zip", "voice_legacy", "base", "hubert", "rmvpe", "adapter", "index")
TIME_BOUND_S = 30.0  # per example, generous for a loaded 2-core machine
MEMORY_BOUND = 512 << 20  # RSS growth over the warmed-up process

EXTREMES: list[Any] = [0, -1, 1, 3, 2**31, 2**63 - 1, 10**12, -(2**40), 1.5, float("nan"), "x", None, [], [0] * 5000,
                       [[1, 3, 5]] * 5000, "48k", True]
HOSTILE_GLOBALS = [("os", "system"), ("builtins", "getattr"), ("builtins", "eval"), ("subprocess", "Popen"),
                   ("posix", "system"), ("torch", "load"), ("builtins", "bytearray"), ("numpy", "load"),
                   ("torch._utils", "_rebuild_wrapper_subclass"), ("torch._utils", "_rebuild_meta_tensor_no_storage"),
                   ("torch._utils", "_rebuild_sparse_tensor"), ("torch", "HalfStorage"), ("torch", "LongStorage"),
                   ("torch", "UntypedStorage"), ("collections", "OrderedDict"), ("torch", "Size"),
                   ("fairseq.data.dictionary", "Dictionary"), ("builtins", "set")]
INTS = [0, 1, -1, 7, 255, 2**31 - 1, 2**32, 2**40, 2**62, -(2**62), 10**30]


# --------------------------------------------------------------------------- seeds and loaders


def make_seeds(folder: Path) -> dict[str, Path]:
    from rvclora.synth.index import build_index
    from rvclora.synth.rmvpe import RMVPE
    from rvclora.tests.hubert_fixtures import tiny_hubert_config, write_hubert_file
    from rvclora.tests.rvc_fixtures import make_adapter_file, make_base_file, make_voice_file

    voice = make_voice_file(folder, "v2", 40000, True)
    legacy = folder / "voice_legacy.pth"
    torch.save(torch.load(voice, weights_only=True), legacy, _use_new_zipfile_serialization=False)
    with torch.device("meta"):
        shapes = RMVPE().state_dict()
    pools: dict[torch.dtype, int] = {}
    for v in shapes.values():
        pools[v.dtype] = max(pools.get(v.dtype, 0), v.numel())
    tensors = {dtype: torch.zeros(n, dtype=dtype) for dtype, n in pools.items()}
    torch.save({k: tensors[v.dtype][: v.numel()].view(v.shape) for k, v in shapes.items()}, folder / "rmvpe.pt")
    feats = np.random.default_rng(0).standard_normal((400, 768)).astype(np.float32)
    return {
        "voice_zip": voice,
        "voice_legacy": legacy,
        "base": make_base_file(folder, "v2", 40000, True),
        "hubert": write_hubert_file(folder / "hubert_base.pt", tiny_hubert_config("v2")),
        "rmvpe": folder / "rmvpe.pt",
        "adapter": make_adapter_file(voice, folder / "adapter.safetensors"),
        "index": build_index(feats, folder / "added_IVF4_Flat_v2.index", n_ivf=4),
    }


def loaders() -> dict[str, tuple[Callable[[Path], Any], tuple[type[BaseException], ...]]]:
    """kind -> (load function, the user-error types it may raise)."""
    from rvclora.errors import ModelFileError
    from rvclora.lora import AdapterError, load_adapter
    from rvclora.synth.content_encoder import load_content_encoder
    from rvclora.synth.index import FeatureIndex
    from rvclora.synth.rmvpe import load_rmvpe
    from rvclora.synth.voice_file import load_voice

    return {
        "voice_zip": (load_voice, (ModelFileError,)),
        "voice_legacy": (load_voice, (ModelFileError,)),
        "base": (load_voice, (ModelFileError,)),
        "hubert": (load_content_encoder, (ModelFileError,)),
        "rmvpe": (load_rmvpe, (ModelFileError,)),
        "adapter": (load_adapter, (AdapterError,)),
        "index": (FeatureIndex.load, (ModelFileError,)),
    }


# --------------------------------------------------------------------------- mutations


def _zip_parts(data: bytes) -> tuple[list[tuple[str, bytes]], str]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        parts = [(i.filename, z.read(i)) for i in z.infolist()]
    pkl = next(name for name, _ in parts if name.endswith("data.pkl"))
    return parts, pkl


def _zip_join(parts: list[tuple[str, bytes]]) -> bytes:
    f = io.BytesIO()
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
        for name, raw in parts:
            z.writestr(name, raw)
    return f.getvalue()


def _with_pickle(data: bytes, edit: Callable[[bytes], bytes]) -> bytes:
    """Apply `edit` to the model pickle: data.pkl of a zip, the 4th pickle of a legacy file."""
    if data.startswith(b"PK"):
        parts, pkl = _zip_parts(data)
        return _zip_join([(n, edit(raw) if n == pkl else raw) for n, raw in parts])
    f = io.BytesIO(data)
    for _ in range(3):
        pickle.load(f)
    start = f.tell()
    end = start + max(pos for _, _, pos in pickletools.genops(data[start:])) + 1
    return data[:start] + edit(data[start:end]) + data[end:]


def _ops(pkl: bytes, names: set[str]) -> list[tuple[int, int, Any]]:
    ops = list(pickletools.genops(pkl))
    spans = [(pos, ops[i + 1][2] if i + 1 < len(ops) else len(pkl), arg) for i, (op, arg, pos) in enumerate(ops)
             if op.name in names]
    return spans


def _splice(pkl: bytes, span: tuple[int, int, Any], raw: bytes) -> bytes:
    return pkl[: span[0]] + raw + pkl[span[1] :]


def inflate_int(data: bytes, rng: random.Random) -> bytes:
    def edit(pkl: bytes) -> bytes:
        spans = _ops(pkl, {"BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG"})
        for span in rng.sample(spans, min(len(spans), rng.randint(1, 3))):
            pkl = _splice(pkl, span, pickle.dumps(rng.choice(INTS), protocol=2)[2:-1])
            spans = _ops(pkl, {"BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG"})
        return pkl
    return _with_pickle(data, edit)


def rewrite_global(data: bytes, rng: random.Random) -> bytes:
    def edit(pkl: bytes) -> bytes:
        spans = _ops(pkl, {"GLOBAL"})
        if not spans:
            return pkl
        module, name = rng.choice(HOSTILE_GLOBALS)
        return _splice(pkl, rng.choice(spans), f"c{module}\n{name}\n".encode())
    return _with_pickle(data, edit)


def swap_payload(data: bytes, rng: random.Random, marker: Path) -> bytes:
    payload = rng.choice(list(payload_pickles(marker).values()))
    return _with_pickle(data, lambda pkl: payload)


def config_extreme(data: bytes, rng: random.Random) -> bytes:
    ckpt = torch.load(io.BytesIO(data), weights_only=True)
    if isinstance(ckpt, dict) and isinstance(ckpt.get("config"), list):
        ckpt["config"][rng.randrange(18)] = rng.choice(EXTREMES)
    elif isinstance(ckpt, dict):
        ckpt[rng.choice(["sr", "f0", "version", "info"])] = rng.choice(EXTREMES)
    out = io.BytesIO()
    torch.save(ckpt, out, _use_new_zipfile_serialization=data.startswith(b"PK"))
    return out.getvalue()


def odd_value(data: bytes, rng: random.Random) -> bytes:
    """Put an odd object where the loader expects something else (top-level field or a weight)."""
    ckpt = torch.load(io.BytesIO(data), weights_only=True)
    odd = [torch.zeros(()), torch.zeros(0), torch.zeros(3, 0, 2), torch.ones(2, 2, dtype=torch.int64), "x", None, 1,
           [1, 2], {"a": 1}, torch.full((2,), float("nan")), torch.zeros(1, dtype=torch.bool), torch.zeros(2, 3).t()]
    inner = ckpt.get("weight") or ckpt.get("model") if isinstance(ckpt, dict) else None
    target = inner if isinstance(inner, dict) and rng.random() < 0.7 else ckpt
    if isinstance(target, dict) and target:
        target[rng.choice(sorted(target, key=str))] = rng.choice(odd)
    out = io.BytesIO()
    torch.save(ckpt, out, _use_new_zipfile_serialization=data.startswith(b"PK"))
    return out.getvalue()


def safetensors_header(data: bytes, rng: random.Random) -> bytes:
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    key = rng.choice([k for k in header if k != "__metadata__"])
    what = rng.choice(["dtype", "shape", "offsets", "length"])
    if what == "dtype":
        header[key]["dtype"] = rng.choice(["I64", "I8", "BOOL", "U8", "F64", "BF16", "F8_E4M3"])
    elif what == "shape":
        header[key]["shape"] = [rng.choice(INTS[:8]) for _ in header[key]["shape"]]
    elif what == "offsets":
        header[key]["data_offsets"] = [rng.choice(INTS[:8]), rng.choice(INTS)]
    raw = json.dumps(header).encode()
    length = rng.choice([len(raw), 2**40, len(data) * 2]) if what == "length" else len(raw)
    return length.to_bytes(8, "little") + raw + data[8 + n :]


def index_field(data: bytes, rng: random.Random) -> bytes:
    pos = rng.randrange(0, min(len(data), 256) - 8)
    return data[:pos] + rng.choice(INTS[3:10]).to_bytes(8, "little", signed=True) + data[pos + 8 :]


def flip(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        pos = rng.randrange(min(len(b), 4096)) if rng.random() < 0.7 else rng.randrange(len(b))
        b[pos] ^= rng.randrange(1, 256)
    return bytes(b)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


def mutations(kind: str) -> list[str]:
    common = ["truncate", "flip"]
    if kind in ("voice_zip", "voice_legacy", "base", "hubert", "rmvpe"):
        common += ["inflate_int", "inflate_int", "rewrite_global", "rewrite_global", "payload"]
    if kind in ("voice_zip", "voice_legacy"):
        common += ["config_extreme", "config_extreme"]
    if kind in ("voice_zip", "voice_legacy", "base", "hubert", "rmvpe"):
        common += ["odd_value", "odd_value"]
    if kind == "adapter":
        common += ["safetensors_header", "safetensors_header"]
    if kind == "index":
        common += ["index_field", "index_field"]
    return common


def mutate(kind: str, data: bytes, how: str, seed: int, marker: Path) -> bytes:
    rng = random.Random(seed)
    if how == "payload":
        return swap_payload(data, rng, marker)
    fn = {"truncate": truncate, "flip": flip, "inflate_int": inflate_int, "rewrite_global": rewrite_global,
          "config_extreme": config_extreme, "odd_value": odd_value, "safetensors_header": safetensors_header, "index_field": index_field}[how]
    return fn(data, rng)


# --------------------------------------------------------------------------- the property


@dataclass
class Report:
    tried: int = 0
    loaded: int = 0
    refused: int = 0
    skipped: int = 0  # the mutation itself could not apply (e.g. no int to inflate)
    failures: list[str] = field(default_factory=list)
    slowest_s: float = 0.0
    peak_growth: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


def _rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def check_one(kind: str, how: str, seed: int, seeds: dict[str, bytes], folder: Path, report: Report, base_rss: int) -> None:
    marker = marker_path(folder)
    load, errors = loaders()[kind]
    try:
        data = mutate(kind, seeds[kind], how, seed, marker)
    except Exception:  # noqa: BLE001 - the mutation did not apply to this seed; not a loader result
        report.skipped += 1
        return
    path = folder / f"fuzz_{kind}{_SUFFIX[kind]}"
    path.write_bytes(data)
    report.tried += 1
    report.by_kind[kind] = report.by_kind.get(kind, 0) + 1
    start = time.perf_counter()
    what = f"{kind}/{how}/seed {seed}"
    try:
        load(path)
        report.loaded += 1
    except errors as e:
        report.refused += 1
        if "\n" in str(e).strip() or not str(e).strip():
            report.failures.append(f"{what}: error message is not one line: {str(e)[:200]!r}")
    except BaseException as e:  # noqa: BLE001 - anything else is a finding
        if isinstance(e, KeyboardInterrupt):
            raise
        report.failures.append(f"{what}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
    elapsed = time.perf_counter() - start
    report.slowest_s = max(report.slowest_s, elapsed)
    report.peak_growth = max(report.peak_growth, _rss() - base_rss)
    if elapsed > TIME_BOUND_S:
        report.failures.append(f"{what}: took {elapsed:.1f} s")
    if _rss() - base_rss > MEMORY_BOUND:
        report.failures.append(f"{what}: memory grew {(_rss() - base_rss) >> 20} MB")
        base_rss = _rss()
    if marker.exists():
        report.failures.append(f"{what}: A PAYLOAD RAN")
        marker.unlink()


_SUFFIX = {"voice_zip": ".pth", "voice_legacy": ".pth", "base": ".pth", "hubert": ".pt", "rmvpe": ".pt",
           "adapter": ".safetensors", "index": ".index"}


def run_fuzz(examples: int, seed: int = 0, seconds: float | None = None, kinds: tuple[str, ...] = KINDS) -> Report:
    """Run `examples` hypothesis examples (or until `seconds` pass); returns the report."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as fix_seed
    from hypothesis import strategies as st

    report = Report()
    with tempfile.TemporaryDirectory(prefix="rvclora-fuzz-") as tmp:
        folder = Path(tmp)
        seeds = {k: p.read_bytes() for k, p in make_seeds(folder).items()}
        for kind in kinds:  # warm up: every loader once on its valid seed
            loaders()[kind][0](make_path(folder, kind, seeds))
        base_rss = _rss()
        deadline = time.monotonic() + seconds if seconds else None
        cases = st.sampled_from(kinds).flatmap(lambda k: st.tuples(st.just(k), st.sampled_from(mutations(k)),
                                                                   st.integers(0, 2**32 - 1)))
        # Rounds of at most 25 examples, each with its own seed, so a time limit ends the run
        # promptly (hypothesis itself only stops at max_examples).
        for round_ in range(math.ceil(examples / 25)):
            if deadline is not None and time.monotonic() > deadline:
                break

            @fix_seed(seed * 100003 + round_)
            @settings(max_examples=min(25, examples - 25 * round_), deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(cases)
            def prop(case: tuple[str, str, int]) -> None:
                if deadline is None or time.monotonic() < deadline:
                    check_one(*case, seeds, folder, report, base_rss)

            prop()
    return report


def make_path(folder: Path, kind: str, seeds: dict[str, bytes]) -> Path:
    path = folder / f"warm_{kind}{_SUFFIX[kind]}"
    path.write_bytes(seeds[kind])
    return path


def limit_memory(extra_bytes: int) -> None:
    """Cap this process's address space at its current size plus `extra_bytes` (subprocess only)."""
    vm = int(next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmSize:")).split()[1])
    cap = vm * 1024 + extra_bytes
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="fuzz every model-file loader; prints a JSON report")
    p.add_argument("--examples", type=int, default=100)
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--address-space-mb", type=int, default=3072, help="RLIMIT_AS headroom over the warmed-up process")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    import rvclora.lora  # noqa: F401 - imported before the cap so the cap is headroom, not libraries
    import rvclora.synth.content_encoder  # noqa: F401
    import rvclora.synth.index  # noqa: F401
    import rvclora.synth.rmvpe  # noqa: F401
    import rvclora.synth.voice_file  # noqa: F401

    limit_memory(args.address_space_mb << 20)
    start = time.monotonic()
    report = run_fuzz(args.examples, args.seed, args.seconds)
    out = dict(report.__dict__, seconds=round(time.monotonic() - start, 1), peak_growth_mb=report.peak_growth >> 20)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
