"""Manifest problems as GitHub Actions annotations (`::error file=...,line=...::message`),
which a pull request shows on its diff: `validate` and `plan` run as subprocesses, as a
workflow step runs them, with GITHUB_ACTIONS=true. Checked: the exact lines, the file
relative to the repository's root wherever the command runs, the escaping of text a pull
request brings (no forged command, no other file's annotation), masking, GitHub's limit
of 10 per level, and the option that turns them on or off."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli.annotate import Annotation, command_line, escape_data, escape_property
from reconciler.manifest.model import AudienceSpec

ROOT = Path(__file__).resolve().parents[2]

DESTINATION = """\
apiVersion: reconciler/v1
kind: Destination
metadata: {name: prod}
spec:
  region: sandbox
  projectType: hybrid
"""
# Line 7 declares the CSV; line 8 is a key no Audience has.
AUDIENCE = """\
apiVersion: reconciler/v1
kind: Audience
metadata: {name: vip}
spec:
  destination: prod
  members:
    csv: vip.csv
"""
# The keys an Audience's spec allows, in the model's order (as the loader lists them): this
# file tests where the message goes, not which keys there are.
UNKNOWN_KEY = "unknown key 'colour' in spec; allowed: " + ", ".join(AudienceSpec.model_fields)
# Every line the runner reads as a workflow command starts with `::`.
COMMAND = re.compile(r"^::")
ANNOTATION = re.compile(
    r"^::(error|warning) file=[^,:\r\n]+,line=[1-9]\d*(,col=[1-9]\d*)?,"
    r"title=reconciler (validate|plan)::[^\r\n]*$"
)


def repository(tmp_path: Path, *, git: bool = True) -> Path:
    """A repository whose manifests are in infra/manifests, as `validate manifests` run
    from infra/ sees them; returns that manifest directory."""
    repo = tmp_path / "repo"
    manifests = repo / "infra" / "manifests"
    manifests.mkdir(parents=True)
    if git:
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (manifests / "prod.yaml").write_text(DESTINATION)
    return manifests


def run(
    cwd: Path, *args: str, env: dict[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    # Nothing of the machine's own GITHUB_* (a CI run's workspace) or RECONCILER_*; a None
    # in `env` leaves a variable unset.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILER_", "GIT"))}
    merged = {**inherited, "GITHUB_ACTIONS": "true", "PYTHONPATH": str(ROOT), **(env or {})}
    environment = {k: v for k, v in merged.items() if v is not None}
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *args],
        cwd=cwd,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def commands(text: str) -> list[str]:
    return [line for line in text.splitlines() if COMMAND.match(line)]


def test_escaping_is_githubs_exactly() -> None:
    assert escape_data("100% a\r\nb::c,d") == "100%25 a%0D%0Ab::c,d"
    assert escape_property("a,line=9:x%\n") == "a%2Cline=9%3Ax%25%0A"
    # A message or a file's name holding a line break stays on the command's one line.
    hostile = Annotation("error", "m/a\n::stop-commands::t.yaml", 3, 0, "x\r\n::add-mask::y")
    assert command_line(hostile, "reconciler validate") == (
        "::error file=m/a%0A%3A%3Astop-commands%3A%3At.yaml,line=3,title=reconciler validate::"
        "x%0D%0A::add-mask::y"
    )


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_manifest_errors_annotate_their_line_relative_to_the_repository(
    tmp_path: Path, command: str
) -> None:
    manifests = repository(tmp_path)
    (manifests / "vip.yaml").write_text(AUDIENCE + "  colour: blue\n")
    (manifests / "vip.csv").write_text("email\na@example.com\n")

    result = run(manifests.parent, command, "manifests")

    assert result.returncode == 1, result.stderr
    # The log keeps its lines, relative to where the command ran.
    assert f"manifests/vip.yaml:8:3: {UNKNOWN_KEY}" in result.stderr
    assert commands(result.stderr) == [
        "::error file=infra/manifests/vip.yaml,line=8,col=3,"
        f"title=reconciler {command}::{UNKNOWN_KEY}"
    ]
    assert commands(result.stdout) == []


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_warnings_are_said_beside_the_errors_in_the_same_run(tmp_path: Path, command: str) -> None:
    """An audience naming a destination there is not (an error) whose inline member is
    read through an anchor (a warning): both in one run, in the log and as annotations,
    each once, and the exit and the count are the errors' as before. The warning came
    only on the run after the error was fixed: a push more in CI."""
    manifests = repository(tmp_path)
    (manifests / "vip.yaml").write_text(
        AUDIENCE.replace("prod", "staging").replace("csv: vip.csv", "inline:\n      - &a1 u1")
    )
    warning = (
        "spec.members.inline[0]: a value that starts with & is an anchor to YAML, which it "
        "drops: the member is the text after the anchor's name; put the whole value in "
        "quotes if the & belongs to it"
    )
    error = "spec.destination: unknown destination 'staging'; known destinations: prod"

    result = run(manifests.parent, command, "manifests")

    assert result.returncode == 1, result.stderr
    log = [line for line in result.stderr.splitlines() if not COMMAND.match(line)]
    assert log == [
        f"warning: manifests/vip.yaml:8:9: {warning}",
        f"manifests/vip.yaml:5:16: {error}",
        "1 problem found.",
    ]
    assert commands(result.stderr) == [
        f"::error file=infra/manifests/vip.yaml,line=5,col=16,title=reconciler {command}::{error}",
        "::warning file=infra/manifests/vip.yaml,line=8,col=9,"
        f"title=reconciler {command}::{warning}",
    ]


def test_members_and_warnings_are_annotated_masked_even_with_show_members(
    tmp_path: Path,
) -> None:
    manifests = repository(tmp_path)
    (manifests / "vip.yaml").write_text(AUDIENCE)
    # user_id is not a column the audience names: a warning; row 3 is no email: an error.
    (manifests / "vip.csv").write_text(
        "email,user_id\nann.secret@example.com,u-1\nnot-an-email,u-2\n"
    )

    for extra in ((), ("--show-members",)):
        result = run(manifests, "validate", ".", *extra)

        assert result.returncode == 1, result.stderr
        lines = commands(result.stderr)
        assert lines == [
            "::error file=infra/manifests/vip.csv,line=3,title=reconciler validate::"
            "invalid email 'n***#1'",
            "::warning file=infra/manifests/vip.yaml,line=7,col=10,title=reconciler validate::"
            + lines[1].split("::", 2)[2],
        ]
        assert (
            lines[1]
            .split("::", 2)[2]
            .startswith("members.csv: vip.csv has a column 'user_id' but none named 'userId'")
        )
        assert all(ANNOTATION.match(line) for line in lines)
        assert "secret" not in "\n".join(lines)
        assert "not-an-email" not in "\n".join(lines)
    assert "not-an-email" in result.stderr  # the log, with --show-members, shows it


def test_plan_annotates_rows_it_leaves_out_and_keeps_stdout_clean(tmp_path: Path) -> None:
    manifests = repository(tmp_path)
    (manifests / "vip.yaml").write_text(AUDIENCE)
    (manifests / "vip.csv").write_text("email,user_id\nann@example.com,u-1\nnot-an-email,u-2\n")

    result = run(manifests.parent, "plan", "manifests", "--format", "json")

    assert result.returncode == 1, result.stderr
    assert [line.split("::", 2)[1] for line in commands(result.stderr)] == [
        "warning file=infra/manifests/vip.yaml,line=7,col=10,title=reconciler plan",
        "error file=infra/manifests/vip.csv,line=3,title=reconciler plan",
    ]
    assert commands(result.stderr)[1].endswith("::invalid email 'n***#1'")
    assert result.stdout.startswith("{") and commands(result.stdout) == []


def test_text_from_a_pull_request_cannot_forge_a_command_or_another_files_annotation(
    tmp_path: Path,
) -> None:
    manifests = repository(tmp_path)
    # A file name that would close `file=` and give a line of its choosing; a query whose
    # error DuckDB quotes on lines of their own, starting with commands; `%0A` as text.
    name = "x,line=1,col=1,title=forged:y.yaml"
    (manifests / name).write_text(AUDIENCE.replace("vip", "forged") + "  colour: '100%0A'\n")
    (manifests / "vip.yaml").write_text(
        AUDIENCE.replace(
            "    csv: vip.csv\n",
            '    sql: "SELECT 1 AS email FROM t\\n::add-mask::ok\\n::stop-commands::ok"\n'
            "    database: ':memory:'\n",
        )
    )

    unknown_key = run(manifests.parent, "validate", "manifests")
    (manifests / name).unlink()
    query = run(manifests.parent, "validate", "manifests")

    lines = commands(unknown_key.stderr) + commands(query.stderr)
    assert lines == [
        "::error file=infra/manifests/x%2Cline=1%2Ccol=1%2Ctitle=forged%3Ay.yaml,line=8,col=3,"
        f"title=reconciler validate::{UNKNOWN_KEY}",
        "::error file=infra/manifests/vip.yaml,line=7,col=10,title=reconciler validate::"
        + lines[1].split("::", 2)[2],
    ]
    assert "%0A%0ALINE 2: ::add-mask::ok%0A" in lines[1]
    assert all(ANNOTATION.match(line) for line in lines)
    # The log's own lines of that error do not start a command either.
    assert "::add-mask::ok" in query.stderr


def test_a_manifest_named_as_a_command_does_not_start_a_log_line_from_where_it_is(
    tmp_path: Path,
) -> None:
    """Run where the manifests are (`validate .`, a step's working-directory), a problem's
    line started with the file's name as given: a pull request adding a manifest named
    `::error title=Approved::x.yaml` had the runner read that line as a command of its own
    (a forged annotation; `::add-mask::`, `::stop-commands::` hide text or silence the real
    annotations after it). The name is now shown as `./NAME` there."""
    manifests = repository(tmp_path)
    name = "::error title=Approved::x.yaml"
    (manifests / name).write_text(AUDIENCE.replace("vip", "forged") + "  colour: red\n")

    result = run(manifests, "validate", ".")

    assert result.returncode == 1, result.stderr
    assert commands(result.stderr) == [
        "::error file=infra/manifests/%3A%3Aerror title=Approved%3A%3Ax.yaml,line=8,col=3,"
        f"title=reconciler validate::{UNKNOWN_KEY}"
    ]
    assert f"./{name}:8:3: {UNKNOWN_KEY}" in result.stderr.splitlines()

    # So is a member file's, which starts the line of each row it skips.
    (manifests / name).unlink()
    (manifests / "rows.yaml").write_text(AUDIENCE.replace("vip.csv", '"::add-mask::m.csv"'))
    (manifests / "::add-mask::m.csv").write_text("email\nnot-an-email\nok@example.com\n")

    rows = run(manifests, "validate", ".")

    (line,) = commands(rows.stderr)
    assert line.startswith("::error file=infra/manifests/%3A%3Aadd-mask%3A%3Am.csv,line=2,")
    assert ANNOTATION.match(line)
    assert "./::add-mask::m.csv:2: invalid email 'n***#1'" in rows.stderr.splitlines()


def test_at_most_ten_of_each_level_and_the_log_says_so_once(tmp_path: Path) -> None:
    manifests = repository(tmp_path)
    (manifests / "vip.yaml").write_text(AUDIENCE)
    rows = "".join(f"bad-{i}\n" for i in range(12))
    (manifests / "vip.csv").write_text("email\n" + rows)

    result = run(manifests.parent, "validate", "manifests")

    assert result.returncode == 1
    lines = commands(result.stderr)
    assert [line.split(",")[1] for line in lines] == [f"line={n}" for n in range(2, 12)]
    notes = [line for line in result.stderr.splitlines() if "annotations per step" in line]
    assert notes == [
        "note: 12 errors have a file and line, and GitHub shows 10 error annotations per "
        "step: the first 10 are annotated; the output says the rest."
    ]
    assert result.stderr.count(": invalid email") == 12  # the log lists every one


def test_the_note_on_annotations_left_out_is_true_of_rows_the_log_counts(tmp_path: Path) -> None:
    """A template failing on 12 rows is listed for 5 of them and counted for the other 7
    (validate's same-error count), where the note said the output listed them all."""
    manifests = repository(tmp_path)
    (manifests / "traits.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: TraitMapping\nmetadata: {name: crm}\n"
        "spec:\n  fields:\n    ratio: {template: '{{ 1/0 }}'}\n"
    )
    (manifests / "vip.yaml").write_text(AUDIENCE + "  traits: crm\n")
    rows = "".join(f"m{i}@example.com\n" for i in range(12))
    (manifests / "vip.csv").write_text("email\n" + rows)

    result = run(manifests.parent, "validate", "manifests")

    assert result.returncode == 1, result.stderr
    assert result.stderr.count("division by zero") == 5 + 10  # 5 lines, 10 annotations
    assert "... and 7 more rows with the same error as manifests/vip.csv:2" in result.stderr
    (note,) = [line for line in result.stderr.splitlines() if "annotations per step" in line]
    assert "lists them all" not in note
    assert note.endswith("the first 10 are annotated; the output says the rest.")


@pytest.mark.parametrize(
    ("env", "option", "annotated"),
    [
        ({}, (), True),
        ({"GITHUB_ACTIONS": None}, (), False),
        ({"GITHUB_ACTIONS": "false"}, (), False),
        ({}, ("--annotations", "none"), False),
        ({"RECONCILER_ANNOTATIONS": "none"}, (), False),
        ({"GITHUB_ACTIONS": None}, ("--annotations", "github"), True),
        ({"GITHUB_ACTIONS": None, "RECONCILER_ANNOTATIONS": "github"}, (), True),
    ],
)
def test_annotations_follow_github_actions_or_the_option(
    tmp_path: Path, env: dict[str, str | None], option: tuple[str, ...], annotated: bool
) -> None:
    manifests = repository(tmp_path)
    (manifests / "vip.yaml").write_text(AUDIENCE + "  colour: blue\n")

    result = run(manifests.parent, "validate", "manifests", *option, env=env)

    assert result.returncode == 1
    assert f"manifests/vip.yaml:8:3: {UNKNOWN_KEY}" in result.stderr
    assert len(commands(result.stderr)) == (1 if annotated else 0)


def test_without_git_the_path_is_relative_to_the_workspace(tmp_path: Path) -> None:
    manifests = repository(tmp_path, git=False)
    (manifests / "vip.yaml").write_text(AUDIENCE + "  colour: blue\n")

    result = run(manifests, "validate", ".", env={"GITHUB_WORKSPACE": str(tmp_path / "repo")})

    assert commands(result.stderr) == [
        "::error file=infra/manifests/vip.yaml,line=8,col=3,"
        f"title=reconciler validate::{UNKNOWN_KEY}"
    ]


def test_the_note_is_said_once_and_only_when_annotations_were_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A command emits its annotations in several calls (validate's problems, then plan's
    # member issues): exactly GitHub's 10 is no loss, and the 13th is no news.
    from reconciler.cli.annotate import _Annotator

    monkeypatch.chdir(tmp_path)
    annotator = _Annotator(enabled=True, title="reconciler plan")
    error = Annotation("error", "m.yaml", 3, 0, "bad")

    annotator.emit([error] * 10)
    assert "annotations per step" not in capsys.readouterr().err
    annotator.emit([error] * 2)
    annotator.emit([error])

    err = capsys.readouterr().err
    assert commands(err) == []  # the first 10 were all there is room for
    assert [line for line in err.splitlines() if "annotations per step" in line] == [
        "note: 12 errors have a file and line, and GitHub shows 10 error annotations per "
        "step: the first 10 are annotated; the output says the rest."
    ]


def test_a_skipped_rows_annotation_is_masked_though_the_log_shows_members(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --show-members shows them in the log a run's readers see; an annotation outlives it
    # on the check run, so it masks them whatever the log does.
    from reconciler.cli.annotate import from_issue
    from reconciler.members.issue import MemberIssue
    from reconciler.render.masking import quoted, shower

    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.csv").write_text("email\nann@example\n")
    issue = MemberIssue("m.csv:2", "invalid email", "ann@example")

    shown = from_issue(issue, "error", quoted(shower(True)))

    assert shown is not None and (shown.file, shown.line) == ("m.csv", 2)
    assert shown.message.startswith("invalid email") and "ann@example" not in shown.message


def test_only_a_file_that_exists_gives_a_message_its_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `Iterable: 503: busy` or `https://host:443: refused` name no file of the pull request.
    from reconciler.cli.annotate import located

    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.yaml").write_text("a: 1\n")

    assert located("Iterable:503: busy", "error") is None
    assert located("m.yaml:1:4: unknown key", "error") == Annotation(
        "error", "m.yaml", 1, 4, "unknown key"
    )
