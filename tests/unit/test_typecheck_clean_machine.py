"""The README's test command runs mypy; it must pass on a fresh machine, where typer (from
0.2x) comes without click: nothing reconciler type-checks may need click to be installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_passes_without_click_installed(tmp_path: Path) -> None:
    # An empty `click` on MYPYPATH stands in for the installed one (if any): mypy looks
    # there first, so whatever click defines (or whether it is there at all, as on the
    # machine the README's quickstart starts from) no longer decides the result.
    (tmp_path / "stubs" / "click").mkdir(parents=True)
    for module in ("__init__.pyi", "exceptions.pyi", "core.pyi"):
        (tmp_path / "stubs" / "click" / module).write_text("")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--follow-imports=silent",
            "reconciler/cli/__init__.py",
        ],
        cwd=ROOT,
        env={"MYPYPATH": str(tmp_path / "stubs"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success" in done.stdout
