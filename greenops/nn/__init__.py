"""Drop-in modules over the greenops ops: Int8Linear, Int4Linear, BlockSparseLinear, and
`summary` of a converted model's parameter bytes. Model conversion: greenops.quantize_ /
greenops.sparsify_ (greenops/convert.py)."""

from .modules import BlockSparseLinear, Int4Linear, Int8Linear
from .summary import summary

__all__ = ["BlockSparseLinear", "Int4Linear", "Int8Linear", "summary"]
