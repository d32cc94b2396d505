"""Run records (`apply --summary-json`) and `status` (issue 9)."""

from __future__ import annotations

import json


def test_run_record_counts_added_removed_and_rejected(workspace, cli, emulator_server, tmp_path):
    proj = emulator_server.emulator.project("default")
    proj.add_user(email="known@example.com")
    list_id = proj.add_list("vip")
    proj.subscribe_direct(list_id, email="leaving@example.com")
    workspace.audience(
        "vip",
        # Addresses reconciler's light check lets through and Iterable rejects.
        {"inline": ["known@example.com", "two.dots@ex_ample.com", "dot@-example.com"]},
        policy={"maxRemovalPercent": 100},
    )
    record_file = tmp_path / "run.json"
    result = cli("apply", workspace.manifests, "--yes", "--summary-json", record_file)
    assert result.exit_code == 1
    record = json.loads(record_file.read_text())
    assert record["outcome"] == "failed"
    (row,) = record["lists"]
    assert (row["list_id"], row["added"], row["removed"], row["rejected"]) == (list_id, 1, 1, 2)
    assert record["requests"] >= 4  # lists, getUsers, subscribe, unsubscribe
    assert record["started_at"] <= record["finished_at"]
    assert "dots" not in record_file.read_text()


def test_run_record_of_blocked_and_no_change_runs(workspace, cli, emulator_server, tmp_path):
    proj = emulator_server.emulator.project("default")
    list_id = proj.add_list("vip")
    for i in range(4):
        proj.subscribe_direct(list_id, email=f"m{i}@example.com")
    workspace.audience("vip", {"inline": ["m0@example.com"]})
    record_file = tmp_path / "run.json"
    summary = tmp_path / "summary.md"
    blocked = cli(
        "apply",
        workspace.manifests,
        "--yes",
        "--summary-json",
        record_file,
        "--summary-file",
        summary,
    )
    assert blocked.exit_code == 3
    record = json.loads(record_file.read_text())
    assert record["outcome"] == "blocked" and "maxRemovalPercent" in record["message"]
    assert "reconciler apply stopped (blocked)" in summary.read_text()
    assert "maxRemovalPercent" in summary.read_text()

    workspace.audience("vip", {"inline": [f"m{i}@example.com" for i in range(4)]})
    same = cli("apply", workspace.manifests, "--yes", "--summary-json", record_file)
    assert same.exit_code == 0
    assert json.loads(record_file.read_text())["outcome"] == "no_changes"


def test_status_matches_the_emulator(workspace, cli, emulator_server):
    proj = emulator_server.emulator.project("default")
    list_id = proj.add_list("vip")
    for email in ("a@example.com", "b@example.com", "gone@example.com"):
        proj.subscribe_direct(list_id, email=email)
    workspace.audience(
        "vip",
        {"inline": ["a@example.com", "b@example.com", "new@example.com"]},
        policy={"maxRemovalPercent": 50},
    )
    workspace.audience("fresh", {"inline": ["x@example.com"]})
    result = cli("status", workspace.manifests, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {r["audience"]: r for r in result.json()["audiences"]}
    assert rows["vip"]["list_id"] == list_id
    assert rows["vip"]["iterable_members"] == len(proj.members(list_id)) == 3
    assert (
        rows["vip"]["desired_members"],
        rows["vip"]["pending_adds"],
        rows["vip"]["pending_removes"],
    ) == (3, 1, 1)
    assert rows["fresh"]["list_id"] is None and rows["fresh"]["pending_adds"] == 1
    table = cli("status", workspace.manifests)
    assert "vip" in table.stdout and str(list_id) in table.stdout


def _requests_logged(stderr: str) -> int:
    """The requests RECONCILER_LOG=requests said were sent, retries included."""
    return sum(1 for line in stderr.splitlines() if line.startswith("destination 'prod': request "))


def test_a_run_that_applies_nothing_still_counts_the_requests_its_plan_sent(
    workspace, cli, emulator_server, tmp_path, monkeypatch
):
    """An hourly sync with nothing to do, or one the policy blocked, read Iterable's lists
    (and was answered 429) but its run record said `"requests": 0` and
    `"rate_limited_responses": 0`, and so did `apply --format json`: a sync history
    showed no traffic and no rate limiting for most of its runs."""
    monkeypatch.setenv("RECONCILER_LOG", "requests")
    proj = emulator_server.emulator.project("default")
    list_id = proj.add_list("vip")
    members = [f"m{i}@example.com" for i in range(4)]
    for email in members:
        proj.subscribe_direct(list_id, email=email)
    workspace.audience("vip", {"inline": members})
    faults = emulator_server.emulator.faults
    faults.paths, faults.script = ["/api/lists"], [429]
    record_file = tmp_path / "run.json"
    same = cli(
        "apply", workspace.manifests, "--yes", "--format", "json", "--summary-json", record_file
    )
    assert same.exit_code == 0, same.output
    record, report = json.loads(record_file.read_text()), same.json()
    assert record["outcome"] == "no_changes"
    sent = _requests_logged(same.stderr)
    assert sent >= 3  # the 429, GET /api/lists again, getUsers
    assert (record["requests"], record["rate_limited_responses"]) == (sent, 1)
    assert (report["requests"], report["rate_limited"]) == (sent, 1)

    workspace.audience("vip", {"inline": members[:1]})
    blocked = cli("apply", workspace.manifests, "--yes", "--summary-json", record_file)
    assert blocked.exit_code == 3, blocked.output
    record = json.loads(record_file.read_text())
    assert record["outcome"] == "blocked"
    assert record["requests"] == _requests_logged(blocked.stderr) >= 2
