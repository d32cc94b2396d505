"""The GitHub workflows: actionlint over each, then their `run:` steps executed with bash
against the emulator over loopback HTTP, with `gh` replaced by a recording stand-in
(tests/integration/fake_gh.py) and GITHUB_STEP_SUMMARY / GITHUB_OUTPUT as temp files."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from reconciler import alerts
from reconciler.cli import app
from reconciler.emulator import Emulator
from tests.integration.runner_commands import commands
from tests.integration.workflow_runner import (
    FUNCTIONS,
    JobRun,
    WorkflowRunner,
    interpolate,
    load_workflow,
)
from tests.webhook import Receiver, alert_text

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
FAKE_GH = Path(__file__).with_name("fake_gh.py")
REPOSITORY = "acme/audiences"
SERVER = "https://github.test"
RUN_ID = "4242"
HEAD_SHA = "0123456789abcdef0123456789abcdef01234567"
PLAN_MARKER = "<!-- reconciler-plan -->"
DRIFT_MARKER = "<!-- reconciler-drift -->"
WRITES = ("POST", "DELETE", "PUT")
MEMBERS = ["alice@example.com", "bob@example.com"]
# The environments holding the key that writes (README: "Setting it up"), and what runs in
# each: reviewed applies, and the unattended sync.
WRITE_ENVIRONMENTS = {"iterable-production": "apply.yml", "iterable-sync": "sync.yml"}


def workflow(name: str) -> dict[str, Any]:
    return load_workflow(WORKFLOWS / name)


def run_scripts(wf: dict[str, Any]) -> list[str]:
    return [step["run"] for job in wf["jobs"].values() for step in job["steps"] if "run" in step]


@dataclass
class GitHub:
    """A repository checkout, its Iterable (the emulator) and its GitHub (fake gh state)."""

    runner: WorkflowRunner
    repo: Path
    emulator: Emulator
    api_key: str
    state: Path
    log: Path

    @property
    def project(self):
        return self.emulator.project("default")

    def audience(self, name: str, members: list[str], **spec: Any) -> None:
        doc = {
            "apiVersion": "reconciler/v1",
            "kind": "Audience",
            "metadata": {"name": name},
            "spec": {"destination": "prod", "members": {"inline": members}, **spec},
        }
        (self.repo / "manifests" / f"{name}.yaml").write_text(json.dumps(doc))

    def live_list(self, name: str, members: list[str]) -> int:
        list_id = self.project.add_list(name)
        for email in members:
            self.project.subscribe_direct(list_id, email=email)
        return list_id

    def gh(self) -> dict[str, Any]:
        return json.loads(self.state.read_text()) if self.state.exists() else {}

    def gh_calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def comments(self, pr: int = 7) -> list[dict[str, Any]]:
        return self.gh().get("comments", {}).get(str(pr), [])

    def seed_comments(self, pr: int, bodies: list[str], author: str = "a-reviewer") -> None:
        state = self.gh() or {"next_id": 1000, "comments": {}, "issues": []}
        for body in bodies:
            state["next_id"] += 1
            state["comments"].setdefault(str(pr), []).append(
                {"id": state["next_id"], "body": body, "user": {"login": author, "type": "User"}}
            )
        self.state.write_text(json.dumps(state))

    def seed_issue(self, title: str, body: str, author: str) -> int:
        state = self.gh() or {"next_id": 1000, "comments": {}, "issues": []}
        state["next_id"] += 1
        state["issues"].append(
            {
                "number": state["next_id"],
                "title": title,
                "body": body,
                "state": "open",
                "user": {"login": author, "type": "User"},
            }
        )
        self.state.write_text(json.dumps(state))
        return state["next_id"]

    def seed_run(self, workflow: str, status: str, created_at: str = "") -> str:
        """A run of `workflow` GitHub lists with `status` (in_progress, waiting, completed,
        ...), created at `created_at` (ISO 8601; default: ten minutes ago, before the drift
        check that meets it started); its page's address."""
        state = self.gh() or {"next_id": 1000, "comments": {}, "issues": []}
        state["next_id"] += 1
        url = f"{SERVER}/{REPOSITORY}/actions/runs/{state['next_id']}"
        created = created_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 600))
        run = {"workflow": workflow, "id": state["next_id"], "status": status}
        state.setdefault("runs", []).append({**run, "created_at": created, "html_url": url})
        self.state.write_text(json.dumps(state))
        return url

    def finish_runs(self) -> None:
        state = self.gh()
        for run in state.get("runs", []):
            run["status"] = "completed"
        self.state.write_text(json.dumps(state))

    def token_of(self, login: str) -> None:
        """Make gh's token a person's (GET /user answers) instead of GITHUB_TOKEN."""
        state = self.gh() or {"next_id": 1000, "comments": {}, "issues": []}
        state["token"] = {"kind": "user", "login": login}
        self.state.write_text(json.dumps(state))

    def writes(self) -> list:
        return [r for r in self.emulator.request_log if r.method in WRITES]

    def pull_request(
        self,
        name: str = "plan.yml",
        head_repo: str = REPOSITORY,
        author: str = "a-developer",
        head_sha: str = HEAD_SHA,
        **kw,
    ):
        event = {
            "pull_request": {
                "number": 7,
                "user": {"login": author},
                "head": {"sha": head_sha, "repo": {"full_name": head_repo}},
            },
            "repository": {"default_branch": "main"},
        }
        return self.run(name, "pull_request", "refs/pull/7/merge", event, actor=author, **kw)

    def push(
        self, name: str, ref_name: str = "main", event_name: str = "push", ref: str = "", **kw
    ):
        """A push to branch `ref_name`, or a run started on it (`ref`: another kind of ref,
        such as a tag, of that short name)."""
        return self.run(
            name,
            event_name,
            ref or f"refs/heads/{ref_name}",
            {"repository": {"default_branch": "main"}},
            **kw,
        )

    def run(
        self,
        name: str,
        event_name: str,
        ref: str,
        event: dict,
        edit: Callable[[dict[str, Any]], None] | None = None,
        actor: str = "a-developer",
        **kw,
    ):
        self.runner.github = {
            "repository": REPOSITORY,
            "event_name": event_name,
            "ref": ref,
            # refs/heads/main, refs/tags/main -> main; refs/pull/7/merge -> 7/merge
            "ref_name": ref.split("/", 2)[2],
            "actor": actor,
            "sha": HEAD_SHA,
            "token": "ghs_fake_installation_token",
            "run_id": RUN_ID,
            "run_attempt": "1",
            "server_url": SERVER,
            "event": event,
        }
        wf = workflow(name)
        if edit is not None:
            edit(wf)  # e.g. a mistake someone makes in their copy of the workflow
        return self.runner.run(wf, **kw)


