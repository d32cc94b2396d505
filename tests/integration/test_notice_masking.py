"""Lines a command prints as it runs that quote Iterable's own text: an answer's msg can
quote the request back, members included, and stderr and stdout are a CI log kept for
months and readable by everyone with read access, so such text is masked there as in
every other message. Each test runs the real CLI as a process against the emulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import Workspace

MEMBER = "quoted.member@example.com"
MASKED = "q***@***"


def run_cli(*args: object) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from reconciler.cli import main; main()"]
    command += [str(a) for a in args]
    return subprocess.run(
        command, env=dict(os.environ), capture_output=True, text=True, timeout=120
    )


def list_quoting_a_member(server, path: str) -> int:
    """A list holding MEMBER, and the next read of `path` failing with a 501 (not retried)
    whose msg quotes MEMBER, as a server echoing its input might."""
    project = server.emulator.project("default")
    list_id = project.add_list("listed")
    project.subscribe_direct(list_id, email=MEMBER)
    server.emulator.faults.update(
        {"script": [501], "paths": [path], "fail_message": f"cannot read {MEMBER} now"}
    )
    return list_id


def run_import(ws: Workspace) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = ws.root / "imported"
    return run_cli("import", ws.manifests, "--destination", "prod", "--out", out), out


def test_import_names_a_list_it_could_not_read_without_the_member_the_answer_quotes(
    workspace, emulator_server
):
    list_id = list_quoting_a_member(emulator_server, "/api/lists/getUsers")

    run, out = run_import(workspace)

    assert run.returncode == 1, run.stderr
    assert f"skipped list {list_id} 'listed': its members could not be read (" in run.stderr
    assert f"HTTP 501 GenericError: cannot read {MASKED} now" in run.stderr
    assert MEMBER not in run.stderr + run.stdout
    assert not (out / "listed.csv").exists()


def test_import_says_how_it_read_the_lists_without_the_member_the_export_answer_quotes(
    workspace, emulator_server, monkeypatch
):
    list_quoting_a_member(emulator_server, "/api/export/data.json")
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "export")

    run, out = run_import(workspace)

    assert run.returncode == 0, run.stderr
    # The progress line on stderr and how the members were read on stdout.
    assert f"cannot read {MASKED} now); reading the 1 list with getUsers" in run.stderr
    assert "the user export could not be read (" in run.stdout
    assert f"cannot read {MASKED} now)" in run.stdout
    assert MEMBER not in run.stderr + run.stdout
    assert MEMBER in (out / "listed.csv").read_text()  # the member file holds it in full


def test_a_plan_leaving_out_an_unread_list_masks_the_member_the_answer_quotes(
    workspace, emulator_server
):
    """Why the audience is left out quotes Iterable's answer to the read: in the PR comment,
    the log and the JSON, as masked as the plan's members, in full with --show-members."""
    list_quoting_a_member(emulator_server, "/api/lists/getUsers")
    workspace.csv("listed.csv", "email", ["someone@example.com"])
    workspace.audience("listed", {"csv": "listed.csv"})
    said = f"HTTP 501 GenericError: cannot read {MASKED} now"

    for output in ("text", "markdown", "json"):
        emulator_server.emulator.faults.update({"script": [501]})
        run = run_cli("plan", workspace.manifests, "--format", output)
        assert run.returncode == 1, run.stderr
        # Markdown escapes the mask's stars.
        shown = said.replace("*", "\\*") if output == "markdown" else said
        assert shown in run.stdout and MEMBER not in run.stdout + run.stderr, output
    emulator_server.emulator.faults.update({"script": [501]})
    run = run_cli("status", workspace.manifests, "--format", "json")
    assert said in run.stdout and MEMBER not in run.stdout + run.stderr
    emulator_server.emulator.faults.update({"script": [501]})
    run = run_cli("plan", workspace.manifests, "--show-members")
    assert f"cannot read {MEMBER} now" in run.stdout


def test_a_plan_whose_campaigns_read_failed_masks_the_member_the_answer_quotes(
    workspace, emulator_server
):
    list_quoting_a_member(emulator_server, "/api/campaigns")
    workspace.csv("listed.csv", "email", [MEMBER, "someone@example.com"])  # one to add
    workspace.audience("listed", {"csv": "listed.csv"})

    for output in ("text", "json"):
        emulator_server.emulator.faults.update({"script": [400]})
        run = run_cli("plan", workspace.manifests, "--format", output)
        assert "campaigns could not be read (GET /api/campaigns: HTTP 400" in run.stdout
        assert f"cannot read {MASKED} now" in run.stdout, output
        assert MEMBER not in run.stdout + run.stderr, output


# After a job's state and each of its files' names: Iterable's words, printed as a job goes
# on. A line break, a workflow command, a member and a character that reorders the line.
EXPORT_WORDS = f"\n::error::forged\u202e {MEMBER}"
EXPORT_SHOWN = f"\\n::error::forged\\u202e {MASKED}"


def test_an_export_jobs_state_and_file_names_are_printed_masked_on_one_line(
    workspace, emulator_server, monkeypatch
):
    """`export job N: <state>` and the request log's file names printed Iterable's text as
    it came: a line end in it started a log line of its own (a forged 'no changes', or a
    workflow command), and an email in it was shown in full."""
    list_quoting_a_member(emulator_server, "/api/none")
    emulator_server.emulator.faults.update(
        {"export_words": EXPORT_WORDS, "export_job_queue_seconds": 1.5}
    )
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "asyncExport")
    monkeypatch.setenv("RECONCILER_EXPORT_POLL", "0.05")
    monkeypatch.setenv("RECONCILER_LOG", "requests")
    workspace.csv("listed.csv", "email", [MEMBER])
    workspace.audience("listed", {"csv": "listed.csv"})

    run = run_cli("plan", workspace.manifests)

    assert run.returncode == 0, run.stderr
    assert f"export job 1: enqueued{EXPORT_SHOWN}" in run.stderr
    assert f".json{EXPORT_SHOWN}: 200 in " in run.stderr  # the file's request line
    assert MEMBER not in run.stderr + run.stdout
    assert not [line for line in run.stderr.splitlines() if "::error::forged" in line[:16]]
    assert "\u202e" not in run.stderr + run.stdout


def test_an_export_job_given_up_on_names_its_state_masked_on_one_line(
    workspace, emulator_server, monkeypatch
):
    list_quoting_a_member(emulator_server, "/api/none")
    emulator_server.emulator.faults.update(
        {"export_words": EXPORT_WORDS, "export_job_queue_seconds": 3600}
    )
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "asyncExport")
    monkeypatch.setenv("RECONCILER_EXPORT_JOB_WAIT", "0.3")
    workspace.csv("listed.csv", "email", [MEMBER])
    workspace.audience("listed", {"csv": "listed.csv"})

    for output in ("text", "markdown"):
        run = run_cli("plan", workspace.manifests, "--format", output)

        assert run.returncode == 0, run.stderr
        said = run.stderr + run.stdout
        assert f"was still enqueued{EXPORT_SHOWN} after " in said.replace("\\*", "*"), output
        assert MEMBER not in said
        assert not [line for line in said.splitlines() if "::error::forged" in line[:16]]
        assert "\u202e" not in said
