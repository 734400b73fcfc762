#!/usr/bin/env bash
# Sets up .venv (scripts/setup.sh), lints, compiles the CUDA C++ kernels (nvcc, no GPU needed)
# and runs the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# CUDA C++: nvcc for sm_80 and sm_90a; fails on register spills or stack frames (no GPU needed)
if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then
  .venv/bin/python scripts/check_cuda.py
else
  echo "nvcc not found: the CUDA C++ kernels were not compiled (scripts/check_cuda.py)"
fi
.venv/bin/python -m pytest -q "$@"