@pytest.fixture
def github(tmp_path, make_emulator_server, fast_client) -> GitHub:
    api_key = "itbl-" + secrets.token_hex(16)
    server = make_emulator_server(api_key=api_key)
    repo = tmp_path / "repo"
    (repo / "manifests").mkdir(parents=True)
    destination = {
        "apiVersion": "reconciler/v1",
        "kind": "Destination",
        "metadata": {"name": "prod"},
        "spec": {
            "region": "us",
            "projectType": "hybrid",
            "baseUrl": server.base_url,
            "apiKey": {"env": "ITERABLE_API_KEY"},
        },
    }
    (repo / "manifests" / "prod.yaml").write_text(json.dumps(destination))
    tools = tmp_path / "bin"
    tools.mkdir()
    stand_ins = {
        "gh": f'exec "{sys.executable}" "{FAKE_GH}" "$@"',
        # The runner's `pip install .`; the package under test is installed already.
        "pip": 'echo "pip $*: (stand-in) nothing to do"',
        # The package of this checkout, whichever copy pip installed.
        "reconciler": f'PYTHONPATH="{ROOT}" exec "{sys.executable}" -m reconciler.cli "$@"',
    }
    for name, body in stand_ins.items():
        path = tools / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    state, log = tmp_path / "gh-state.json", tmp_path / "gh-log.jsonl"
    # A clean environment, as on a runner: nothing from the machine running the tests
    # (a real GH_TOKEN or GITHUB_* there must not leak in), plus the fast client settings.
    env = {
        "PATH": f"{tools}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "LANG": "C.UTF-8",
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_SERVER_URL": SERVER,
        "GITHUB_RUN_ID": RUN_ID,
        "GITHUB_SHA": HEAD_SHA,
        "FAKE_GH_STATE": str(state),
        "FAKE_GH_LOG": str(log),
        **{k: v for k, v in os.environ.items() if k.startswith("RECONCILER_")},
        # The code under test, when it is not the installed package (a worktree).
        **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
    }

    def uploaded(name: str, artifact_id: int, files: Path) -> None:
        # What GitHub knows of the run's artifacts, for `gh api .../actions/artifacts/ID`.
        gh_state = json.loads(state.read_text()) if state.exists() else {}
        gh_state.setdefault("next_id", 1000)
        gh_state.setdefault("comments", {})
        gh_state.setdefault("issues", [])
        artifacts = gh_state.setdefault("artifacts", {})
        artifacts[str(artifact_id)] = {"name": name, "path": str(files)}
        state.write_text(json.dumps(gh_state))

    # The repository secret and the environments' secrets hold the same key here (the
    # emulator has one key per project); tests that tell them apart replace one.
    runner = WorkflowRunner(
        repo=repo,
        work=tmp_path / "runs",
        tools=tools,
        github={},
        secrets={"ITERABLE_API_KEY": api_key, "GITHUB_TOKEN": "ghs_fake_installation_token"},
        env=env,
        environments={name: {"ITERABLE_API_KEY": api_key} for name in WRITE_ENVIRONMENTS},
        on_upload=uploaded,
    )
    return GitHub(runner, repo, server.emulator, api_key, state, log)


def everything_published(gh: GitHub, jobs: dict[str, JobRun]) -> str:
    """All a run leaves where people can read it: logs, summaries, outputs, GitHub posts."""
    parts = [gh.log.read_text() if gh.log.exists() else "", json.dumps(gh.gh())]
    for job in jobs.values():
        parts += [job.logs, job.summary, json.dumps(job.outputs)]
        parts += [json.dumps(step.outputs) for step in job.steps.values()]
    return "\n".join(parts)


def marked(comments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in comments if c["body"].startswith(PLAN_MARKER)]


# -- static checks ------------------------------------------------------------------------


