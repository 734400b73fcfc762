#!/usr/bin/env bash
# The one-command GPU check (docs/benchmarks.md):
#   bash bench/gpu_check.sh OUT_DIR [--quick] [--dry]
# On a bare GPU machine (python3 with a CUDA torch and Triton, nvcc, pytest; no network) it
# builds greenops with CUDA, smoke-tests the wgmma int8 kernel alone, runs the CUDA tests, times
# every op family and backend against the baselines (triton.testing.do_bench medians) with the
# ceilings (device copy, bf16 cuBLAS at 8192^3) and energy per op (NVML's counter, read-only)
# measured in the same run, writes build.log, wgmma_smoke.txt, pytest.txt, results.json,
# results.md, speedup.png and cuda_auto.json into OUT_DIR, and prints the table last.
# --quick: small shapes, short timings, fixed Triton configs (< 3 min). --dry: check the
# environment and print the plan, build and run nothing.
# It never changes the GPU's settings: GREENOPS_POWER_DRY_RUN=1 is set for everything.
set -uo pipefail
OUT=${1:?usage: bash bench/gpu_check.sh OUT_DIR [--quick] [--dry]}
shift
QUICK=0
DRY=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --dry) DRY=1 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
export GREENOPS_POWER_DRY_RUN=1 PYTHONUNBUFFERED=1
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0a}"  # the lent GPUs are Hopper
PY="${PYTHON:-python3}"
# torch guesses CUDA_HOME from nvcc's path; a /usr/local/bin/nvcc would give /usr/local
if [ -z "${CUDA_HOME:-}" ] && [ -d /usr/local/cuda/include ]; then export CUDA_HOME=/usr/local/cuda; fi
step() { echo "== $(date +%T) $*"; }

step "environment"
if ! "$PY" - <<'PYEOF'; then
import importlib.util, sys
import torch
mods = {m: importlib.util.find_spec(m) is not None
        for m in ("triton", "pytest", "pynvml", "matplotlib", "pybind11", "ninja")}
print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda})")
print("modules:", ", ".join(f"{m}={'yes' if ok else 'NO'}" for m, ok in mods.items()))
gpu = torch.cuda.is_available()
print("GPU:", torch.cuda.get_device_name() if gpu else "none visible")
sys.exit(0 if gpu and torch.version.cuda and all(mods.values()) else 1)
PYEOF
  echo "environment check failed: needs a CUDA GPU, a CUDA torch and the modules above" >&2
  [ "$DRY" = 1 ] || exit 1
fi
if command -v nvcc >/dev/null; then nvcc --version | tail -n 1; else echo "nvcc: not found"; fi

SHAPES=llm
OPS=int8,int4,bsr
BENCH_FLAGS=()
# --quick: fixed Triton configs, no tuning (each new shape would time up to a dozen candidates)
if [ "$QUICK" = 1 ]; then SHAPES=small; BENCH_FLAGS=(--quick --no-energy); export GREENOPS_TRITON_AUTOTUNE=0; fi
cat <<PLAN
plan:
  1. build   $PY -m pip install --no-build-isolation --no-deps -e .   (MAX_JOBS=$MAX_JOBS, archs $TORCH_CUDA_ARCH_LIST) > $OUT/build.log
     then \`greenops power status --json\` > $OUT/power_status.json (NVML and RAPL, read only)
  2. smoke   the wgmma int8_mm kernel alone (a failure sets GREENOPS_CUDA_WGMMA=0 for 3-4) > $OUT/wgmma_smoke.txt
  3. test    $PY -m pytest -m cuda -q tests > $OUT/pytest.txt
  4. bench   $PY -m greenops bench --device cuda --ops $OPS --shapes $SHAPES ${BENCH_FLAGS[*]} --json $OUT/results.json --markdown $OUT/results.md --plot $OUT/speedup.png
PLAN
[ "$DRY" = 1 ] && exit 0

step "build"
if ! "$PY" -m pip install --no-build-isolation --no-deps -e . >"$OUT/build.log" 2>&1; then
  tail -n 40 "$OUT/build.log"
  echo "build failed (full log: $OUT/build.log)" >&2
  exit 1
fi
"$PY" -m greenops info
# Every energy domain this host has, read only: NVML per GPU beside the host's RAPL (CPU
# packages, DRAM) where readable, else the labelled estimate
"$PY" -m greenops power status --json >"$OUT/power_status.json" 2>&1 || true
"$PY" -m greenops power status || true

# The wgmma int8_mm kernel first, alone, in its own process: a fault there would poison the
# CUDA context of the whole test run. If it fails, "auto" keeps to mma.sync for the rest
# (GREENOPS_CUDA_WGMMA=0; the tests then skip wgmma, saying so) and the result says why.
step "int8_mm wgmma smoke test"
SMOKE_RC=0
if timeout 120 "$PY" scripts/int8_wgmma_smoke.py >"$OUT/wgmma_smoke.txt" 2>&1; then
  cat "$OUT/wgmma_smoke.txt"
else
  tail -n 20 "$OUT/wgmma_smoke.txt"
  echo "wgmma smoke test FAILED: GREENOPS_CUDA_WGMMA=0 for the tests and the benchmark" >&2
  export GREENOPS_CUDA_WGMMA=0
  SMOKE_RC=1
fi

step "CUDA tests"
"$PY" -m pytest -m cuda -q -p no:cacheprovider tests >"$OUT/pytest.txt" 2>&1
TEST_RC=$?
tail -n 15 "$OUT/pytest.txt"

step "benchmarks"
"$PY" -m greenops bench --device cuda --ops "$OPS" --shapes "$SHAPES" "${BENCH_FLAGS[@]}" \
  --json "$OUT/results.json" --markdown "$OUT/results.md" --plot "$OUT/speedup.png" >/dev/null
BENCH_RC=$?
# the measured backend table (CUDA C++ vs Triton per op and M): copy into greenops/ops/ to use
[ -f "$OUT/results.json" ] && "$PY" scripts/cuda_auto_table.py "$OUT/results.json" \
  --out "$OUT/cuda_auto.json" >/dev/null 2>&1 || true

step "results (wgmma smoke rc=$SMOKE_RC, tests rc=$TEST_RC, bench rc=$BENCH_RC)"
[ -f "$OUT/results.md" ] && cat "$OUT/results.md"
[ "$SMOKE_RC" = 0 ] && [ "$TEST_RC" = 0 ] && [ "$BENCH_RC" = 0 ]
