"""Puts the repository root on `sys.path`, so a benchmark run as `python benchmarks/X.py`
can use the test fixtures in the repository's `tests/` (they are not installed with the
package). Import it before anything from `tests`."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
