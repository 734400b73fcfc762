"""Linear layers whose weights are int8, int4 or block-sparse, computed by the greenops ops.

Each takes `from_linear(linear, ...)`, keeps its weight as buffers so that `state_dict` saves
exactly what the kernels read, and round-trips through `load_state_dict` (also through
safetensors). The input's dtype is the compute dtype; outputs come back in it. Int8Linear and
Int4Linear are inference modules (bias a buffer too: W8A8's int8_mm has no backward; training
int weights is QAT's job); BlockSparseLinear trains its values and bias.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import ops
from ..ops.int4 import per_channel
from ..sparse import BlockSparseWeight


class _Fp32Buffers(nn.Module):
    """Keeps the named buffers (scales, zero points) fp32 through `.to(dtype)` / `.half()`:
    the kernels take them in fp32, and a model-wide cast to bf16 must not round them. They
    still move between devices."""

    _fp32: tuple[str, ...] = ()

    def _apply(self, fn, recurse=True):
        before = {n: getattr(self, n) for n in self._fp32 if getattr(self, n, None) is not None}
        super()._apply(fn, recurse)
        for name, t in before.items():
            moved = getattr(self, name)
            if moved.dtype != t.dtype:  # cast by fn: take the original values to fn's device
                setattr(self, name, t.to(moved.device))
        return self


def _bias_param(bias: torch.Tensor | None) -> nn.Parameter | None:
    return None if bias is None else nn.Parameter(bias.detach().clone())


def _set_bias_buffer(m: nn.Module, bias: torch.Tensor | None) -> None:
    m.bias = None if bias is None else bias.detach().clone()


def _scaled_input(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """x * in_scale (per input channel), where a calibration (SmoothQuant, AWQ) could not fold
    its scales into the layer that produces x."""
    return x if m.in_scale is None else x * m.in_scale.to(x.dtype)


def _load_optional(m: nn.Module, state_dict, prefix: str, names) -> None:
    """Buffers that are None until a checkpoint holds them take the saved tensor's shape."""
    for name in names:
        t = state_dict.get(prefix + name)
        if t is not None and getattr(m, name) is None:
            setattr(m, name, torch.empty_like(t))


