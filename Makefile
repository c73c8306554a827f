# Two entry points: `make run` (install and open rvclora) and `make test` (install, check and run the suite).
# Both set up a fresh Debian machine from nothing: apt packages, a virtual environment, pip.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
# rvc==0.3.5 is RVC-Project's own package: the tests compare against its models (installed without its deps).
RVC_REFERENCE ?= rvc==0.3.5

APT_RUN  := libportaudio2 libsndfile1 libasound2-plugins libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1
APT_TEST := $(APT_RUN) espeak-ng sox pulseaudio pulseaudio-utils xvfb xauth xdotool

.PHONY: run test test-fast check setup setup-test clean

run: $(VENV)/.ready-run
	$(VENV)/bin/rvclora

test: $(VENV)/.ready-test
	bash scripts/run_tests.sh $(VENV)

# For a unit-level change: the checks, then the suite without the slow tests and those that
# need audio devices or a display (a missing reference package skips its tests here only).
test-fast: $(VENV)/.ready-test
	RVCLORA_TEST_FAST=1 bash scripts/run_tests.sh $(VENV) -m "not slow and not devices"

# Lint, types and the arrows between packages, without the suite.
check: $(VENV)/.ready-test
	bash scripts/check.sh $(VENV)

setup: $(VENV)/.ready-run
setup-test: $(VENV)/.ready-test

$(VENV)/.ready-run: pyproject.toml Makefile scripts/setup.sh
	bash scripts/setup.sh "$(PYTHON)" "$(VENV)" "$(TORCH_VERSION)" ".[onnx,gui,denoise]" "" $(APT_RUN)
	touch $@

$(VENV)/.ready-test: pyproject.toml Makefile scripts/setup.sh
	bash scripts/setup.sh "$(PYTHON)" "$(VENV)" "$(TORCH_VERSION)" ".[onnx,gui,denoise,test]" "$(RVC_REFERENCE)" $(APT_TEST)
	touch $@ $(VENV)/.ready-run

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
