"""Long fuzz of every model-file loader: how many mutated files were tried, how many loaded,
were refused with the one-line user error, or broke the property (failures, listed).

Each of the seven file kinds (voice .pth zip and legacy, G*.pth, hubert_base.pt, rmvpe.pt,
adapter .safetensors, faiss .index) is mutated by hypothesis (truncate, flip bytes, config
values to extremes, pickle globals rewritten, declared integers inflated, payload pickles)
in a process whose address space is capped (RLIMIT_AS), so a memory bomb is reported, not
fatal. Runs in a subprocess; prints the JSON report and a one-line summary.

    python benchmarks/fuzz_model_files.py [--seconds 600] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from _repo import ROOT


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=600.0, help="stop generating examples after this long")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--address-space-mb", type=int, default=3072)
    args = p.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "tests.fuzz_cases", "--examples", "1000000", "--seconds", str(args.seconds),
           "--seed", str(args.seed), "--address-space-mb", str(args.address_space_mb)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)  # where `tests` is importable
    if proc.returncode != 0:
        print(proc.stderr[-4000:], file=sys.stderr)
        print(f"fuzz process died (exit {proc.returncode}): that itself is a failure to investigate")
        return 1
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(report, indent=2))
    print(f"examples tried {report['tried']} in {report['seconds']} s: loaded {report['loaded']}, "
          f"refused {report['refused']}, failures {len(report['failures'])}; slowest {report['slowest_s']:.2f} s, "
          f"peak RSS growth {report['peak_growth_mb']} MB")
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
