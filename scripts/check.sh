#!/usr/bin/env bash
# The static checks `make test` runs before the suite: lint (ruff), types (mypy), the arrows
# between packages (import-linter). Each stops the run on its first failing step, with the
# tool's own report. usage: check.sh [VENV]
set -euo pipefail
venv=${1:-.venv}
cd "$(dirname "$0")/.."
bin=$venv/bin

echo "check: [1/3] ruff (lint)" >&2
"$bin/ruff" check --quiet .

echo "check: [2/3] mypy (types)" >&2
# The packages map `rvclora.<name>` to top-level folders (setuptools package-dir), which
# mypy cannot follow: give it a tree of links named the way the code imports them, and
# print its findings with the repository's paths.
src=$venv/mypy-src
packages=$("$bin/python" - <<'EOF'
import re
text = open("pyproject.toml", encoding="utf-8").read()
section = text.split("[tool.setuptools.package-dir]", 1)[1].split("\n[", 1)[0]
for name, folder in re.findall(r'^"rvclora\.(\w+)"\s*=\s*"([\w/]+)"', section, re.M):
    if name != "tests":
        print(name, folder)
EOF
)
rm -rf "$src" && mkdir -p "$src/rvclora"
args=()
while read -r name folder; do
  ln -s "$PWD/$folder" "$src/rvclora/$name"
  args+=(-p "rvclora.$name")
done <<< "$packages"
if ! MYPYPATH=$src "$bin/mypy" --cache-dir "$venv/mypy-cache" "${args[@]}" > "$venv/mypy.out" 2>&1; then
  sed "s#^$src/rvclora/##" "$venv/mypy.out" >&2
  echo "check: mypy found type errors (above)" >&2
  exit 1
fi

echo "check: [3/3] import-linter (the arrows between packages)" >&2
"$bin/lint-imports" --no-cache
