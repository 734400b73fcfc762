"""greenops: quantized and block-sparse matmul kernels for PyTorch, and a runtime that
measures energy and caps GPU power. See README.md and docs/architecture.md."""

from . import calibrate, nn, qat, quant
from ._ext import ExtensionError
from .calibrate import CalibrationError, compress_, quantize_, sparsify_
from .convert import BlockSparseConfig, Int4Config, Int8Config
from .info import info
from .ops import (
    BACKENDS,
    BackendError,
    current_backend,
    dequantize_int4,
    int4_weight_mm,
    int8_mm,
    int8_weight_mm,
    quantize_int4,
    quantize_int8,
    use_backend,
    use_cpu_isa,
)
from .sparse import BlockSparseWeight, bsr_mm
from .version import __version__

__all__ = [
    "BACKENDS",
    "BackendError",
    "BlockSparseConfig",
    "BlockSparseWeight",
    "CalibrationError",
    "ExtensionError",
    "Int4Config",
    "Int8Config",
    "__version__",
    "bsr_mm",
    "calibrate",
    "compress_",
    "current_backend",
    "dequantize_int4",
    "info",
    "nn",
    "qat",
    "quant",
    "quantize_",
    "int4_weight_mm",
    "int8_mm",
    "int8_weight_mm",
    "quantize_int4",
    "quantize_int8",
    "sparsify_",
    "use_backend",
    "use_cpu_isa",
]
