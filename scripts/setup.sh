#!/usr/bin/env bash
# Set up rvclora on a Debian machine: apt packages (when missing), a venv, and pip packages.
# usage: setup.sh PYTHON VENV TORCH_VERSION EXTRAS NO_DEPS_PKGS APT_PACKAGE...
set -euo pipefail
python=$1 venv=$2 torch_version=$3 extras=$4 no_deps=$5
shift 5

missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# Debian's python3 needs python3-venv for `python3 -m venv`.
if ! "$python" -c "import ensurepip, venv" 2>/dev/null; then missing+=(python3-venv python3-pip); fi
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
# Torch first, pinned, so that pip takes the CPU wheel this machine provides instead of
# resolving a newer CUDA build through the project's dependencies.
"${pip[@]}" "torch==$torch_version"
"${pip[@]}" -e "$extras"
if [ -n "$no_deps" ]; then "${pip[@]}" --no-deps $no_deps; fi
echo "setup: ready ($venv)"
