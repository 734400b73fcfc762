#!/usr/bin/env bash
# `make cuda-ext`: builds greenops with its CUDA kernels against a CUDA build of torch in a
# separate venv (so the CPU .venv's in-place extension is untouched), from a copy of the
# working tree, then imports it with no GPU: the bindings compile, link and load here.
#   bash scripts/build_cuda_ext.sh [VENV] [TORCH_SPEC] [ARCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-cuda}
TORCH_SPEC=${2:-torch==2.14.1}
ARCHS=${3:-8.0;9.0a}
if [ ! -x "$VENV/bin/python" ]; then "${PYTHON:-python3}" -m venv "$VENV"; fi
PY="$VENV/bin/python"
pip_q() { "$PY" -m pip install --quiet --disable-pip-version-check "$@"; }
pip_q --upgrade pip "setuptools>=64" wheel
# exact pin: here pip takes the cu130 build from local disk
"$PY" -c "import torch, sys; sys.exit(torch.version.cuda is None)" 2>/dev/null || pip_q "$TORCH_SPEC"
pip_q numpy ninja pybind11
# torch guesses CUDA_HOME from nvcc's path; /usr/local/bin/nvcc would give /usr/local (no headers)
if [ -z "${CUDA_HOME:-}" ] && [ -d /usr/local/cuda/include ]; then export CUDA_HOME=/usr/local/cuda; fi
SRC=build/cuda-ext/src
rm -rf "$SRC" && mkdir -p "$SRC"
git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$SRC"
( cd "$SRC" && GREENOPS_CUDA=1 TORCH_CUDA_ARCH_LIST="$ARCHS" MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
    "$OLDPWD/$PY" -m pip install --quiet --no-build-isolation --no-deps . )
cd build/cuda-ext  # away from the source tree: import the installed package
CUDA_VISIBLE_DEVICES="" "$OLDPWD/$PY" - <<'PYEOF'
import torch, greenops
from greenops import _ext
C = _ext.load()
assert C.with_cuda and "int8_mm" in C.cuda_kernels, (C.with_cuda, C.cuda_kernels)
print(f"greenops {greenops.__version__} on torch {torch.__version__}: with_cuda={C.with_cuda}, "
      f"archs {C.cuda_archs}, CUDA C++ kernels {C.cuda_kernels}, GPU visible: {torch.cuda.is_available()}")
q, s = greenops.quantize_int8(torch.randn(4, 64))
print("CPU op through the CUDA build:", greenops.int8_mm(q, s, q, s).shape)
PYEOF
