"""int8 ops against float64 references, on every backend this machine can run: the C++ CPU
kernels on each ISA path the CPU supports, and the Triton kernels (under the interpreter on CPU,
natively on a GPU)."""

import pytest
import torch
from numerics import assert_close_to_ref, cpu_isas, sqnr_db

import greenops

# --- references ------------------------------------------------------------------------------


def quantize_int8_ref(x: torch.Tensor, dim: int = -1):
    """The contract in fp32 (what every backend computes): exact, so compared with equality."""
    xf = x.float()
    zero = xf.new_zeros(xf.shape[: dim % xf.dim()] + (1,) + xf.shape[dim % xf.dim() + 1 :])
    amax = torch.cat([xf.abs(), zero], dim).amax(dim=dim, keepdim=True)  # amax of nothing is 0
    scale = amax.clamp_min(1e-12) / 127
    q = torch.round(xf / scale).clamp(-127, 127)  # torch.round: half to even
    bad = ~torch.isfinite(xf).all(dim=dim, keepdim=True)
    scale = torch.where(bad, torch.nan, scale)
    q = torch.where(bad, 0, q).to(torch.int8)
    return q, scale.squeeze(dim)


def int8_mm_ref(a_q, a_scale, w_q, w_scale, bias=None):
    out = (a_q.double() @ w_q.double().T) * a_scale.double()[..., None] * w_scale.double()
    return out if bias is None else out + bias.double()


def int8_mm_torch(a_q, a_scale, w_q, w_scale, bias, dtype):
    """torch's own way, for the low-precision error rule: exact int matmul, fp32 scaling, cast."""
    out = (a_q.double() @ w_q.double().T).float() * a_scale[..., None] * w_scale
    return (out if bias is None else out + bias.float()).to(dtype)


def int8_weight_mm_ref(x, w_q, w_scale, bias=None):
    out = x.double() @ (w_q.double() * w_scale.double()[:, None]).T
    return out if bias is None else out + bias.double()


def int8_weight_mm_torch(x, w_q, w_scale, bias):
    w = (w_q.float() * w_scale[:, None]).to(x.dtype)
    out = x @ w.T
    return out if bias is None else out + bias.to(x.dtype)


# Backends: the `impl` fixture (tests/ops/conftest.py).

# (M, K, N). CPU paths switch at M = 4|5 (int8_mm: own VNNI kernel | our panel GEMM where K is a
# multiple of 64 (AMX tiles, or vpdpbusd without AMX), else oneDNN + own epilogue) and, for
# int8_weight_mm with bf16 x, at M = 1|2 (AMX) or 16|17 (vdpbf16ps) where K is a multiple of 32
# (fused kernel | the bf16 panel GEMM); above M = 32 the rest go to tiled dequant + GEMM. K < 16
# and odd sizes exercise masked tails.
SHAPES = [
    (0, 16, 8),
    (1, 7, 13),
    (1, 64, 4),
    (3, 1, 5),
    (4, 128, 64),
    (5, 65, 33),
    (17, 3, 9),
    (32, 130, 17),
    (33, 65, 129),
    (257, 130, 511),
    (20, 70, 192),
    (48, 96, 64),  # bf16 panel GEMM (K a multiple of 32)
    # the int8 panel GEMMs: a short last panel (N % 32) and group of rows (12 without AMX, 16 on it)
    (5, 64, 40),
    (20, 192, 70),
    (37, 256, 33),
    (40, 0, 6),  # K = 0: an all-bias (or zero) output on every path
]


def _randn(*shape, dtype=torch.float32, device="cpu"):
    return torch.randn(*shape, dtype=torch.float32).to(dtype=dtype, device=device)


