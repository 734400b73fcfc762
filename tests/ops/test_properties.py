"""Property-based tests of every op and its backward (hypothesis): random shapes with 0 in every
dimension, leading batch dims, dtypes, strided inputs, ISA paths and backends, and magnitudes
from tiny to near the dtype's limits, against float64 references written here from the ops'
documented math (docs/kernels.md). The project's own fuzzing, made durable: a fixed,
bounded example count per test in CI (derandomized: the same examples every run);
GREENOPS_FUZZ_EXAMPLES=N runs more. Hostile index formats are test_edge_cases.py's.

Error model, per output element (fp64): |out - ref| <= 2 * (u * S + v * X) + the output's own
rounding, where S = sum |terms| (|x| @ |w|.T, + |bias|), u the relative error of the path (fp32
sums; the weight rounded to a 16-bit x's dtype on the large-M paths, fp16's subnormal floor
included), and X = max|x of the row| * sum |w| for the int4 fixed-point path (x held to 24 bits
(fp32) or 16 bits (fp16/bf16) of its 32-element block's max). Where the exact result passes
the output dtype's range, the output must be the infinity of its sign."""

import math
import os

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from numerics import HAS_CUDA, cpu_isas

import greenops
from greenops.sparse import BlockSparseWeight

EXAMPLES = int(os.environ.get("GREENOPS_FUZZ_EXAMPLES", "0")) or None
DEVICE = "cuda" if HAS_CUDA else "cpu"
FLOATS = [torch.float32, torch.float16, torch.bfloat16]
ISAS = cpu_isas()


