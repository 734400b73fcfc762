#!/usr/bin/env bash
# Creates (or reuses) .venv with the CPU build of torch 2.13.0 and builds greenops into it.
# Safe to run again: it installs only what is missing and rebuilds only changed sources.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
PY=.venv/bin/python
pip_q() { "$PY" -m pip install --quiet --disable-pip-version-check "$@"; }
pip_q --upgrade pip "setuptools>=77" wheel build
# Exactly torch==2.13.0: here pip takes its CPU build from local disk. Never leave torch to a
# resolver ("torch" or a range): that pulls a multi-GB CUDA build.
if ! "$PY" -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  pip_q torch==2.13.0
fi
pip_q triton==3.9.0 numpy nvidia-ml-py pybind11 ninja pytest pytest-benchmark hypothesis ruff matplotlib scipy safetensors transformers prometheus_client
# --no-build-isolation: build against the torch above (isolation would download another one).
MAX_JOBS="${MAX_JOBS:-$(nproc)}" pip_q --no-build-isolation -e ".[dev]"
