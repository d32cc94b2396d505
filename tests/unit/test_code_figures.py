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


def test_modules_a_test_imports_by_name_are_counted(tmp_path: Path, capsys) -> None:
    _write(tmp_path, "pkg/__init__.py", "from pkg.a import f\n")
    _write(tmp_path, "pkg/__main__.py", "")
    for name in ("a", "b", "c", "d"):
        _write(tmp_path, f"pkg/{name}.py", "")
    _write(tmp_path, "pkg/sub/__init__.py", "")
    _write(tmp_path, "pkg/sub/e.py", "")
    _write(tmp_path, "pkg/cli/__init__.py", "")
    _write(tmp_path, "pkg/cli/run.py", "")
    # a by `from pkg.a import`, e by `from pkg.sub import e`, b only inside a function;
    # c only through the package (a re-export is not a test of c), d not at all; a
    # helper that is no test module does not count, nor does the CLI's module.
    _write(tmp_path, "tests/test_one.py", "from pkg.a import f\nfrom pkg import f as g\n")
    _write(
        tmp_path, "tests/deep/test_two.py", "from pkg.sub import e\n\ndef t():\n    import pkg.b\n"
    )
    _write(tmp_path, "tests/helpers.py", "import pkg.d\nimport pkg.cli.run\n")
    figures = _figures()
    known = {
        "pkg",
        "pkg.__main__",
        "pkg.a",
        "pkg.b",
        "pkg.c",
        "pkg.d",
        "pkg.sub",
        "pkg.sub.e",
        "pkg.cli",
        "pkg.cli.run",
    }
    found = figures.directly_tested(tmp_path, "pkg", known)
    assert found == {
        "pkg.a": ["tests/test_one.py"],
        "pkg.b": ["tests/deep/test_two.py"],
        "pkg.c": [],
        "pkg.d": [],
        "pkg.sub.e": ["tests/deep/test_two.py"],
    }
    assert figures.main(["--root", str(tmp_path), "--package", "pkg", "--untested"]) == 0
    out = capsys.readouterr().out
    assert out.endswith(
        "Modules a test imports directly (not cli/, emulator/, nor __init__ or __main__): 3/5\n"
        "  pkg.c\n  pkg.d\n"
    )
