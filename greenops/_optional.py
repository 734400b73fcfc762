"""Optional dependencies: a clear one-line error naming the extra instead of a traceback."""

from __future__ import annotations

import importlib


def pyplot(what: str):
    """matplotlib.pyplot on the Agg backend, or ModuleNotFoundError saying how to get it."""
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"{what} needs matplotlib, which is not installed: "
            "pip install matplotlib (or greenops[plot])"
        ) from None
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


def cli_needs_pyplot(what: str) -> None:
    """For a command line: exits with the one-line message before any work when matplotlib is
    missing."""
    try:
        pyplot(what)
    except ModuleNotFoundError as e:
        raise SystemExit(f"greenops: {e}") from None
