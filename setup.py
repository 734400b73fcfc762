"""Builds greenops._C: the CPU extension always, CUDA sources when a CUDA torch and nvcc exist.

GREENOPS_CUDA=0|1 forces the CUDA choice; TORCH_CUDA_ARCH_LIST picks archs (default 8.0;8.9;9.0a).
Install against the torch already present: pip install --no-build-isolation -e .
"""

import glob
import os
import re

from setuptools import find_packages, setup

try:
    import torch
    from torch.utils import cpp_extension
except ImportError:  # an isolated build environment: there is no torch to build against
    raise SystemExit(
        "greenops is a torch extension and builds against the torch already installed: "
        "install torch first (e.g. pip install torch==2.13.0), then "
        "`pip install --no-build-isolation .` (or -e . for a checkout). A plain `pip install .` "
        "builds in isolation, without your torch."
    ) from None

ROOT = os.path.dirname(os.path.abspath(__file__))


def _version() -> str:
    with open(os.path.join(ROOT, "greenops", "version.py")) as f:
        return re.search(r'__version__ = "([^"]+)"', f.read()).group(1)


def _want_cuda() -> bool:
    forced = os.environ.get("GREENOPS_CUDA")
    if forced is not None:
        if forced not in ("0", "1"):
            raise ValueError(f"GREENOPS_CUDA must be 0 or 1, got {forced!r}")
        return forced == "1"
    # Never torch.cuda.is_available(): a build machine may have no GPU.
    return torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None


def _extension():
    version = _version()
    cpu_sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    # no -std: torch's cpp_extension passes the standard its headers need (C++20 from 2.14)
    cxx = ["-O3", "-fopenmp", f'-DGREENOPS_VERSION="{version}"']
    link = ["-fopenmp"]
    include = [os.path.join(ROOT, "csrc", "include")]
    cuda_sources = sorted(glob.glob("csrc/cuda/*.cu") + glob.glob("csrc/cuda/*.cpp"))
    # No CUDA sources yet means nothing to build with nvcc: CUDA tensors are served by Triton.
    if not cuda_sources or not _want_cuda():
        return cpp_extension.CppExtension(
            "greenops._C",
            cpu_sources,
            include_dirs=include,
            extra_compile_args={"cxx": cxx},
            extra_link_args=link,
        )
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;8.9;9.0a")
    archs = os.environ["TORCH_CUDA_ARCH_LIST"]
    defs = ["-DGREENOPS_WITH_CUDA", f'-DGREENOPS_CUDA_ARCHS="{archs}"']
    return cpp_extension.CUDAExtension(
        "greenops._C",
        cpu_sources + cuda_sources,
        include_dirs=include,
        extra_compile_args={"cxx": cxx + defs, "nvcc": ["-O3", *defs]},
        extra_link_args=link,
    )


def _requirements() -> list[str]:
    """The extension runs with exactly the torch release it was built against (its C++ ABI):
    pinned, as torch extensions ship (a CPU and a CUDA build of one release both satisfy
    torch==X.Y.Z)."""
    return [f"torch=={torch.__version__.split('+')[0]}", "numpy", "nvidia-ml-py"]


setup(
    version=_version(),
    install_requires=_requirements(),
    # every package under greenops/ (a missing one only shows in a non-editable install),
    # the data folders as packages of their own (setuptools wants them listed), plus the
    # Triton kernels, which live in kernels/
    packages=find_packages(include=["greenops", "greenops.*"])
    + ["greenops.kernels", "greenops.power.profiles", "greenops.carbon.traces"],
    package_data={
        "greenops.power": ["cpu_tdp.csv"],
        "greenops.power.profiles": ["*.csv", "*.md"],
        "greenops.carbon.traces": ["*.csv", "*.md"],
        "greenops.ops": ["cuda_auto.json"],
    },
    package_dir={"greenops.kernels": "kernels"},
    ext_modules=[_extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)},
)
