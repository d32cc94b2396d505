"""The synchronous user export, and the user export in date windows, start before the
sources are read when the route model picks them (issue 18), as the asynchronous export
job does (test_early_reads.py): at Iterable's speeds an export streams for minutes, which
then overlap the sources' reading and checking rather than follow it. The plan is exact;
an early export that fails falls back to getUsers; a plan whose source fails, or that is
interrupted, leaves no read and no thread behind.

The order is observed, not timed: each CSV source's parse waits for the emulator to have
received the export's request. Were the export started only after the sources, that wait
would end without it; the waits are bounded only so that a regression fails rather than
hangs. Every test runs the real CLI against the emulator over loopback HTTP, under the
emulator's field profile at the suite's time scale (and the plain one).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from reconciler.iterable import ClientSettings, IterableClient
from reconciler.manifest import load_manifests
from reconciler.members.model import Engine, start_prefetch
from reconciler.sources import csv_file
from tests.integration.conftest import three_csv_lists

pytestmark = pytest.mark.field_profile

GET_USERS = "/api/lists/getUsers"
EXPORT = "/api/export/data.json"
# Generous: only a regression waits this long (the export is then never started).
BOUND_SECONDS = 30.0
BACKGROUND = ("reconciler-prefetch", "reconciler-window")
# The routes started early here, and how the plan names each.
ROUTES = {
    "export": "1 user export (1 rate-limited call)",
    "windowedExport": "the user export in 2 date windows",
}
# How the consent guard names the read it took the channel unsubscribes from.
READ_NAMES = {"export": "user export", "windowedExport": "user export in date windows"}


def emails(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}@example.com" for i in range(n)]


@pytest.fixture
def csv_lists(tmp_path, monkeypatch, fast_client, make_emulator_server, emulator_profile):
    """Lists "big" (30 members), "mid" (20) and "small" (10), each one member off its
    audience each way; every audience a CSV file. Read by `route` (forced)."""

    def make(route: str, **faults):
        env = {
            "RECONCILER_EXPORTS_PER_MINUTE": "100000",  # the emulator has none
            "RECONCILER_MEMBER_READS": route,
        }
        return three_csv_lists(
            tmp_path, make_emulator_server, emulator_profile, monkeypatch, env, **faults
        )

    return make


def export_started(server) -> bool:
    """The members' export was asked for: range=All, or a date window."""
    return any(
        r.path == EXPORT and "dataTypeName=user" in r.query and "ListIds" in r.query
        for r in server.emulator.request_log
    )


class SourcesWaitForTheExport:
    """Wraps the CSV source's parse: the first one waits until the export was started,
    and records whether it was (then raises `then`, if given, as the parse failing)."""

    def __init__(self, server, then: BaseException | None = None):
        self.server = server
        self.then = then
        self.seen: list[bool] = []
        self._lock = threading.Lock()

    def install(self, monkeypatch) -> None:
        parse = csv_file.CsvFile.read

        def read(source, project_type):
            with self._lock:
                if not self.seen:
                    deadline = time.monotonic() + BOUND_SECONDS
                    while not export_started(self.server) and time.monotonic() < deadline:
                        time.sleep(0.01)
                    self.seen.append(export_started(self.server))
            if self.then is not None:
                raise self.then
            return parse(source, project_type)

        monkeypatch.setattr(csv_file.CsvFile, "read", read)


def background_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(BACKGROUND) and t.is_alive()]


def plan_of(result) -> dict:
    plan = result.json()
    plan["destinations"][0].pop("member_read")
    plan["destinations"][0].pop("other_reads", None)
    return plan


def members_of(server, name: str) -> set[str]:
    proj = server.emulator.project("default")
    (list_id,) = [x.id for x in proj.lists.values() if x.name == name]
    return set(proj.members(list_id))


