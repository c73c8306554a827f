#!/usr/bin/env bash
# Run the whole suite in the project's venv.
set -euo pipefail
venv=${1:-.venv}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider --durations=15 tests