def test_workflows_pass_actionlint():
    actionlint = shutil.which("actionlint")
    if actionlint is None:
        pytest.skip("actionlint is not installed (pip install -e '.[test]' installs it)")
    files = sorted(str(p.relative_to(ROOT)) for p in WORKFLOWS.glob("*.yml"))
    assert {Path(f).name for f in files} >= {"ci.yml", "plan.yml", "apply.yml", "drift.yml"}
    done = subprocess.run(
        [actionlint, "-no-color", *files], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", ["ci.yml", "plan.yml", "apply.yml", "drift.yml", "sync.yml"])
def test_workflows_give_untrusted_code_no_secrets_and_no_write_access(name):
    wf = workflow(name)
    text = (WORKFLOWS / name).read_text()
    assert "pull_request_target" not in wf["on"]
    assert wf["permissions"] == {"contents": "read"}  # jobs ask for more only where needed
    for script in run_scripts(wf):
        # Expressions in scripts are injection holes; values come in through env.
        assert "${{" not in script
    assert "--show-members" not in text
    for job in wf["jobs"].values():
        for step in job["steps"]:
            # Secrets reach a step only through its env, never an action's inputs.
            assert "secrets." not in json.dumps(step.get("with", {}))
            if step.get("uses", "").startswith("actions/checkout"):
                assert step["with"]["persist-credentials"] is False


# Events that run with the base repository's secrets or a write token on text or code an
# outsider controls (a fork's pull request, a comment, another workflow's artifacts).
OUTSIDER_EVENTS = {
    "pull_request_target",
    "workflow_run",
    "issue_comment",
    "issues",
    "pull_request_review",
    "pull_request_review_comment",
    "discussion",
    "discussion_comment",
}


def test_only_merged_manifests_are_ever_applied():
    """The workflows holding the write key run for the default branch's pushes, the
    schedule (which runs on the default branch) and by hand: never for a pull request's
    code, and no workflow takes an event an outsider starts with text or code of theirs.
    They restore no cache either, which a pull request's run could have written."""
    for path in sorted(WORKFLOWS.glob("*.yml")):
        assert not set(workflow(path.name)["on"]) & OUTSIDER_EVENTS, path.name
    for name in set(WRITE_ENVIRONMENTS.values()):
        wf = workflow(name)
        assert set(wf["on"]) <= {"push", "schedule", "workflow_dispatch"}, name
        if "push" in wf["on"]:
            assert wf["on"]["push"]["branches"] == ["main"]  # the default branch
        for job in wf["jobs"].values():
            for step in job["steps"]:
                assert not step.get("uses", "").startswith("actions/cache"), name
                assert "cache" not in (step.get("with") or {}), name


def test_job_permissions_are_the_least_each_needs():
    writes = {
        (name, job_id): {k: v for k, v in (job.get("permissions") or {}).items() if v == "write"}
        for name in ("ci.yml", "plan.yml", "apply.yml", "drift.yml", "sync.yml")
        for job_id, job in workflow(name)["jobs"].items()
    }
    assert {k: v for k, v in writes.items() if v} == {
        ("plan.yml", "plan"): {"pull-requests": "write"},
        ("drift.yml", "drift"): {"issues": "write"},
        ("apply.yml", "forget-plan"): {"actions": "write"},  # deletes the plan artifact
    }
    # The drift check reads whether an apply or sync run is busy; nothing else reads runs.
    assert workflow("drift.yml")["jobs"]["drift"]["permissions"] == {
        "contents": "read",
        "actions": "read",
        "issues": "write",
    }


# Subcommands that only read Iterable; anything else (apply, import, ...) counts as writing.
READ_ONLY_COMMANDS = {"plan", "validate", "status", "github"}


def test_every_job_that_writes_to_iterable_runs_in_an_environment_holding_the_write_key():
    writers = {}
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job_id, job in workflow(path.name)["jobs"].items():
            scripts = [step["run"] for step in job["steps"] if "run" in step]
            commands = {
                m[1] for script in scripts for m in re.finditer(r"\breconciler (\w[\w-]*)", script)
            }
            if commands - READ_ONLY_COMMANDS:
                writers[(path.name, job_id)] = job.get("environment")
    assert writers == {
        ("apply.yml", "apply"): "iterable-production",
        ("sync.yml", "sync"): "iterable-sync",
    }
    assert {wf for wf, _ in writers} == set(WRITE_ENVIRONMENTS.values())
    readme = (ROOT / "README.md").read_text()
    for environment in WRITE_ENVIRONMENTS:
        assert f"`{environment}`" in readme  # how to set it up is documented


def test_plan_runs_on_pull_requests_touching_manifests():
    wf = workflow("plan.yml")
    assert list(wf["on"]) == ["pull_request"]
    assert "manifests/**" in wf["on"]["pull_request"]["paths"]
    assert wf["concurrency"]["cancel-in-progress"] is True


def test_apply_is_serialised_never_cancelled_and_guarded_by_an_environment():
    wf = workflow("apply.yml")
    assert wf["on"]["push"]["paths"] == ["manifests/**"]
    assert "workflow_dispatch" in wf["on"]
    assert wf["concurrency"]["cancel-in-progress"] is False
    assert wf["jobs"]["apply"]["environment"] == "iterable-production"
    assert "timeout-minutes" not in wf["jobs"]["apply"]
    apply_script = next(s for s in run_scripts(wf) if "reconciler apply" in s)
    assert "--plan reconciler-plan.gz --yes" in apply_script


def uploads_of(wf: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        step["with"]
        for job in wf["jobs"].values()
        for step in job["steps"]
        if step.get("uses", "").startswith("actions/upload-artifact")
    ]


def test_pull_request_runs_save_and_upload_nothing_with_personal_data():
    wf = workflow("plan.yml")
    assert uploads_of(wf) == []
    assert not any("--out" in script for script in run_scripts(wf))


def test_the_apply_plan_file_outlives_an_approval_wait_and_is_never_printed():
    wf = workflow("apply.yml")
    (upload,) = [u for u in uploads_of(wf) if u["path"].endswith("plan.gz")]
    # GitHub fails a job still waiting for approval after 30 days: the plan must last as long.
    assert int(upload["retention-days"]) >= 30
    for script in run_scripts(wf):
        assert not re.search(r"\b(cat|zcat|gunzip|less|head|tail)\b", script)


def test_drift_runs_on_a_schedule_and_by_hand():
    wf = workflow("drift.yml")
    assert wf["on"]["schedule"][0]["cron"]
    assert "workflow_dispatch" in wf["on"]
    (plan,) = [script for script in run_scripts(wf) if "reconciler plan" in script]
    assert "--detailed-exitcode" in plan


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = next(
        line.strip()
        for line in readme.splitlines()
        if "pip install -e '.[test]'" in line and "pytest" in line
    )
    words = command.replace("-m pip install -e", "-m pip install -q -e")
    assert words in (ROOT / ".ci" / "run").read_text()
    assert run_scripts(workflow("ci.yml")) == ["bash .ci/run"]


def test_the_readme_s_sync_step_is_the_one_sync_yml_runs():
    """Copied into another workflow, the README's step ran apply without `exec`: a
    cancelled job then signals the shell alone and kills apply outright (README: SIGTERM)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    snippet = readme[readme.index("      - name: Sync\n") :]
    (shown,) = YAML(typ="safe").load(snippet[: snippet.index("```")])
    (step,) = [
        s
        for job in workflow("sync.yml")["jobs"].values()
        for s in job["steps"]
        if s.get("name") == "Sync"
    ]
    assert shown["run"] == step["run"]
    assert shown["env"] == step["env"]


def test_pre_commit_hook_runs_validate_over_the_manifests(monkeypatch, tmp_path):
    (hook,) = YAML(typ="safe").load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "reconciler-validate"
    assert hook["language"] == "python"  # pre-commit installs this package, console script
    assert hook["pass_filenames"] is False  # one run over the whole directory
    # It runs when any file a manifest reads changes, not only manifests and CSVs: a commit
    # replacing a Parquet source alone was never validated.
    for changed in ("m.yaml", "m.yml", "d/x.csv", "d/x.parquet", "d/x.duckdb", "d/x.sqlite"):
        assert re.search(hook["files"], changed), changed
    # A member file's name in capitals (an ERP's or a mainframe's MEMBERS.CSV, a
    # Windows tool's Export.Parquet) is read as any other: a commit changing it alone
    # was never validated either. (pre-commit matches `files` with Python's re.search.)
    for changed in ("d/MEMBERS.CSV", "d/Export.Parquet", "d/crm.DuckDB", "d/x.SQLite3"):
        assert re.search(hook["files"], changed), changed
    assert not re.search(hook["files"], "README.md")
    program, *command = hook["entry"].split()
    assert program == "reconciler"
    assert "reconciler = " in (ROOT / "pyproject.toml").read_text()
    monkeypatch.chdir(ROOT)
    ok = CliRunner().invoke(app, [*command, *hook["args"]])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.startswith("OK:")

    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "bad.yaml").write_text("apiVersion: reconciler/v1\nkind: Nope\n")
    monkeypatch.chdir(tmp_path)
    bad = CliRunner().invoke(app, [*command, *hook["args"]])
    assert bad.exit_code == 1
    assert "manifests/bad.yaml:2:7: kind: unknown kind" in bad.stderr


# -- plan.yml -------------------------------------------------------------------------------


def test_plan_posts_one_comment_and_updates_it_on_the_next_push(github):
    github.audience("vip", MEMBERS)
    quoting = "> " + PLAN_MARKER + "\n> an old plan, quoted by a reviewer"
    github.seed_comments(7, ["Looks good to me", quoting])

    jobs = github.pull_request()

    job = jobs["plan"]
    assert job.result == "success", job.logs
    assert job.steps["plan"].outputs == {"exitcode": "2"}
    (comment,) = marked(github.comments())
    body = comment["body"]
    assert body.startswith(PLAN_MARKER + "\n### reconciler plan: changes")
    assert "**+2** members to add" in body
    assert f"Plan for {HEAD_SHA[:12]}" in body
    assert f"{SERVER}/{REPOSITORY}/actions/runs/{RUN_ID}" in body
    assert "### reconciler plan: changes" in job.summary
    assert job.uploads == {}  # the plan is in the comment and summary, masked; no file
    assert github.writes() == []  # a plan never writes to Iterable

    github.audience("vip", [*MEMBERS, "carol@example.com"])
    again = github.pull_request()

    assert again["plan"].result == "success"
    (updated,) = marked(github.comments())
    assert updated["id"] == comment["id"]
    assert "**+3** members to add" in updated["body"]
    assert [c["body"] for c in github.comments()][:2] == ["Looks good to me", quoting]
    calls = [(c["argv"][2], c["argv"][3].split("?")[0]) for c in github.gh_calls()]
    # GITHUB_TOKEN cannot GET /user; GraphQL's viewer names the bot it posts as.
    who_am_i = [("GET", "user"), ("POST", "graphql")]
    read = [*who_am_i, ("GET", f"repos/{REPOSITORY}/issues/7/comments")]
    edit = ("PATCH", f"repos/{REPOSITORY}/issues/comments/{comment['id']}")
    assert calls == [
        *read,  # mark-outdated: no comment yet, nothing written
        *read,
        ("POST", f"repos/{REPOSITORY}/issues/7/comments"),
        *read,  # mark-outdated: the same commit's plan (a re-run), nothing written
        *read,
        edit,
    ]
    assert comment["user"] == {"login": "github-actions[bot]", "type": "Bot"}
    published = everything_published(github, jobs) + everything_published(github, again)
    assert github.api_key not in published
    for member in [*MEMBERS, "carol@example.com"]:
        assert member not in published  # identifiers are masked everywhere


def test_a_run_stopped_before_it_comments_leaves_the_older_plan_marked_outdated(github):
    """A push's plan run cancelled by the next push, or past timeout-minutes while it reads a
    big list, never reaches the comment step: the comment showed the older commit's plan
    as it was, 'no changes' and all, with only the footer's commit to tell it apart."""
    newer, newest = "1" * 40, "2" * 40
    github.audience("vip", MEMBERS)
    github.pull_request()

    def stopped_at_the_plan(wf: dict[str, Any]) -> None:
        steps = wf["jobs"]["plan"]["steps"]
        wf["jobs"]["plan"]["steps"] = steps[: [s.get("id") for s in steps].index("plan")]

    # A re-run of the same commit leaves its own plan as it is.
    github.pull_request(edit=stopped_at_the_plan)
    (comment,) = marked(github.comments())
    assert "Outdated" not in comment["body"]

    github.audience("vip", [*MEMBERS, "carol@example.com"])
    jobs = github.pull_request(head_sha=newer, edit=stopped_at_the_plan)

    assert jobs["plan"].result == "success"  # no plan step ran; GitHub says cancelled
    (marked_once,) = marked(github.comments())
    body = marked_once["body"]
    assert body.startswith(
        f"{PLAN_MARKER}\n<!-- reconciler-outdated -->\n> [!WARNING]\n> **Outdated: the plan "
        f"below is for an older commit.** `{newer[:12]}` is being planned in [this workflow "
        f"run]({SERVER}/{REPOSITORY}/actions/runs/{RUN_ID}); "
    )
    assert "do not merge on the plan below" in body
    assert body.endswith(comment["body"].removeprefix(PLAN_MARKER + "\n"))  # kept below

    github.pull_request(head_sha=newest, edit=stopped_at_the_plan)
    (again,) = marked(github.comments())
    assert again["body"].count("reconciler-outdated") == again["body"].count("Outdated") == 1
    assert f"`{newest[:12]}` is being planned" in again["body"]
    assert body.endswith(again["body"].partition("\n\n")[2])  # the same old plan below

    done = github.pull_request(head_sha=newest)

    assert done["plan"].result == "success"
    (current,) = marked(github.comments())
    assert current["id"] == comment["id"]
    assert "Outdated" not in current["body"] and "**+3** members to add" in current["body"]
    assert f"Plan for {newest[:12]}" in current["body"]


def test_the_plan_runs_when_github_refuses_marking_the_comment_outdated(github):
    github.audience("vip", MEMBERS)
    github.pull_request()

    def no_gh_token_for_the_mark(wf: dict[str, Any]) -> None:
        (step,) = [s for s in wf["jobs"]["plan"]["steps"] if "mark-outdated" in s.get("run", "")]
        del step["env"]["GH_TOKEN"]

    github.audience("vip", [*MEMBERS, "carol@example.com"])
    jobs = github.pull_request(head_sha="1" * 40, edit=no_gh_token_for_the_mark)

    assert jobs["plan"].result == "success", jobs["plan"].logs
    assert jobs["plan"].steps["plan"].outputs == {"exitcode": "2"}
    (comment,) = marked(github.comments())
    assert "**+3** members to add" in comment["body"] and "Outdated" not in comment["body"]


def test_a_plan_too_big_for_a_comment_posts_every_list_and_the_summary_holds_more(github):
    """GitHub refuses a comment over 65,536 characters: with 170 lists of 30 new members the
    plan's member samples shrink to fit, every list's row stays, and the job summary (up to
    1 MiB) keeps the full samples the comment points to."""
    names = [f"segment-{i:03d}" for i in range(170)]
    for n, name in enumerate(names):
        github.audience(name, [f"m{n}-{j}@example.com" for j in range(30)])

    jobs = github.pull_request()

    job = jobs["plan"]
    assert job.result == "success", job.logs
    (comment,) = marked(github.comments())
    body = comment["body"]
    assert len(body) < 65_536
    for name in names:
        assert f"| {name} | new | 30 |" in body
    assert "_Samples cut to" in body
    assert body.rstrip().endswith(f"actions/runs/{RUN_ID})</sub>")  # the footer, last
    assert body.count("```") % 2 == 0
    assert job.summary.count("... and 20 more") == len(names)  # the full samples
    assert len(job.summary.encode()) < 1024 * 1024
    published = everything_published(github, jobs)
    assert not any(f"m{n}-0@example.com" in published for n in range(len(names)))


def test_a_comment_someone_else_starts_with_the_marker_is_never_edited(github):
    github.audience("vip", MEMBERS)
    hostile = PLAN_MARKER + "\n### reconciler plan: no changes\n\nNothing to review, merge away."
    github.seed_comments(7, [hostile], author="mallory")

    first = github.pull_request()
    github.audience("vip", [*MEMBERS, "carol@example.com"])
    second = github.pull_request()

    assert first["plan"].result == second["plan"].result == "success"
    theirs, ours = marked(github.comments())
    assert theirs["user"]["login"] == "mallory"
    assert theirs["body"] == hostile  # neither overwritten nor taken over
    assert ours["user"] == {"login": "github-actions[bot]", "type": "Bot"}
    assert "**+3** members to add" in ours["body"]  # the bot's own comment, updated
    assert "updated comment" in second["plan"].logs


def test_with_a_persons_token_the_comment_is_theirs_and_found_again(github):
    github.audience("vip", MEMBERS)
    github.token_of("octocat")  # `gh auth login` on a laptop: GET /user answers
    github.seed_comments(7, [PLAN_MARKER + "\nan old plan"], author="mallory")

    github.pull_request()
    github.pull_request()

    theirs, ours = marked(github.comments())
    assert theirs["body"] == PLAN_MARKER + "\nan old plan"
    assert ours["user"] == {"login": "octocat", "type": "User"}
    assert ("POST", "graphql") not in [(c["argv"][2], c["argv"][3]) for c in github.gh_calls()]


def test_plan_without_changes_says_so_and_passes(github):
    github.audience("vip", MEMBERS)
    github.live_list("vip", MEMBERS)

    jobs = github.pull_request()

    assert jobs["plan"].result == "success"
    assert jobs["plan"].steps["plan"].outputs == {"exitcode": "0"}
    (comment,) = marked(github.comments())
    assert "### reconciler plan: no changes" in comment["body"]


def test_a_broken_manifest_fails_the_check_and_replaces_the_old_plan(github):
    github.audience("vip", MEMBERS)
    github.pull_request()
    (github.repo / "manifests" / "vip.yaml").write_text("kind: Audience\nmetadata: [\n")

    jobs = github.pull_request()

    job = jobs["plan"]
    assert job.result == "failure"
    assert job.steps["validate"].outcome == "failure"
    assert job.steps["plan"].outcome == "skipped"
    assert "vip.yaml:" in job.logs  # validate names the file and line
    # ... and, GITHUB_ACTIONS being true on a runner, annotates it on the pull request's diff.
    (annotation,) = [line for line in job.logs.splitlines() if line.startswith("::error ")]
    assert annotation.startswith(
        "::error file=manifests/vip.yaml,line=3,col=1,title=reconciler validate::invalid YAML: "
    )
    (comment,) = marked(github.comments())
    assert "### reconciler plan: failed" in comment["body"]
    assert "members to add" not in comment["body"]


def test_list_names_from_a_pull_request_or_iterable_start_no_command_in_any_log(github):
    # A list name holding `##[add-mask]Apply` was printed as it is: by the plan step's
    # progress on stderr (the pull request's log) and the apply job's report on stdout, the
    # runner took it as add-mask and hid every later "Apply" in the job's log.
    name = "VIP ##[add-mask]Apply"
    github.live_list(name, MEMBERS[:1])
    github.audience("vip", MEMBERS, listName=name)

    runs = [github.pull_request(), github.push("apply.yml")]

    assert runs[1]["apply"].result == "success", runs[1]["apply"].logs
    for jobs in runs:
        for job in jobs.values():
            for step in job.steps.values():
                assert commands(step.stdout) + commands(step.stderr) == [], step.name
    # Still there to read, with the name broken as the runner breaks its own markers.
    assert "reading list 'VIP ##[\\add-mask]Apply'" in runs[0]["plan"].logs
    assert "VIP ##[\\add-mask]Apply (list " in runs[1]["apply"].logs


def test_a_plan_the_safety_policy_blocks_fails_the_check_and_shows_why(github):
    ten = [f"user{i}@example.com" for i in range(10)]
    github.live_list("vip", ten)
    github.audience("vip", ten[:5])

    jobs = github.pull_request()

    assert jobs["plan"].result == "failure"
    assert jobs["plan"].steps["plan"].outputs == {"exitcode": "3"}
    (comment,) = marked(github.comments())
    assert "blocked by the safety policy" in comment["body"]


def test_a_list_iterable_cannot_read_fails_the_check_and_the_comment_never_says_no_changes(
    github,
):
    github.audience("vip", MEMBERS)
    github.live_list("vip", MEMBERS)
    github.audience("new", ["carol@example.com"])
    github.live_list("new", ["carol@example.com"])
    # Iterable answers 503 to every read of list members, retries included.
    github.emulator.faults.fail_every = 1
    github.emulator.faults.paths = ["/api/lists/getUsers", "/api/export/data.json"]

    jobs = github.pull_request()

    assert jobs["plan"].result == "failure"
    assert jobs["plan"].steps["plan"].outputs == {"exitcode": "1"}
    (comment,) = marked(github.comments())
    headline = comment["body"].splitlines()[1]
    assert headline.startswith("### reconciler plan: ")
    assert "no changes" not in headline.replace("no changes for the audiences", "")
    assert "could be read" in headline
    assert "left out of this plan" in comment["body"]
    assert jobs["plan"].summary.splitlines()[0] == headline


def test_dependabot_pull_requests_are_not_planned(github):
    """dependabot.yml bumps the actions pinned in plan.yml, which plan.yml's paths include.
    GitHub gives a run Dependabot triggers only Dependabot's secrets (no ITERABLE_API_KEY)
    and a read-only token, so the plan failed to read Iterable and the comment failed to
    post: a red check on every such pull request, whose only fix at hand, the key among
    Dependabot's secrets, hands it to every dependency update's code."""
    github.audience("vip", MEMBERS)
    github.runner.secrets = {"ITERABLE_API_KEY": "", "GITHUB_TOKEN": "ghs_read_only"}
    jobs = github.pull_request(author="dependabot[bot]")
    assert jobs["plan"].result == "skipped"
    assert github.gh_calls() == []
    assert github.emulator.request_log == []


def test_pull_requests_from_forks_are_not_planned(github):
    github.audience("vip", MEMBERS)
    jobs = github.pull_request(head_repo="someone/fork")
    assert jobs["plan"].result == "skipped"
    assert github.gh_calls() == []
    assert github.emulator.request_log == []


# -- apply.yml ------------------------------------------------------------------------------


def test_apply_on_merge_applies_the_plan_then_has_nothing_to_do(github):
    github.audience("vip", MEMBERS)

    jobs = github.push("apply.yml")

    assert jobs["plan"].result == "success", jobs["plan"].logs
    assert jobs["plan"].outputs["exitcode"] == "2"
    assert jobs["apply"].result == "success", jobs["apply"].logs
    (list_id,) = github.project.lists
    assert sorted(github.project.members(list_id)) == MEMBERS
    assert "### reconciler plan: changes" in jobs["plan"].summary
    assert "### reconciler apply: ✅ complete" in jobs["apply"].summary
    assert jobs["apply"].uploads["reconciler-run"]["retention-days"] == "90"
    assert jobs["apply"].environment == "iterable-production"
    published = everything_published(github, jobs)
    assert github.api_key not in published
    assert not any(member in published for member in MEMBERS)
    assert_plan_artifact_deleted(github, jobs)

    github.emulator.clear_log()
    again = github.push("apply.yml", event_name="workflow_dispatch")

    assert again["plan"].outputs == {"exitcode": "0", "plan-artifact": ""}
    assert again["plan"].uploads == {}  # nothing to apply: no plan file kept
    assert again["apply"].result == "skipped"
    assert again["forget-plan"].result == "skipped"
    assert github.writes() == []


def assert_plan_artifact_deleted(github: GitHub, jobs: dict[str, JobRun]) -> None:
    """The plan job kept the plan file long enough for any approval wait, and the
    forget-plan job deleted it once the apply job was over."""
    assert jobs["plan"].uploads["reconciler-plan"]["retention-days"] == "30"
    artifact_id = jobs["plan"].outputs["plan-artifact"]
    assert jobs["forget-plan"].result == "success", jobs["forget-plan"].logs
    deletes = [c["argv"][2:4] for c in github.gh_calls() if c["argv"][2] == "DELETE"]
    assert deletes == [["DELETE", f"repos/{REPOSITORY}/actions/artifacts/{artifact_id}"]]
    assert [a["name"] for a in github.gh()["artifacts"].values()] == ["reconciler-run"]
    run = github.runner.work / f"run-{github.runner.runs}" / "artifacts"
    assert not (run / "reconciler-plan").exists()


def test_apply_refuses_a_plan_that_went_stale_before_approval(github):
    github.audience("vip", MEMBERS)

    def someone_edits_iterable(job_id: str, _run: JobRun) -> None:
        if job_id == "plan":  # while the apply job waits for its reviewers
            github.live_list("vip", ["mallory@example.com"])

    jobs = github.push("apply.yml", between_jobs=someone_edits_iterable)

    assert jobs["apply"].result == "failure"
    apply_step = jobs["apply"].steps["apply"]
    assert apply_step.exit_code == 4
    assert "stale plan" in apply_step.stderr
    (list_id,) = github.project.lists
    assert github.project.members(list_id) == ["mallory@example.com"]  # nothing applied
    assert_plan_artifact_deleted(github, jobs)  # also when the apply failed


def test_a_mistyped_option_fails_the_checks_instead_of_passing_as_changes(github):
    """A usage error may exit 2, which `plan --detailed-exitcode` uses for "changes"."""
    github.audience("vip", MEMBERS)
    github.live_list("vip", MEMBERS[:1])  # there is drift, so an issue would be opened

    def typo(wf: dict[str, Any]) -> None:
        for job in wf["jobs"].values():
            for step in job["steps"]:
                if "run" in step:
                    step["run"] = step["run"].replace("--detailed-exitcode", "--detailed-exitcod")

    planned = github.pull_request(edit=typo)
    assert planned["plan"].result == "failure"
    assert planned["plan"].steps["plan"].outputs == {"exitcode": "1"}
    (comment,) = marked(github.comments())
    assert "### reconciler plan: failed" in comment["body"]

    applied = github.push("apply.yml", edit=typo)
    assert applied["plan"].result == "failure"
    assert applied["apply"].result == "skipped"
    assert applied["plan"].uploads == {}

    drift = github.push("drift.yml", event_name="schedule", edit=typo)
    assert drift["drift"].result == "failure"
    assert drift["drift"].steps["plan"].outputs == {"exitcode": "1"}
    assert open_issues(github) == []
    assert github.writes() == []


@pytest.mark.parametrize(("name", "job"), [("apply.yml", "plan"), ("sync.yml", "sync")])
def test_re_running_an_older_run_after_newer_manifests_were_merged_applies_nothing(
    github, name, job
):
    """A re-run keeps its first run's commit (GITHUB_SHA): after a newer merge, re-running
    the older run would apply the older manifests and undo the newer merge."""
    github.audience("vip", MEMBERS)
    state = github.gh() or {"next_id": 1000, "comments": {}, "issues": []}
    state["newer"] = [{"files": ["manifests/vip.yaml"]}, {"files": ["README.md"]}]
    github.state.write_text(json.dumps(state))

    jobs = github.push(name, event_name="workflow_dispatch")

    assert jobs[job].result == "failure"
    assert "manifests/ changed on main after 0123456789ab (2 newer commits: " in jobs[job].logs
    assert "Start a new run" in jobs[job].logs
    assert github.emulator.request_log == []  # not even read: nothing planned or applied
    if name == "apply.yml":
        assert jobs["apply"].result == "skipped"


@pytest.mark.parametrize(("name", "job"), [("apply.yml", "plan"), ("sync.yml", "sync")])
def test_re_running_an_older_run_after_a_newer_member_file_was_merged_applies_nothing(
    github, name, job
):
    """A commit that changed only a member file outside manifests/ (people removed from
    data/members.csv) did not count: the re-run applied the older file and subscribed the
    people removed again."""
    (github.repo / "data").mkdir()
    (github.repo / "data" / "members.csv").write_text("email\n" + "\n".join(MEMBERS) + "\n")
    github.audience("vip", [])
    doc = json.loads((github.repo / "manifests" / "vip.yaml").read_text())
    doc["spec"]["members"] = {"csv": "../data/members.csv"}
    (github.repo / "manifests" / "vip.yaml").write_text(json.dumps(doc))
    state = github.gh() or {"next_id": 1000, "comments": {}, "issues": []}
    state["newer"] = [{"files": ["data/members.csv"]}, {"files": ["data/unread.csv"]}]
    github.state.write_text(json.dumps(state))

    jobs = github.push(name, event_name="workflow_dispatch")

    assert jobs[job].result == "failure"
    assert (
        "files its manifests read changed on main after 0123456789ab (2 newer commits: "
        "data/members.csv)" in jobs[job].logs
    )
    assert github.emulator.request_log == []  # not even read: nothing planned or applied
    if name == "apply.yml":
        assert jobs["apply"].result == "skipped"


@pytest.mark.parametrize(("name", "job"), [("apply.yml", "apply"), ("sync.yml", "sync")])
def test_newer_commits_that_leave_the_manifests_alone_do_not_stop_an_apply(github, name, job):
    github.audience("vip", MEMBERS)
    state = github.gh() or {"next_id": 1000, "comments": {}, "issues": []}
    state["newer"] = [{"files": ["README.md", "docs/manifests/x.md"]}]
    github.state.write_text(json.dumps(state))

    jobs = github.push(name)

    assert jobs[job].result == "success", jobs[job].logs
    assert (
        "manifests/ unchanged on main since 0123456789ab"
        in jobs[job if job == "sync" else "plan"].logs
    )
    (list_id,) = github.project.lists
    assert sorted(github.project.members(list_id)) == MEMBERS


@pytest.mark.parametrize(("name", "job"), [("apply.yml", "plan"), ("sync.yml", "sync")])
@pytest.mark.parametrize(
    ("ref_name", "ref"),
    [("feature/x", ""), ("main", "refs/tags/main")],
    ids=["another-branch", "a-tag-named-main"],
)
def test_apply_and_sync_run_by_hand_only_on_the_default_branch(github, name, job, ref_name, ref):
    """Run workflow can start a run on any branch or tag. A tag named like the default
    branch has its ref_name (`main`) too, so the guard on ref_name let a tag on any commit
    through as the default branch: planned, and applied with whatever manifests it holds
    unless the environment's deployment-branch rule stopped it."""
    github.audience("vip", MEMBERS)
    jobs = github.push(name, ref_name=ref_name, ref=ref, event_name="workflow_dispatch")
    assert jobs[job].result == "skipped"
    assert all(run.result == "skipped" for run in jobs.values())
    assert github.emulator.request_log == []
    assert github.gh_calls() == []


def apply_group(name: str, event_name: str, ref: str) -> str:
    """The concurrency group a run of `name` joins, as GitHub evaluates it."""
    context = {
        "github": {
            "event_name": event_name,
            "ref": ref,
            "run_id": RUN_ID,
            # A scheduled run's event has no repository (its ref is the default branch's).
            "event": {} if event_name == "schedule" else {"repository": {"default_branch": "main"}},
        }
    }
    group = workflow(name)["concurrency"]["group"]
    return interpolate(group, context, FUNCTIONS)


def test_only_runs_that_apply_join_the_apply_group_so_none_other_replaces_a_waiting_apply():
    """GitHub keeps one waiting run per concurrency group and cancels the older one. A run
    started by hand on another branch (trying out a workflow change) or on a tag applies
    nothing, yet joined `reconciler-apply` too: it replaced the apply of a merge waiting
    there, and that merge was never applied."""
    applying = [
        ("apply.yml", "push", "refs/heads/main"),
        ("apply.yml", "workflow_dispatch", "refs/heads/main"),
        ("sync.yml", "schedule", "refs/heads/main"),
        ("sync.yml", "workflow_dispatch", "refs/heads/main"),
    ]
    assert {apply_group(*run) for run in applying} == {"reconciler-apply"}
    for name in ("apply.yml", "sync.yml"):
        for ref in ("refs/heads/feature/x", "refs/tags/main"):
            group = apply_group(name, "workflow_dispatch", ref)
            assert group != "reconciler-apply"
            assert RUN_ID in group  # its own group: it waits for nothing and replaces nothing


# -- drift.yml ------------------------------------------------------------------------------


def open_issues(github: GitHub) -> list[dict[str, Any]]:
    return [i for i in github.gh().get("issues", []) if i["state"] == "open"]


def test_drift_opens_one_issue_keeps_it_current_and_closes_it(github):
    github.audience("vip", MEMBERS, policy={"maxRemovalPercent": 100})
    list_id = github.live_list("vip", MEMBERS)

    quiet = github.push("drift.yml", event_name="schedule")
    assert quiet["drift"].result == "success"
    assert quiet["drift"].steps["plan"].outputs == {"exitcode": "0"}
    assert "no open issue to close" in quiet["drift"].logs
    assert github.gh().get("issues", []) == []

    github.project.subscribe_direct(list_id, email="mallory@example.com")  # by hand
    drifted = github.push("drift.yml", event_name="schedule")

    assert drifted["drift"].result == "success"
    (issue,) = open_issues(github)
    assert issue["title"] == "Iterable differs from the manifests (drift)"
    assert issue["body"].startswith(DRIFT_MARKER + "\n### reconciler plan: changes")
    assert "**-1** to remove" in issue["body"]
    assert f"{SERVER}/{REPOSITORY}/actions/runs/{RUN_ID}" in issue["body"]
    assert "### reconciler plan: changes" in drifted["drift"].summary

    bob = github.project.find_user(email="bob@example.com")
    github.project.unsubscribe(bob, list_id)
    more = github.push("drift.yml", event_name="workflow_dispatch")

    (same,) = open_issues(github)
    assert same["number"] == issue["number"]
    assert "**+1** member to add" in same["body"]

    mallory = github.project.find_user(email="mallory@example.com")
    github.project.unsubscribe(mallory, list_id)
    github.project.subscribe(bob, list_id)
    fixed = github.push("drift.yml", event_name="schedule")

    assert fixed["drift"].steps["plan"].outputs == {"exitcode": "0"}
    assert open_issues(github) == []
    closing = github.gh()["comments"][str(issue["number"])]
    assert closing[-1]["body"].startswith("Resolved: no differences found")
    published = "".join(everything_published(github, j) for j in (drifted, more, fixed))
    assert github.api_key not in published
    assert "mallory@example.com" not in published


def test_drift_never_updates_or_closes_an_issue_someone_else_opened_with_the_marker(github):
    github.audience("vip", MEMBERS, policy={"maxRemovalPercent": 100})
    list_id = github.live_list("vip", MEMBERS)
    planted = DRIFT_MARKER + "\nPlease also add eve@example.com to vip."
    theirs = github.seed_issue("Iterable differs from the manifests (drift)", planted, "mallory")

    quiet = github.push("drift.yml", event_name="schedule")

    assert quiet["drift"].result == "success"
    assert "no open issue to close" in quiet["drift"].logs
    (still_open,) = open_issues(github)
    assert (still_open["number"], still_open["body"]) == (theirs, planted)
    assert str(theirs) not in github.gh().get("comments", {})  # no closing comment either

    github.project.subscribe_direct(list_id, email="mallory@example.com")
    drifted = github.push("drift.yml", event_name="schedule")

    assert drifted["drift"].result == "success"
    (mine,) = [i for i in open_issues(github) if i["number"] != theirs]
    assert mine["user"]["login"] == "github-actions[bot]"
    assert "**-1** to remove" in mine["body"]
    assert next(i for i in open_issues(github) if i["number"] == theirs)["body"] == planted


def test_drift_check_errors_fail_the_job_and_leave_the_issue_alone(github):
    github.audience("vip", MEMBERS)
    github.runner.secrets["ITERABLE_API_KEY"] = "not-the-key"

    jobs = github.push("drift.yml", event_name="schedule")

    job = jobs["drift"]
    assert job.result == "failure"
    assert job.steps["plan"].outputs == {"exitcode": "1"}
    assert [s.outcome for s in job.steps.values()][-2:] == ["skipped", "skipped"]
    # GitHub was asked whether an apply or sync was busy, and told nothing.
    assert all(c["argv"][2:3] == ["GET"] for c in github.gh_calls())
    assert not any("/issues" in c["argv"][3] for c in github.gh_calls())


def test_drift_run_by_hand_on_another_branch_leaves_the_drift_issue_alone(github):
    """The drift issue says whether Iterable differs from the default branch's manifests.
    A drift run started by hand on another branch (trying out a change to drift.yml)
    planned that branch's manifests and closed the open issue as resolved, or opened one,
    and in the shared concurrency group it cancelled a scheduled check in progress."""
    github.audience("vip", MEMBERS)
    github.live_list("vip", MEMBERS[:1])
    drifted = github.push("drift.yml", event_name="schedule")
    (issue,) = open_issues(github)
    calls = len(github.gh_calls())

    github.audience("vip", MEMBERS[:1])  # the branch's manifests happen to match Iterable
    for ref_name, ref in (("feature/x", ""), ("main", "refs/tags/main")):
        jobs = github.push("drift.yml", ref_name=ref_name, ref=ref, event_name="workflow_dispatch")
        assert jobs["drift"].result == "skipped"
    assert drifted["drift"].result == "success"
    assert open_issues(github) == [issue]
    assert len(github.gh_calls()) == calls

    def group(event_name: str, ref: str) -> str:
        context = {"github": {"event_name": event_name, "ref": ref, "run_id": RUN_ID}}
        return interpolate(workflow("drift.yml")["concurrency"]["group"], context, FUNCTIONS)

    checks = {group("schedule", "refs/heads/main"), group("workflow_dispatch", "refs/heads/main")}
    assert len(checks) == 1
    assert group("workflow_dispatch", "refs/heads/feature/x") not in checks
    assert group("workflow_dispatch", "refs/tags/main") not in checks


def test_drift_is_in_no_concurrency_group_with_the_runs_that_apply():
    """Joining `reconciler-apply` with cancel-in-progress would cancel a running apply
    halfway, and a drift run waiting there would replace an apply waiting for approval."""
    wf = workflow("drift.yml")
    context = {"github": {"event_name": "schedule", "ref": "refs/heads/main", "run_id": RUN_ID}}
    group = interpolate(wf["concurrency"]["group"], context, FUNCTIONS)
    assert group != apply_group("apply.yml", "schedule", "refs/heads/main")
    assert not group.startswith("reconciler-apply")
    sync_minute = workflow("sync.yml")["on"]["schedule"][0]["cron"].split()[0]
    assert wf["on"]["schedule"][0]["cron"].split()[0] != sync_minute  # would find it running


@pytest.mark.parametrize(
    ("busy", "status"),
    [
        ("apply.yml", "in_progress"),
        ("apply.yml", "waiting"),  # for approval: the merged change is not drift
        ("sync.yml", "queued"),
        ("sync.yml", "pending"),  # waiting in the concurrency group
    ],
)
def test_drift_skips_and_posts_nothing_while_an_apply_or_sync_run_is_busy(github, busy, status):
    """Iterable is half-applied while an apply or sync writes: the drift check planned it
    all the same and closed the open issue (or opened a false one)."""
    github.audience("vip", MEMBERS, policy={"maxRemovalPercent": 100})
    list_id = github.live_list("vip", MEMBERS[:1])
    github.push("drift.yml", event_name="schedule")
    (issue,) = open_issues(github)
    # The apply has added bob (Iterable now matches) but is not over yet.
    github.project.subscribe_direct(list_id, email=MEMBERS[1])
    url = github.seed_run(busy, status)
    github.seed_run("drift.yml", "in_progress")  # itself, and other workflows, do not count
    requests, calls = len(github.emulator.request_log), len(github.gh_calls())

    jobs = github.push("drift.yml", event_name="schedule")

    job = jobs["drift"]
    assert open_issues(github) == [issue]  # neither closed nor edited
    assert str(issue["number"]) not in github.gh().get("comments", {})
    assert job.result == "success"
    assert job.steps["idle"].outputs["idle"] == "false"
    assert [s.outcome for s in job.steps.values()][-4:] == ["skipped"] * 4
    assert f"{busy} run {status.replace('_', ' ')}: {url}" in job.logs
    assert "### Drift check: skipped" in job.summary
    assert url in job.summary
    new_calls = github.gh_calls()[calls:]
    assert new_calls and all(c["argv"][2:3] == ["GET"] for c in new_calls)
    assert len(github.emulator.request_log) == requests  # Iterable not even read

    github.finish_runs()  # the next scheduled run, once it is over
    after = github.push("drift.yml", event_name="schedule")

    assert after["drift"].steps["plan"].outputs == {"exitcode": "0"}
    assert "no apply.yml or sync.yml run in progress or waiting" in after["drift"].logs
    assert open_issues(github) == []


def test_drift_posts_nothing_when_a_sync_ran_while_it_planned(github):
    """The race: a run that starts after the first check, and may be over already by the
    time the plan is made, wrote while the plan read: its plan is not posted."""
    github.audience("vip", MEMBERS, policy={"maxRemovalPercent": 100})
    github.live_list("vip", MEMBERS[:1])
    url = f"{SERVER}/{REPOSITORY}/actions/runs/777"
    # GitHub lists a sync run that started after the first check and is over already.
    a_sync_runs = f"""
import json, os, time
path = os.environ["FAKE_GH_STATE"]
state = {{"next_id": 1000, "comments": {{}}, "issues": []}}
if os.path.exists(path):
    state = json.load(open(path))
state.setdefault("runs", []).append({{
    "workflow": "sync.yml", "id": 777, "status": "completed", "html_url": "{url}",
    "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
}})
json.dump(state, open(path, "w"))
"""

    def sync_runs_while_planning(wf: dict[str, Any]) -> None:
        steps = wf["jobs"]["drift"]["steps"]
        at = next(i for i, step in enumerate(steps) if step.get("id") == "plan")
        script = github.repo.parent / "a-sync-runs.py"
        script.write_text(a_sync_runs)
        steps.insert(at + 1, {"name": "a sync runs", "run": f'"{sys.executable}" "{script}"'})

    jobs = github.push("drift.yml", event_name="schedule", edit=sync_runs_while_planning)

    job = jobs["drift"]
    assert open_issues(github) == []
    assert job.result == "success"
    assert job.steps["idle"].outputs["idle"] == "true"
    assert job.steps["plan"].outputs == {"exitcode": "2"}  # it planned: the first check passed
    assert job.steps["recheck"].outputs["idle"] == "false"
    assert f"sync.yml run completed: {url}" in job.logs
    assert "### Drift check: not reported" in job.summary
    assert open_issues(github) == []
    assert not any("/issues" in c["argv"][3] for c in github.gh_calls())


def test_drift_fails_without_posting_when_it_cannot_tell_whether_an_apply_is_busy(github):
    """A workflow it names that the repository lacks (sync.yml deleted) or a token without
    `actions: read`: an error saying what to fix, never a plan posted unchecked."""
    github.audience("vip", MEMBERS)
    github.live_list("vip", MEMBERS[:1])

    def rename(wf: dict[str, Any]) -> None:
        idle = next(s for s in wf["jobs"]["drift"]["steps"] if s.get("id") == "idle")
        idle["run"] = idle["run"].replace("--workflow sync.yml", "--workflow syncs.yml")

    jobs = github.push("drift.yml", event_name="schedule", edit=rename)

    job = jobs["drift"]
    assert job.result == "failure"
    assert "is there a workflow .github/workflows/syncs.yml in acme/audiences?" in job.logs
    assert job.steps["plan"].outcome == "skipped"
    assert open_issues(github) == []


# -- sync.yml -------------------------------------------------------------------------------


def test_sync_is_scheduled_and_shares_the_apply_concurrency_group():
    sync, apply = workflow("sync.yml"), workflow("apply.yml")
    assert "schedule" in sync["on"] and "workflow_dispatch" in sync["on"]
    assert sync["concurrency"] == apply["concurrency"]
    assert sync["concurrency"]["cancel-in-progress"] is False


def test_scheduled_sync_brings_a_changed_csv_audience_up_to_date(github):
    csv = github.repo / "manifests" / "churn.csv"
    csv.write_text("email\n" + "".join(f"m{i}@example.com\n" for i in range(20)))
    audience = {"csv": "churn.csv"}
    doc = {
        "apiVersion": "reconciler/v1",
        "kind": "Audience",
        "metadata": {"name": "churn"},
        "spec": {"destination": "prod", "members": audience},
    }
    (github.repo / "manifests" / "churn.yaml").write_text(json.dumps(doc))

    first = github.push("sync.yml", event_name="schedule")
    assert first["sync"].result == "success", first["sync"].logs
    (list_id,) = github.project.lists
    assert len(github.project.members(list_id)) == 20

    # The export changes between runs (no change in git): 2 leave (10%), 5 join.
    csv.write_text("email\n" + "".join(f"m{i}@example.com\n" for i in range(2, 25)))
    second = github.push("sync.yml", event_name="schedule")
    assert second["sync"].result == "success", second["sync"].logs
    assert sorted(github.project.members(list_id)) == sorted(
        f"m{i}@example.com" for i in range(2, 25)
    )
    artifact = f"reconciler-sync-{RUN_ID}"
    assert second["sync"].uploads[artifact]["retention-days"] == "90"
    runs = github.runner.work / f"run-{github.runner.runs}" / "artifacts"
    record = json.loads((runs / artifact / "reconciler-run.json").read_text())
    assert record["outcome"] == "success"
    assert [(r["added"], r["removed"]) for r in record["lists"]] == [(5, 2)]
    assert "### reconciler apply: ✅ complete" in second["sync"].summary

    # Read from another machine (no run journal of that sync here): Iterable's reads show
    # the sync only once their lag has passed (the field profile's; none by default).
    time.sleep(github.emulator.faults.read_lag_seconds)
    result = CliRunner().invoke(
        app,
        ["status", str(github.repo / "manifests"), "--format", "json"],
        env={"ITERABLE_API_KEY": github.api_key},
    )
    (row,) = json.loads(result.stdout)["audiences"]
    assert (row["iterable_members"], row["pending_adds"], row["pending_removes"]) == (23, 0, 0)


def test_sync_writes_with_its_environments_key_never_the_repository_secret(github):
    github.audience("vip", MEMBERS)
    # The repository secret, which any branch can reach, holds a key that cannot write
    # (the emulator knows one key per project, so here: one it refuses outright).
    github.runner.secrets["ITERABLE_API_KEY"] = "itbl-read-only-" + secrets.token_hex(8)

    jobs = github.push("sync.yml", event_name="schedule")

    assert jobs["sync"].environment == "iterable-sync"
    assert jobs["sync"].result == "success", jobs["sync"].logs
    (list_id,) = github.project.lists
    assert sorted(github.project.members(list_id)) == MEMBERS


def test_a_blocked_sync_applies_nothing_fails_and_says_why(github):
    github.audience("vip", [f"m{i}@example.com" for i in range(3)])
    github.live_list("vip", [f"m{i}@example.com" for i in range(10)])
    github.emulator.clear_log()
    jobs = github.push("sync.yml", event_name="schedule")
    assert jobs["sync"].result == "failure"
    assert jobs["sync"].steps["sync"].exit_code == 3
    assert "BLOCKED" in jobs["sync"].summary or "blocked" in jobs["sync"].summary
    assert "maxRemovalPercent" in jobs["sync"].summary
    assert github.writes() == []
    published = everything_published(github, jobs)
    assert github.api_key not in published
    assert "m5@example.com" not in published


def test_a_blocked_sync_alerts_the_webhook_without_printing_its_url(github):
    # The webhook URL is a secret of the sync's environment (or the repository's); the
    # workflow hands it to the step through env, and the run's page is linked in the alert.
    with Receiver() as hook:
        github.runner.environments["iterable-sync"][alerts.URL_VAR] = hook.url
        github.audience("vip", [f"m{i}@example.com" for i in range(3)])
        github.live_list("vip", [f"m{i}@example.com" for i in range(10)])
        jobs = github.push("sync.yml", event_name="schedule")
    assert jobs["sync"].steps["sync"].exit_code == 3  # the alert changes no exit code
    (post,) = hook.posts
    text = alert_text(post)
    assert post["text"].startswith("reconciler apply blocked by the safety policy (exit 3)")
    assert "maxRemovalPercent" in text
    assert f"{SERVER}/{REPOSITORY}/actions/runs/{RUN_ID}|workflow run" in text
    assert "m5@example.com" not in text
    published = everything_published(github, jobs)
    assert hook.url not in published and hook.secret not in published


@pytest.mark.parametrize("name", ["sync.yml", "drift.yml", "apply.yml"])
def test_alerting_workflows_pass_the_webhook_through_env_only(name):
    steps = [s for job in workflow(name)["jobs"].values() for s in job["steps"]]
    runs = [
        s for s in steps if "reconciler plan" in s.get("run", "") or "apply" in s.get("run", "")
    ]
    passed = [s for s in runs if alerts.URL_VAR in (s.get("env") or {})]
    assert passed, f"{name} does not pass {alerts.URL_VAR}"
    for step in passed:
        assert step["env"][alerts.URL_VAR] == f"${{{{ secrets.{alerts.URL_VAR} }}}}"
    # Pull-request plans run code from any branch: they get no webhook.
    assert alerts.URL_VAR not in (WORKFLOWS / "plan.yml").read_text()


# A stand-in for `reconciler` that says when it is running and how it was stopped.
_SIGNALLED = """#!{python}
import pathlib, signal, sys, time
seen = pathlib.Path({seen!r})
def stop(signum, frame):
    seen.write_text(signal.Signals(signum).name)
    sys.exit(130)
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
seen.write_text("running")
time.sleep(60)
"""


@pytest.mark.parametrize("name", ["apply.yml", "sync.yml"])
def test_a_cancelled_run_signals_reconciler_apply_itself(name, tmp_path):
    # On cancel the runner signals the step's entry process, the shell, alone (SIGINT, then
    # SIGTERM 7.5 s later, then it kills the tree): a reconciler started by the shell never
    # heard it, and was killed outright. exec'd, it is that process.
    [script] = [s for s in run_scripts(workflow(name)) if "reconciler apply" in s]
    seen = tmp_path / "seen"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "reconciler"
    fake.write_text(_SIGNALLED.format(python=sys.executable, seen=str(seen)))
    fake.chmod(0o755)
    step = tmp_path / "step.sh"
    step.write_text(script)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env["GITHUB_STEP_SUMMARY"] = str(tmp_path / "summary.md")
    shell = subprocess.Popen(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(step)],
        cwd=tmp_path,
        env=env,
        start_new_session=True,  # its own process group, for the cleanup below
    )
    try:
        deadline = time.monotonic() + 30
        while not (seen.exists() and seen.read_text() == "running"):
            assert shell.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        shell.send_signal(signal.SIGINT)
        assert shell.wait(timeout=10) == 130
        assert seen.read_text() == "SIGINT"
    finally:
        # A reconciler the signal never reached would outlive its shell: end them both.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)
        shell.wait()


