"""Loads the compiled extension greenops._C once, and says how to rebuild it when it can't."""

from __future__ import annotations

import glob
import importlib
import os
import sys
from types import ModuleType

import torch

from .version import __version__

REBUILD_HINT = (
    "rebuild it from the repository root with: pip install --no-build-isolation -e . "
    "(against the torch you run; see README)"
)


class ExtensionError(RuntimeError):
    """greenops._C is missing, stale, or was built against another torch."""


_module: ModuleType | None = None
_error: str | None = None


def _release(version: str) -> str:
    return version.split("+")[0]


def load() -> ModuleType:
    """Returns greenops._C, importing and validating it on first use."""
    global _module, _error
    if _module is not None:
        return _module
    if _error is None:
        try:
            mod = importlib.import_module("greenops._C")
        except ImportError as e:
            _error = f"the compiled extension greenops._C could not be loaded ({e}); {REBUILD_HINT}"
            other = _built_elsewhere()
            if other:
                _error += (
                    f". This greenops is {_HERE}, which shadows the installed one at {other} "
                    "(a source checkout comes first on sys.path when Python runs from inside "
                    "it): run from another directory, or build the checkout"
                )
        else:
            if mod.__version__ != __version__:
                _error = (
                    f"greenops._C is stale: built for greenops {mod.__version__}, this is "
                    f"{__version__}; {REBUILD_HINT}"
                )
            elif _release(mod.torch_version) != _release(torch.__version__):
                _error = (
                    f"greenops._C was built against torch {mod.torch_version} but torch "
                    f"{torch.__version__} is running; {REBUILD_HINT}"
                )
            else:
                _module = mod
                return mod
    raise ExtensionError(_error)


_HERE = os.path.dirname(os.path.abspath(__file__))


def _built_elsewhere() -> str | None:
    """Another greenops package on sys.path that has a compiled _C (an installed one this
    import shadows), or None."""
    for entry in sys.path:
        pkg = os.path.join(os.path.abspath(entry or os.curdir), "greenops")
        if os.path.realpath(pkg) != os.path.realpath(_HERE) and glob.glob(
            os.path.join(pkg, "_C.*")
        ):
            return pkg
    return None


def available() -> bool:
    try:
        load()
    except ExtensionError:
        return False
    return True


def error() -> str | None:
    """Why the extension is unavailable, or None."""
    return None if available() else _error
