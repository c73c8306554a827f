#!/usr/bin/env bash
# Run the static checks, then the suite, in the project's venv. usage: run_tests.sh [VENV] [PYTEST ARGS...]
set -euo pipefail
venv=${1:-.venv}
shift || true
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
bash "$(dirname "$0")/check.sh" "$venv"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider --durations=15 "$@" tests
