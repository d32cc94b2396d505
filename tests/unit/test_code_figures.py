"""bench/code_figures.py, the README's figures about the code, on a package made here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _figures():
    spec = importlib.util.spec_from_file_location(
        "code_figures", ROOT / "bench" / "code_figures.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["code_figures"] = module
    spec.loader.exec_module(module)
    return module


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_functions_cycles_and_hidden_cycles_are_found(tmp_path: Path, capsys) -> None:
    _write(tmp_path, "pkg/__init__.py", "")
    _write(
        tmp_path, "pkg/a.py", "from pkg.b import g\n\n\ndef f(x):\n    return g(x) if x else 0\n"
    )
    _write(tmp_path, "pkg/b.py", "import pkg.a\n\n\ndef g(x):\n    return x\n")
    # A cycle hidden in a function, and one only for the type checker (not counted).
    _write(tmp_path, "pkg/sub/__init__.py", "")
    _write(tmp_path, "pkg/sub/c.py", "def h():\n    from pkg.sub import d\n    return d\n")
    _write(
        tmp_path,
        "pkg/sub/d.py",
        "from typing import TYPE_CHECKING\nfrom pkg.sub import c\n"
        "if TYPE_CHECKING:\n    from pkg import a\n",
    )
    assert _figures().main(["--root", str(tmp_path), "--package", "pkg", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "6 modules, 3 functions in pkg/" in out
    assert "2     2    2  pkg.a:4 f" in out  # 2 lines, 2 code lines, complexity 2 (the if)
    assert "Import cycles at import time (module level): 1\n  pkg.a <-> pkg.b" in out
    assert (
        "Import cycles counting imports inside functions too: 2\n"
        "  pkg.a <-> pkg.b\n  pkg.sub.c <-> pkg.sub.d"
    ) in out


def test_this_checkout_is_measured_without_importing_it(capsys) -> None:
    assert _figures().main(["--top", "1", "--under", "cli", "apply"]) == 0
    out = capsys.readouterr().out
    assert "functions in reconciler/" in out and "cli/" in out and "apply/" in out
