"""Triton kernels of greenops (installed as greenops.kernels).

Only @triton.jit functions and their autotune configs live here; launchers, shape logic and
autograd are in greenops/ops/. This package never imports greenops.
"""