def member_exports(server) -> list:
    return [
        r
        for r in server.emulator.request_log
        if r.path == EXPORT and "dataTypeName=user" in r.query and "ListIds" in r.query
    ]


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("command", ["plan", "apply --plan"])
def test_the_export_starts_before_the_sources_are_read_and_the_plan_is_exact(
    csv_lists, cli, monkeypatch, command, route
):
    ws, server = csv_lists(route)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    by_get_users = cli("plan", ws.manifests, "--format", "json", "--show-members")
    assert by_get_users.exit_code == 0, by_get_users.output
    monkeypatch.setenv("RECONCILER_MEMBER_READS", route)
    saved = ws.root / "saved.plan"
    if command == "apply --plan":
        made = cli("plan", ws.manifests, "--out", saved)
        assert made.exit_code == 0, made.output
    hook = SourcesWaitForTheExport(server)
    hook.install(monkeypatch)
    server.emulator.clear_log()

    if command == "plan":
        result = cli("plan", ws.manifests, "--format", "json", "--show-members")
    else:
        result = cli("apply", "--plan", saved, "--yes")

    assert hook.seen == [True]  # the export was started while the first source was read
    if command == "plan":
        assert result.exit_code == 0, result.output
        assert plan_of(result) == plan_of(by_get_users)  # exact
        said = result.json()["destinations"][0]["member_read"]
        assert said.startswith(f"members of 3 lists read with {ROUTES[route]} in ")
        assert "started before the sources were read" in said
        # Its calls are the read's, though it may have ended before the sources did.
        assert f"({len(member_exports(server))} GET {EXPORT})" in said
    else:
        assert result.exit_code == 0, result.output  # not stale: applied
        assert members_of(server, "big") == set(emails("big-", 30)[1:]) | {"big-new@example.com"}
    assert member_exports(server)
    assert not any(r.path == GET_USERS for r in server.emulator.request_log)


@pytest.mark.parametrize("engine", ["python", "duckdb"])
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_the_consent_guard_takes_channel_unsubscribes_from_the_early_export(
    csv_lists, cli, monkeypatch, route, engine
):
    """The early export asks for the profiles' unsubscribedChannelIds too, so the consent
    guard reads no profile again (no second export of the project, no per-user reads),
    whether the lists are planned in Python or in DuckDB (the export read by DuckDB)."""
    if engine == "duckdb":
        monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "1")
    ws, server = csv_lists(route)
    proj = server.emulator.project("default")
    gone = "gone@example.com"  # not on the list; unsubscribed from the email channel
    proj.add_user(email=gone)
    control = f"{server.base_url}/_emulator/self-unsubscribe"
    httpx.post(control, json={"email": gone, "channel": True}).raise_for_status()
    people = emails("small-", 10)
    ws.csv("small.csv", "email", [*people[1:], "small-new@example.com", gone])
    server.emulator.clear_log()

    result = cli("plan", ws.manifests, "--format", "json")

    assert result.exit_code == 0, result.output
    body = result.json()
    assert body["summary"]["members_channel_unsubscribed"] == 1  # held back
    assert body["summary"]["members_to_add"] == 3  # one new member per list
    log = server.emulator.request_log
    assert member_exports(server)
    assert all("unsubscribedChannelIds" in r.query for r in member_exports(server))
    # Not read again: no export of the profiles alone, no per-user reads.
    assert not any(
        r.path == EXPORT and "dataTypeName=user" in r.query and "ListIds" not in r.query
        for r in log
    )
    assert not any(
        r.path.startswith("/api/users/") and r.method == "GET"
        for r in log
        if r.path not in ("/api/users/forgotten", "/api/users/forgottenUserIds")
    )
    reads = " ".join(body["destinations"][0]["other_reads"])
    assert f"from the members' {READ_NAMES[route]})" in reads, reads


