"""The command line's own contract: usage errors, help texts, and the README's option lists."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from reconciler.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "--detailed-exitcod"],  # a typo of the option plan.yml passes
        ["plan", "--format", "yaml"],
        ["apply", "--plan"],  # an option without its value
        ["nosuchcommand"],
        ["github", "comment", "--no-such-option"],
        ["emulator", "serve", "--port", "many"],
    ],
)
def test_usage_errors_exit_1_not_2(args: list[str]) -> None:
    """2 is `plan --detailed-exitcode`'s "changes present": a typo must not look like it."""
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "Error" in result.output