class _W8A8(torch.autograd.Function):
    """W8A8 forward (x quantized per token on the fly, int8_mm) with a straight-through
    backward for x: the activation rounding is taken as the identity, so dX = dY @ W with W the
    dequantized int8 weight (w_q * w_scale, fp32), as for W8A16. The weight and bias are
    buffers: no gradient."""

    @staticmethod
    def forward(x, w_q, w_scale, bias):
        a_q, a_scale = ops.quantize_int8(x)
        return ops.int8_mm(a_q, a_scale, w_q, w_scale, bias, out_dtype=x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, w_q, w_scale, _ = inputs
        ctx.save_for_backward(w_q, w_scale)
        ctx.x_dtype = x.dtype

    @staticmethod
    def backward(ctx, grad):
        w_q, w_scale = ctx.saved_tensors
        dx = (grad.float() * w_scale) @ w_q.float()
        return dx.to(ctx.x_dtype), None, None, None


class Int8Linear(_Fp32Buffers):
    """y = x @ W.T + b with W int8 per output channel. Default: W8A8 — activations quantized per
    token on the fly (quantize_int8 + int8_mm, int32 accumulation); weight_only=True: W8A16
    (int8_weight_mm, x's dtype). `in_scale` [K]: x is multiplied by it first (SmoothQuant's
    migration, where it could not be folded into the previous layer)."""

    _fp32 = ("w_scale", "in_scale")

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, weight_only: bool = False
    ):
        super().__init__()
        self.in_features, self.out_features, self.weight_only = (
            in_features,
            out_features,
            weight_only,
        )
        self.register_buffer("w_q", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("w_scale", torch.ones(out_features))
        self.register_buffer("in_scale", None)
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)

    @classmethod
    def from_linear(cls, linear: nn.Linear, weight_only: bool = False) -> Int8Linear:
        w_q, w_scale = ops.quantize_int8(linear.weight.detach())
        return cls.from_quantized(w_q, w_scale, linear.bias, weight_only)

    @classmethod
    def from_quantized(
        cls,
        w_q: torch.Tensor,
        w_scale: torch.Tensor,
        bias=None,
        weight_only: bool = False,
        in_scale: torch.Tensor | None = None,
    ) -> Int8Linear:
        """From int8 weights [N, K] and their fp32 scales [N] (w = w_q * w_scale); in_scale [K]
        multiplies x first."""
        N, K = w_q.shape
        if w_q.dtype != torch.int8 or w_scale.shape != (N,):
            raise ValueError(
                f"Int8Linear.from_quantized: w_q must be int8 [N, K] and w_scale [N], got "
                f"{w_q.dtype} {tuple(w_q.shape)} and {tuple(w_scale.shape)}"
            )
        m = cls(K, N, bias is not None, weight_only).to(w_q.device)  # meta stays meta
        m.w_q.copy_(w_q)
        m.w_scale.copy_(w_scale)
        if in_scale is not None:
            m.in_scale = in_scale.detach().float().clone()
        _set_bias_buffer(m, bias)
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _scaled_input(self, x)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        if self.weight_only:
            return ops.int8_weight_mm(x, self.w_q, self.w_scale, bias)
        if torch.is_grad_enabled() and x.requires_grad:  # e.g. LoRA adapters below this layer
            return _W8A8.apply(x, self.w_q, self.w_scale, bias)
        a_q, a_scale = ops.quantize_int8(x)
        return ops.int8_mm(a_q, a_scale, self.w_q, self.w_scale, bias, out_dtype=x.dtype)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        _load_optional(self, state_dict, prefix, ("in_scale",))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        mode = "W8A16 (weight-only)" if self.weight_only else "W8A8 (dynamic per-token)"
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, bits=8, {mode}"
            + (", input scales" if self.in_scale is not None else "")
        )