def test_iterables_words_on_a_failed_export_are_text_and_masked_in_the_plan(
    csv_lists, cli, monkeypatch
):
    """Why the members were read with getUsers quotes Iterable's answer to the export, and
    an answer's msg may quote input back (a list's name, a member's value): the plan's
    markdown had it raw under the destination's heading, where it mentioned a team, loaded
    an image from another host and showed a member's email in the pull-request comment,
    in a plan whose identifiers are masked; text and JSON showed the email too."""
    ws, server = csv_lists("export")
    words = "@acme/security ![x](http://1249763449/a) <img src=x> ann@example.com"
    # 501: not retried, so the answer's own words are what the plan quotes.
    server.emulator.faults.update({"script": [501], "paths": [EXPORT], "fail_message": words})
    markdown = cli("plan", ws.manifests, "--format", "markdown")
    assert markdown.exit_code == 0, markdown.output
    (line,) = [x for x in markdown.stdout.splitlines() if "could not be read" in x]
    assert "HTTP 501 GenericError: @&#8203;acme/security !\\[x\\](http&#8203;://" in line
    assert "\\<img src=x\\>" in line and "![x](" not in line
    server.emulator.faults.update({"script": [501], "paths": [EXPORT], "fail_message": words})
    text = cli("plan", ws.manifests)
    server.emulator.faults.update({"script": [501], "paths": [EXPORT], "fail_message": words})
    json_plan = cli("plan", ws.manifests, "--format", "json")
    said = json_plan.json()["destinations"][0]["member_read"]
    assert "the user export could not be read (GET /api/export/data.json: HTTP 501" in said
    for output in (markdown.stdout, text.stdout, json_plan.stdout, markdown.stderr):
        assert "could not be read" in output and "ann@example.com" not in output
    assert "reading the 3 lists with getUsers instead" in markdown.stderr


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_an_early_export_that_fails_still_falls_back_to_getusers(
    csv_lists, cli, monkeypatch, route
):
    ws, server = csv_lists(route)
    clean = cli("plan", ws.manifests, "--format", "json", "--show-members")
    assert clean.exit_code == 0, clean.output
    monkeypatch.setenv("RECONCILER_BULK_READ_RETRIES", "1")
    # The early export's request answers 500, and so does its one retry.
    server.emulator.faults.update({"script": [500, 500], "paths": [EXPORT]})
    hook = SourcesWaitForTheExport(server)
    hook.install(monkeypatch)
    server.emulator.clear_log()

    result = cli("plan", ws.manifests, "--format", "json", "--show-members")

    assert hook.seen == [True]
    assert result.exit_code == 0, result.output
    assert [r.status for r in member_exports(server)][:2] == [500, 500]
    assert "could not be read (GET /api/export/data.json" in result.stderr
    assert Counter(r.path for r in server.emulator.request_log)[GET_USERS] == 3
    said = result.json()["destinations"][0]["member_read"]
    assert said.startswith("members of 3 lists read with 3 getUsers calls")
    assert plan_of(result) == plan_of(clean)


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("stop", ["source error", "Ctrl-C"])
def test_a_plan_stopped_while_its_export_streams_stops_it_and_leaves_no_thread(
    csv_lists, cli, monkeypatch, route, stop
):
    # The export streams 2 users a second: far longer than the test, so only abandoning
    # it ends its thread.
    ws, server = csv_lists(route, export_members_per_second=2.0, export_first_byte_seconds=0.0)
    # A quote left open: the CSV source fails to load once it is parsed.
    ws.csv("mid.csv", "email", ['"mid-1@example.com'])
    then = KeyboardInterrupt() if stop == "Ctrl-C" else None
    hook = SourcesWaitForTheExport(server, then)
    hook.install(monkeypatch)
    assert not background_threads()
    started = time.monotonic()

    result = cli("plan", ws.manifests)

    assert hook.seen == [True]  # the export was streaming when the plan stopped
    if stop == "Ctrl-C":
        assert result.exit_code == 130, result.output
    else:
        assert result.exit_code == 1, result.output
        assert "mid.csv:2: not valid CSV" in result.stderr
    assert not background_threads()
    # Stopped, not read to its end (30 s at 2 users a second) nor read again: no
    # window read twice, no getUsers.
    assert time.monotonic() - started < 20
    queries = [r.query for r in member_exports(server)]
    assert len(queries) == len(set(queries)) <= 2
    assert not any(r.path == GET_USERS for r in server.emulator.request_log)


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_an_early_export_the_plan_did_not_take_is_removed(csv_lists, monkeypatch, tmp_path, route):
    ws, server = csv_lists(route)
    settings = ClientSettings.from_env()
    manifests = load_manifests(ws.manifests)
    (name,) = manifests.destinations
    destination = manifests.destinations[name]
    audiences = manifests.audiences_of(name)
    engine = Engine.from_env()
    with IterableClient(server.base_url, "test-key", settings=settings) as client:
        prefetch = start_prefetch(
            engine,
            client,
            destination,
            [],
            {a.list_name for a in audiences},
            sizes={a.list_name: 30 for a in audiences},
        )
        export = prefetch.take_export()
        assert export is not None and export.route.name == route
        path = prefetch.wait_export(export)
        assert path.exists() and len(path.read_text().splitlines()) == 60

        prefetch.abandon()  # the plan ended without taking it

    assert not Path(path).exists()
    assert not background_threads()


