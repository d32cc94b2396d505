"""How plans read list members: getUsers per list, or one user export for all (issue 6)."""

from __future__ import annotations

import pytest

from reconciler.emulator import Limits
from tests.integration.conftest import API_KEY_VAR, Workspace


def emails(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}@example.com" for i in range(n)]


@pytest.fixture
def seven_lists(tmp_path, monkeypatch, fast_client, make_emulator_server):
    """Seven existing lists, each a little different from its audience."""

    def make(project_type: str = "hybrid", limits: Limits | None = None):
        server = make_emulator_server(project_type=project_type, limits=limits)
        monkeypatch.setenv(API_KEY_VAR, "test-key")
        monkeypatch.chdir(tmp_path)
        ws = Workspace(tmp_path, server.base_url, project_type)
        ws.destination()
        proj = server.emulator.project("default")
        for n in range(7):
            list_id = proj.add_list(f"list-{n}")
            for email in emails(f"l{n}-", 10):
                proj.subscribe_direct(list_id, email=email, user_id=f"U{n}-{email[:6]}")
            members = [
                {"email": e, "userId": f"U{n}-{e[:6]}"} for e in emails(f"l{n}-", 10)[1:]
            ] + [{"email": f"new{n}@example.com", "userId": f"N-{n}"}]
            ws.audience(f"list-{n}", {"inline": members}, policy={"maxRemovalPercent": 50})
        return ws, server

    return make


def _member_export(query: str) -> bool:
    """An export of members, not one of the consent guard's (a plan that adds also exports
    unsubscribe events and the profiles' unsubscribedChannelIds)."""
    return "dataTypeName=user" in query and "ListIds" in query


def reads(server) -> tuple[int, int]:
    log = server.emulator.request_log
    return (
        sum(r.path == "/api/lists/getUsers" for r in log),
        sum(r.path == "/api/export/data.json" and _member_export(r.query) for r in log),
    )


def test_many_lists_are_read_with_one_export_within_iterables_limits(seven_lists, cli, monkeypatch):
    ws, server = seven_lists(limits=Limits.iterable())
    monkeypatch.setenv("RECONCILER_LIST_READS_PER_MINUTE", "5")  # Iterable's own figure
    result = cli("plan", ws.manifests, "--format", "json")
    assert result.exit_code == 0, result.output
    assert reads(server) == (0, 1)
    assert not any(r.status == 429 for r in server.emulator.request_log)
    (dest,) = result.json()["destinations"]
    said = dest["member_read"]
    assert said.startswith("members of 7 lists read with 1 user export (1 rate-limited call) in ")
    assert "(1 GET /api/export/data.json); chosen as faster" in said
    summary = result.json()["summary"]
    assert (summary["members_to_add"], summary["members_to_remove"]) == (7, 7)


@pytest.mark.parametrize("project_type", ["hybrid", "userId", "email"])
def test_export_and_get_users_plan_the_same_changes(seven_lists, cli, monkeypatch, project_type):
    ws, _server = seven_lists(project_type)
    plans = {}
    for strategy in ("getUsers", "export"):
        monkeypatch.setenv("RECONCILER_MEMBER_READS", strategy)
        result = cli("plan", ws.manifests, "--format", "json", "--show-members")
        assert result.exit_code == 0, result.output
        body = result.json()
        for dest in body["destinations"]:
            dest.pop("member_read")
            # How consent was read differs by route (an export of the members carries
            # the profiles' channel unsubscribes); what the plan holds may not.
            assert any("consent read" in x for x in dest.pop("other_reads"))
        plans[strategy] = body
    assert plans["getUsers"] == plans["export"]
    assert plans["export"]["summary"]["members_to_remove"] == 7

    monkeypatch.setenv("RECONCILER_MEMBER_READS", "export")
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    assert cli("plan", ws.manifests, "--detailed-exitcode").exit_code == 0
