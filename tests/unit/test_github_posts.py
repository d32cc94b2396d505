"""github/comment.py, issue.py and runs.py, through the recording `gh` stand-in
(tests/integration/fake_gh.py) on PATH: one comment or issue per marker and author, edited
in place, never someone else's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.github.comment import OUTDATED_LINE, mark_outdated, upsert_comment
from reconciler.github.gh import Gh, GhError
from reconciler.github.identity import Author
from reconciler.github.issue import close_issue, open_or_update_issue
from reconciler.github.runs import Run, busy_runs, github_time

FAKE_GH = Path(__file__).resolve().parents[1] / "integration" / "fake_gh.py"
BOT = Author("github-actions[bot]")
MARK = "reconciler-plan"
LINE = "<!-- reconciler-plan -->"


class _Fake:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: dict) -> None:
        gh = tmp_path / "gh"
        gh.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_GH}" "$@"\n')
        gh.chmod(0o755)
        self.state_path = tmp_path / "gh.json"
        self.state_path.write_text(
            json.dumps({"next_id": 100, "comments": {}, "issues": []} | state)
        )
        self.log = tmp_path / "log"
        monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
        monkeypatch.setenv("FAKE_GH_STATE", str(self.state_path))
        monkeypatch.setenv("FAKE_GH_LOG", str(self.log))
        monkeypatch.setenv("GH_TOKEN", "ghs_fake")

    @property
    def state(self) -> dict[str, Any]:
        return json.loads(self.state_path.read_text())

    def methods(self) -> list[str]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [json.loads(line)["argv"][2] for line in lines]


def _comment(id_: int, body: str, login: str, kind: str) -> dict[str, Any]:
    return {"id": id_, "body": body, "user": {"login": login, "type": kind}}


def test_the_oldest_own_marked_comment_is_edited_and_no_one_elses(tmp_path, monkeypatch) -> None:
    comments = [
        _comment(5, f"{LINE}\nby a person quoting the marker", "octocat", "User"),
        _comment(9, f"{LINE}\nold plan (newer copy)", "github-actions[bot]", "Bot"),
        _comment(8, f"{LINE}\nold plan", "github-actions[bot]", "Bot"),
        _comment(3, f"> {LINE}\nquoted in a reply", "github-actions[bot]", "Bot"),
    ]
    fake = _Fake(tmp_path, monkeypatch, {"comments": {"7": comments}})
    posted = upsert_comment(Gh(), "o/r", 7, MARK, f"{LINE}\nnew plan", BOT)
    assert (posted.action, posted.number) == ("updated", 8)
    bodies = {c["id"]: c["body"] for c in fake.state["comments"]["7"]}
    assert bodies[8] == f"{LINE}\nnew plan"
    assert bodies[5].endswith("quoting the marker") and bodies[9].endswith("newer copy)")
    # The same body again: nothing written.
    again = upsert_comment(Gh(), "o/r", 7, MARK, f"{LINE}\nnew plan", BOT)
    assert again.action == "unchanged"
    assert fake.methods() == ["GET", "PATCH", "GET"]


def test_a_comment_is_created_when_only_others_carry_the_marker(tmp_path, monkeypatch) -> None:
    comments = [_comment(5, f"{LINE}\nmine?", "github-actions", "User")]  # a person, not the bot
    fake = _Fake(tmp_path, monkeypatch, {"comments": {"7": comments}})
    posted = upsert_comment(Gh(), "o/r", 7, MARK, f"{LINE}\nplan", BOT)
    assert posted.action == "created" and posted.number == 101
    assert posted.url == "https://github.test/o/r/pull/7#issuecomment-101"
    assert len(fake.state["comments"]["7"]) == 2


def test_an_issue_is_opened_kept_current_and_closed_with_a_last_word(tmp_path, monkeypatch) -> None:
    fake = _Fake(tmp_path, monkeypatch, {})
    opened = open_or_update_issue(Gh(), "o/r", MARK, "Drift", f"{LINE}\n2 lists", BOT)
    assert opened.action == "created"
    same = open_or_update_issue(Gh(), "o/r", MARK, "Drift", f"{LINE}\n2 lists", BOT)
    assert (same.action, same.number) == ("unchanged", opened.number)
    retitled = open_or_update_issue(Gh(), "o/r", MARK, "Drift again", f"{LINE}\n2 lists", BOT)
    assert retitled.action == "updated"
    closed = close_issue(Gh(), "o/r", MARK, BOT, comment="in line again")
    assert closed is not None and (closed.action, closed.number) == ("closed", opened.number)
    (issue,) = fake.state["issues"]
    assert issue["state"] == "closed" and issue["title"] == "Drift again"
    assert fake.state["comments"][str(opened.number)][0]["body"] == "in line again"
    # Nothing open any more: nothing to close, and no write.
    before = len(fake.methods())
    assert close_issue(Gh(), "o/r", MARK, BOT) is None
    assert fake.methods()[before:] == ["GET"]


def test_busy_runs_are_unfinished_ones_and_those_created_since(tmp_path, monkeypatch) -> None:
    runs = [
        {"workflow": "apply.yml", "id": 1, "status": "waiting", "html_url": "u1"},
        {"workflow": "apply.yml", "id": 2, "status": "completed", "html_url": "u2"},
        {"workflow": "sync.yml", "id": 3, "status": "completed", "html_url": "u3"},
    ]
    runs[0]["created_at"] = "2026-01-30T00:00:00Z"
    runs[1]["created_at"] = "2026-01-31T07:00:00Z"  # finished during the drift check's plan
    runs[2]["created_at"] = "2026-01-31T06:00:00Z"  # finished before it started
    _Fake(tmp_path, monkeypatch, {"runs": runs})
    # 07:30 at +01:00 is 06:30 UTC.
    found = busy_runs(Gh(), "o/r", ["apply.yml", "sync.yml"], since="2026-01-31T07:30:00+01:00")
    assert found == [Run("apply.yml", "waiting", "u1"), Run("apply.yml", "completed", "u2")]
    with pytest.raises(GhError, match=r"is there a workflow \.github/workflows/nope\.yml in o/r"):
        busy_runs(Gh(), "o/r", ["nope.yml"])


def test_github_time_is_utc_to_the_second_and_refuses_other_text() -> None:
    assert github_time(" 2026-01-31T07:17:00.9+01:00 ") == "2026-01-31T06:17:00Z"
    assert github_time("2026-01-31") == "2026-01-31T00:00:00Z"  # UTC, unless an offset
    with pytest.raises(ValueError, match="is not an ISO 8601 time"):
        github_time("yesterday")
    with pytest.raises(ValueError, match="outside the years 1 to 9999 in UTC"):
        github_time("0001-01-01T00:00:00+01:00")


def test_an_unchanged_plan_with_accents_is_not_posted_again_under_a_legacy_locale(
    tmp_path, monkeypatch
) -> None:
    # gh prints GitHub's UTF-8 as it is; it was read in the locale's encoding (Windows'
    # code page, ISO-8859-1 under LANG=de_DE), so a comment holding 'Café ✓' never read
    # back as the plan posted and was edited on every run (and on Windows a byte such as
    # Á's 0x81, which cp1252 lacks, was 'internal error: UnicodeDecodeError').
    fake = _Fake(tmp_path, monkeypatch, {})
    body = tmp_path / "plan.md"
    body.write_text("## Plan\n\n  + Café VIP: 2 members to add ✓ (Ánna)\n", encoding="utf-8")
    env = {**os.environ, "LC_ALL": "de_DE.ISO-8859-1", "PYTHONUTF8": "0"}
    env.pop("PYTHONIOENCODING", None)
    command = [sys.executable, "-m", "reconciler", "github", "comment", "--pr", "7"]
    for _ in range(2):
        done = subprocess.run(
            [*command, "--body-file", str(body), "--repo", "acme/audiences"],
            env=env, capture_output=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    assert fake.methods().count("PATCH") == 0
    [posted] = fake.state["comments"]["7"]
    assert "Café VIP: 2 members to add ✓ (Ánna)" in posted["body"]


def test_marking_outdated_edits_only_the_own_plan_of_another_commit(tmp_path, monkeypatch) -> None:
    old = f"{LINE}\n### reconciler plan: no changes\n\n<sub>Plan for 0123456789ab</sub>\n"
    comments = [
        _comment(5, f"{LINE}\nby a person quoting the marker", "octocat", "User"),
        _comment(8, old, "github-actions[bot]", "Bot"),
    ]
    fake = _Fake(tmp_path, monkeypatch, {"comments": {"7": comments}})
    same = mark_outdated(Gh(), "o/r", 7, MARK, "0123456789abcdef" * 2, "> stale", BOT)
    assert same is not None and same.action == "unchanged"  # a re-run of the same commit
    for warning in ("> stale", "> stale again"):
        posted = mark_outdated(Gh(), "o/r", 7, MARK, "f" * 40, warning, BOT)
        assert posted is not None and (posted.action, posted.number) == ("updated", 8)
    bodies = {c["id"]: c["body"] for c in fake.state["comments"]["7"]}
    assert bodies[8] == f"{LINE}\n{OUTDATED_LINE}\n> stale again\n\n" + old.removeprefix(
        LINE + "\n"
    )
    assert bodies[5].endswith("quoting the marker")
    assert fake.methods() == ["GET", "GET", "PATCH", "GET", "PATCH"]


def test_marking_outdated_writes_nothing_before_the_first_plan(tmp_path, monkeypatch) -> None:
    comments = [_comment(5, f"{LINE}\nan old plan", "mallory", "User")]
    fake = _Fake(tmp_path, monkeypatch, {"comments": {"7": comments}})
    assert mark_outdated(Gh(), "o/r", 7, MARK, "f" * 40, "> stale", BOT) is None
    assert fake.methods() == ["GET"]
