"""LoRA vs full fine-tune: seconds per training step and peak memory, same data, same model.

Model: a FULL-SIZE RVC v2 40k f0 generator with random weights (official config,
with its posterior encoder, like a pretrained f0G40k.pth) and the full-size v2
multi-period discriminator (trained fully in both modes, as RVC does).  Data: the
MIT speech samples of pytest-audioeval, preprocessed and cached once (a tiny
random content encoder gives the 768-d features: feature values do not change
the cost of a step).

Each mode runs in its own fresh process, so one mode's allocations cannot hide
in the other's peak.  Reported per mode:
- s/step: median over the timed steps (after warm-up steps), wall clock, and
  CPU s: the same in CPU seconds of the process (user + system; robust to load);
- CPU: peak RSS of the process (ru_maxrss), and the training growth = peak RSS
  minus the RSS just before the first step (models, data and libraries loaded).
  The growth is what training itself costs (gradients, optimizer states,
  activations); the peak also counts the code and weights both modes share;
  what is resident before the first step and after the last is split into
  anonymous (heap, tensors) and file-backed (libraries) pages;
- CUDA: torch.cuda.max_memory_allocated, reset before the first step (peak) and
  its growth over the allocated memory at that point.
The target: LoRA's peak at most 50 % of full fine-tuning's.

Every mode sets up memory as `rvclora-train` does in both modes: fixed glibc
mmap/trim thresholds and a heap trim after each step (`synth.heap`), and no
cached weight-norm copies.
Modes (the random D stands for a pretrained D*.pth, as `--base-d` gives):
- lora: what `rvclora-train` does in LoRA mode: activation checkpointing in the
  decoder and discriminator, light discriminator training (gains, biases, output layers);
- full: RVC's full fine-tune (every G tensor and all of D train, no checkpointing);
- lora-plain: LoRA with RVC's full D and no checkpointing (the state before the memory work);
- full-ckpt: full fine-tune with activation checkpointing and a light D, for reference.

    .venv/bin/python benchmarks/train_lora_vs_full.py [--steps 3] [--warmup 1] [--batch-size 2] [--device cpu] [--modes lora,full]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import _repo  # noqa: F401 — puts the repository root on sys.path for `tests`
import torch

from rvclora.synth.configs import official_config
from rvclora.synth.content_encoder import load_content_encoder
from rvclora.synth.device import resolve_device
from rvclora.synth.heap import return_freed_memory, trim
from rvclora.synth.pitch import make_pitch_estimator
from rvclora.synth.synthesizer import Synthesizer
from rvclora.train.config import PreprocessConfig, TrainConfig, digest
from rvclora.train.dataset import SegmentData, epoch_batches
from rvclora.train.discriminators import MultiPeriodDiscriminator, light_training
from rvclora.train.feature_cache import FeatureExtractor, build_cache
from rvclora.train.generator import build_generator, checkpoint_decoder
from rvclora.train.loop import train_step
from rvclora.train.mel import SpecConfig
from rvclora.train.memory import discriminator_mode, drop_weight_norm_caches, precision_dtype, uses_checkpointing
from rvclora.train.preprocess import find_audio_files, preprocess_file
from tests.conftest import speech_path
from tests.hubert_fixtures import tiny_hubert_config, write_hubert_file
from tests.rvc_fixtures import randomize_

SPEECH = ["en/quick_brown_fox.wav", "en/counting.wav", "es/pangrama.wav", "fr/pangrama.wav", "it/pangrama.wav", "hi/pangrama.wav"]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_parts_mb() -> dict[str, float]:
    """Resident memory split into anonymous (heap, tensors) and file-backed (libraries) pages."""
    kb = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            p = line.split()
            if p[0] in ("Rss:", "Anonymous:"):
                kb[p[0][:-1]] = int(p[1])
    return {"anon": kb["Anonymous"] / 1024, "file": (kb["Rss"] - kb["Anonymous"]) / 1024}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class HeapPeak:
    """Peak of the bytes malloc has handed out (glibc mallinfo2: arenas + mmapped blocks),
    sampled every 2 ms by a thread.  Unlike RSS it does not count freed memory the
    allocator keeps, so it follows tensor memory closely; training steps last seconds
    and their peak (the backward pass) lasts far longer than a sample interval."""

    def __init__(self) -> None:
        class MallInfo2(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        self._info = libc.mallinfo2
        self._stop = threading.Event()
        self.peak = self.now()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> float:
        m = self._info()
        return (m.uordblks + m.hblkhd) / 2**20

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self.now())

    def __enter__(self) -> HeapPeak:
        self.before = self.now()
        self.peak = self.before
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def prepare(root: Path) -> dict:
    """Full-size random base, tiny content encoder, data folder, filled feature cache."""
    model = randomize_(Synthesizer(official_config("v2", 40000), version="v2", f0=True, posterior=True), seed=0)
    base = root / "f0G40k.pth"
    torch.save({"model": model.state_dict(), "iteration": 0}, base)
    data = root / "data"
    data.mkdir()
    for name in SPEECH:
        shutil.copy(speech_path(name), data / name.replace("/", "_"))
    hubert = write_hubert_file(root / "hubert_base.pt", tiny_hubert_config("v2"))
    return {"base": str(base), "data": str(data), "hubert": str(hubert), "cache": str(root / "cache")}


def load_data(kit: dict, cfg, device):
    setup = build_generator(kit["base"], cfg, device)
    v = setup.voice
    spec = SpecConfig.for_model(v.sr, v.config.spec_channels, v.config.hop)
    min_samples = (setup.model.segment_size + 8) * spec.hop

    def extractor():
        return FeatureExtractor(load_content_encoder(kit["hubert"], version="v2"), make_pitch_estimator("pm"), spec)

    res = build_cache(
        find_audio_files(kit["data"]), Path(kit["cache"]), digest({"bench": 1, "pre": PreprocessConfig().key()}),
        lambda p: preprocess_file(Path(p), v.sr, min_samples=min_samples), extractor,
    )
    return setup, spec, SegmentData(res.items, spec.hop)


def worker(mode: str, kit: dict, steps: int, warmup: int, batch_size: int, device_name: str) -> dict:

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    device = resolve_device(device_name)
    return_freed_memory()  # as `rvclora train` does, in both modes
    plain = mode in ("full", "lora-plain")  # RVC's D and activations
    cfg = TrainConfig(full=mode.startswith("full"), batch_size=batch_size, seed=0, checkpointing=not plain, train_d="full" if plain else "light")
    setup, spec, data = load_data(kit, cfg, device)
    torch.manual_seed(0)
    d = MultiPeriodDiscriminator("v2").to(device).train()
    if discriminator_mode(cfg, pretrained=True) == "light":
        light_training(d)
    if uses_checkpointing(cfg):
        checkpoint_decoder(setup.model)
        d.checkpointing = True
    drop_weight_norm_caches(d)
    drop_weight_norm_caches(setup.model)
    trim()
    amp = precision_dtype(cfg, device)
    params = list(setup.trainable().values())
    d_params = [p for p in d.parameters() if p.requires_grad]
    opt_g = torch.optim.AdamW(params, cfg.generator_lr, betas=cfg.betas, eps=cfg.eps)
    opt_d = torch.optim.AdamW(d_params, cfg.lr_d, betas=cfg.betas, eps=cfg.eps)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    batches = [data.batch(b).to(device) for b in epoch_batches(len(data), batch_size, 0, 0) if len(b) == batch_size]
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
    else:
        before = rss_mb()
    parts_before = rss_parts_mb()
    times, cpu_times = [], []
    heap = HeapPeak() if device.type == "cpu" else None
    with heap or contextlib.nullcontext():
        for i in range(warmup + steps):
            t0, c0 = time.perf_counter(), time.process_time()
            train_step(setup, d, batches[i % len(batches)], opt_g, opt_d, scaler, cfg, spec, device, amp_dtype=amp)
            trim()  # as the training loop does after each step
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
                cpu_times.append(time.process_time() - c0)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else peak_rss_mb()
    n_g, n_d = sum(p.numel() for p in params), sum(p.numel() for p in d_params)
    return {
        "mode": mode, "device": str(device), "threads": torch.get_num_threads(), "batch_size": batch_size,
        "precision": str(amp).replace("torch.", "") if amp else "fp32", "checkpointing": uses_checkpointing(cfg),
        "trainable_params_d": n_d, "steps_per_s": 1 / statistics.median(times),
        "trainable_params_g": n_g,
        "params_g": sum(p.numel() for p in setup.model.parameters()), "params_d": sum(p.numel() for p in d.parameters()),
        "s_per_step_median": statistics.median(times), "s_per_step_all": times,
        # CPU seconds (user + system, all threads): robust to other load on the machine
        "cpu_s_per_step_median": statistics.median(cpu_times),
        "memory_before_mb": before, "peak_mb": peak, "growth_mb": peak - before,
        "heap_before_mb": heap.before if heap else None, "heap_peak_mb": heap.peak if heap else None,
        "heap_growth_mb": heap.peak - heap.before if heap else None,
        "rss_parts_before_mb": parts_before, "rss_parts_end_mb": rss_parts_mb(),
        # exact fp32 bytes of gradients + AdamW's two moments of what trains
        "grad_and_adam_state_mb": {"generator": n_g * 12 / 2**20, "discriminator": n_d * 12 / 2**20},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--modes", default="lora,full", help="comma-separated: lora, full, lora-plain, full-ckpt")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--kit", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, json.loads(a.kit), a.steps, a.warmup, a.batch_size, a.device)))
        return
    with tempfile.TemporaryDirectory(prefix="rvclora-bench-") as tmp:
        kit = prepare(Path(tmp))
        results = {}
        for mode in a.modes.split(","):  # one fresh process each: peaks cannot mix
            cmd = [sys.executable, __file__, "--worker", mode, "--kit", json.dumps(kit), "--steps", str(a.steps),
                   "--warmup", str(a.warmup), "--batch-size", str(a.batch_size), "--device", a.device]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results[mode] = json.loads(out.strip().splitlines()[-1])
    lo, fu = results["lora"], results["full"]
    summary = {
        "results": results,
        "lora_vs_full": {
            "s_per_step_ratio": lo["s_per_step_median"] / fu["s_per_step_median"],
            "cpu_s_per_step_ratio": lo["cpu_s_per_step_median"] / fu["cpu_s_per_step_median"],
            "peak_ratio": lo["peak_mb"] / fu["peak_mb"],
            "growth_ratio": lo["growth_mb"] / fu["growth_mb"],
            **({"heap_peak_ratio": lo["heap_peak_mb"] / fu["heap_peak_mb"], "heap_growth_ratio": lo["heap_growth_mb"] / fu["heap_growth_mb"]} if lo["heap_peak_mb"] else {}),
        },
    }
    print(f"device {lo['device']}, {lo['threads']} threads, batch {lo['batch_size']}, v2 40k full-size, D {lo['params_d'] / 1e6:.1f} M params")
    print(f"{'mode':10} {'trainable G':>12} {'s/step':>8} {'CPU s':>6} {'RSS before':>10} {'RSS peak':>9} {'growth':>7} {'heap before':>11} {'heap peak':>9} {'growth':>7}  (MB)")
    for r in results.values():
        h = [r[k] or float("nan") for k in ("heap_before_mb", "heap_peak_mb", "heap_growth_mb")]
        print(f"{r['mode']:10} {r['trainable_params_g']:>12,} {r['s_per_step_median']:>8.2f} {r['cpu_s_per_step_median']:>6.1f} {r['memory_before_mb']:>10.0f} {r['peak_mb']:>9.0f} {r['growth_mb']:>7.0f} {h[0]:>11.0f} {h[1]:>9.0f} {h[2]:>7.0f}")
    rr = summary["lora_vs_full"]
    print(f"LoRA/full: s/step {rr['s_per_step_ratio']:.2f}, RSS peak {rr['peak_ratio']:.2f}, RSS growth {rr['growth_ratio']:.2f}"
          + (f", heap peak {rr['heap_peak_ratio']:.2f}, heap growth {rr['heap_growth_ratio']:.2f}" if "heap_peak_ratio" in rr else "")
          + " (target: peak <= 0.50)")
    print(f"grads + AdamW moments (fp32): G lora {lo['grad_and_adam_state_mb']['generator']:.0f} MB, G full {fu['grad_and_adam_state_mb']['generator']:.0f} MB, "
          f"D lora {lo['grad_and_adam_state_mb']['discriminator']:.0f} MB, D full {fu['grad_and_adam_state_mb']['discriminator']:.0f} MB")
    for r in results.values():
        b, e = r["rss_parts_before_mb"], r["rss_parts_end_mb"]
        print(f"{r['mode']:10} resident before the first step: anon {b['anon']:.0f} + file {b['file']:.0f}; after the last: anon {e['anon']:.0f} + file {e['file']:.0f} (MB)")
    if a.json:
        a.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