def fuzz(n_cpp: int):
    """settings for one property: n_cpp examples (fewer where the Triton interpreter runs)."""
    return settings(
        max_examples=EXAMPLES or n_cpp,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@st.composite
def backends(draw, amx=False):
    """("cpp", isa) or ("triton", None): the Triton kernels under the interpreter (small
    shapes only) or natively on a GPU."""
    isas = [i for i in ISAS if amx or i != "avx512_amx"]
    return draw(st.sampled_from([("cpp", i) for i in isas] + [("triton", None)]))


def run_on(backend, fn):
    name, isa = backend
    if name == "cpp":
        with greenops.use_cpu_isa(isa):
            return fn("cpp", "cpu")
    return fn("triton", DEVICE)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def floats(shape, dtype, exp, g, strided=False):
    """Gaussian values times 2**exp in `dtype` (clamped to its range), optionally as a strided
    view (every other column of a wider tensor)."""
    lim = torch.finfo(dtype).max
    t = torch.randn(*shape[:-1], shape[-1] * (2 if strided else 1), generator=g) * 2.0**exp
    t = t.clamp(-lim, lim).to(dtype)
    return t[..., ::2] if strided else t


def eps(dtype):
    return {torch.float32: 2.0**-24, torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}[dtype]


def ulps(backend, dtype):
    """Output rounding in units of half an ulp: 2 for bf16 from the Triton interpreter, which
    truncates fp32 -> bf16 (measured: every output equals its fp32 value truncated; a GPU
    rounds to nearest); 1 otherwise."""
    return 2 if backend[0] == "triton" and not HAS_CUDA and dtype == torch.bfloat16 else 1


def assert_within(out, ref, tol, dtype, rounding=1):
    """out (in `dtype`) against the fp64 ref with bound tol (fp64, per element) plus the
    output's rounding (`rounding` half-ulps); an exact result past the dtype's range must come
    out as that inf."""
    assert out.shape == ref.shape and out.dtype == dtype, (out.shape, ref.shape, out.dtype)
    if ref.numel() == 0:
        return
    o, r = out.double().cpu(), ref.double().cpu()
    fi = torch.finfo(dtype)
    spacing = fi.smallest_normal * fi.eps  # a subnormal step of the output dtype
    bound = tol.cpu() + rounding * (r.abs() * eps(dtype) + spacing)
    over = (r.abs() - bound) > fi.max  # must overflow
    near = (r.abs() + bound) > fi.max  # may overflow
    bad = torch.where(
        over,
        o != torch.sign(r) * torch.inf,
        ~(((o - r).abs() <= bound) | (near & (o == torch.sign(r) * torch.inf))),
    )
    if bad.any():
        i = tuple(torch.nonzero(bad)[0].tolist())
        raise AssertionError(
            f"{int(bad.sum())} of {bad.numel()} outside the bound; first at {i}: out {o[i]!r}, "
            f"ref {r[i]!r}, bound {bound[i]!r}"
        )


def rows(t):
    """t [..., L] as [rows, L] (reshape(-1, L) is ambiguous when L = 0)."""
    return t.reshape(math.prod(t.shape[:-1]), t.shape[-1])


def mm_tol(x, w, bias, u, v=0.0, floor=0.0):
    """2 (u S + v X + floor sum|x|) per output: S = |x| @ |w|.T + |bias|, X = rowmax|x| sum|w|."""
    ax, aw = rows(x.double().abs()), w.double().abs()
    t = u * (ax @ aw.T)
    if bias is not None:
        t = t + u * bias.double().abs()
    if v and ax.shape[-1]:
        t = t + v * ax.amax(-1, keepdim=True) * aw.sum(-1)
    if floor:
        t = t + floor * ax.sum(-1, keepdim=True)
    return (2 * t).reshape(*x.shape[:-1], w.shape[0])


def bias_check(db, dy, dtype):
    """d(bias) = the column sums of dY (fp32 sums, then bias's dtype)."""
    d2 = rows(dy.double())
    tol = 2 * (d2.shape[0] + 4) * 2.0**-24 * d2.abs().sum(0)
    assert_within(db, d2.sum(0), tol, dtype)


def path_u(dtype, K):
    """The relative error of a weight-only path: fp32 sums, and a 16-bit x's weight tiles."""
    return (K + 4) * 2.0**-24 + (0.0 if dtype == torch.float32 else eps(dtype))


# --- shapes ----------------------------------------------------------------------------------

dims = st.integers(0, 3) | st.integers(4, 70)  # 0 and tiny sizes often; past 16/32/64 too
batch = st.lists(st.integers(0, 3), min_size=0, max_size=2)


def triton_small(backend, *sizes):
    """The interpreter runs Triton on CPU slowly: keep its shapes small."""
    return backend[0] != "triton" or HAS_CUDA or all(s <= 40 for s in sizes)


# --- int8 --------------------------------------------------------------------------------------


def quantize_int8_ref(x, dim):
    """scale = max(amax, 1e-12) / 127, q = clamp(round_half_even(x / scale), -127, 127) in
    fp32; a slice with NaN/Inf gets scale NaN and q = 0."""
    xf = x.float().movedim(dim, -1)
    amax = xf.abs().amax(-1) if xf.shape[-1] else torch.zeros(xf.shape[:-1])  # of nothing: 0
    s = amax.clamp_min(1e-12) / 127
    bad = ~torch.isfinite(xf).all(-1)
    q = torch.where(bad[..., None], 0, torch.round(xf / s[..., None]).clamp(-127, 127))
    return q.to(torch.int8).movedim(-1, dim), torch.where(bad, torch.nan, s)


@fuzz(60)
@given(
    backend=backends(),
    shape=st.lists(st.integers(0, 40), min_size=1, max_size=3),
    dtype=st.sampled_from(FLOATS),
    exp=st.integers(-60, 60),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_quantize_int8_bit_for_bit(backend, shape, dtype, exp, seed, data):
    assume(backend[0] != "triton" or HAS_CUDA or math.prod(shape) <= 4096)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = floats(shape, dtype, exp, gen(seed))
    q, s = run_on(backend, lambda b, d: greenops.quantize_int8(x.to(d), dim, backend=b))
    rq, rs = quantize_int8_ref(x, dim)
    assert torch.equal(q.cpu(), rq) and torch.equal(s.cpu(), rs)


def int8_weight(N, K, g, scale_exp):
    """Any int8 values (-128 included) and per-row scales spread over 2**+-8 around 2**exp."""
    q = torch.randint(-128, 128, (N, K), generator=g, dtype=torch.int8)
    s = 2.0 ** (scale_exp + torch.randint(-8, 9, (N,), generator=g).float())
    return q, s.float()


@fuzz(80)
@given(
    backend=backends(),
    lead=batch,
    M=dims,
    N=dims,
    K=dims,
    with_bias=st.booleans(),
    out_dtype=st.sampled_from([None, *FLOATS]),
    strided=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_int8_mm(backend, lead, M, N, K, with_bias, out_dtype, strided, seed):
    assume(triton_small(backend, M, N, K))
    g = gen(seed)
    a_q = torch.randint(-127, 128, (*lead, M, K * (2 if strided else 1)), generator=g)
    a_q = a_q.to(torch.int8)[..., ::2] if strided else a_q.to(torch.int8)
    a_s = 2.0 ** torch.randint(-20, 4, a_q.shape[:-1], generator=g).float()
    w_q, w_s = int8_weight(N, K, g, -10)
    bias = torch.randn(N, generator=g) if with_bias else None

    def f(b, d):
        t = [a_q, a_s, w_q, w_s, bias]
        t = [None if v is None else v.to(d) for v in t]
        return greenops.int8_mm(*t, out_dtype=out_dtype, backend=b)

    out = run_on(backend, f)
    acc = a_q.double() @ w_q.double().T  # exact integers
    ref = acc * a_s.double()[..., None] * w_s.double()
    mag = acc.abs() * a_s.double()[..., None] * w_s.double()
    if bias is not None:
        ref, mag = ref + bias.double(), mag + bias.double().abs()
    od = out_dtype or torch.float32
    assert_within(out, ref, 2 * 4 * 2.0**-24 * mag, od, ulps(backend, od))


@fuzz(100)
@given(
    backend=backends(),
    lead=batch,
    M=dims,
    N=dims,
    K=dims,
    dtype=st.sampled_from(FLOATS),
    x_exp=st.integers(-30, 12),
    w_exp=st.integers(-30, 12),
    with_bias=st.booleans(),
    strided=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_int8_weight_mm_and_its_backward(
    backend, lead, M, N, K, dtype, x_exp, w_exp, with_bias, strided, seed
):
    assume(triton_small(backend, M, N, K))
    g = gen(seed)
    x = floats((*lead, M, K), dtype, x_exp, g, strided).requires_grad_()
    w_q, w_s = int8_weight(N, K, g, w_exp)
    bias = floats((N,), dtype, x_exp + w_exp + 4, g).requires_grad_() if with_bias else None
    dy = floats((*lead, M, N), dtype, 0, g)

    def f(b, d):
        xd = x.detach().to(d).requires_grad_()
        bd = None if bias is None else bias.detach().to(d).requires_grad_()
        y = greenops.int8_weight_mm(xd, w_q.to(d), w_s.to(d), bd, backend=b)
        y.backward(dy.to(d))
        return y.detach(), xd.grad, None if bd is None else bd.grad

    y, dx, db = run_on(backend, f)
    w = w_q.double() * w_s.double()[:, None]
    ref = x.detach().double() @ w.T + (0 if bias is None else bias.detach().double())
    floor = 2.0**-25 if dtype == torch.float16 else 0.0
    tol = mm_tol(x.detach(), w, bias, path_u(dtype, K), floor=floor)
    assert_within(y, ref, tol, dtype, ulps(backend, dtype))
    # dX = (dY * s) @ q in fp32, then x's dtype
    assert_within(dx, dy.double() @ w, mm_tol(dy, w.T, None, (N + 4) * 2.0**-24), dtype)
    if bias is not None:
        bias_check(db, dy, dtype)


# --- int4 --------------------------------------------------------------------------------------


def quantize_int4_ref(w, g, symmetric):
    """The documented contract, in fp32: asymmetric s = (max - min) / 15 (where that overflows,
    min and max scaled by 1 - 2**-20 first, s = max/15 - min/15), z = -min / s,
    q = clamp(round(w / s + z), 0, 15); symmetric s = amax / 7, q = clamp(round(w / s) + 8, 0,
    15); s = 1 for a constant group; NaN/Inf: s = z = NaN, q = 0."""
    N, K = w.shape
    wf = w.float().reshape(N, K // g, g)
    bad = ~torch.isfinite(wf).all(-1)
    if symmetric:
        s = wf.abs().amax(-1) / 7
        s = torch.where(s == 0, 1.0, s)
        q = torch.round(wf / s[..., None]) + 8
        z = None
    else:
        lo, hi = wf.amin(-1), wf.amax(-1)
        s = (hi - lo) / 15
        wide = torch.isinf(s)
        lo = torch.where(wide, lo * (1 - 2**-20), lo)
        hi = torch.where(wide, hi * (1 - 2**-20), hi)
        s = torch.where(wide, hi / 15 - lo / 15, s)
        s = torch.where(s == 0, 1.0, s)
        z = -lo / s
        q = torch.round(wf / s[..., None] + z[..., None])
    q = torch.where(bad[..., None], 0, q.clamp(0, 15)).to(torch.int64).reshape(N, K)
    packed = (q[:, 0::2] + 16 * q[:, 1::2]).to(torch.uint8)
    s = torch.where(bad, torch.nan, s)
    return packed, s, None if z is None else torch.where(bad, torch.nan, z)


def dequantize_int4_ref(packed, scales, zeros, g):
    N, H = packed.shape
    p = packed.to(torch.int64)
    q = torch.stack([p % 16, p // 16], -1).reshape(N, 2 * H).float()
    s = scales.repeat_interleave(g, 1)
    z = 8.0 if zeros is None else zeros.repeat_interleave(g, 1)
    return (q - z) * s  # fp32: sub, then mul, as documented


@st.composite
def int4_groups(draw):
    """(K, group_size): g in 32/64/128/256 with K = g * n (n >= 0), or per channel (g = K > 0,
    any even K)."""
    g = draw(st.sampled_from([32, 64, 128, 256, None]))
    if g is None:
        K = 2 * draw(st.integers(1, 40))
        return K, K
    return g * draw(st.integers(0, 3)), g


@fuzz(60)
@given(
    backend=st.sampled_from(["cpp", "triton"]),  # "triton" on CPU: the torch-op impl
    N=dims,
    kg=int4_groups(),
    dtype=st.sampled_from(FLOATS),
    exp=st.integers(-140, 127),
    symmetric=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_quantize_int4_bit_for_bit_and_dequantize(backend, N, kg, dtype, exp, symmetric, seed):
    K, grp = kg
    w = floats((N, K), dtype, exp, gen(seed))
    p, s, z = greenops.quantize_int4(w, grp, symmetric, backend=backend)
    rp, rs, rz = quantize_int4_ref(w, grp, symmetric)
    assert torch.equal(p, rp) and torch.equal(s, rs)
    assert (z is None) == symmetric and (symmetric or torch.equal(z, rz))
    d = greenops.dequantize_int4(p, s, z, grp, backend=backend)
    assert torch.equal(d, dequantize_int4_ref(p, s, z, grp))
    assert torch.isfinite(d).all()  # finite weights dequantize to finite values


@fuzz(100)
@given(
    backend=backends(),
    lead=batch,
    M=dims,
    N=dims,
    kg=int4_groups(),
    dtype=st.sampled_from(FLOATS),
    x_exp=st.integers(-30, 12),
    w_exp=st.integers(-30, 12),
    asymmetric=st.booleans(),
    with_bias=st.booleans(),
    strided=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_int4_weight_mm_and_its_backward(
    backend, lead, M, N, kg, dtype, x_exp, w_exp, asymmetric, with_bias, strided, seed
):
    K, grp = kg
    assume(triton_small(backend, M, N, K))
    g = gen(seed)
    x = floats((*lead, M, K), dtype, x_exp, g, strided).requires_grad_()
    packed = torch.randint(0, 256, (N, K // 2), generator=g).to(torch.uint8)
    G = K // grp
    scales = (2.0 ** (w_exp + torch.randint(-6, 7, (N, G), generator=g))).float()
    zeros = (torch.rand(N, G, generator=g) * 24 - 4) if asymmetric else None
    bias = floats((N,), dtype, x_exp + w_exp + 4, g).requires_grad_() if with_bias else None
    dy = floats((*lead, M, N), dtype, 0, g)

    def f(b, d):
        xd = x.detach().to(d).requires_grad_()
        bd = None if bias is None else bias.detach().to(d).requires_grad_()
        t = [packed, scales, zeros]
        t = [None if v is None else v.to(d) for v in t]
        y = greenops.int4_weight_mm(xd, *t, grp, bd, backend=b)
        y.backward(dy.to(d))
        return y.detach(), xd.grad, None if bd is None else bd.grad

    y, dx, db = run_on(backend, f)
    w = dequantize_int4_ref(packed, scales, zeros, grp).double()
    ref = x.detach().double() @ w.T + (0 if bias is None else bias.detach().double())
    v = 2.0**-22 if dtype == torch.float32 else 2.0**-14  # the fixed-point path's x
    floor = 2.0**-25 if dtype == torch.float16 else 0.0
    tol = mm_tol(x.detach(), w, bias, path_u(dtype, K), v=v, floor=floor)
    assert_within(y, ref, tol, dtype, ulps(backend, dtype))
    assert_within(dx, dy.double() @ w, mm_tol(dy, w.T, None, (N + 4) * 2.0**-24), dtype)
    if bias is not None:
        bias_check(db, dy, dtype)


# --- block-sparse --------------------------------------------------------------------------


@fuzz(100)
@given(
    backend=backends(amx=True),
    lead=batch,
    M=dims,
    R=st.integers(0, 3),
    C=st.integers(0, 3),
    block=st.tuples(st.sampled_from([16, 32, 64]), st.sampled_from([16, 32, 64])),
    density=st.sampled_from([0.0, 0.3, 0.7, 1.0]),
    kind=st.sampled_from(["float", "int8", "w8a8"]),
    dtype=st.sampled_from(FLOATS),
    x_exp=st.integers(-30, 12),
    w_exp=st.integers(-30, 12),
    with_bias=st.booleans(),
    strided=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_bsr_mm_and_its_backward(
    backend, lead, M, R, C, block, density, kind, dtype, x_exp, w_exp, with_bias, strided, seed
):
    bn, bk = block
    N, K = R * bn, C * bk
    assume(triton_small(backend, M, N, K))
    g = gen(seed)
    mask = torch.rand(R, C, generator=g) < density
    dense = floats((N, K), dtype, w_exp, g).float()
    dense = dense * mask.repeat_interleave(bn, 0).repeat_interleave(bk, 1)
    sw = BlockSparseWeight.from_dense(dense.to(dtype), block, mask=mask)
    if kind != "float":
        sw = sw.quantize_int8()
    w = sw.to_dense().double()  # int8: the dequantized blocks, fp32 products of int8 x scale
    x = floats((*lead, M, K), dtype, x_exp, g, strided)
    x_scales = None
    if kind == "w8a8":
        x, x_scales = greenops.quantize_int8(x)
        x = x.to(torch.int8)
    out_dtype = torch.float32 if kind == "w8a8" else dtype
    bias = floats((N,), dtype, x_exp + w_exp + 4, g) if with_bias else None
    train = kind != "w8a8"
    if train:
        x.requires_grad_()
        if kind == "float":
            sw.values.requires_grad_()
        if bias is not None:
            bias.requires_grad_()
    dy = floats((*lead, M, N), out_dtype, 0, g)

    def f(b, d):
        xd = x.detach().to(d).requires_grad_(train)
        bd = None if bias is None else bias.detach().to(d).requires_grad_(train)
        swd = sw.to(d)
        if train and kind == "float":
            swd.values.requires_grad_()
        xs = None if x_scales is None else x_scales.to(d)
        y = greenops.bsr_mm(xd, swd, bd, backend=b, x_scales=xs)
        if not train:
            return y, None, None, None
        y.backward(dy.to(d))
        return y.detach(), xd.grad, swd.values.grad, None if bd is None else bd.grad

    y, dx, dv, db = run_on(backend, f)
    xf = x.detach().double() * (1 if x_scales is None else x_scales.double()[..., None])
    ref = xf @ w.T + (0 if bias is None else bias.detach().double())
    # fp32 sums of exact products (16-bit x and blocks widen exactly; int8 x times its scale
    # exactly); the int8-blocks paths: each block value q * s rounded once in fp32
    u = (K + 4) * 2.0**-24 + (2.0**-24 if kind != "float" else 0.0)
    assert_within(y, ref, mm_tol(xf, w, bias, u), out_dtype, ulps(backend, out_dtype))
    if not train:
        return
    # dX = dY @ W: int8 blocks go through a copy dequantized into x's dtype (or fp32)
    u_dx = (N + 4) * 2.0**-24 + (eps(dtype) if kind == "int8" and dtype != torch.float32 else 0)
    floor = 2.0**-25 if kind == "int8" and dtype == torch.float16 else 0.0
    tol_dx = mm_tol(dy, w.T, None, u_dx, floor=floor)
    assert_within(dx, dy.double() @ w, tol_dx, dtype, ulps(backend, dtype))
    if kind == "float":
        # dValues = (dY^T X) at the stored blocks
        brow = torch.repeat_interleave(torch.arange(R), sw.crow_indices.diff())
        d2, x2 = rows(dy.double()), rows(xf)
        full = (d2.T @ x2).reshape(R, bn, C, bk).transpose(1, 2)
        mag = (d2.abs().T @ x2.abs()).reshape(R, bn, C, bk).transpose(1, 2)
        ref_v, mag_v = full[brow, sw.col_indices], mag[brow, sw.col_indices]
        tol_v = 2 * (d2.shape[0] + 4) * 2.0**-24 * mag_v
        assert_within(dv, ref_v, tol_v, dtype, ulps(backend, dtype))
    if bias is not None:
        bias_check(db, dy, dtype)


def test_the_reference_bound_can_fail():
    """The checker rejects a wrong answer, a finite value where the exact one overflows, and a
    NaN (a tolerance that accepts everything would make every property above vacuous)."""
    r = torch.tensor([1.0, 70000.0, 3.0], dtype=torch.float64)
    tol = torch.zeros(3, dtype=torch.float64)
    ok = torch.tensor([1.0, torch.inf, 3.0], dtype=torch.float16)
    assert_within(ok, r, tol, torch.float16)
    for bad in ([1.01, torch.inf, 3.0], [1.0, 65504.0, 3.0], [1.0, torch.inf, torch.nan]):
        with pytest.raises(AssertionError):
            assert_within(torch.tensor(bad, dtype=torch.float16), r, tol, torch.float16)
