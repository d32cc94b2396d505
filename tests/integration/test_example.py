"""The shipped example manifests, as the README's quickstart uses them on the sandbox."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from reconciler.cli import app

EXAMPLE = Path(__file__).resolve().parents[2] / "manifests"


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_removing_a_beta_tester_from_the_example_is_not_blocked(tmp_path, monkeypatch):
    """The quickstart invites editing manifests/; removing one of the three beta testers is
    a third of that list, which the default policy (10%) would block."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(EXAMPLE, tmp_path / "manifests")
    state = tmp_path / ".reconciler"
    code, out, err = run("apply", "manifests", "--yes", "--state-dir", state)
    assert code == 0, out + err

    audiences = tmp_path / "manifests" / "audiences.yaml"
    text = audiences.read_text()
    assert "      - grace@example.com\n" in text
    audiences.write_text(text.replace("      - grace@example.com\n", ""))
    code, out, err = run("apply", "manifests", "--yes", "--state-dir", state)
    assert code == 0, out + err
    assert "BLOCKED" not in out
    assert "- remove 1 member" in out
    code, out, err = run("plan", "manifests", "--detailed-exitcode", "--state-dir", state)
    assert code == 0, out + err
