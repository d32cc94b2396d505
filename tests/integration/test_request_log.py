"""RECONCILER_LOG=requests: a line on stderr per request sent to Iterable (method, path,
status, time, how it failed), for a run that failed at night or a plan that is slow, with
neither the API key nor any member's email or userId in it. Against the emulator over HTTP."""

from __future__ import annotations

import json
import re

from tests.integration.conftest import API_KEY_VAR
from tests.integration.test_traits import setup

KEY = "sk-FAKE-request-log-9c2e51d04b8e"
MEMBERS = ("alice", "bob@", "carol", "u-1", "u-2", "example.com")
LINE = re.compile(r"^destination 'prod': request (GET|POST|DELETE) (\S+): (.+) in \d+\.\d\d s")


def request_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " request " in line]


def test_each_request_is_logged_with_its_status_and_no_key_or_member(
    workspace, cli, emulator_server, monkeypatch
):
    monkeypatch.setenv(API_KEY_VAR, KEY)
    emulator_server.emulator.set_api_key("default", KEY)
    setup(workspace)  # three members with user fields: read back one by one, by identifier
    first = cli("apply", workspace.manifests, "--yes")
    assert first.exit_code == 0, first.output
    assert request_lines(first.stderr) == []  # off by default

    monkeypatch.setenv("RECONCILER_LOG", "requests")
    faults = emulator_server.emulator.faults
    faults.paths, faults.script = ["/api/lists"], [503, 429]
    plan = cli("plan", workspace.manifests)
    assert plan.exit_code == 0, plan.output
    lines = request_lines(plan.stderr)
    assert lines and all(LINE.match(line) for line in lines), lines
    # The failed attempt, then its retry and why, then the answer.
    assert "destination 'prod': request GET /api/lists: 503 GenericError in " in lines[0]
    assert "destination 'prod': GET /api/lists: HTTP 503; retry 1 of" in plan.stderr
    # A 429's retry too, though its wait is short (said only in the request log).
    assert "destination 'prod': request GET /api/lists: 429 RateLimitExceeded in " in lines[1]
    assert "destination 'prod': GET /api/lists: HTTP 429; retry 2 of" in plan.stderr
    assert any(line.startswith("destination 'prod': request GET /api/lists: 200") for line in lines)
    # The per-user reads name their route, not whom they read.
    read_routes = {LINE.match(line).group(2) for line in lines}  # type: ignore[union-attr]
    assert read_routes & {"/api/users/{email}", "/api/users/byUserId"}, read_routes
    assert not [line for line in lines if any(m in line for m in MEMBERS)]
    assert KEY not in plan.output

    # A write's line too, and the run record's count of requests is the lines' count.
    workspace.csv("data/churn.csv", "email,user_id,plan", ["dave@example.com,u-4,pro"])
    workspace.audience("churn", {"csv": "data/churn.csv", "userId": "user_id"})
    faults.paths = None
    record = workspace.root / "run.json"
    apply = cli("apply", workspace.manifests, "--yes", "--allow-removals", "--summary-json", record)
    assert apply.exit_code == 0, apply.output
    lines = request_lines(apply.stderr)
    assert any("request POST /api/lists/subscribe: 200 in" in line for line in lines)
    assert any("request POST /api/lists/unsubscribe: 200 in" in line for line in lines)
    assert not [line for line in lines if any(m in line for m in (*MEMBERS, "dave"))]
    assert KEY not in apply.output
    assert json.loads(record.read_text())["requests"] == len(lines)


def test_an_unknown_log_setting_stops_the_command_naming_it(workspace, cli, monkeypatch):
    monkeypatch.setenv("RECONCILER_LOG", "verbose")
    workspace.audience("vip", {"inline": ["a@example.com"]})
    result = cli("plan", workspace.manifests)
    assert result.exit_code == 1
    assert "RECONCILER_LOG must be requests or empty; got 'verbose'" in result.stderr


def test_a_refused_request_s_line_gives_iterable_s_error_code_and_never_its_free_text(
    workspace, cli, emulator_server, monkeypatch
):
    """A write refused at 2 a.m. was `request POST /api/lists/subscribe: 400 in 0.01 s`:
    which of Iterable's errors it was (a fresh list's invalidListId, retried; BadParams,
    not) took the report, printed only at the end, and a retried one was in no report.
    The line now gives the answer's code, and its msg when that is one of Iterable's
    error keys; a msg in words, which may quote members back, stays out of it."""
    monkeypatch.setenv("RECONCILER_LOG", "requests")
    faults = emulator_server.emulator.faults
    faults.fresh_list_rejects = 1
    workspace.audience("vip", {"inline": ["a@example.com"]})
    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 0, applied.output
    assert re.search(
        r"request POST /api/lists/subscribe: 400 Success "
        r"\(error\.lists\.invalidListId\(\d+\)\) in \d+\.\d\d s",
        applied.stderr,
    ), applied.stderr

    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    faults.paths, faults.script = ["/api/lists/subscribe"], [400]
    faults.fail_message = "bad member b@example.com"
    refused = cli("apply", workspace.manifests, "--yes")
    assert refused.exit_code == 1, refused.output
    line = next(x for x in request_lines(refused.stderr) if "/api/lists/subscribe" in x)
    assert LINE.match(line) and ": 400 GenericError in " in line, line
    assert "b@example.com" not in refused.stderr and "bad member" not in refused.stderr
