"""What reconciler posts to GitHub: the marker, the size limit, and gh's paginated output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from reconciler.errors import ReconcilerError
from reconciler.github import has_marker, marked_body
from reconciler.github.current import COMPARE_FILE_LIMIT, newer_changes
from reconciler.github.gh import Gh, _pages
from reconciler.github.message import MAX_BODY

GITHUB_BODY_LIMIT = 65_536
FAKE_GH = Path(__file__).resolve().parents[1] / "integration" / "fake_gh.py"


def test_marker_leads_the_body_and_only_a_leading_marker_counts():
    body = marked_body("reconciler-plan", "### plan\n", "footer")
    assert body == "<!-- reconciler-plan -->\n### plan\n\n<sub>footer</sub>\n"
    assert has_marker(body, "reconciler-plan")
    assert not has_marker("> " + body, "reconciler-plan")  # a reviewer quoting it
    assert not has_marker(body, "reconciler-drift")
    assert not has_marker(None, "reconciler-plan")


def test_markers_are_plain_names():
    with pytest.raises(ReconcilerError, match="lowercase letters"):
        marked_body("--> <script>", "x")


def test_a_plan_too_long_for_github_is_cut_with_open_blocks_closed():
    rows = "\n".join(f"+ vip: user{i}@example.com" for i in range(10_000))
    text = f"### plan\n<details><summary>members</summary>\n\n```diff\n{rows}\n```\n</details>\n"
    body = marked_body("reconciler-plan", text, "footer", full_at="https://run")
    assert len(body) < GITHUB_BODY_LIMIT
    assert len(body) > MAX_BODY // 2
    kept = body.split("_The plan is too long")[0]
    assert kept.count("```") % 2 == 0
    assert kept.count("<details>") == kept.count("</details>")
    assert "the job summary of https://run holds more of it" in body
    assert body.rstrip().endswith("<sub>footer</sub>")


def test_paginated_gh_output_is_joined_into_one_list():
    assert _pages('[{"id": 1}, {"id": 2}]\n[{"id": 3}]') == [{"id": 1}, {"id": 2}, {"id": 3}]
    assert _pages("[][]") == []
    assert _pages("") == []


def test_too_many_changed_files_to_list_counts_as_changed_manifests(tmp_path, monkeypatch):
    """GitHub's compare lists at most 300 files: a full list may hide a manifest's change,
    so `check-current` then refuses, as for a change it sees."""
    state = tmp_path / "gh.json"
    files = [f"docs/page{i}.md" for i in range(COMPARE_FILE_LIMIT)]
    state.write_text(
        json.dumps({"next_id": 1, "comments": {}, "issues": [], "newer": [{"files": files}]})
    )
    gh = tmp_path / "gh"
    gh.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_GH}" "$@"\n')
    gh.chmod(0o755)
    monkeypatch.setenv("FAKE_GH_STATE", str(state))
    monkeypatch.setenv("FAKE_GH_LOG", str(tmp_path / "log"))
    monkeypatch.setenv("GH_TOKEN", "ghs_fake")

    newer = newer_changes(Gh(str(gh)), "acme/audiences", "0123abc", "main", "manifests")

    assert (newer.commits, newer.changed, newer.unknown) == (1, (), True)


def test_a_body_file_in_utf16_is_posted_and_one_in_another_encoding_is_named(tmp_path, monkeypatch):
    """Windows PowerShell's `plan --format markdown > plan.md` saves UTF-16: posting it was
    an internal error (UnicodeDecodeError), as was a file in a legacy 8-bit encoding."""
    from typer.testing import CliRunner

    from reconciler.cli import app

    state = tmp_path / "gh.json"
    gh = tmp_path / "gh"
    gh.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_GH}" "$@"\n')
    gh.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GH_STATE", str(state))
    monkeypatch.setenv("FAKE_GH_LOG", str(tmp_path / "log"))
    monkeypatch.setenv("GH_TOKEN", "ghs_fake")
    body = tmp_path / "drift.md"
    issue = ["github", "issue", "--title", "drift", "--body-file", str(body), "--repo", "a/b"]

    body.write_bytes("### plan · café\n".encode("utf-16"))
    posted = CliRunner().invoke(app, issue)
    assert posted.exit_code == 0, posted.output
    (opened,) = json.loads(state.read_text())["issues"]
    assert "### plan · café\n" in opened["body"]

    body.write_bytes("### plan · café\n".encode("latin-1"))
    refused = CliRunner().invoke(app, issue)
    assert refused.exit_code == 1
    assert f"{body} is not UTF-8 text" in refused.output
    assert "internal error" not in refused.output


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        # A proxy or an outage page in front of GitHub: gh prints whatever body it got.
        ("<html><body>Service unavailable</body></html>", "is not JSON"),
        # An issue list whose items are not objects.
        ("[5]", "not of the shape reconciler expects"),
    ],
    ids=["html", "wrong-shape"],
)
def test_an_answer_from_gh_that_is_not_githubs_json_is_an_error_not_a_bug(
    tmp_path, monkeypatch, answer, said
):
    """Found by fuzzing: `github comment`, `issue` and `close-issue` ended in an internal
    error (JSONDecodeError, TypeError) when gh printed anything but GitHub's JSON."""
    from typer.testing import CliRunner

    from reconciler.cli import app

    gh = tmp_path / "gh"
    gh.write_text(f"#!/bin/sh\ncat >/dev/null 2>&1 </dev/null\nprintf '%s' '{answer}'\n")
    gh.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    result = CliRunner().invoke(app, ["github", "close-issue", "--repo", "a/b", "--author", "me"])
    assert result.exit_code == 1, result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
    assert said in result.output and "gh api" in result.output