class Int4Linear(_Fp32Buffers):
    """y = x @ W.T + b with W int4, group-wise (W4A16, int4_weight_mm). The buffers hold the
    plain packed layout, which the CPU and Triton kernels read as it is; the CUDA C++ kernel's
    prepacked copy is made once per weight, on first use. `in_perm`: a GPTQ act-order
    checkpoint's input permutation (gathered per call); `in_scale` [K]: x is multiplied by it
    first (AWQ's scales, where they could not be folded into the previous layer)."""

    _fp32 = ("scales", "zeros", "in_scale")

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        group_size: int = 128,
        symmetric: bool = False,
    ):
        super().__init__()
        g = per_channel(group_size, in_features)
        if in_features % 2 or in_features % g:
            raise ValueError(
                f"Int4Linear: in_features={in_features} must be even and a multiple of "
                f"group_size={g}"
            )
        self.in_features, self.out_features = in_features, out_features
        self.group_size, self.symmetric = g, symmetric
        G = in_features // g
        self.register_buffer(
            "packed", torch.zeros(out_features, in_features // 2, dtype=torch.uint8)
        )
        self.register_buffer("scales", torch.ones(out_features, G))
        self.register_buffer("zeros", None if symmetric else torch.zeros(out_features, G))
        self.register_buffer("in_perm", None)
        self.register_buffer("in_scale", None)
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, group_size: int = 128, symmetric: bool = False
    ) -> Int4Linear:
        g = per_channel(group_size, linear.in_features)
        packed, scales, zeros = ops.quantize_int4(linear.weight.detach(), g, symmetric)
        return cls.from_quantized(packed, scales, zeros, g, linear.bias)

    @classmethod
    def from_quantized(
        cls, packed, scales, zeros, group_size: int, bias=None, in_perm=None, in_scale=None
    ) -> Int4Linear:
        """From the greenops int4 layout (quantize_int4's outputs; zeros None or empty:
        symmetric). Shapes and dtypes are checked as the ops check them. in_scale [K] (in the
        original column order) multiplies x before the in_perm gather."""
        zeros = None if zeros is None or zeros.numel() == 0 else zeros
        ops.dequantize_int4(
            packed[:1], scales[:1], None if zeros is None else zeros[:1], group_size
        )  # the ops' shape/dtype checks, on one row
        N, K = packed.shape[0], packed.shape[1] * 2
        m = cls(K, N, bias is not None, group_size, symmetric=zeros is None).to(packed.device)
        m.packed.copy_(packed)
        m.scales.copy_(scales)
        if zeros is not None:
            m.zeros.copy_(zeros)
        if in_perm is not None:
            m.in_perm = in_perm.clone()
        if in_scale is not None:
            m.in_scale = in_scale.detach().float().clone()
        _set_bias_buffer(m, bias)
        return m

    @classmethod
    def _from_import(cls, w, bias) -> Int4Linear:
        return cls.from_quantized(w.packed, w.scales, w.zeros, w.group_size, bias, w.in_perm)

    @classmethod
    def from_gptq(
        cls, qweight, qzeros, scales, g_idx=None, bias=None, format: str = "v1"
    ) -> Int4Linear:
        from ..quant import from_gptq

        return cls._from_import(from_gptq(qweight, qzeros, scales, g_idx, format=format), bias)

    @classmethod
    def from_awq(cls, qweight, qzeros, scales, bias=None) -> Int4Linear:
        from ..quant import from_awq

        return cls._from_import(from_awq(qweight, qzeros, scales), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _scaled_input(self, x)
        if self.in_perm is not None:
            x = x.index_select(-1, self.in_perm)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return ops.int4_weight_mm(x, self.packed, self.scales, self.zeros, self.group_size, bias)

    def int4_weight(self):
        """The weight as greenops.quant.Int4Weight (for to_gptq, dequantize); the input scale,
        if any, is not part of it."""
        from ..quant import Int4Weight

        return Int4Weight(self.packed, self.scales, self.zeros, self.group_size, self.in_perm)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        _load_optional(self, state_dict, prefix, ("in_perm", "in_scale"))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, bits=4, group_size={self.group_size}, "
            f"{'symmetric' if self.symmetric else 'asymmetric'}"
            + (", act-order" if self.in_perm is not None else "")
            + (", input scales" if self.in_scale is not None else "")
        )


