"""reconciler's own modules, each parsed once per test process.

Several tests read the syntax tree of every module in the package (the import graph,
Windows' missing names, literal defaults): a parse of the whole package takes about a
second, and each such test parsed it again, up to seven times on one worker. The files do
not change while the tests run and no test changes a tree, so one parse serves them all.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "reconciler"


def package_files() -> list[Path]:
    """Every module of the package, in a stable order."""
    return sorted(PACKAGE.rglob("*.py"))


@functools.cache
def parsed(path: Path) -> ast.Module:
    """The syntax tree of one of the package's modules (read only: it is shared)."""
    if not path.resolve().is_relative_to(PACKAGE):
        # A file a test writes may change between two reads; only the package is cached.
        raise ValueError(f"{path} is not a module of {PACKAGE}")
    return ast.parse(path.read_text(encoding="utf-8"), str(path))
