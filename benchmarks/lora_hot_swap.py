"""LoRA figures on a FULL-SIZE RVC v2 40k synthesizer (random weights).

Prints: adapter file size for preset `all` at rank 4/8/16 (fp16 and fp32 files),
which layer groups dominate, the trainable-parameter share, and the median time of
a hot-swap (swap / re-weight adapters on a live model, unmerged and merged), plus
the unmerged forward's overhead.  Run:  python benchmarks/lora_hot_swap.py [--device cuda]
Medians and ratios of one run: these machines are shared and noisy.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from rvclora.lora import (
    BaseInfo,
    LoRAConfig,
    apply_adapters,
    extract_adapter,
    inject,
    load_adapter,
    lora_modules,
    model_fingerprint,
    parameter_counts,
    remove_adapters,
    save_adapter,
)
from rvclora.synth.configs import official_config
from rvclora.synth.synthesizer import Synthesizer


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_ms(fn, n, device, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def group_of(name: str) -> str:
    if name.startswith("enc_p."):
        return "encoder (attn+ffn)"
    if name.startswith("flow."):
        return "flow (WN+pre/post)"
    for part in ("resblocks", "ups", "conv_pre", "conv_post"):
        if f"dec.{part}" in name:
            return f"decoder {part}"
    return "other"


def make_adapter(model, base, rank, seed):
    """Inject preset `all`, fill B as if trained, snapshot, and take the LoRA out again."""
    config = LoRAConfig(rank=rank, alpha=float(rank))
    inject(model, "all", config, generator=torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for m in lora_modules(model).values():
            m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g) * 1e-3)
    counts = parameter_counts(model)
    adapter = extract_adapter(model, config, base=base, targets="all", created_by="benchmark")
    remove_adapters(model)
    return adapter, counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--repeats", type=int, default=21, help="timed repetitions per figure (median)")
    ap.add_argument("--frames", type=int, default=100, help="frames (10 ms each) for the forward-overhead figure")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = Synthesizer(official_config("v2", 40000), version="v2", f0=True, posterior=False).eval()
    base = BaseInfo("v2", 40000, True, model_fingerprint(model))
    n_base = sum(p.numel() for p in model.parameters())
    print(f"base: RVC v2 40k f0 synthesizer (no enc_q), {n_base / 1e6:.2f} M parameters, "
          f"device {device}, {torch.get_num_threads()} CPU thread(s), torch {torch.__version__}")

    tmp = Path(tempfile.mkdtemp())
    adapters = {}
    print("\npreset `all` (146 modules):")
    print(f"{'rank':>4} {'LoRA params':>12} {'share':>7} {'fp16 file':>10} {'fp32 file':>10}")
    for rank in (4, 8, 16):
        adapter, (n_lora, _) = make_adapter(model, base, rank, seed=rank)
        adapters[rank] = adapter
        f16 = save_adapter(tmp / f"r{rank}.safetensors", adapter).stat().st_size
        f32 = save_adapter(tmp / f"r{rank}_fp32.safetensors", adapter, dtype=torch.float32).stat().st_size
        print(f"{rank:>4} {n_lora:>12,} {n_lora / n_base:>7.2%} {f16 / 1e6:>8.2f}MB {f32 / 1e6:>8.2f}MB")

    per_group = defaultdict(int)
    for name, (a, b) in adapters[8].lora.items():
        per_group[group_of(name)] += a.numel() + b.numel()
    total = sum(per_group.values())
    print("\nrank 8 parameters by layer group:")
    for grp, n in sorted(per_group.items(), key=lambda kv: -kv[1]):
        print(f"  {grp:<22} {n:>10,}  {n / total:6.1%}  {2 * n / 1e6:6.2f} MB fp16")
    emb = model.emb_g.weight.numel()
    print(f"  (+ emb_g.weight as an extra: {emb:,} params, {2 * emb / 1e6:.3f} MB fp16)")

    # ---------------------------------------------------------------- hot-swap
    model.to(device)
    t = time.perf_counter()
    a1 = load_adapter(tmp / "r8.safetensors").to(device)
    load_ms = (time.perf_counter() - t) * 1e3
    a2 = make_adapter(model.cpu(), base, 8, seed=99)[0].to(device)
    model.to(device)
    print(f"\nhot-swap, rank 8, preset `all` (median of {args.repeats}; load_adapter of the fp16 file: {load_ms:.1f} ms)")
    state = {"i": 0}

    def swap(merged):
        state["i"] += 1
        apply_adapters(model, [((a1, a2)[state["i"] % 2], 1.0)], merged=merged)

    def reweight(merged):
        state["i"] += 1
        w = 0.25 + 0.5 * (state["i"] % 2)
        apply_adapters(model, [(a1, w), (a2, 1.0 - w)], merged=merged)

    with torch.no_grad():
        figures = {
            "swap A<->B, unmerged (weight norm kept)": lambda: swap(False),
            "re-weight blend 0.25/0.75, unmerged": lambda: reweight(False),
            "swap A<->B, merged (weight norm kept)": lambda: swap(True),
            "re-weight blend, merged (weight norm kept)": lambda: reweight(True),
        }
        for label, fn in figures.items():
            print(f"  {label:<46} {median_ms(fn, args.repeats, device):8.2f} ms")
        remove_adapters(model)
        model.remove_weight_norm()  # the realtime engine's form
        for label, fn in {
            "swap A<->B, merged (weight norm folded)": lambda: swap(True),
            "re-weight blend, merged (weight norm folded)": lambda: reweight(True),
        }.items():
            print(f"  {label:<46} {median_ms(fn, args.repeats, device):8.2f} ms")

        # ------------------------------------------------------------ forward overhead
        T = args.frames
        g = torch.Generator().manual_seed(0)
        inputs = dict(
            phone=torch.randn(1, T, 768, generator=g).to(device),
            phone_lengths=torch.tensor([T], device=device),
            pitch=torch.full((1, T), 100, dtype=torch.long, device=device),
            pitchf=torch.full((1, T), 200.0, device=device),
            sid=torch.zeros(1, dtype=torch.long, device=device),
            noise=torch.randn(1, 192, T, generator=g).to(device),
        )
        n = max(3, args.repeats // 4)
        apply_adapters(model, [(a1, 1.0)], merged=True)
        merged_ms = median_ms(lambda: model.infer(**inputs), n, device, warmup=1)
        apply_adapters(model, [(a1, 1.0)], merged=False)
        unmerged_ms = median_ms(lambda: model.infer(**inputs), n, device, warmup=1)
        apply_adapters(model, [(a1, 0.5), (a2, 0.5)], merged=False)
        blend_ms = median_ms(lambda: model.infer(**inputs), n, device, warmup=1)
    print(f"\ninfer of {T} frames ({T * 10} ms audio), median of {n}:")
    print(f"  merged (= base cost)        {merged_ms:8.1f} ms")
    print(f"  unmerged, one adapter       {unmerged_ms:8.1f} ms  ({unmerged_ms / merged_ms - 1:+.1%})")
    print(f"  unmerged, blend of two      {blend_ms:8.1f} ms  ({blend_ms / merged_ms - 1:+.1%})")


if __name__ == "__main__":
    main()