# --- quantize_int8 ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    "shape,dim",
    [
        ((0, 5), -1),
        ((1, 7), -1),
        ((33, 129), -1),
        ((4, 3, 40), 1),
        ((65, 9), 0),
        ((2, 9000), -1),
        ((3, 0), -1),
    ],
)
def test_quantize_int8_matches_contract(impl, dtype, shape, dim):
    backend, device = impl
    x = _randn(*shape, dtype=dtype, device=device) * 3
    if x.numel():
        x.view(-1)[0] = 0.5 * x.view(-1)[0].sign() * x.abs().max()  # ties: x/scale = +-63.5
    q, scale = greenops.quantize_int8(x, dim, backend=backend)
    q_ref, scale_ref = quantize_int8_ref(x.cpu(), dim)
    assert q.dtype == torch.int8 and scale.dtype == torch.float32
    assert q.is_contiguous()
    assert torch.equal(scale.cpu(), scale_ref)
    assert torch.equal(q.cpu(), q_ref)


def test_quantize_int8_rounds_half_to_even(impl):
    backend, device = impl
    # amax 127 -> scale 1 exactly: x / scale are the values themselves.
    x = torch.tensor([[0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 127.0]], device=device)
    q, scale = greenops.quantize_int8(x, backend=backend)
    assert scale.item() == 1.0
    assert q.cpu().tolist() == [[0, 2, 2, 0, -2, -2, 126, 127]]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_quantize_int8_nonfinite_poisons_its_row(impl, bad):
    backend, device = impl
    x = _randn(4, 70, device=device)
    x[1, 37] = bad
    q, scale = greenops.quantize_int8(x, backend=backend)
    assert torch.isnan(scale[1]) and (q[1] == 0).all()
    assert torch.isfinite(scale[[0, 2, 3]]).all()
    q_ref, s_ref = quantize_int8_ref(x.cpu())
    assert torch.equal(q.cpu(), q_ref)
    w_q, w_s = greenops.quantize_int8(_randn(6, 70, device=device), backend=backend)
    out = greenops.int8_mm(q, scale, w_q, w_s, backend=backend)
    assert torch.isnan(out[1]).all() and torch.isfinite(out[[0, 2, 3]]).all()


def test_quantize_int8_all_zero_row(impl):
    backend, device = impl
    q, scale = greenops.quantize_int8(torch.zeros(2, 33, device=device), backend=backend)
    assert (q == 0).all() and torch.allclose(scale.cpu(), torch.full((2,), 1e-12 / 127))


# --- int8_mm ---------------------------------------------------------------------------------


@pytest.mark.parametrize("K", [1, 7, 64, 1000])
def test_int8_mm_integer_accumulation_is_exact(impl, K):
    backend, device = impl
    g = torch.Generator().manual_seed(K)
    M, N = 19, 37
    a = torch.randint(-128, 128, (M, K), generator=g, dtype=torch.int8)
    w = torch.randint(-128, 128, (N, K), generator=g, dtype=torch.int8)
    a[0] = -128  # worst case for offset / sign tricks in the SIMD paths
    w[0] = -128
    ones_m, ones_n = torch.ones(M), torch.ones(N)
    # |acc| <= 128 * 128 * 1000 < 2**24: exactly representable in the fp32 output.
    out = greenops.int8_mm(
        a.to(device), ones_m.to(device), w.to(device), ones_n.to(device), backend=backend
    )
    assert torch.equal(out.cpu(), (a.long() @ w.long().T).float())


