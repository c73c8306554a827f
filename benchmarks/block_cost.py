"""Per-block compute of the RVC voice path, before and after its CPU cuts, in one run.

Two voices at the default live settings (60 ms block, 1000 ms context, crossfade 30,
search 10, pm pitch), one torch thread: the tiny random-weight voice the soak uses
(tests/rvc_fixtures.py + tests/hubert_fixtures.py) and a full-size random-weight v2 40k
voice with HuBERT-base (`rvclora bench --random-model`). Each measurement runs in its own
child process, converting blocks in a worker thread as the engine does; "before" turns
`retain_freed_memory` off (glibc's default heap); "after" is the code as it ships. The
variants alternate round by round so a loaded machine slows both alike.

Per block it records wall time, the worker thread's CPU time (what a loaded machine's
scheduling does not inflate), minor page faults and system time, and prints JSON with
p50/p95 per voice and variant and the after/before ratio of the medians; a per-stage
table (`rvclora bench --stages`' stages) per voice and variant goes to stderr.

    python benchmarks/block_cost.py [--rounds 3] [--blocks 20] [--voices tiny,full]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import _repo  # noqa: F401 — puts the repository root on sys.path for `tests`
import numpy as np
import torch

from rvclora.realtime import rvc_converter
from rvclora.realtime.bench import make_random_source, speechlike
from rvclora.realtime.block_converter import load_rvc_source
from rvclora.realtime.block_processor import BlockProcessor
from rvclora.realtime.settings import EngineSettings
from rvclora.realtime.stage_profile import run_stages, stage_table
from tests.hubert_fixtures import tiny_hubert_config, write_hubert_file
from tests.rvc_fixtures import make_voice_file


def build_source(voice: str, tmp: Path):
    if voice == "full":
        return make_random_source("v2", 40000, f0_method="pm")
    model = make_voice_file(tmp)
    hubert = write_hubert_file(tmp / "hubert.pt", tiny_hubert_config("v2"))
    return load_rvc_source(model, hubert=hubert, device="cpu", precision="fp32")


def child(voice: str, variant: str, blocks: int, warmup: int, stage_blocks: int) -> dict:
    """One measurement: `blocks` timed blocks after `warmup`, in a worker thread."""
    torch.set_num_threads(1)
    if variant == "before":  # glibc's default heap: large tensors mapped and unmapped every block
        rvc_converter.retain_freed_memory = lambda: False  # type: ignore[attr-defined]
    settings = EngineSettings(f0_method="pm")
    with tempfile.TemporaryDirectory() as tmp:
        source = build_source(voice, Path(tmp))
    signal = speechlike(max(5.0, (blocks + warmup + 1) * 0.06), 16000)
    rows: dict = {}

    def work() -> None:
        proc = BlockProcessor(source, settings)
        n = proc.block_in
        wall, cpu, faults, sys_ms = [], [], [], []
        with torch.inference_mode():
            for k in range(warmup + blocks):
                r0 = resource.getrusage(resource.RUSAGE_THREAD)
                t0, c0 = time.perf_counter(), time.thread_time()
                proc.process(signal[k * n : (k + 1) * n])
                c1, t1 = time.thread_time(), time.perf_counter()
                r1 = resource.getrusage(resource.RUSAGE_THREAD)
                if k >= warmup:
                    wall.append(1000 * (t1 - t0))
                    cpu.append(1000 * (c1 - c0))
                    faults.append(r1.ru_minflt - r0.ru_minflt)
                    sys_ms.append(1000 * (r1.ru_stime - r0.ru_stime))
        rows.update(wall=wall, cpu=cpu, faults=faults, sys=sys_ms)
        if stage_blocks:
            rows["stages"] = run_stages(source, settings, signal, blocks=stage_blocks, warmup=2)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    return rows


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--stage-blocks", type=int, default=10, help="blocks of the per-stage table (last round only)")
    parser.add_argument("--voices", default="tiny,full")
    parser.add_argument("--child", nargs=2, metavar=("VOICE", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.blocks, args.warmup, args.stage_blocks)))
        return 0

    voices = args.voices.split(",")
    variants = ("before", "after")
    got: dict = {(v, x): {"wall": [], "cpu": [], "faults": [], "sys": []} for v in voices for x in variants}
    stages: dict = {}
    for r in range(args.rounds):
        for voice in voices:
            for variant in variants if r % 2 == 0 else variants[::-1]:
                last = r == args.rounds - 1
                cmd = [sys.executable, __file__, "--child", voice, variant, "--blocks", str(args.blocks),
                       "--warmup", str(args.warmup), "--stage-blocks", str(args.stage_blocks if last else 0)]
                out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
                for key in got[voice, variant]:
                    got[voice, variant][key] += out[key]
                if "stages" in out:
                    stages[voice, variant] = out["stages"]
                print(f"round {r + 1} {voice} {variant}: cpu p50 {np.median(out['cpu']):.1f} ms", file=sys.stderr)

    result: dict = {"settings": "block 60, context 1000, crossfade 30, search 10, pm, 1 thread", "voices": {}}
    for voice in voices:
        per = {}
        for variant in variants:
            g = got[voice, variant]
            per[variant] = {
                "wall_p50": pct(g["wall"], 50), "wall_p95": pct(g["wall"], 95),
                "cpu_p50": pct(g["cpu"], 50), "cpu_p95": pct(g["cpu"], 95),
                "faults_per_block": pct(g["faults"], 50), "sys_ms_per_block": pct(g["sys"], 50),
                "blocks": len(g["wall"]),
            }
        per["ratio_after_before"] = {k: round(per["after"][k] / per["before"][k], 3)
                                     for k in ("wall_p50", "wall_p95", "cpu_p50", "cpu_p95") if per["before"][k]}
        result["voices"][voice] = per
    for (voice, variant), table in stages.items():
        print(f"\n{voice} voice, {variant} (wall ms per stage):\n{stage_table(table, 60)}", file=sys.stderr)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
