"""greenops operators: public functions, fake impls, autograd, backend choice.

Every op is a real torch operator, torch.ops.greenops.<name>, whose schema is defined once in
csrc/registration.cpp. Importing this package registers the Python-side pieces (fake impls,
CUDA impls through Triton, autograd) when the compiled extension loads; when it does not,
calling an op raises greenops.ExtensionError saying how to rebuild.
"""

from .. import _ext
from . import bsr, int4, int8
from ._backend import BACKENDS, BackendError, current_backend, use_backend, use_cpu_isa
from .int4 import dequantize_int4, int4_weight_mm, quantize_int4
from .int8 import int8_mm, int8_weight_mm, quantize_int8

OPS = int8.OPS + int4.OPS + bsr.OPS

if _ext.available():
    int8.register()
    int4.register()
    bsr.register()

__all__ = [
    "BACKENDS",
    "BackendError",
    "OPS",
    "current_backend",
    "dequantize_int4",
    "int4_weight_mm",
    "int8_mm",
    "int8_weight_mm",
    "quantize_int4",
    "quantize_int8",
    "use_backend",
    "use_cpu_isa",
]
