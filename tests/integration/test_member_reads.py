"""How plans read list members: getUsers per list, or one user export for all (issue 6)."""

from __future__ import annotations

import pytest

from reconciler.emulator import Faults, Limits
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


# A minute of several seconds: long enough that no load on the machine makes a read that
# fits in one minute's budget spill into the next, short enough to keep the test fast.
MINUTE_SCALE = 10.0
SIZE = "/api/lists/{id}/size"


@pytest.fixture
def four_small_lists(tmp_path, monkeypatch, fast_client, make_emulator_server):
    """Lists "a" and "b" (5 members each, as their audiences) and "c" and "d" (empty, as
    their audiences), under the field profile and Iterable's limits at MINUTE_SCALE."""
    server = make_emulator_server(
        project_type="hybrid",
        limits=Limits.iterable().scaled(MINUTE_SCALE),
        faults=Faults.field(MINUTE_SCALE),
    )
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.setenv("RECONCILER_TIME_SCALE", str(MINUTE_SCALE))
    monkeypatch.delenv("RECONCILER_LIST_READS_PER_MINUTE")
    monkeypatch.setenv("RECONCILER_READ_LAG", "0")
    monkeypatch.chdir(tmp_path)
    ws = Workspace(tmp_path, server.base_url, "hybrid")
    ws.destination()
    proj = server.emulator.project("default")
    for name, size in (("a", 5), ("b", 5), ("c", 0), ("d", 0)):
        list_id = proj.add_list(name)
        people = emails(f"{name}-", size)
        for email in people:
            proj.subscribe_direct(list_id, email=email)
        ws.csv(f"{name}.csv", "email", people)
        ws.audience(name, {"csv": f"{name}.csv", "email": "email"})
    return ws, server


def list_reads(server) -> tuple[int, int, int]:
    """getUsers calls, size calls, member exports."""
    log = server.emulator.request_log
    return (
        sum(r.path == "/api/lists/getUsers" for r in log),
        sum(r.path.startswith("/api/lists/") and r.path.endswith("/size") for r in log),
        sum(r.path == "/api/export/data.json" and _member_export(r.query) for r in log),
    )


@pytest.mark.parametrize("command", ["plan", "status"])
def test_empty_lists_size_checks_are_counted_so_the_read_fits_one_minutes_budget(
    four_small_lists, cli, command
):
    ws, server = four_small_lists
    server.emulator.clear_log()

    result = cli(command, ws.manifests, *(["--format", "json"] if command == "plan" else []))

    assert result.exit_code == 0, result.output
    # 4 getUsers and 2 size checks would be 6 starts of a budget of 5 a minute: the 6th
    # waited a minute. One export and the 2 size checks wait for nothing.
    assert list_reads(server) == (0, 2, 1)
    assert not any(r.status == 429 for r in server.emulator.request_log)
    if command == "plan":
        (dest,) = result.json()["destinations"]
        said = dest["member_read"]
        assert said.startswith("members of 4 lists read with 1 user export")
        assert "(4 lists and 2 size checks of lists expected empty, 5 starts a minute)" in said
        assert "2 empty reads checked against the list's size" in said


def test_one_empty_list_of_four_is_still_read_by_get_users_within_the_budget(
    four_small_lists, cli, monkeypatch
):
    """4 getUsers and 1 size check are 5 starts: within one minute's budget, so the lists
    are read as before, each by getUsers."""
    ws, server = four_small_lists
    (d,) = [x.id for x in server.emulator.project("default").lists.values() if x.name == "d"]
    server.emulator.project("default").subscribe_direct(d, email="d-0@example.com")
    ws.csv("d.csv", "email", ["d-0@example.com"])
    server.emulator.clear_log()

    result = cli("plan", ws.manifests)

    assert result.exit_code == 0, result.output
    assert list_reads(server) == (4, 1, 0)
    assert not any(r.status == 429 for r in server.emulator.request_log)


def test_an_empty_source_sizes_its_list_first_and_reads_a_big_one_by_export(
    tmp_path, monkeypatch, fast_client, make_emulator_server, cli
):
    """An audience whose source arrived empty expects an empty list, so getUsers looked
    cheapest: a list of 50,000 was read by getUsers (minutes against Iterable) only for the
    empty-source guard to block the plan. Its list's size is asked first (the size an empty
    read is proven by anyway) and the route chosen from it."""
    server = make_emulator_server(project_type="email")
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    # 400 members at 1 a second by getUsers against 2,000 a second by the export: the
    # model's choice between them, as 50,000 at Iterable's figures.
    monkeypatch.setenv("RECONCILER_GET_USERS_RATE", "1")
    monkeypatch.chdir(tmp_path)
    ws = Workspace(tmp_path, server.base_url, "email")
    ws.destination()
    proj = server.emulator.project("default")
    list_id = proj.add_list("nightly")
    for email in emails("n-", 400):
        proj.subscribe_direct(list_id, email=email)
    ws.csv("nightly.csv", "email", [])  # the nightly file arrived with its header only
    ws.audience("nightly", {"csv": "nightly.csv", "email": "email"})
    server.emulator.clear_log()

    result = cli("plan", ws.manifests, "--format", "json")

    assert result.exit_code == 3, result.output
    body = result.json()
    assert "empty_source" in [v["rule"] for v in body["violations"]]
    # One size call, then one export: no getUsers, and the size is not asked again.
    assert list_reads(server) == (0, 1, 1)
    (dest,) = body["destinations"]
    said = dest["member_read"]
    assert said.startswith("members of 1 list read with 1 user export"), said
    assert "chosen after asking the size of 1 list of empty audiences" in said
    assert "empty read" not in said  # the list was not read empty: nothing to prove


def test_an_empty_source_is_sized_before_the_early_reads_start(
    tmp_path, monkeypatch, fast_client, make_emulator_server, cli
):
    """The reads started before the sources are read chose their route from the row
    counts alone: a large audience's list was downloaded by getUsers early, and the empty
    audience's list of 400 then read again by an export (or by getUsers, slowly). The
    early route is chosen from the empty audience's list size too: one export, started
    early, reads both."""
    server = make_emulator_server(project_type="email")
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "10")  # "big" is read early
    # "big" alone: getUsers (4 s against 2 s by an export, which must win 5x); with the
    # 400 of "nightly": the export (42 s against 2.2 s).
    monkeypatch.setenv("RECONCILER_GET_USERS_RATE", "10")
    monkeypatch.chdir(tmp_path)
    ws = Workspace(tmp_path, server.base_url, "email")
    ws.destination()
    proj = server.emulator.project("default")
    for name, size in (("big", 20), ("nightly", 400)):
        list_id = proj.add_list(name)
        for email in emails(f"{name}-", size):
            proj.subscribe_direct(list_id, email=email)
    ws.csv("big.csv", "email", emails("big-", 20))
    ws.csv("nightly.csv", "email", [])
    for name in ("big", "nightly"):
        ws.audience(name, {"csv": f"{name}.csv", "email": "email"})
    server.emulator.clear_log()

    result = cli("plan", ws.manifests, "--format", "json")

    assert result.exit_code == 3, result.output
    assert list_reads(server) == (0, 1, 1)
    (dest,) = result.json()["destinations"]
    said = dest["member_read"]
    assert said.startswith("members of 2 lists read with 1 user export"), said
    assert "chosen after asking the size of 1 list of empty audiences" in said
    assert "started before the sources were read" in said
    # The size asked before the export started is among the read's requests, as it is
    # when read_live asks it: the line said "(1 GET /api/export/data.json)" alone.
    assert "(1 GET /api/export/data.json, 1 GET /api/lists/{id}/size)" in said