@pytest.mark.parametrize("M,K,N", SHAPES)
@pytest.mark.parametrize("out_dtype", [None, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("bias_dtype", [None, torch.float32, torch.bfloat16])
def test_int8_mm_matches_reference(impl, M, K, N, out_dtype, bias_dtype):
    backend, device = impl
    a_q, a_s = greenops.quantize_int8(_randn(M, K, device=device), backend=backend)
    w_q, w_s = greenops.quantize_int8(_randn(N, K, device=device), backend=backend)
    bias = None if bias_dtype is None else _randn(N, dtype=bias_dtype, device=device)
    out = greenops.int8_mm(a_q, a_s, w_q, w_s, bias, out_dtype, backend=backend)
    assert out.shape == (M, N) and out.dtype == (out_dtype or torch.float32)
    args = [t.cpu() if t is not None else None for t in (a_q, a_s, w_q, w_s, bias)]
    assert_close_to_ref(out.cpu(), int8_mm_ref(*args), int8_mm_torch(*args, out.dtype))


def test_int8_mm_batch_dims_and_strided_inputs(impl):
    backend, device = impl
    a_q, a_s = greenops.quantize_int8(_randn(2, 3, 5, 40, device=device), backend=backend)
    w_q, w_s = greenops.quantize_int8(_randn(40, 22, device=device).T, backend=backend)
    out = greenops.int8_mm(a_q, a_s, w_q, w_s, backend=backend)
    assert out.shape == (2, 3, 5, 22)
    ref = int8_mm_ref(a_q.cpu(), a_s.cpu(), w_q.cpu(), w_s.cpu())
    assert_close_to_ref(out.cpu(), ref)
    # Non-contiguous views of the same values give the same result.
    a_t = a_q.reshape(30, 40).T.contiguous().T  # column-major [30, 40]
    w_wide = torch.zeros(22, 80, dtype=torch.int8, device=device)
    w_wide[:, ::2] = w_q
    out2 = greenops.int8_mm(a_t, a_s.reshape(30), w_wide[:, ::2], w_s, backend=backend)
    assert not a_t.is_contiguous() and not w_wide[:, ::2].is_contiguous()
    assert torch.equal(out2.reshape(out.shape), out)


@pytest.mark.parametrize("isa", cpu_isas())
def test_panel_gemms_across_blocks_of_x(isa):
    """Rows of x past the panel GEMMs' first block of packed x (1 MiB): each block meets every
    panel, in int8_mm and in int8_weight_mm (bf16 x)."""
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(300, 4096, generator=g), torch.randn(40, 4096, generator=g)
    bias = torch.randn(40, generator=g)
    a_q, a_s = greenops.quantize_int8(x)
    w_q, w_s = greenops.quantize_int8(w)
    xb = x.bfloat16()
    with greenops.use_cpu_isa(isa):
        out = greenops.int8_mm(a_q, a_s, w_q, w_s, bias)
        out_w = greenops.int8_weight_mm(xb, w_q, w_s, bias)
    assert_close_to_ref(out, int8_mm_ref(a_q, a_s, w_q, w_s, bias))
    ref_w = int8_weight_mm_ref(xb, w_q, w_s, bias)
    assert_close_to_ref(out_w, ref_w, int8_weight_mm_torch(xb, w_q, w_s, bias))


def test_int8_mm_sqnr_on_gaussian_data(impl):
    backend, device = impl
    x, w = _randn(64, 512, device=device), _randn(256, 512, device=device)
    a_q, a_s = greenops.quantize_int8(x, backend=backend)
    w_q, w_s = greenops.quantize_int8(w, backend=backend)
    out = greenops.int8_mm(a_q, a_s, w_q, w_s, backend=backend)
    assert sqnr_db(x.cpu().double() @ w.cpu().double().T, out.cpu()) >= 30


# --- int8_weight_mm --------------------------------------------------------------------------


@pytest.mark.parametrize("M,K,N", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("with_bias", [False, True])
def test_int8_weight_mm_matches_reference(impl, M, K, N, dtype, with_bias):
    backend, device = impl
    x = _randn(M, K, dtype=dtype, device=device)
    w_q, w_s = greenops.quantize_int8(_randn(N, K, device=device), backend=backend)
    bias = _randn(N, dtype=dtype, device=device) if with_bias else None
    out = greenops.int8_weight_mm(x, w_q, w_s, bias, backend=backend)
    assert out.shape == (M, N) and out.dtype == dtype
    args = [t.cpu() if t is not None else None for t in (x, w_q, w_s, bias)]
    assert_close_to_ref(out.cpu(), int8_weight_mm_ref(*args), int8_weight_mm_torch(*args))


def test_int8_weight_mm_batch_dims_and_strided_x(impl):
    backend, device = impl
    x = _randn(3, 40, 4, device=device).transpose(1, 2)  # [3, 4, 40], non-contiguous
    w_q, w_s = greenops.quantize_int8(_randn(9, 40, device=device), backend=backend)
    out = greenops.int8_weight_mm(x, w_q, w_s, backend=backend)
    assert out.shape == (3, 4, 9)
    assert_close_to_ref(out.cpu(), int8_weight_mm_ref(x.cpu(), w_q.cpu(), w_s.cpu()))


def test_int8_weight_mm_backward():
    x = torch.randn(2, 5, 24, requires_grad=True)
    bias = torch.randn(7, requires_grad=True)
    w_q, w_s = greenops.quantize_int8(torch.randn(7, 24))
    out = greenops.int8_weight_mm(x, w_q, w_s, bias)
    g = torch.randn_like(out)
    out.backward(g)
    x2, b2 = x.detach().clone().requires_grad_(), bias.detach().clone().requires_grad_()
    (x2 @ (w_q.float() * w_s[:, None]).T + b2).backward(g)
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bias.grad, b2.grad, rtol=1e-5, atol=1e-5)


# --- bad input: a clear error naming the problem, on every backend and in the fake impl -------


def _bad_cases(device):
    a_q = torch.randint(-127, 128, (4, 16), dtype=torch.int8, device=device)
    a_s = torch.rand(4, device=device)
    w_q = torch.randint(-127, 128, (8, 16), dtype=torch.int8, device=device)
    w_s = torch.rand(8, device=device)
    return [
        (
            "int8_mm",
            (a_q.float(), a_s, w_q, w_s),
            TypeError,
            "a_q must be torch.int8, got torch.float32",
        ),
        ("int8_mm", (a_q, a_s, w_q[:, :15], w_s), ValueError, "has K=16 but w_q has K=15"),
        ("int8_mm", (a_q, a_s[:3], w_q, w_s), ValueError, r"a_scale must have shape \[4\]"),
        ("int8_mm", (a_q, a_s.half(), w_q, w_s), TypeError, "a_scale must be torch.float32"),
        ("int8_mm", (a_q, a_s, w_q, w_s[:7]), ValueError, r"w_scale must have shape \[8\]"),
        ("int8_mm", (a_q, a_s, w_q, w_s.double()), TypeError, "w_scale must be torch.float32"),
        ("int8_mm", (a_q, a_s, w_q, w_s, w_s[:5]), ValueError, r"bias must have shape \[8\]"),
        ("int8_mm", (a_q, a_s, w_q, w_s, None, torch.int32), TypeError, "out_dtype must be"),
        ("int8_mm", (a_q, a_s, w_q.unsqueeze(0), w_s), ValueError, "w_q must be 2-D"),
        ("int8_weight_mm", (a_q, w_q, w_s), TypeError, "x must be torch.float32 or"),
        (
            "int8_weight_mm",
            (a_s.reshape(4, 1).expand(4, 16), w_q.float(), w_s),
            TypeError,
            "w_q must be torch.int8",
        ),
        ("int8_weight_mm", (torch.rand(4, 17, device=device), w_q, w_s), ValueError, "has K=17"),
        ("quantize_int8", (a_q,), TypeError, "x must be torch.float32 or"),
        ("quantize_int8", (a_s, 2), IndexError, "out of range"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_cases("cpu"))))
def test_bad_input_gets_a_clear_error(impl, case):
    backend, device = impl
    op, args, exc, match = _bad_cases(device)[case]
    with pytest.raises(exc, match=match):
        getattr(greenops, op)(*args, backend=backend)


@pytest.mark.parametrize("case", range(len(_bad_cases("cpu"))))
def test_bad_input_in_fake_impl(case):
    op, args, exc, match = _bad_cases("meta")[case]
    with pytest.raises(exc, match=match):
        getattr(torch.ops.greenops, op)(*args)


def test_tensors_on_different_devices_are_rejected():
    a_q = torch.zeros(4, 16, dtype=torch.int8)
    w_q = torch.zeros(8, 16, dtype=torch.int8, device="meta")
    with pytest.raises(ValueError, match="one device; got a_q on cpu and w_q on meta"):
        greenops.int8_mm(a_q, torch.ones(4), w_q, torch.ones(8))


# --- backend choice --------------------------------------------------------------------------


def test_backend_choice_is_explicit(monkeypatch):
    x = torch.randn(3, 8)
    with pytest.raises(ValueError, match="unknown backend 'fast'"):
        greenops.quantize_int8(x, backend="fast")
    with pytest.raises(greenops.BackendError, match="CUDA C\\+\\+ backend needs CUDA tensors"):
        greenops.quantize_int8(x, backend="cuda")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(greenops.BackendError, match="TRITON_INTERPRET=1"):
        greenops.quantize_int8(x, backend="triton")
    with greenops.use_backend("cpp"):
        assert greenops.current_backend() == "cpp"
        greenops.quantize_int8(x)
    assert greenops.current_backend() == "auto"


def test_use_cpu_isa_rejects_unknown_path():
    with pytest.raises(ValueError, match="unknown CPU ISA path"):
        with greenops.use_cpu_isa("sse9"):
            pass


# --- torch.library integration: opcheck, compile, export (C++ CPU backend here; Triton and
# CUDA on a GPU, since fake tracing of an interpreted kernel touches data pointers) ----------


def _samples(device):
    g = torch.Generator().manual_seed(0)
    a_q = torch.randint(-127, 128, (2, 3, 40), generator=g, dtype=torch.int8).to(device)
    w_q = torch.randint(-127, 128, (24, 40), generator=g, dtype=torch.int8).to(device)
    a_s, w_s = torch.rand(2, 3, device=device), torch.rand(24, device=device)
    x = torch.randn(5, 40, device=device)
    return [
        ("quantize_int8", (x, -1)),
        ("quantize_int8", (x.bfloat16(), 0)),
        ("int8_mm", (a_q, a_s, w_q, w_s)),
        ("int8_mm", (a_q, a_s, w_q, w_s, torch.randn(24, device=device), torch.bfloat16)),
        ("int8_weight_mm", (x, w_q, w_s)),
        ("int8_weight_mm", (x.clone().requires_grad_(), w_q, w_s, torch.randn(24, device=device))),
    ]


def _opcheck(device):
    for op, args in _samples(device):
        torch.library.opcheck(getattr(torch.ops.greenops, op).default, args)


def _compile_check(device):
    def f(x, w):
        a_q, a_s = greenops.quantize_int8(x)
        w_q, w_s = greenops.quantize_int8(w)
        return greenops.int8_mm(
            a_q, a_s, w_q, w_s, out_dtype=torch.bfloat16
        ), greenops.int8_weight_mm(torch.relu(x), w_q, w_s)

    x, w = torch.randn(2, 7, 48, device=device), torch.randn(20, 48, device=device)
    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True)
    for got, want in zip(compiled(x, w), f(x, w), strict=True):
        assert torch.equal(got, want)


def test_opcheck_cpu():
    _opcheck("cpu")


def test_torch_compile_fullgraph_cpu():
    _compile_check("cpu")


def test_torch_export_cpu():
    class M(torch.nn.Module):
        def forward(self, x, w_q, w_s):
            a_q, a_s = greenops.quantize_int8(x)
            return greenops.int8_mm(a_q, a_s, w_q, w_s)

    w_q, w_s = greenops.quantize_int8(torch.randn(16, 32))
    x = torch.randn(4, 32)
    ep = torch.export.export(M(), (x, w_q, w_s))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert {"greenops.quantize_int8.default", "greenops.int8_mm.default"} <= targets
    assert torch.equal(ep.module()(x, w_q, w_s), M()(x, w_q, w_s))


@pytest.mark.cuda
def test_opcheck_cuda():
    _opcheck("cuda")


@pytest.mark.cuda
def test_torch_compile_fullgraph_cuda():
    _compile_check("cuda")