def _fake_gh_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: dict) -> Path:
    """fake_gh.py as `gh` on PATH, with `state`; returns its call log."""
    gh = tmp_path / "gh"
    gh.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_GH}" "$@"\n')
    gh.chmod(0o755)
    (tmp_path / "gh.json").write_text(
        json.dumps({"next_id": 1, "comments": {}, "issues": []} | state)
    )
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GH_STATE", str(tmp_path / "gh.json"))
    monkeypatch.setenv("FAKE_GH_LOG", str(tmp_path / "log"))
    monkeypatch.setenv("GH_TOKEN", "ghs_fake")
    return tmp_path / "log"


@pytest.mark.parametrize(
    "since", ["yesterday", "2026-01-31 25:00", "31/01/2026", "2026-01-31T06:17:00Z&status=x", ""]
)
def test_check_idle_refuses_a_since_that_is_not_an_iso_time_naming_the_option(
    tmp_path, monkeypatch, since
):
    """`--since` went into GitHub's query as it came: GitHub refused it, and the refusal
    was worded as a workflow the repository lacks ('is there a workflow ...?')."""
    from typer.testing import CliRunner

    from reconciler.cli import app

    log = _fake_gh_on_path(tmp_path, monkeypatch, {})
    args = ["github", "check-idle", "--workflow", "apply.yml", "--since", since, "--repo", "a/b"]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 1, result.output  # a usage error: not 3, "a run is busy"
    said = " ".join(result.output.replace("│", " ").split())  # as one line, out of its box
    assert "Invalid value for --since:" in said and "is not an ISO 8601 time" in said
    assert "is there a workflow" not in said
    assert not log.exists()  # GitHub is not asked with a time it cannot read


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"])
def test_check_idle_refuses_a_since_beyond_the_years_utc_holds_naming_the_option(
    tmp_path, monkeypatch, since
):
    """A time whose offset takes it past year 1 or 9999 in UTC was an internal error
    (OverflowError, 'a bug in reconciler'), not the usage error README promises."""
    from typer.testing import CliRunner

    from reconciler.cli import app

    log = _fake_gh_on_path(tmp_path, monkeypatch, {})
    args = ["github", "check-idle", "--workflow", "apply.yml", "--since", since, "--repo", "a/b"]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 1, result.output
    said = " ".join(result.output.replace("│", " ").split())
    assert "Invalid value for --since:" in said and "outside the years" in said
    assert not log.exists()


@pytest.mark.parametrize(
    ("since", "sent"),
    [
        ("2026-01-31T06:17:00Z", "2026-01-31T06:17:00Z"),
        ("2026-01-31T06:17:00", "2026-01-31T06:17:00Z"),  # UTC, as --help says
        ("2026-01-31T07:17:00+01:00", "2026-01-31T06:17:00Z"),
        ("2026-01-31T06:17:00.750Z", "2026-01-31T06:17:00Z"),  # earlier, never later
        ("2026-01-31", "2026-01-31T00:00:00Z"),
    ],
)
def test_check_idle_sends_since_to_github_as_a_utc_time(tmp_path, monkeypatch, since, sent):
    from typer.testing import CliRunner

    from reconciler.cli import app

    run = {
        "workflow": "apply.yml",
        "id": 9,
        "status": "completed",
        "created_at": "2026-01-31T06:17:00Z",
        "html_url": "https://github.test/a/b/actions/runs/9",
    }
    log = _fake_gh_on_path(tmp_path, monkeypatch, {"runs": [run]})
    args = ["github", "check-idle", "--workflow", "apply.yml", "--since", since, "--repo", "a/b"]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 3, result.output
    assert "apply.yml run completed: https://github.test/a/b/actions/runs/9" in result.output
    queries = [json.loads(line)["argv"][3] for line in log.read_text().splitlines()]
    assert any(q.endswith("&created=%3E%3D" + sent.replace(":", "%3A")) for q in queries)