class BlockSparseLinear(_Fp32Buffers):
    """y = x @ W.T + b with W block-sparse (bsr_mm). Float `values` are a trainable parameter
    (the backward reaches only the nonzero blocks); int8 values (dtype=torch.int8, with
    per-output-channel `scales`) are buffers: quantization and sparsity together, for
    inference; with int8_act=True x is quantized too, per row on the fly (quantize_int8, as
    Int8Linear does), and the product runs in int32 (W8A8: VNNI on CPU). The pattern (crow/col
    indices, and the transpose's metadata for the backward) are buffers, fixed until
    re-sparsified."""

    _fp32 = ("scales",)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        block: tuple[int, int] = (32, 32),
        nnz_blocks: int = 0,
        dtype: torch.dtype = torch.float32,
        int8_act: bool = False,
    ):
        super().__init__()
        bn, bk = block
        if int8_act and dtype != torch.int8:
            raise ValueError(f"BlockSparseLinear: int8_act needs int8 values, got dtype={dtype}")
        self.int8_act = int8_act
        if out_features % bn or in_features % bk:
            raise ValueError(
                f"BlockSparseLinear: ({out_features}, {in_features}) is not a multiple of the "
                f"block ({bn}, {bk})"
            )
        self.in_features, self.out_features, self.block = in_features, out_features, (bn, bk)
        if dtype == torch.int8:
            self.register_buffer("values", torch.zeros(nnz_blocks, bn, bk, dtype=dtype))
            self.register_buffer("scales", torch.ones(out_features))
            dtype = torch.float32  # the bias's
        else:
            self.values = nn.Parameter(torch.zeros(nnz_blocks, bn, bk, dtype=dtype))
            self.scales = None
        self.register_buffer("crow_indices", torch.zeros(out_features // bn + 1, dtype=torch.int64))
        self.register_buffer("col_indices", torch.zeros(nnz_blocks, dtype=torch.int64))
        self.register_buffer("t_crow", torch.zeros(in_features // bk + 1, dtype=torch.int64))
        self.register_buffer("t_blocks", torch.zeros(2, nnz_blocks, dtype=torch.int64))
        self.bias = nn.Parameter(torch.zeros(out_features, dtype=dtype)) if bias else None

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        block=(32, 32),
        sparsity: float | None = None,
        mask=None,
        int8: bool = False,
        int8_act: bool = False,
    ) -> BlockSparseLinear:
        """Prunes by block L2 norm (or to `mask`); int8=True then quantizes the kept blocks
        per output channel (BlockSparseWeight.quantize_int8); int8_act=True (with int8) also
        quantizes x per row in forward (W8A8)."""
        if int8_act and not int8:
            raise ValueError("BlockSparseLinear.from_linear: int8_act=True needs int8=True")
        w = BlockSparseWeight.from_dense(
            linear.weight.detach(), block, mask=mask, sparsity=sparsity
        )
        return cls.from_weight(w.quantize_int8() if int8 else w, linear.bias, int8_act)

    @classmethod
    def from_weight(
        cls, w: BlockSparseWeight, bias: torch.Tensor | None = None, int8_act: bool = False
    ) -> BlockSparseLinear:
        N, K = w.shape
        m = cls(K, N, bias is not None, w.block, w.nnz_blocks, w.values.dtype, int8_act)
        m = m.to(w.values.device)
        with torch.no_grad():
            m.values.copy_(w.values)
            if w.scales is not None:
                m.scales.copy_(w.scales)
            m.crow_indices.copy_(w.crow_indices)
            m.col_indices.copy_(w.col_indices)
            t_crow, t_blocks = w.transpose
            m.t_crow.copy_(t_crow)
            m.t_blocks.copy_(t_blocks)
        m.bias = _bias_param(bias)
        return m

    @property
    def sparsity(self) -> float:
        bn, bk = self.block
        total = (self.out_features // bn) * (self.in_features // bk)
        return 1.0 - self.values.shape[0] / total if total else 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        values, a, x_scales = self.values, x, None
        if self.int8_act:  # W8A8: x per row to int8; the op's fp32 out back to x's dtype
            a, x_scales = torch.ops.greenops.quantize_int8(x, -1)
        elif self.scales is None:
            values = values.to(x.dtype)
        out = torch.ops.greenops.bsr_mm(
            a,
            values,
            self.crow_indices,
            self.col_indices,
            bias,
            self.t_crow,
            self.t_blocks,
            self.scales,
            x_scales,
        )
        return out.to(x.dtype)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The number of blocks is the checkpoint's: resize before copying.
        v = state_dict.get(prefix + "values")
        if v is not None and v.shape != self.values.shape:
            fresh = torch.empty_like(v, dtype=self.values.dtype, device=self.values.device)
            self.values = fresh if self.scales is not None else nn.Parameter(fresh)
            self.col_indices = torch.empty(v.shape[0], dtype=torch.int64, device=v.device)
            self.t_blocks = torch.empty(2, v.shape[0], dtype=torch.int64, device=v.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, block={self.block}, sparsity={self.sparsity:.1%}, "
            f"dtype={self.values.dtype}"
            + (", per-channel scales" if self.scales is not None else "")
            + (", int8 activations per row" if self.int8_act else "")
        )
