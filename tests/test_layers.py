"""Lower layers never import higher ones, not even inside a function (a lazy import hides a
cycle, it does not remove it): carbon builds on power, calibration and Hugging Face on the
modules, the modules on the ops."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "greenops"

# package -> the greenops packages it must never import
FORBIDDEN = {
    "power": {"carbon", "calibrate", "hf", "nn", "bench"},
    "ops": {"nn", "calibrate", "hf", "power", "carbon", "bench", "convert", "qat"},
    "nn": {"calibrate", "hf", "power", "carbon", "bench"},
    "calibrate": {"hf", "power", "carbon", "bench"},
}


def _imports(path: Path, package: str):
    """The greenops subpackages `path` imports (absolute or relative, anywhere in the file)."""
    parts = path.relative_to(PKG.parent).with_suffix("").parts  # ('greenops', 'power', 'x')
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level]
                mod = ".".join(base + ((node.module,) if node.module else ()))
                names = [mod] + ([f"{mod}.{a.name}" for a in node.names] if not node.module else [])
            else:
                names = [node.module or ""]
        else:
            continue
        for n in names:
            bits = n.split(".")
            if bits[0] == "greenops" and len(bits) > 1:
                yield node.lineno, bits[1]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_never_import_higher_ones(package):
    bad = [
        f"{p.relative_to(PKG.parent)}:{line} imports greenops.{target}"
        for p in sorted((PKG / package).rglob("*.py"))
        for line, target in _imports(p, package)
        if target in FORBIDDEN[package]
    ]
    assert not bad, "\n".join(bad)