def test_a_gh_call_that_hangs_is_stopped_after_its_timeout_and_named(tmp_path, monkeypatch):
    """A `gh api` call that never answers (a proxy that holds the connection) held the
    workflow's job until Actions' six-hour limit: it is stopped, and the error names the
    call and the variable that sets the limit."""
    from reconciler.github.gh import GhError

    gh = tmp_path / "gh"
    gh.write_text("#!/bin/sh\nexec sleep 60\n")
    gh.chmod(0o755)
    monkeypatch.setenv("RECONCILER_GH_TIMEOUT", "0.5")

    with pytest.raises(GhError) as caught:
        Gh(str(gh)).api("GET", "repos/acme/audiences/actions/runs")

    assert "gh api GET repos/acme/audiences/actions/runs did not finish within 0.5" in str(
        caught.value
    )
    assert "RECONCILER_GH_TIMEOUT" in str(caught.value)


def test_check_idle_whose_gh_call_hangs_says_so_without_the_missing_workflow_hint(
    tmp_path, monkeypatch
):
    """A hung `gh api` call (RECONCILER_GH_TIMEOUT) in check-idle was worded as a workflow
    the repository lacks ('is there a workflow .github/workflows/apply.yml ...? reading
    runs needs `actions: read`'), sending the user to look for a file that is there, and
    said 'within 1 seconds'."""
    from typer.testing import CliRunner

    from reconciler.cli import app

    gh = tmp_path / "gh"
    gh.write_text("#!/bin/sh\nexec sleep 60\n")
    gh.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setenv("RECONCILER_GH_TIMEOUT", "1")
    args = ["github", "check-idle", "--workflow", "apply.yml", "--repo", "a/b"]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 1, result.output
    assert "did not finish within 1 second (RECONCILER_GH_TIMEOUT)" in result.output
    assert "is there a workflow" not in result.output


def _check_current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str):
    """check-current --path PATH, from `tmp_path`, with a README and a manifest changed."""
    monkeypatch.chdir(tmp_path)
    newer = ["README.md", "manifests/audiences/vip.yaml"]
    return _check_newer(tmp_path, monkeypatch, newer, "--path", path)


def _repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, members: dict) -> Path:
    """A checkout (the working directory) whose one audience reads `members`, with
    data/members.csv, data/members.parquet, data/members.db and data/other.csv."""
    import sqlite3

    import duckdb

    repo = tmp_path / "repo"
    (repo / "manifests").mkdir(parents=True)
    (repo / "data").mkdir()
    for name in ("members.csv", "other.csv"):
        (repo / "data" / name).write_text("email\na@example.com\n")
    with duckdb.connect() as db:
        db.execute(f"COPY (SELECT 'a@example.com' AS email) TO '{repo}/data/members.parquet'")
    with sqlite3.connect(repo / "data" / "members.db") as db:
        db.execute("CREATE TABLE m (email TEXT)")
    destination = {
        "apiVersion": "reconciler/v1",
        "kind": "Destination",
        "metadata": {"name": "prod"},
        "spec": {"region": "us", "projectType": "email", "apiKey": {"env": "ITERABLE_API_KEY"}},
    }
    audience = {
        "apiVersion": "reconciler/v1",
        "kind": "Audience",
        "metadata": {"name": "vip"},
        "spec": {"destination": "prod", "members": members},
    }
    (repo / "manifests" / "prod.yaml").write_text(json.dumps(destination))
    (repo / "manifests" / "vip.yaml").write_text(json.dumps(audience))
    monkeypatch.chdir(repo)
    return repo


def _check_newer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: list[str], *args: str):
    """check-current with a fake gh, one newer commit changing each of `files`; `args`: more
    options."""
    from typer.testing import CliRunner

    from reconciler.cli import app

    state = tmp_path / "gh.json"
    newer = [{"files": [name]} for name in files]
    state.write_text(json.dumps({"next_id": 1, "comments": {}, "issues": [], "newer": newer}))
    gh = tmp_path / "gh"
    gh.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_GH}" "$@"\n')
    gh.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GH_STATE", str(state))
    monkeypatch.setenv("FAKE_GH_LOG", str(tmp_path / "log"))
    monkeypatch.setenv("GH_TOKEN", "ghs_fake")
    check = ["github", "check-current", "--commit", "0123456789abcdef", "--branch", "main"]
    return CliRunner().invoke(app, [*check, *args, "--repo", "acme/audiences"])


