"""How long `rvclora --help` and `rvclora <cmd> --help` take, and whether they import torch.

Each command runs in a fresh interpreter (as a user's shell starts it) five times; the median
wall time is printed with whether torch ended up in `sys.modules`. Target: under 0.5 s.

    python benchmarks/cli_help_time.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from importlib.metadata import entry_points

COMMANDS = (
    [],
    ["convert"],
    ["run"],
    ["train"],
    ["export"],
    ["voices"],
)
# Runs the console script's entry point in-process, then reports whether torch was imported.
PROBE = (
    "import sys\n"
    "from {module} import main\n"
    "try:\n"
    "    main({argv!r})\n"
    "except SystemExit:\n"
    "    pass\n"
    "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n"
)


def entry_point() -> str:
    """The module holding the installed `rvclora` script's main (the front door, or the old panel module)."""

    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "rvclora"]
    return ep.value.split(":")[0]


def time_once(module: str, argv: list[str]) -> tuple[float, bool]:
    code = PROBE.format(module=module, argv=[*argv, "--help"])
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    return seconds, "NO-TORCH" not in done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    module = entry_point()
    print(f"entry point: {module}; median of {args.runs} fresh runs")
    for argv in COMMANDS:
        times, torch = [], False
        for _ in range(args.runs):
            seconds, imported = time_once(module, argv)
            times.append(seconds)
            torch = torch or imported
        label = " ".join(["rvclora", *argv, "--help"])
        print(f"{label:<28} {statistics.median(times):6.2f} s  {'imports torch' if torch else 'no torch'}")


if __name__ == "__main__":
    main()