@pytest.mark.parametrize("name", ["apply.yml", "sync.yml"])
def test_a_cancelled_run_still_keeps_the_run_record_apply_wrote(name):
    # apply writes its record when the runner's SIGINT stops it (outcome interrupted: what
    # was done before the stop); a step under `!cancelled()` would skip its upload.
    jobs = workflow(name)["jobs"].values()
    [upload] = [s for job in jobs for s in job["steps"] if s.get("name") == "Keep the run record"]
    assert upload["if"].replace(" ", "") == "${{always()}}"


def _workspace_files_naming(workspace: Path, members: list[str]) -> list[str]:
    """The files a job left in its workspace, outside the checked-out manifests, whose
    bytes (or a gzip file's contents: a saved plan) name one of `members`."""
    found = []
    for path in workspace.rglob("*"):
        if not path.is_file() or (workspace / "manifests") in path.parents:
            continue
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        if any(member.encode() in data for member in members):
            found.append(str(path.relative_to(workspace)))
    return found


@pytest.mark.parametrize("name", ["apply.yml", "sync.yml"])
def test_no_job_leaves_a_file_of_members_in_its_workspace(github, name):
    """The plan file and the rejected-member CSVs (members in full) stayed in the job's
    workspace: on a GitHub-hosted runner the machine is discarded, but a self-hosted
    runner keeps its workspace until a later checkout cleans it, so the full member lists
    sat on that machine between runs. Each job that makes one removes it at its end,
    whatever its outcome."""
    rejected = "two.dots@ex_ample.com"  # passes reconciler's light check; Iterable refuses it
    members = [*MEMBERS, rejected]
    github.audience("vip", members)
    left: dict[str, list[str]] = {}

    def look(job_id: str, run: JobRun) -> None:
        workspace = github.runner.work / f"run-{github.runner.runs}" / "workspace"
        if run.result != "skipped":
            left[job_id] = _workspace_files_naming(workspace, members)

    jobs = github.push(
        name, event_name="schedule" if name == "sync.yml" else "push", between_jobs=look
    )
    writer = jobs["apply" if name == "apply.yml" else "sync"]
    assert writer.result == "failure"  # the rejected member
    assert "Every rejected member, in full" in writer.logs, writer.logs
    (list_id,) = github.project.lists
    assert sorted(github.project.members(list_id)) == MEMBERS
    assert {job: files for job, files in left.items() if files} == {}