@pytest.mark.parametrize(
    ("members", "file"),
    [
        ({"csv": "../data/members.csv"}, "data/members.csv"),
        ({"parquet": "../data/members.parquet"}, "data/members.parquet"),
        ({"sql": "SELECT email FROM m", "url": "sqlite:///data/members.db"}, "data/members.db"),
        (
            {"sql": "SELECT * FROM read_csv('data/' || 'other.csv')", "database": ":memory:"},
            "data/other.csv",
        ),
    ],
    ids=["csv", "parquet", "sqlite", "duckdb-query"],
)
def test_check_current_counts_a_newer_change_to_a_member_file_outside_the_manifests(
    tmp_path, monkeypatch, members, file
):
    """A data-only commit (people removed from ../data/members.csv) after the run's commit
    did not count: 'manifests/ unchanged', and the re-run applied the older file, subscribing
    the people removed again."""
    _repository(tmp_path, monkeypatch, members)

    result = _check_newer(tmp_path, monkeypatch, [file, "README.md"])

    assert result.exit_code == 1, result.output
    assert (
        f"files its manifests read changed on main after 0123456789ab (2 newer commits: {file}"
        in result.output
    )
    assert "Start a new run" in result.output


def test_check_current_leaves_out_files_the_manifests_do_not_read(tmp_path, monkeypatch):
    _repository(tmp_path, monkeypatch, {"csv": "../data/members.csv"})

    result = _check_newer(tmp_path, monkeypatch, ["data/other.csv", "docs/x.md"])

    assert result.exit_code == 0, result.output
    assert (
        "manifests/ unchanged on main since 0123456789ab, nor the 1 other file its manifests "
        "read" in result.output
    )


def test_a_warehouse_query_reads_no_repository_file_and_is_not_run(tmp_path, monkeypatch):
    """The URL is read as written: its ${PASSWORD} is not set in the check's step, and
    neither is the query run nor the server reached."""
    members = {"sql": "SELECT email FROM m", "url": "postgresql://u:${DB_PW}@db.invalid/x"}
    _repository(tmp_path, monkeypatch, members)
    monkeypatch.delenv("DB_PW", raising=False)

    result = _check_newer(tmp_path, monkeypatch, ["data/members.csv"])

    assert result.exit_code == 0, result.output
    assert result.output == "manifests/ unchanged on main since 0123456789ab\n"


def test_a_query_that_may_read_any_file_leaves_out_only_markdown_and_workflows(
    tmp_path, monkeypatch
):
    """Which files a DuckDB query reads is known only once it has run (a path it builds, a
    glob), and the check runs no query: any change counts but Markdown and .github/."""
    members = {"sql": "SELECT * FROM read_csv('data/*.csv')", "database": ":memory:"}
    _repository(tmp_path, monkeypatch, members)

    unrelated = _check_newer(tmp_path, monkeypatch, ["README.md", ".github/workflows/x.yml"])
    assert unrelated.exit_code == 0, unrelated.output

    result = _check_newer(tmp_path, monkeypatch, ["data/new.csv", "README.md"])
    assert result.exit_code == 1, result.output
    assert (
        "(2 newer commits: data/new.csv; the query of audience 'vip' at manifests/vip.yaml:"
        in result.output
    )


def test_manifests_that_do_not_load_count_any_change(tmp_path, monkeypatch):
    repo = _repository(tmp_path, monkeypatch, {"csv": "../data/members.csv"})
    (repo / "manifests" / "vip.yaml").write_text("kind: [")

    result = _check_newer(tmp_path, monkeypatch, ["data/members.csv"])

    assert result.exit_code == 1, result.output
    assert "the manifests in manifests/ do not load" in result.output


def test_a_member_file_through_a_symbolic_link_counts_its_target(tmp_path, monkeypatch):
    repo = _repository(tmp_path, monkeypatch, {"csv": "members.csv"})
    (repo / "manifests" / "members.csv").symlink_to("../data/members.csv")

    result = _check_newer(tmp_path, monkeypatch, ["data/members.csv"])

    assert result.exit_code == 1, result.output
    assert "(1 newer commit: data/members.csv)" in result.output
