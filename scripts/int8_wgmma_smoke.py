"""The wgmma int8_mm kernel alone, before the GPU suite (bench/gpu_check.sh runs this in its own
process: a fault in a new kernel would poison the CUDA context of the whole test run). Exact
integer products against a float64 matmul for a few shapes; exit 0 when they match or when this
GPU/build does not run the wgmma kernel, 1 when one is wrong (a crash exits non-zero too).

    python scripts/int8_wgmma_smoke.py
"""

from __future__ import annotations

import sys

import torch

from greenops import _ext


def main() -> int:
    c = _ext.load()
    if not (c.with_cuda and torch.cuda.is_available() and c.int8_mm_cuda_kernel() == "wgmma"):
        print("the wgmma kernel does not run here (needs a Hopper GPU and an sm_90a build)")
        return 0
    for M, N, K in [(1, 256, 128), (200, 300, 272), (1024, 1024, 4096)]:
        a = torch.randint(-128, 128, (M, K), dtype=torch.int8, device="cuda")
        w = torch.randint(-128, 128, (N, K), dtype=torch.int8, device="cuda")
        ones_m, ones_n = torch.ones(M, device="cuda"), torch.ones(N, device="cuda")
        got = c.int8_mm_cuda(a, ones_m, w, ones_n, kernel="wgmma").cpu().double()
        ref = a.cpu().double() @ w.cpu().double().T  # exact; the fp32 output rounds past 2^24
        ok = torch.allclose(got, ref, rtol=1e-6, atol=0)
        err = (got - ref).abs().max().item()
        print(f"M={M} N={N} K={K}: {'ok' if ok else 'WRONG'} (max error {err})")
        if not ok:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
