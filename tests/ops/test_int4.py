"""int4 ops against references written here from the layout's description (docs/kernels.md),
independent of greenops' own packing code, on every backend this machine can run."""

import pytest
import torch
from numerics import HAS_CUDA, assert_close_to_ref, cpu_isas, rel_err, run_candidate, sqnr_db

import greenops

# --- references ------------------------------------------------------------------------------


def pack_ref(q: torch.Tensor) -> torch.Tensor:
    """q [N, K] in 0..15 -> [N, K/2] bytes: element 2j in the low nibble of byte j."""
    N, K = q.shape
    out = torch.empty(N, K // 2, dtype=torch.uint8)
    for j in range(K // 2):
        out[:, j] = (q[:, 2 * j] | (q[:, 2 * j + 1] << 4)).to(torch.uint8)
    return out


def unpack_ref(packed: torch.Tensor) -> torch.Tensor:
    N, H = packed.shape
    q = torch.empty(N, 2 * H, dtype=torch.int64)
    p = packed.to(torch.int64)
    q[:, 0::2] = p % 16
    q[:, 1::2] = p // 16
    return q


def quantize_ref(w, g, symmetric):
    """The quantization contract, group by group, in fp32 (exact: compared with equality)."""
    N, K = w.shape
    wf = w.float()
    q = torch.zeros(N, K, dtype=torch.int64)
    scales = torch.empty(N, K // g)
    zeros = torch.empty(N, K // g)
    for i in range(K // g):
        blk = wf[:, i * g : (i + 1) * g]
        if symmetric:
            s = blk.abs().amax(1) / 7
            s = torch.where(s == 0, torch.ones_like(s), s)
            z = torch.full_like(s, 8.0)
            qb = torch.round(blk / s[:, None]) + 8
        else:
            lo, hi = blk.amin(1), blk.amax(1)
            s = (hi - lo) / 15
            s = torch.where(s == 0, torch.ones_like(s), s)
            z = -lo / s
            qb = torch.round(blk / s[:, None] + z[:, None])
        bad = ~torch.isfinite(blk).all(1)
        q[:, i * g : (i + 1) * g] = torch.where(bad[:, None], 0, qb.clamp(0, 15)).long()
        scales[:, i] = torch.where(bad, torch.nan, s)
        zeros[:, i] = torch.where(bad, torch.nan, z)
    return pack_ref(q), scales, (None if symmetric else zeros)


def dequantize_ref(packed, scales, zeros, g):
    q = unpack_ref(packed).float()
    s = scales.repeat_interleave(g, 1)
    z = 8.0 if zeros is None else zeros.repeat_interleave(g, 1)
    return (q - z) * s  # fp32, as the kernels compute it


def mm_ref(x, packed, scales, zeros, g, bias=None):
    out = x.double() @ dequantize_ref(packed, scales, zeros, g).double().T
    return out if bias is None else out + bias.double()


def mm_torch(x, packed, scales, zeros, g, bias=None):
    """torch's own same-dtype way, for the low-precision error rule."""
    w = dequantize_ref(packed, scales, zeros, g).to(x.dtype)
    out = x @ w.T
    return out if bias is None else out + bias.to(x.dtype)


# Backends: the `impl` fixture (tests/ops/conftest.py).


def weight(N, K, g, symmetric=False, seed=0):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(N, K, generator=gen)
    return (w, *quantize_ref(w, g, symmetric))


# --- packing and quantization ----------------------------------------------------------------


def test_every_value_in_both_nibbles_round_trips():
    lo, hi = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    q = torch.stack([lo.reshape(-1), hi.reshape(-1)], 1).reshape(2, 256)  # all 256 byte values
    packed = pack_ref(q)
    assert sorted(packed.reshape(-1).tolist()) == list(range(256))
    ones = torch.ones(2, 256 // 32)
    for zeros in (torch.zeros(2, 8), None):
        got = greenops.dequantize_int4(packed, ones, zeros, 32)
        assert torch.equal(got, q.float() - (8.0 if zeros is None else 0.0))


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    "N,K,g", [(5, 64, 32), (7, 128, 64), (3, 256, 128), (2, 512, 256), (9, 96, 96)]
)
def test_quantize_matches_the_contract_bit_for_bit(symmetric, dtype, N, K, g):
    w = (torch.randn(N, K) * 3).to(dtype)
    want = quantize_ref(w, g, symmetric)
    for backend in ("cpp", "triton"):  # "triton" on CPU: the torch-op impl used on CUDA
        got = greenops.quantize_int4(w, g, symmetric, backend=backend)
        assert got[0].dtype == torch.uint8 and got[1].dtype == torch.float32
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        assert (got[2] is None) == symmetric
        if not symmetric:
            assert torch.equal(got[2], want[2])


def test_exactly_representable_weights_round_trip():
    g = 32
    q = torch.randint(0, 16, (6, 128))
    q[:, ::g] = 0  # every group spans 0..15, so the min/max fit finds s and z again
    q[:, 1::g] = 15
    s, z = 0.25, 5.0
    w = (q.float() - z) * s
    packed, scales, zeros = greenops.quantize_int4(w, g)
    assert torch.equal(packed, pack_ref(q))
    assert (scales == s).all() and (zeros == z).all()
    assert torch.equal(greenops.dequantize_int4(packed, scales, zeros, g), w)


def test_constant_and_zero_groups_are_exact():
    w = torch.zeros(2, 64)
    w[1, 32:] = -3.5
    for symmetric in (False, True):
        p, s, z = greenops.quantize_int4(w, 32, symmetric)
        assert torch.equal(greenops.dequantize_int4(p, s, z, 32), w)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_poisons_its_group(bad):
    w = torch.randn(3, 128)
    w[1, 70] = bad
    p, s, z = greenops.quantize_int4(w, 64)
    assert torch.isnan(s[1, 1]) and torch.isnan(z[1, 1]) and not torch.isnan(s[1, 0])
    assert (unpack_ref(p)[1, 64:] == 0).all()
    y = greenops.int4_weight_mm(torch.randn(2, 128), p, s, z, 64)
    assert torch.isnan(y[:, 1]).all() and torch.isfinite(y[:, [0, 2]]).all()


SQNR_FLOOR_DB = {32: 21.0, 64: 20.0, 128: 18.0, 256: 17.5}


@pytest.mark.parametrize("g", [32, 64, 128, 256])
def test_sqnr_on_gaussian_weights(g):
    w = torch.randn(256, 4096, generator=torch.Generator().manual_seed(1))
    db = sqnr_db(w, greenops.dequantize_int4(*greenops.quantize_int4(w, g), g))
    # Measured: g=32 22.1 dB, 64 20.9, 128 20.0, 256 19.3 (asymmetric min/max; symmetric
    # 20.3, 19.4, 18.6, 18.0; per channel at K=4096: 17.0 and 16.0).
    assert db >= SQNR_FLOOR_DB[g], db


# --- int4_weight_mm --------------------------------------------------------------------------

# (M, N, K, g). CPU switches at M = 16|17 (streaming kernel | dequantized tile + GEMM; the float
# streaming kernel — scalar path, or x the fixed point refuses — at 8|9 for bf16); bf16 x (K a
# multiple of 32) goes to the bf16 panel GEMM above M = 4 on AMX and above M = 16 with
# vdpbf16ps; K = 96 per channel is not a multiple of 32 (the kernels' tails); the Triton launcher
# splits K for M <= 16.
SHAPES = [
    (0, 8, 64, 32),
    (1, 13, 64, 32),
    (3, 5, 128, 64),
    (5, 70, 64, 32),
    (16, 33, 256, 128),
    (17, 45, 128, 64),
    (33, 17, 96, 96),
    (128, 40, 512, 256),
    (2, 3, 0, 0),  # K = 0: the bias (or zeros)
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("M,N,K,g", SHAPES)
@pytest.mark.parametrize("symmetric", [False, True])
def test_int4_weight_mm_matches_reference(impl, dtype, M, N, K, g, symmetric):
    backend, device = impl
    if K == 0:
        packed = torch.empty(N, 0, dtype=torch.uint8)
        scales, zeros = torch.empty(N, 0), (None if symmetric else torch.empty(N, 0))
        with pytest.raises(ValueError, match="group_size"):
            greenops.int4_weight_mm(torch.randn(M, 0), packed, scales, zeros, 0)
        return
    _, packed, scales, zeros = weight(N, K, g, symmetric)
    x = torch.randn(M, K).to(dtype)
    bias = torch.randn(N).to(dtype)
    to = dict(device=device)
    args = [t.to(**to) if t is not None else None for t in (packed, scales, zeros)]
    for b in (None, bias):
        out = greenops.int4_weight_mm(
            x.to(**to), *args, g, None if b is None else b.to(**to), backend=backend
        )
        assert out.dtype == dtype and out.shape == (M, N)
        ref = mm_ref(x, packed, scales, zeros, g, b)
        same = mm_torch(x, packed, scales, zeros, g, b) if dtype != torch.float32 else None
        assert_close_to_ref(out.cpu(), ref, same)


def test_batch_dims_and_non_contiguous_x(impl):
    backend, device = impl
    _, packed, scales, zeros = weight(24, 128, 64)
    x = torch.randn(2, 3, 256)[..., ::2]  # [2, 3, 128], stride 2
    assert not x.is_contiguous()
    out = greenops.int4_weight_mm(
        x.to(device), packed.to(device), scales.to(device), zeros.to(device), 64, backend=backend
    )
    assert out.shape == (2, 3, 24)
    assert_close_to_ref(
        out.cpu(), mm_ref(x.reshape(6, 128), packed, scales, zeros, 64).reshape(2, 3, 24)
    )


# On AVX-512 VNNI, M <= 16 runs the fixed-point kernel (x as 24-bit fixed point per 32-element
# block for fp32, 16-bit for fp16/bf16; csrc/cpu/int4_kernels.h). These inputs are the hard
# cases for it: heavy tails and outliers inside a block, blocks of very different magnitude,
# every group layout (lanes of one 64-byte chunk in 4, 2 or 1 groups; per channel with K not a
# multiple of 32 or of 128; K = 2).
@pytest.mark.parametrize(
    "N,K,g", [(9, 256, 32), (7, 192, 64), (5, 512, 256), (6, 100, 100), (3, 2, 2)]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_int4_weight_mm_wide_range_activations(impl, N, K, g, dtype):
    backend, device = impl
    _, packed, scales, zeros = weight(N, K, g)
    gen = torch.Generator().manual_seed(K + N)
    x = torch.randn(16, K, generator=gen) * torch.rand(16, K, generator=gen).pow(6) * 100
    x[3, :] *= 1e-6  # a row far below the others
    x[5, K // 2] = 3e4  # an outlier in one block
    x[7, : min(K, 32)] = 1e-3  # a quiet block beside loud ones
    x = x.to(dtype)
    for M in (1, 2, 5, 16):
        args = [t.to(device) for t in (x[:M], packed, scales, zeros)]
        out = greenops.int4_weight_mm(*args, g, backend=backend).cpu()
        ref = mm_ref(x[:M], packed, scales, zeros, g)
        same = mm_torch(x[:M], packed, scales, zeros, g) if dtype != torch.float32 else None
        assert_close_to_ref(out, ref, same)
        # Every row on its own scale too: a quiet row is not drowned by the loud ones.
        for m in range(M):
            assert_close_to_ref(out[m], ref[m], None if same is None else same[m])


@pytest.mark.parametrize("scale", [1e-35, 1e-20, 1e20, 1e32])
def test_int4_weight_mm_extreme_magnitudes(impl, scale):
    """Magnitudes the fixed point cannot scale (beyond 2^-100 .. 2^100) go to the float kernel;
    either way the result is as accurate as fp32."""
    backend, device = impl
    _, packed, scales, zeros = weight(11, 128, 32)
    x = torch.randn(3, 128) * scale
    out = greenops.int4_weight_mm(
        *(t.to(device) for t in (x, packed, scales, zeros)), 32, backend=backend
    )
    assert_close_to_ref(out.cpu(), mm_ref(x, packed, scales, zeros, 32))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_int4_weight_mm_nonfinite_activation_poisons_only_its_row(impl, bad):
    backend, device = impl
    _, packed, scales, zeros = weight(10, 128, 64)
    x = torch.randn(4, 128)
    x[2, 77] = bad
    out = greenops.int4_weight_mm(
        *(t.to(device) for t in (x, packed, scales, zeros)), 64, backend=backend
    ).cpu()
    ref = mm_ref(x, packed, scales, zeros, 64)
    assert not torch.isfinite(out[2]).any()
    assert torch.equal(torch.isnan(out[2]), torch.isnan(ref[2]))
    assert torch.equal(out[2][~torch.isnan(ref[2])], ref[2][~torch.isnan(ref[2])].float())
    rows = [0, 1, 3]
    assert_close_to_ref(out[rows], ref[rows])


def test_gradients_flow_to_x_and_bias():
    _, packed, scales, zeros = weight(12, 64, 32)
    x = torch.randn(5, 64, dtype=torch.float64).float().requires_grad_()
    bias = torch.randn(12).requires_grad_()
    out = greenops.int4_weight_mm(x, packed, scales, zeros, 32, bias)
    gy = torch.randn_like(out)
    out.backward(gy)
    w = dequantize_ref(packed, scales, zeros, 32)
    assert torch.allclose(x.grad, gy @ w, rtol=1e-5, atol=1e-5)
    assert torch.allclose(bias.grad, gy.sum(0))


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"K": 63}, ValueError, "K must be even"),
        ({"g": 48}, ValueError, "group_size must be 32, 64, 128, 256 or K"),
        ({"g": 0}, ValueError, "group_size"),
        ({"x_K": 96}, ValueError, "the activation has K=96 but packed holds K=128"),
        ({"scales_shape": (8, 3)}, ValueError, r"scales must have shape \[8, 4\]"),
        ({"zeros_shape": (8, 2)}, ValueError, r"zeros must have shape \[8, 4\]"),
        ({"packed_dtype": torch.int8}, TypeError, "packed must be torch.uint8"),
        ({"scales_dtype": torch.float16}, TypeError, "scales must be torch.float32"),
        ({"x_dtype": torch.int32}, TypeError, "x must be"),
        ({"bias_shape": (7,)}, ValueError, r"bias must have shape \[8\]"),
    ],
)
def test_bad_input_is_rejected_clearly(impl, change, error, match):
    backend, device = impl
    K, g = change.get("K", 128), change.get("g", 32)
    packed = torch.zeros(8, K // 2, dtype=change.get("packed_dtype", torch.uint8))
    scales = torch.ones(
        change.get("scales_shape", (8, 4)), dtype=change.get("scales_dtype", torch.float32)
    )
    zeros = torch.zeros(change.get("zeros_shape", (8, 4)))
    x = torch.ones(2, change.get("x_K", K)).to(change.get("x_dtype", torch.float32))
    bias = torch.zeros(change["bias_shape"]) if "bias_shape" in change else None
    with pytest.raises(error, match=match):
        greenops.int4_weight_mm(
            *(t.to(device) for t in (x, packed, scales, zeros)),
            g,
            bias if bias is None else bias.to(device),
            backend=backend,
        )


@pytest.mark.parametrize(
    "w, g, match",
    [
        (torch.randn(4, 100), 32, "not a multiple of group_size=32"),
        (torch.randn(4, 63), 63, "K must be even"),
        (torch.randn(4, 128), 100, "group_size must be"),
        (torch.randn(128), 32, "must be 2-D"),
    ],
)
def test_quantize_bad_input(w, g, match):
    with pytest.raises(ValueError, match=match):
        greenops.quantize_int4(w, g)


# --- torch.library integration (C++ CPU backend) ---------------------------------------------


def _samples():
    w, packed, scales, zeros = weight(24, 128, 32)
    x = torch.randn(2, 3, 128)
    return [
        ("quantize_int4", (w, 32, False)),
        ("quantize_int4", (w.bfloat16(), 128, True)),
        ("dequantize_int4", (packed, scales, zeros, 32)),
        ("dequantize_int4", (packed, scales, None, 32)),
        ("int4_weight_mm", (x, packed, scales, zeros, 32)),
        (
            "int4_weight_mm",
            (torch.randn(40, 128).requires_grad_(), packed, scales, None, 32, torch.randn(24)),
        ),
    ]


def test_opcheck_cpu():
    for op, args in _samples():
        torch.library.opcheck(getattr(torch.ops.greenops, op).default, args)


def test_torch_compile_fullgraph_cpu():
    def f(x, w):
        packed, scales, zeros = greenops.quantize_int4(w, 32)
        y = greenops.int4_weight_mm(torch.relu(x), packed, scales, zeros, 32)
        return y, greenops.dequantize_int4(packed, scales, zeros, 32)

    x, w = torch.randn(4, 64), torch.randn(16, 64)
    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True)
    for got, want in zip(compiled(x, w), f(x, w), strict=True):
        assert torch.equal(got, want)


# --- Triton configs: every candidate the GPU tuner may pick computes the same product ---------


# Candidate configs of both architectures: under the interpreter on CPU; in the GPU suite (cuda
# marker), those of the GPU's own architecture, natively (a candidate that does not fit it is
# skipped, as the tuner skips it).
CAPABILITIES = [
    pytest.param(c, id=f"sm{c[0]}{c[1]}", marks=[pytest.mark.cuda] if HAS_CUDA else [])
    for c in ((8, 0), (9, 0))
]


@pytest.mark.parametrize("capability", CAPABILITIES)
@pytest.mark.parametrize("M", [3, 40, 130])
def test_every_triton_candidate_config_is_correct(capability, M):
    """The configs candidate_configs offers the tuner for each size class, with their K splits,
    each against the fp64 reference."""
    from greenops.kernels import int4 as k

    from greenops.ops.int4 import _launch

    if HAS_CUDA and capability != torch.cuda.get_device_capability():
        pytest.skip("another architecture's candidates: run under the interpreter on CPU")
    device = "cuda" if HAS_CUDA else "cpu"
    N, K, g = 40, 512, 64
    _, packed, scales, zeros = weight(N, K, g)
    x = torch.randn(M, K)
    ref = mm_ref(x, packed, scales, zeros, g)
    cands = k.candidate_configs(M, N, K, g, capability, sms=4)
    assert cands and all(c["SPLIT_K"] * c["K_PER_SPLIT"] >= K for c in cands)
    if M <= 16:
        assert any(c["SPLIT_K"] > 1 for c in cands)  # the split-K path is among them
    seen, ran = set(), 0
    for cfg in cands:
        shape = (cfg["BLOCK_M"], cfg["BLOCK_N"], cfg["BLOCK_K"], cfg["SPLIT_K"])
        if shape in seen:  # pipeline depth and warps change nothing under the interpreter
            continue
        seen.add(shape)
        args = [t.to(device) for t in (x, packed, scales, zeros)]
        out = run_candidate(_launch, *args, None, g, cfg)
        if out is not None:
            assert_close_to_ref(out.cpu(), ref)
            ran += 1
    assert ran


def test_tuner_times_once_per_key_picks_the_fastest_and_skips_what_does_not_fit():
    from triton.runtime.errors import OutOfResources

    from greenops.ops import _backend

    calls = []

    def time_ms(cfg):
        calls.append(cfg["id"])
        if cfg["id"] == 0:
            raise OutOfResources(300000, 232448, "shared memory")
        return {1: 2.0, 2: 0.5, 3: 1.0}[cfg["id"]]

    cands = [{"id": i} for i in range(4)]
    key = ("test", object())
    assert _backend.tuned(key, cands, time_ms) == {"id": 2}
    assert _backend.tuned(key, cands, time_ms) == {"id": 2}  # cached: not timed again
    assert calls == [0, 1, 2, 3]
    with pytest.raises(RuntimeError, match="no candidate config fits"):
        _backend.tuned(("test", object()), cands[:1], time_ms)


@pytest.mark.parametrize("isa", cpu_isas())
@pytest.mark.parametrize("op", ["int4", "int8"])
def test_fp32_x_as_bf16_only_where_the_user_allows_it(op, isa):
    """torch's opt-in for bf16 in fp32 matmuls (mkldnn fp32_precision "bf16") lets the weight-only
    ops round fp32 x to bf16 for the bf16 panel GEMM (AMX tiles, or vdpbf16ps): the result then
    matches bf16 x, still in fp32; without it fp32 x stays exact. Elsewhere (no AVX512-BF16) it
    changes only what it changes in torch's own fp32 matmul, which the dequantized-tiles path
    calls."""
    g = torch.Generator().manual_seed(3)
    x, w = torch.randn(24, 256, generator=g), torch.randn(40, 256, generator=g)
    if op == "int4":
        packed, s, z = greenops.quantize_int4(w, 128)
        run = lambda a: greenops.int4_weight_mm(a, packed, s, z, 128)  # noqa: E731
        w_deq = greenops.dequantize_int4(packed, s, z, 128)
        w_tiles = w_deq.bfloat16().double()  # the bf16 panels round the dequantized weight
    else:
        q, s = greenops.quantize_int8(w)
        run = lambda a: greenops.int8_weight_mm(a, q, s)  # noqa: E731
        w_deq = q.float() * s[:, None]
        w_tiles = w_deq.double()  # bf16(q) is exact; the scales come after the sums
    exact = x.double() @ w_deq.double().T
    old = torch.backends.mkldnn.matmul.fp32_precision
    try:
        torch.backends.mkldnn.matmul.fp32_precision = "bf16"
        with greenops.use_cpu_isa(isa):
            relaxed = run(x)
        torch_relaxed = x @ w_deq.T
    finally:
        torch.backends.mkldnn.matmul.fp32_precision = old
    with greenops.use_cpu_isa(isa):
        plain = run(x)
    assert relaxed.dtype == plain.dtype == torch.float32
    assert rel_err(plain, exact) < 1e-5
    if isa in ("avx512_bf16", "avx512_amx"):
        assert rel_err(relaxed, x.bfloat16().double() @ w_tiles.T) < 1e-5
        assert 1e-4 < rel_err(relaxed, exact) < 1e-2  # x was rounded
    elif torch.equal(torch_relaxed, x @ w_deq.T):
        assert torch.equal(relaxed, plain)
    else:  # torch itself rounds here: ours may too, no further than torch's own matmul does
        assert rel_err(relaxed, exact) <= 2 * rel_err(torch_relaxed, exact)