def test_the_user_export_is_chosen_from_the_sources_row_counts_and_started_early(
    csv_lists, cli, monkeypatch
):
    ws, server = csv_lists("getUsers")
    clean = cli("plan", ws.manifests, "--format", "json", "--show-members")
    assert clean.exit_code == 0, clean.output
    # Chosen, not forced: getUsers modelled slow, the job's queue long, the export quick.
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "auto")
    monkeypatch.setenv("RECONCILER_GET_USERS_RATE", "0.01")
    monkeypatch.setenv("RECONCILER_EXPORT_RATE", "100000")
    monkeypatch.setenv("RECONCILER_EXPORT_JOB_QUEUE", "100000")
    hook = SourcesWaitForTheExport(server)
    hook.install(monkeypatch)
    server.emulator.clear_log()

    result = cli("plan", ws.manifests, "--format", "json", "--show-members")

    assert hook.seen == [True]
    assert result.exit_code == 0, result.output
    said = result.json()["destinations"][0]["member_read"]
    assert "chosen as faster: about " in said and " by one user export against " in said
    assert "started before the sources were read" in said
    assert len(member_exports(server)) == 1
    assert not any(r.path == GET_USERS for r in server.emulator.request_log)
    assert plan_of(result) == plan_of(clean)


def test_many_lists_planned_in_duckdb_from_one_export_are_exact(
    tmp_path, monkeypatch, fast_client, make_emulator_server, emulator_profile, cli
):
    """From EXPORT_BY_LIST_FROM lists the export is sorted by list once rather than
    scanned whole for each list (bench/export_by_list.py): the plan is the same as
    getUsers reads, members on several lists and named by either identifier."""
    from reconciler.members.engine.export_table import EXPORT_BY_LIST_FROM

    env = {"RECONCILER_EXPORTS_PER_MINUTE": "100000", "RECONCILER_ENGINE_THRESHOLD": "1"}
    ws, server = three_csv_lists(tmp_path, make_emulator_server, emulator_profile, monkeypatch, env)
    proj = server.emulator.project("default")
    for n in range(EXPORT_BY_LIST_FROM):
        list_id = proj.add_list(f"extra-{n}")
        people = [f"p{(n * 3 + i) % 20}@example.com" for i in range(6)]
        for i, email in enumerate(people):
            proj.subscribe_direct(list_id, email=email, user_id=f"id-{email}" if i % 2 else None)
        ws.csv(f"extra-{n}.csv", "email", [*people[1:], f"extra-{n}-new@example.com"])
        ws.audience(
            f"extra-{n}",
            {"csv": f"extra-{n}.csv", "email": "email"},
            policy={"maxRemovalPercent": 50},
        )
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    by_get_users = cli("plan", ws.manifests, "--format", "json", "--show-members")
    assert by_get_users.exit_code == 0, by_get_users.output
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "export")
    server.emulator.clear_log()
    result = cli("plan", ws.manifests, "--format", "json", "--show-members")
    assert result.exit_code == 0, result.output
    assert plan_of(result) == plan_of(by_get_users)
    said = result.json()["destinations"][0]["member_read"]
    assert said.startswith(f"members of {EXPORT_BY_LIST_FROM + 3} lists read with ")
    assert not any(r.path == GET_USERS for r in server.emulator.request_log)
