"""int4 family benchmark cases: W4A16 (greenops.int4_weight_mm, group 128) and its baselines
on one set of inputs: fp32 / bf16 torch.matmul, and torch's own int4 op (on CPU
_weight_int4pack_mm_for_cpu with bf16 activations; on CUDA tinygemm's _weight_int4pack_mm)."""

from __future__ import annotations

import torch

from .. import ops
from ..ops import _backend
from .core import Case, Shape

FAMILY = "int4"
GROUP = 128


def _usable(fn) -> bool:
    try:
        fn()
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        return False
    return True


def _torch_int4(w_packed_cpu: torch.Tensor, scales, zeros, N, K, device):
    """torch's int4 matmul on the same quantized weight, in torch's own layout. Its ops
    dequantize as (q - 8) * scale + zero_point, so zero_point = (8 - z) * s gives (q - z) * s
    (rounded to bf16, as torch keeps them)."""
    q = torch.stack([w_packed_cpu & 15, w_packed_cpu >> 4], -1).reshape(N, K).to(torch.int32)
    sz = torch.stack([scales, (8 - zeros) * scales], -1).transpose(0, 1).contiguous().bfloat16()
    if device == "cpu":
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
        return lambda xb: torch.ops.aten._weight_int4pack_mm_for_cpu(xb, packed, GROUP, sz)
    u8 = ((q[:, 0::2] << 4) | q[:, 1::2]).to(torch.uint8).to(device)
    packed = torch.ops.aten._convert_weight_to_int4pack(u8, 8)
    sz = sz.to(device)
    return lambda xb: torch.ops.aten._weight_int4pack_mm(xb, packed, GROUP, sz)


def cases(s: Shape, device: str) -> list[Case]:
    torch.manual_seed(0)
    M, N, K = s.M, s.N, s.K
    x = torch.randn(M, K, device=device)
    w = torch.randn(N, K, device=device)
    packed, scales, zeros = ops.quantize_int4(w, GROUP)
    xb, wb = x.bfloat16(), w.bfloat16()
    mac = 2 * M * N * K
    w4 = N * K // 2 + 2 * 4 * N * (K // GROUP)  # packed weight + fp32 scales and zeros

    def case(name, fn, act_bytes, w_bytes, out_bytes, peak, versus=None):
        wb_total = w4 if w_bytes is None else N * K * w_bytes
        return Case(
            FAMILY,
            f"{s}:{name}",
            fn,
            mac,
            M * K * act_bytes + wb_total + M * N * out_bytes,
            peak,
            baseline=versus is None,
            versus=versus,
        )

    torch_int4 = None
    try:
        torch_int4 = _torch_int4(packed.cpu(), scales.cpu(), zeros.cpu(), N, K, device)
    except (RuntimeError, NotImplementedError):
        pass
    out = [
        case("bf16_matmul", lambda: xb @ wb.T, 2, 2, 2, "bf16"),
        case(
            "greenops.int4_weight_mm_bf16",
            lambda: ops.int4_weight_mm(xb, packed, scales, zeros, GROUP),
            2,
            None,
            2,
            "bf16",
            "torch_int4" if torch_int4 else "bf16_matmul",
        ),
    ]
    if torch_int4 is not None:
        out.append(case("torch_int4", lambda: torch_int4(xb), 2, None, 2, "bf16"))
    if "int4_weight_mm" in _backend.CUDA_CPP and device != "cpu":
        # the CUDA C++ kernel; its prepacked layout is made once, by the warm-up call
        out.append(
            case(
                "greenops.int4_weight_mm_bf16[cuda]",
                lambda: ops.int4_weight_mm(xb, packed, scales, zeros, GROUP, backend="cuda"),
                2,
                None,
                2,
                "bf16",
                "torch_int4" if torch_int4 else "bf16_matmul",
            )
        )
    if device == "cpu":
        out += [
            case("fp32_matmul", lambda: x @ w.T, 4, 4, 4, "fp32"),
            case(
                "greenops.int4_weight_mm",
                lambda: ops.int4_weight_mm(x, packed, scales, zeros, GROUP),
                4,
                None,
                4,
                "fp32",
                "fp32_matmul",
            ),
        ]
    return [c for c in out if _usable(c.fn)]
