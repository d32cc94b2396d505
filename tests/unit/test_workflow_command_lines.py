"""Breaking the lines a GitHub Actions runner would take as workflow commands
(reconciler/cli/workflow_commands.py), checked against the runner's own two rules
(tests/integration/runner_commands.py)."""

from __future__ import annotations

import io
import json

import pytest

from reconciler.cli.workflow_commands import CommandSafeText, escaped
from reconciler.render.json_text import json_text
from tests.integration.runner_commands import command, commands

# Lines the runner takes as commands (the rules as actions/runner applies them).
COMMAND_LINES = [
    "   ::add-mask::x",
    "::set-output name=exitcode::2",
    "::stop-commands::tok",
    "::error file=manifests/a.yaml,line=1::forged",
    "::group::",
    "::ADD-MASK::x",
    "\u3000\xa0\t::endgroup::",
    "error: unknown key 'a ##[add-mask]Apply'",
    "##[set-output name=exitcode;]2",
    "##[error]forged",
    "x ##[Stop-Commands]tok",
    "##[add-matcher]m.json ##[error]x",
]
NOT_COMMANDS = [
    "a ::add-mask::x",  # `::` not at the start
    "::nothing::x",  # not a command
    "::add-mask",  # no second `::`
    "##[add-mask x",  # no `]`
    "## [error]x",
]


@pytest.mark.parametrize("line", COMMAND_LINES)
def test_the_checker_reads_the_runners_commands(line: str) -> None:
    assert command(line) is not None


@pytest.mark.parametrize("line", NOT_COMMANDS)
def test_the_checker_leaves_other_lines(line: str) -> None:
    assert command(line) is None


@pytest.mark.parametrize(
    "line", ["a ::add-mask::x", "## [error]x", "at 10::30", "C# [x]", "#1 [x]", " : :group::"]
)
def test_text_without_a_commands_start_is_left_as_it_is(line: str) -> None:
    assert escaped(line) == line


def test_any_name_is_broken_not_only_todays_commands() -> None:
    # The runner adds commands (and a stop-commands token becomes one while it is in force).
    assert escaped("::nothing::x ##[later]y") == "::\\nothing::x ##[\\later]y"


@pytest.mark.parametrize("line", COMMAND_LINES)
def test_every_command_line_is_broken_and_still_readable(line: str) -> None:
    broken = escaped(line)

    assert command(broken) is None
    # One `\` after each `##[` and after a line's leading `::`, nothing else.
    assert broken.replace("##[\\", "##[").replace("::\\", "::", 1) == line


def test_a_carriage_return_starts_a_line_for_the_runner() -> None:
    # StreamReader.ReadLine ends a line at a lone CR too.
    text = "ok\r::add-mask::x\r\n  ::group::y\n"
    assert len(commands(text)) == 2

    assert commands(escaped(text)) == []


def test_invisible_characters_before_a_lines_colons_count_as_whitespace() -> None:
    # .NET on ICU compares as if a zero-width space or a byte-order mark were not there.
    assert escaped("\u200b::add-mask::x\n\ufeff ::group::") == (
        "\u200b::\\add-mask::x\n\ufeff ::\\group::"
    )
    assert escaped("#\u200b#[error]x") == "#\u200b#[\\error]x"


def test_a_command_split_between_writes_is_broken_as_one_write_is() -> None:
    text = "a ##[add-mask]x\n ::stop-commands::t\nb #\r:\n::group::\n#\u200b#[error]\n"
    whole = escaped(text)
    for split in range(len(text) + 1):
        stream = _stream()
        stream.write(text[:split])
        stream.write(text[split:])
        assert _written(stream) == whole, split


def test_reconcilers_own_commands_are_written_whole_on_a_line_of_their_own() -> None:
    stream = _stream()
    stream.write("progress ##[group]x")  # a line not ended yet
    stream.write_command("::error file=a.yaml,line=1,title=reconciler plan::bad\n")
    stream.write("::add-mask::y\n")

    assert _written(stream) == (
        "progress ##[\\group]x\n::error file=a.yaml,line=1,title=reconciler plan::bad\n"
        "::\\add-mask::y\n"
    )
    assert [c.name for c in commands(_written(stream))] == ["error"]


def test_json_spells_the_bracket_as_an_escape_and_parses_to_the_same_value() -> None:
    value = {"##[add-mask]k": ["VIP ##[add-mask]Apply", "\n::group::x"]}

    text = json_text(value)

    assert "##[" not in text and commands(text) == []
    assert json.loads(text) == value
    assert json_text([1, "a"], indent=None) == json.dumps([1, "a"])


def _stream() -> CommandSafeText:
    return CommandSafeText(io.BytesIO(), encoding="utf-8", write_through=True)


def _written(stream: CommandSafeText) -> str:
    stream.flush()
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode("utf-8")
