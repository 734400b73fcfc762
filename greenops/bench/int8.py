"""int8 family benchmark cases: greenops ops and their baselines on one set of inputs."""

from __future__ import annotations

import torch

from .. import _ext, ops
from ..ops import _backend
from .core import Case, Shape

FAMILY = "int8"


def _usable(fn) -> bool:
    """Some impls refuse some shapes (torch._int_mm on CUDA needs M > 16; the CUDA C++ int8_mm
    K % 16 == 0)."""
    try:
        fn()
    except (RuntimeError, NotImplementedError, ValueError):
        return False
    return True


def cases(s: Shape, device: str) -> list[Case]:
    torch.manual_seed(0)
    M, N, K = s.M, s.N, s.K
    x = torch.randn(M, K, device=device)
    w = torch.randn(N, K, device=device)
    a_q, a_s = ops.quantize_int8(x)
    w_q, w_s = ops.quantize_int8(w)
    xb, wb = x.bfloat16(), w.bfloat16()
    xh, wh = x.half(), w.half()
    mac = 2 * M * N * K

    def case(name, fn, act_bytes, w_bytes, out_bytes, peak, versus=None):
        """versus=None: a baseline; else ours, compared in the plot with that baseline."""
        return Case(
            FAMILY,
            f"{s}:{name}",
            fn,
            mac,
            M * K * act_bytes + N * K * w_bytes + M * N * out_bytes,
            peak,
            baseline=versus is None,
            versus=versus,
        )

    out = [
        case("bf16_matmul", lambda: xb @ wb.T, 2, 2, 2, "bf16"),
        case(
            "int_mm+scale",
            lambda: torch._int_mm(a_q, w_q.T).float() * a_s[:, None] * w_s,
            1,
            1,
            4,
            "int8",
        ),
        case(
            "greenops.int8_mm",
            lambda: ops.int8_mm(a_q, a_s, w_q, w_s),
            1,
            1,
            4,
            "int8",
            "int_mm+scale",
        ),
        case(
            "greenops.quantize+int8_mm",
            lambda: ops.int8_mm(*ops.quantize_int8(x), w_q, w_s, out_dtype=torch.bfloat16),
            4,
            1,
            2,
            "int8",
            "bf16_matmul",
        ),
        case(
            "greenops.int8_weight_mm_bf16",
            lambda: ops.int8_weight_mm(xb, w_q, w_s),
            2,
            1,
            2,
            "bf16",
            "bf16_matmul",
        ),
    ]
    if device == "cpu":
        out += [
            case("fp32_matmul", lambda: x @ w.T, 4, 4, 4, "fp32"),
            case(
                "greenops.int8_weight_mm",
                lambda: ops.int8_weight_mm(x, w_q, w_s),
                4,
                1,
                4,
                "fp32",
                "fp32_matmul",
            ),
        ]
        if M <= 16:  # torch's W8A16 CPU op: ~60x slower than fp32 at M=16, hours for big shapes
            out.append(
                case(
                    "weight_int8pack_mm",
                    lambda: torch.ops.aten._weight_int8pack_mm(x, w_q, w_s),
                    4,
                    1,
                    4,
                    "fp32",
                )
            )
    else:
        out += [
            case("fp16_matmul", lambda: xh @ wh.T, 2, 2, 2, "bf16"),
            case(
                "greenops.int8_weight_mm_fp16",
                lambda: ops.int8_weight_mm(xh, w_q, w_s),
                2,
                1,
                2,
                "bf16",
                "fp16_matmul",
            ),
            case(
                "weight_int8pack_mm",
                lambda: torch.ops.aten._weight_int8pack_mm(xb, w_q, w_s.bfloat16()),
                2,
                1,
                2,
                "bf16",
            ),
        ]
        if "int8_mm" in _backend.CUDA_CPP:  # the CUDA C++ kernel, beside Triton's
            out.append(
                case(
                    "greenops.int8_mm[cuda]",
                    lambda: ops.int8_mm(a_q, a_s, w_q, w_s, backend="cuda"),
                    1,
                    1,
                    4,
                    "int8",
                    "int_mm+scale",
                )
            )
            c = _ext.load()
            if c.int8_mm_cuda_kernel() == "wgmma":  # [cuda] is wgmma: mma.sync's time beside
                out.append(
                    case(
                        "greenops.int8_mm[cuda-mma]",
                        lambda: c.int8_mm_cuda(a_q, a_s, w_q, w_s, kernel="mma"),
                        1,
                        1,
                        4,
                        "int8",
                        "int_mm+scale",
                    )
                )
    return [c for c in out if _usable(c.fn)]
