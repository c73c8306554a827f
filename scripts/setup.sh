#!/usr/bin/env bash
# Set up rvclora on a Debian machine: apt packages (when missing), a venv, and pip packages.
# usage: setup.sh PYTHON VENV TORCH_VERSION EXTRAS NO_DEPS_PKGS APT_PACKAGE...
# Every step says what it does before it starts, and pip shows what it downloads: a first
# install fetches about 1 GB and takes minutes, which must not look like a hang.
set -euo pipefail
python=$1 venv=$2 torch_version=$3 extras=$4 no_deps=$5
shift 5
step() { echo "setup: [$1/4] $2" >&2; }

step 1 "checking Debian packages"
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# Debian's python3 needs python3-venv for `python3 -m venv`.
if ! "$python" -c "import ensurepip, venv" 2>/dev/null; then missing+=(python3-venv python3-pip); fi
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

step 2 "virtual environment in $venv"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --disable-pip-version-check)
# Torch first, pinned, so that pip takes the CPU wheel this machine provides instead of
# resolving a newer CUDA build through the project's dependencies.
step 3 "PyTorch $torch_version (the largest download: a first install takes a few minutes)"
"${pip[@]}" "torch==$torch_version"
step 4 "rvclora and its other dependencies ($extras)"
"${pip[@]}" -e "$extras"
if [ -n "$no_deps" ]; then "${pip[@]}" --no-deps $no_deps; fi
echo "setup: ready ($venv)" >&2
