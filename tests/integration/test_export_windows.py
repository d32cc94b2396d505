"""The user export read in date windows (issue 18), through the real CLI against the
emulator over loopback HTTP: windows chosen by the route model, a window whose stream
Iterable cuts read again as two halves, profiles updated while the windows are read, and
the plan exact: the one a getUsers read of the final state gives."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from reconciler.cli.session import open_clients
from reconciler.emulator import Faults
from reconciler.iterable import ClientSettings, IterableClient
from reconciler.leftovers import made_by
from reconciler.manifest.loader import load_manifests
from reconciler.members.model import Engine, start_prefetch
from reconciler.state.windows import export_users_whole, read_export_windows
from tests.integration.conftest import API_KEY_VAR, Workspace

EXPORT = "/api/export/data.json"
CHANNELS = "unsubscribedChannelIds"
SLACK = timedelta(seconds=60)
DAY_MS = 86_400_000


def window_requests(server) -> list:
    return [
        r
        for r in server.emulator.request_log
        if r.path == EXPORT and "startDateTime" in r.query and "dataTypeName=user" in r.query
    ]


@pytest.fixture
def windowed(tmp_path, monkeypatch, fast_client, make_emulator_server) -> Iterator:
    """A hybrid project whose list "big" holds 40 profiles updated 1 to 391 days ago (one
    each 10 days) and D and H, updated 450 and 420 days ago. Settings under which one
    export would outlast its connection and the route model picks date windows: three of
    them before the open one, the middle holding 26 profiles where a stream carries 15."""
    # Iterable's side: a stream carries 15 rows (0.075 s at 200 a second), then dies.
    faults = Faults(export_members_per_second=200.0, export_stream_seconds=0.075)
    server = make_emulator_server(project_type="hybrid", faults=faults)
    # The tool's model of it: streams of 0.15 s at 200 rows a second (windows of 15).
    for name, value in {
        "EXPORT_RATE": "200",
        "EXPORT_STREAM_LIMIT": "0.15",
        "BULK_READ_FIRST_BYTE": "0",
        "EXPORT_WINDOW_DAYS": "400",
        "EXPORTS_PER_MINUTE": "100000",
        "GET_USERS_RATE": "20",
    }.items():
        monkeypatch.setenv(f"RECONCILER_{name}", value)
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.chdir(tmp_path)
    ws = Workspace(tmp_path, server.base_url, "hybrid")
    ws.destination()
    project = server.emulator.project("default")
    big = project.add_list("big")
    now = int(time.time() * 1000)
    ages = {f"p{i}@example.com": i * 10 + 1 for i in range(40)}
    ages |= {"d@example.com": 450, "h@example.com": 420}
    for email, days in ages.items():
        user = project.subscribe_direct(big, email=email)
        user.profile_updated_at = now - days * DAY_MS
    # p1 and p2 are to be removed; D is not wanted either (it leaves the list itself
    # during the read); H is known by the userId its profile gets during the read.
    wanted = [e for e in ages if e not in ("p1@example.com", "p2@example.com", "d@example.com")]
    rows = [f"{e}," for e in wanted if e != "h@example.com"] + ["h@example.com,U-H"]
    ws.csv("big.csv", "email,userId", rows)  # a file: planned in DuckDB when asked to
    ws.audience(
        "big",
        {"csv": "big.csv", "email": "email", "userId": "userId"},
        policy={"maxRemovalPercent": 50},
    )
    yield ws, server, big


def update_during_the_read(server, big: int) -> threading.Event:
    """Once the first window has been answered, change four profiles through the API:
    D leaves "big" (its window was read: a stale row), H gets a userId (its window was
    read: the same person under a second identifier), p30 gets a field (its window is
    not read yet: it moves ahead, to the open window), and N joins "big"."""
    emulator = server.emulator
    handle = emulator.handle
    done = threading.Event()
    lock = threading.Lock()

    def update() -> None:
        with httpx.Client(base_url=server.base_url, headers={"Api-Key": "test-key"}) as api:
            for path, body in (
                (
                    "/api/lists/unsubscribe",
                    {
                        "listId": big,
                        "subscribers": [{"email": "d@example.com"}],
                        "channelUnsubscribe": False,
                    },
                ),
                ("/api/users/update", {"email": "h@example.com", "userId": "U-H"}),
                ("/api/users/update", {"email": "p30@example.com", "dataFields": {"tier": "gold"}}),
                (
                    "/api/lists/subscribe",
                    {"listId": big, "subscribers": [{"email": "n@example.com"}]},
                ),
            ):
                answer = api.post(path, json=body)
                assert answer.status_code == 200, answer.text

    def handle_then_update(request: httpx.Request):
        answer = handle(request)
        is_window = request.url.path == EXPORT and "startDateTime" in str(request.url)
        with lock:
            first = is_window and not done.is_set()
            if first:
                done.set()
        if first:
            update()
        return answer

    emulator.handle = handle_then_update  # type: ignore[method-assign]
    return done


@pytest.mark.parametrize(
    ("in_flight", "engine"), [("1", "python"), ("4", "python"), ("4", "duckdb")]
)
def test_windows_read_during_updates_give_the_exact_plan(
    windowed, cli, monkeypatch, in_flight, engine
):
    ws, server, big = windowed
    monkeypatch.setenv("RECONCILER_EXPORT_WINDOWS_IN_FLIGHT", in_flight)
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    updated = update_during_the_read(server, big)

    result = cli("plan", ws.manifests, "--format", "json", "--show-members")

    assert result.exit_code == 0, result.output
    assert updated.is_set()
    project = server.emulator.project("default")
    assert project.user_by_email("h@example.com").user_id == "U-H"  # the updates happened
    assert big not in project.user_by_email("d@example.com").list_ids
    windows = window_requests(server)
    cut = [r for r in windows if r.fault == "stream_cut"]
    # Three windows and the open one; the 26-profile window died and was read as halves.
    assert (len(windows), len(cut)) == (4 + 2, 1)
    assert windows[-1].query == max(windows, key=lambda r: r.at).query  # the open one last
    assert "was cut off before its end; reading it again as two windows" in result.stderr
    if in_flight == "1":
        # Rows of the cut window are counted once, from its halves: 42 profiles less p30
        # (read in the open window), D and H twice (before and after), p30 and N. The
        # windows were started before the source was read: counted by that read.
        early = "(the user export in date windows, started before the sources were read)"
        assert f"{early}: finished, 45 members" in result.stderr
    windowed_plan = result.json()
    said = windowed_plan["destinations"][0].pop("member_read")
    assert said.startswith("members of 1 list read with the user export in 5 date windows in ")
    assert f"({len(windows)} GET {EXPORT})" in said
    assert "chosen as faster: about " in said and "by the user export in date windows" in said
    assert ("1 large list diffed in DuckDB" in said) == (engine == "duckdb")

    # The plan a getUsers read of the final state gives: the same changes, exactly.
    final_plan = plan_by_get_users(cli, ws, monkeypatch)
    assert windowed_plan == final_plan
    (list_plan,) = final_plan["destinations"][0]["lists"]
    assert list_plan["changes"] == [
        {
            "type": "remove_members",
            "count": 3,
            "sample": ["n@example.com", "p1@example.com", "p2@example.com"],
            "channel_unsubscribe": False,
            "campaign_id": None,
        }
    ]


def test_windows_that_cannot_be_read_give_way_to_getusers_and_the_plan_is_exact(
    windowed, cli, monkeypatch
):
    ws, server, _big = windowed
    monkeypatch.setenv("RECONCILER_BULK_READ_RETRIES", "1")
    server.emulator.faults.update({"fail_every": 1, "fail_status": 500, "paths": [EXPORT]})

    result = cli("plan", ws.manifests, "--format", "json", "--show-members")

    assert result.exit_code == 0, result.output
    # The three windows in flight at once, each tried twice; the open one never read.
    tried = Counter(r.query for r in window_requests(server))
    assert sorted(tried.values()) == [2, 2, 2]
    assert "the user export in date windows could not be read" in result.stderr
    assert "reading the 1 list with getUsers instead" in " ".join(result.stderr.split())
    plan = result.json()
    said = plan["destinations"][0].pop("member_read")
    assert said.startswith("members of 1 list read with 1 getUsers call")
    assert "the user export in date windows could not be read (GET /api/export/data.json" in said
    server.emulator.faults.update({"fail_every": 0})
    again = plan_by_get_users(cli, ws, monkeypatch)
    assert plan == again


def test_a_window_that_cannot_be_read_stops_the_others_and_gives_way_at_once(
    windowed, cli, monkeypatch
):
    # The first window's read fails for good while the others stream, here far slower
    # than the test (Iterable's export streams for minutes): the plan went over to
    # getUsers only once they had streamed to their end, and threw them away.
    ws, server, _big = windowed
    monkeypatch.setenv("RECONCILER_BULK_READ_RETRIES", "0")
    server.emulator.faults.update(
        {
            "script": [500],
            "paths": [EXPORT],
            "export_members_per_second": 0.5,
            "export_stream_seconds": None,
        }
    )
    started = time.monotonic()

    result = cli("plan", ws.manifests, "--format", "json", "--show-members")

    assert result.exit_code == 0, result.output
    assert "the user export in date windows could not be read" in result.stderr
    # Not read to their end: 13 rows and more each, at 2 s a row.
    assert time.monotonic() - started < 15
    server.emulator.faults.update({"export_members_per_second": None})
    plan = result.json()
    plan["destinations"][0].pop("member_read")
    assert plan == plan_by_get_users(cli, ws, monkeypatch)


def test_import_reads_by_date_windows_what_it_reads_by_getusers(windowed, cli, monkeypatch):
    ws, server, _big = windowed
    (ws.manifests / "aud-big.yaml").unlink()  # "big" is imported
    files = {}
    for route in ("getUsers", "windowedExport"):
        monkeypatch.setenv("RECONCILER_MEMBER_READS", route)
        out = ws.root / f"imported-{route}"
        server.emulator.clear_log()
        result = cli("import", ws.manifests, "--destination", "prod", "--out", out)
        assert result.exit_code == 0, result.output
        files[route] = {p.name: p.read_text() for p in sorted(out.glob("*.csv"))}
    # Sizes unknown: one window and the open one, the first cut (42 profiles, 15 a
    # stream) and split until each half fits.
    windows = window_requests(server)
    assert len(windows) > 2 and any(r.fault == "stream_cut" for r in windows)
    assert files["getUsers"] == files["windowedExport"]
    assert list(files["windowedExport"]) == ["big.csv"]
    assert files["windowedExport"]["big.csv"].count("@example.com") == 42


def test_a_saved_plan_read_by_windows_is_checked_by_windows(windowed, cli, tmp_path):
    ws, server, big = windowed
    planfile = tmp_path / "p.plan"
    made = cli("plan", ws.manifests, "--out", planfile)
    assert made.exit_code == 0, made.output
    server.emulator.clear_log()

    applied = cli("apply", "--plan", planfile, "--yes")

    assert applied.exit_code == 0, applied.output
    # The stale check read every list once, by the same route: windows, no job, no getUsers.
    paths = {r.path for r in server.emulator.request_log if r.method == "GET"}
    assert window_requests(server) and "/api/lists/getUsers" not in paths
    assert not any(r.path == "/api/export/start" for r in server.emulator.request_log)
    members = set(server.emulator.project("default").members(big))
    assert {"p1@example.com", "p2@example.com", "d@example.com"} & members == set()
    assert len(members) == 42 - 3


def test_the_consent_read_of_a_project_too_big_for_one_stream_is_read_in_windows(
    windowed, cli, monkeypatch
):
    """The adds' channel unsubscribes are read from the whole project's user export: on a
    project one stream cannot carry, that export is cut every time, and the plan must not
    fail (nor add the opted-out) for it: it is read in date windows instead."""
    # As if the adds were too many to read one by one (state/consent.py), and the members
    # read by getUsers: the consent guard reads the profiles itself (the members' windows
    # would carry them: test_early_exports.py).
    monkeypatch.setattr("reconciler.state.consent.MAX_LOOKUPS", 0)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    ws, server, _big = windowed
    opted_out_of_the_channel(server)
    kept = [f"p{i}@example.com," for i in range(3, 40)] + ["h@example.com,U-H"]
    ws.csv("big.csv", "email,userId", [*kept, "c@example.com,", "new@example.com,"])
    server.emulator.clear_log()
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    body = plan.json()
    assert body["summary"]["members_to_add"] == 1  # new; c is held back
    assert body["summary"]["members_channel_unsubscribed"] == 1
    consent_reads = [
        r
        for r in server.emulator.request_log
        if r.path == EXPORT and "unsubscribedChannelIds" in r.query and "ListIds" not in r.query
    ]
    assert any("range=All" in r.query for r in consent_reads)  # tried whole first
    assert any("startDateTime" in r.query for r in consent_reads)  # then in windows


def test_the_windows_scratch_file_is_one_a_later_run_removes_if_this_one_is_killed(
    windowed, cli, monkeypatch, tmp_path
):
    """The consent read's windows go to a file of the whole project's users (members'
    emails): it was in a `reconciler-export-*` directory of the system's temporary one,
    beside RECONCILER_DUCKDB_TEMP_DIR rather than in it, and named for no process, so a run
    killed during a read that can take hours left it there for good. It is a private
    directory under that variable, named for this process, as the sweep of a later run
    removes once the process is gone."""
    monkeypatch.setattr("reconciler.state.consent.MAX_LOOKUPS", 0)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    temp = tmp_path / "temp"
    monkeypatch.setenv("RECONCILER_DUCKDB_TEMP_DIR", str(temp))
    ws, server, _big = windowed
    kept = [f"p{i}@example.com," for i in range(3, 40)] + ["h@example.com,U-H"]
    ws.csv("big.csv", "email,userId", [*kept, "new@example.com,"])
    emulator = server.emulator
    handle = emulator.handle
    during: list[Path] = []

    def handle_and_look(request: httpx.Request):
        if request.url.path == EXPORT and "startDateTime" in str(request.url):
            during.extend(p.parent for p in temp.glob("*/users*.jsonl"))
        return handle(request)

    emulator.handle = handle_and_look  # type: ignore[method-assign]
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    assert during, "no window was read into a file under RECONCILER_DUCKDB_TEMP_DIR"
    assert {made_by(d.name) for d in during} == {os.getpid()}
    assert not any(d.exists() for d in during)  # and removed when the read is done


def opted_out_of_the_channel(server) -> None:
    """c@example.com: a user of the project, on no list of the tests, who has opted out of
    the email channel (the consent guard holds them back when an audience adds them)."""
    server.emulator.project("default").add_user(email="c@example.com")
    control = f"{server.base_url}/_emulator/self-unsubscribe"
    httpx.post(control, json={"email": "c@example.com", "channel": True}).raise_for_status()


def gold_tier_members(ws) -> list[str]:
    """Audience `big`: a source of 37 of the project's users (its emails returned) mapping
    `tier` (gold for each) to a field of that name, up to half of its list removable."""
    kept = [f"p{i}@example.com" for i in range(3, 40)]
    ws.csv("big.csv", "email,userId,tier", [f"{e},,gold" for e in kept])
    ws.write(
        "traits.yaml",
        '{"apiVersion": "reconciler/v1", "kind": "TraitMapping", "metadata": {"name": "crm"},'
        ' "spec": {"fields": {"tier": "tier"}}}',
    )
    ws.audience(
        "big",
        {"csv": "big.csv", "email": "email", "userId": "userId"},
        policy={"maxRemovalPercent": 50},
        traits="crm",
    )
    return kept


def _big_by_query(ws, server, monkeypatch, engine: str, also: tuple[str, ...] = ()) -> list[str]:
    """Audience `big` read by a DuckDB query (its rows counted, and the members' route
    chosen, only once it is read), under `engine`, the consent guard reading profiles by
    export, c@example.com opted out of the channel; `also`: more rows. Its members."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setattr("reconciler.state.consent.MAX_LOOKUPS", 0)  # profiles by export
    kept = gold_tier_members(ws)
    opted_out_of_the_channel(server)
    ws.csv("big.csv", "email,tier", [f"{e},gold" for e in [*kept, *also]])
    query = {"sql": "SELECT email, tier FROM read_csv('big.csv')", "database": ":memory:"}
    ws.audience("big", query, policy={"maxRemovalPercent": 50}, traits="crm")
    return kept


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_mapped_fields_of_a_project_too_big_for_one_stream_are_read_in_windows(
    windowed, cli, monkeypatch, engine
):
    """The current values of mapped fields come from the whole project's user export too:
    cut off every time, it is read in date windows, and the updates are exact. Read by
    the member read's windows when those read the lists, by their own otherwise."""
    ws, server, _big = windowed
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    # The lists read by getUsers: the fields' own export, tried whole, goes on in windows.
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    kept = gold_tier_members(ws)
    project = server.emulator.project("default")
    project.user_by_email("p5@example.com").data_fields["tier"] = "gold"  # already right
    server.emulator.clear_log()
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    assert plan.json()["summary"]["users_to_update"] == len(kept) - 1  # all but p5
    field_reads = [
        r for r in server.emulator.request_log if r.path == EXPORT and "onlyFields=tier" in r.query
    ]
    assert any("range=All" in r.query for r in field_reads)
    windows = [r for r in field_reads if "startDateTime" in r.query]
    assert windows
    # Counted and said as made: the plan said "1 user export" (`requests`: 1) for a read
    # that took the cut-off export and every window after it.
    read = plan.json()["destinations"][0]["field_updates"]["read"]
    assert read["requests"] == 1 + len(windows)
    text = cli("plan", ws.manifests)
    assert text.exit_code == 0, text.output
    assert (
        f"current values read with the user export in date windows ({len(windows)} requests, "
        "one whole export being cut off) for 37 users)"
    ) in text.stdout

    # The lists read by the export in date windows: the fields come with their rows.
    monkeypatch.delenv("RECONCILER_MEMBER_READS")
    server.emulator.clear_log()
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    assert plan.json()["summary"]["users_to_update"] == len(kept) - 1
    assert plan.json()["destinations"][0]["field_updates"]["read"]["requests"] == 0
    field_reads = [
        r for r in server.emulator.request_log if r.path == EXPORT and "onlyFields=tier" in r.query
    ]
    assert field_reads
    assert all("startDateTime" in r.query and "userListIds" in r.query for r in field_reads)


def test_windows_follow_iterables_clock_when_the_machines_runs_ahead(windowed, cli, monkeypatch):
    """The machine's clock an hour ahead of Iterable's: windows planned by the machine's
    "now" would put the profiles updated during the read (stamped by Iterable's clock) in
    a closed window read before, beside their old rows, and the plan would act on a state
    that never was. Planned by Iterable's clock (its Date header), the plan is the one a
    getUsers read of the final state gives."""
    ws, server, big = windowed
    monkeypatch.setenv("RECONCILER_EXPORT_WINDOWS_IN_FLIGHT", "1")
    server.emulator.faults.clock_offset_seconds = -3600.0
    updated = update_during_the_read(server, big)

    result = cli("plan", ws.manifests, "--format", "json", "--show-members")

    assert result.exit_code == 0, result.output
    assert updated.is_set()
    windowed_plan = result.json()
    said = windowed_plan["destinations"][0].pop("member_read")
    assert "date windows (planned by Iterable's clock, which its answers' Date header " in said
    assert " s behind this machine's)" in said
    assert "the user export's date windows are planned by Iterable's clock" in result.stderr
    final_plan = plan_by_get_users(cli, ws, monkeypatch)
    assert windowed_plan["destinations"][0]["lists"] == final_plan["destinations"][0]["lists"]
    assert windowed_plan == final_plan
    (list_plan,) = final_plan["destinations"][0]["lists"]
    assert [c["sample"] for c in list_plan["changes"]] == [
        ["n@example.com", "p1@example.com", "p2@example.com"]
    ]


def test_windows_reach_iterables_now_when_the_machines_clock_runs_behind(
    windowed, cli, monkeypatch
):
    """The machine's clock two days behind Iterable's: the open window, ending a day past
    the machine's "now", would end before Iterable's, and every profile Iterable stamps
    during the read (or in the day before it) would be in no window at all. Ending a day
    past Iterable's now (its Date header), the plan is the one getUsers gives."""
    ws, server, big = windowed
    server.emulator.faults.clock_offset_seconds = 2 * 86_400.0
    updated = update_during_the_read(server, big)

    result = cli("plan", ws.manifests, "--format", "json", "--show-members")

    assert result.exit_code == 0, result.output
    assert updated.is_set()
    windowed_plan = result.json()
    said = windowed_plan["destinations"][0].pop("member_read")
    assert "read with the user export in " in said and "planned by" not in said
    final_plan = plan_by_get_users(cli, ws, monkeypatch)
    assert windowed_plan["destinations"][0]["lists"] == final_plan["destinations"][0]["lists"]
    assert windowed_plan == final_plan


@pytest.mark.parametrize("offset", [-3600.0, 0.0, 7200.0])
def test_the_client_reads_iterables_clock_from_its_date_header(make_emulator_server, offset):
    """Where Iterable's clock is, from the Date header of its answers (second resolution):
    no later than it can be for planning windows' starts, no earlier for the open end."""
    server = make_emulator_server(faults=Faults(clock_offset_seconds=offset))
    with IterableClient(server.base_url, "test-key") as client:
        assert client.clock_behind == 0.0  # nothing answered yet: the machine's clock
        client.get_lists()
        before = datetime.now(UTC)
        earliest, latest = client.iterable_now(), client.iterable_latest()
        after = datetime.now(UTC)
    iterable = timedelta(seconds=offset)
    # The bounds' own error is a second and the answer's way; the slack is far above that
    # (a loaded machine) and far below the offsets told apart.
    assert earliest <= after + min(iterable, timedelta(0))
    assert earliest >= before + min(iterable, timedelta(0)) - SLACK
    assert latest >= before + max(iterable, timedelta(0)) - SLACK
    assert latest <= after + max(iterable, timedelta(0))
    assert client.clock_behind == pytest.approx(max(0.0, -offset), abs=SLACK.total_seconds())


def plan_by_get_users(cli, ws, monkeypatch) -> dict:
    """The JSON plan a getUsers read of the state now gives, without its member_read line
    (the one part that differs by route): what a windowed plan must equal."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    result = cli("plan", ws.manifests, "--format", "json", "--show-members")
    assert result.exit_code == 0, result.output
    plan = result.json()
    plan["destinations"][0].pop("member_read")
    return plan


def test_a_one_second_window_that_keeps_dying_stops_the_read_named(
    make_emulator_server, tmp_path: Path
) -> None:
    """read_export_windows itself: 20 profiles stamped in one second, where a stream
    carries 15 (0.015 s at 1,000 rows a second), die in every window that holds them, down
    to that second; that window is read UNSPLITTABLE_RETRIES times more, then the read
    stops, naming it, its files gone."""
    from dataclasses import replace

    from reconciler.errors import LiveStateError
    from reconciler.state.windows import UNSPLITTABLE_RETRIES, read_export_windows
    from tests.apply.support import FAST
    from tests.conftest import EMULATOR_API_KEY

    faults = Faults(export_members_per_second=1000.0, export_stream_seconds=0.015)
    server = make_emulator_server(project_type="email", faults=faults)
    project = server.emulator.project("default")
    stamped = int(time.time() * 1000) - 3 * DAY_MS
    for i in range(20):
        project.add_user(email=f"p{i}@example.com").profile_updated_at = stamped
    settings = replace(FAST, export_window_days=4, exports_per_minute=100000)
    notes: list[str] = []
    target = tmp_path / "export.jsonl"
    with (
        IterableClient(server.base_url, EMULATOR_API_KEY, settings=settings) as client,
        pytest.raises(LiveStateError) as raised,
    ):
        read_export_windows(client, ["email"], target, "email", 20, on_note=notes.append)
    second = datetime.fromtimestamp(stamped // 1000, UTC)
    window = f"{second:%Y-%m-%d %H:%M:%S} to {second + timedelta(seconds=1):%Y-%m-%d %H:%M:%S}"
    assert str(raised.value) == (
        f"the user export's window {window} (one second) died {UNSPLITTABLE_RETRIES + 1} "
        "times; it cannot be cut smaller"
    )
    assert any("reading it again as two windows" in note for note in notes)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_whole_export_cut_off_once_is_not_tried_whole_again_in_the_same_plan(
    windowed, cli, monkeypatch, engine
):
    """The members' user export, cut off on every try, gave way to getUsers; then the
    mapped fields' read tried the whole export again, every retry cut off again (against
    Iterable each try streams for half an hour before the cut), before going to windows.
    A project too big for one stream is so for the whole plan: later reads go to windows."""
    ws, server, _big = windowed
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "export")
    kept = gold_tier_members(ws)
    server.emulator.clear_log()
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    assert plan.json()["summary"]["users_to_update"] == len(kept)
    whole = [
        r
        for r in server.emulator.request_log
        if r.path == EXPORT and "range=All" in r.query and "dataTypeName=user" in r.query
    ]
    members_read = [r for r in whole if "userListIds" in r.query]
    assert members_read  # tried, cut off every time, then getUsers
    assert whole == members_read  # the fields' read went to windows at once
    windows = [r for r in window_requests(server) if "onlyFields=tier" in r.query]
    assert windows
    # Counted and said as made: no whole export of its own ("requests": one more than
    # the windows, "one whole export being cut off").
    (dest,) = plan.json()["destinations"]
    assert dest["field_updates"]["read"]["requests"] == len(windows)
    text = cli("plan", ws.manifests)
    assert text.exit_code == 0, text.output
    assert (
        f"(current values read with the user export in date windows ({len(windows)} requests, "
        "a whole user export of the project being cut off earlier in this run) for 37 users)"
    ) in text.stdout, text.stdout


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_the_fields_and_consent_reads_of_a_cut_off_project_share_one_windowed_read(
    windowed, cli, monkeypatch, engine
):
    """The members' export cut off every time gave way to getUsers; then the mapped
    fields' values and the consent guard's channel unsubscribes each read the whole
    project in date windows of their own: the same windows, the same profiles, twice
    (against Iterable, each window a start of 4 a minute). One windowed read, asking the
    fields of both, now serves them both, and the plan counts it once."""
    ws, server, _big = windowed
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "export")
    monkeypatch.setattr("reconciler.state.consent.MAX_LOOKUPS", 0)  # profiles by export
    kept = gold_tier_members(ws)
    opted_out_of_the_channel(server)
    ws.csv("big.csv", "email,userId,tier", [f"{e},,gold" for e in [*kept, "c@example.com"]])
    server.emulator.clear_log()
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    body = plan.json()
    assert body["summary"]["members_channel_unsubscribed"] == 1  # c is held back
    assert body["summary"]["users_to_update"] == len(kept)
    windows = [r for r in window_requests(server) if "userListIds" not in r.query]
    # One windowed read of the project, asking both reads' fields.
    assert windows and all(
        "onlyFields=tier" in r.query and "unsubscribedChannelIds" in r.query for r in windows
    )
    starts = Counter(r.query for r in windows)
    assert max(starts.values()) == 1, starts
    # Each read says the export it took; the plan says it was one, not one each. The
    # members' export was cut off: the windows came at once, no whole export of their own.
    (dest,) = body["destinations"]
    assert dest["field_updates"]["read"]["requests"] == len(windows)
    said = (
        f"in {len(windows)} date windows, a whole user export of the project being cut off "
        "earlier in this run"
    )
    assert any(said in line for line in dest["other_reads"]), dest["other_reads"]
    assert (
        "profiles' unsubscribedChannelIds and mapped fields' values read from one user export "
        f"of the project (in {len(windows)} date windows), not one each"
    ) in dest["other_reads"]


def test_windows_in_flight_beyond_the_writers_and_getusers_streams_each_get_a_connection(
    make_emulator_server, tmp_path
):
    """The client's connections were as many as its writers or getUsers streams (the more
    of the two, plus 2), whatever RECONCILER_EXPORT_WINDOWS_IN_FLIGHT said: with more
    windows in flight than that, the extra windows waited for a connection while the
    others streamed (minutes each against Iterable), ran out of RECONCILER_TIMEOUT, were
    retried, and failed the windowed read ('no connection came free within'). Each window
    in flight now has a connection."""
    # Each window streams 10 rows at 5 a second (2 s), longer than a request may wait.
    faults = Faults(export_members_per_second=5.0)
    server = make_emulator_server(project_type="email", faults=faults)
    project = server.emulator.project("default")
    now = int(time.time() * 1000)
    for i in range(80):
        user = project.add_user(email=f"p{i}@example.com")
        user.profile_updated_at = now - (i % 40) * 10 * DAY_MS
    settings = ClientSettings(
        timeout=1.0,
        concurrency=1,
        list_read_concurrency=1,  # 3 connections before, for 6 windows in flight
        export_windows_in_flight=6,
        bulk_read_retries=0,
        export_rate=40,
        export_stream_limit=0.5,  # windows of 10 rows
        bulk_read_first_byte=0,
        exports_per_minute=100_000,
        export_window_days=400,
    )
    with IterableClient(server.base_url, "test-key", settings=settings) as client:
        read = read_export_windows(client, ["email"], tmp_path / "users.jsonl", "email", 80)
    assert read.rows == 80
    assert read.windows >= 6  # several in flight at once


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_the_members_windows_chosen_after_the_sources_carry_the_fields_and_consent_reads(
    windowed, cli, monkeypatch, engine
):
    """A query's rows are counted only once it is read (the engine forced): the members'
    route, date windows, was chosen then, not started early. Those windows asked only
    for list memberships and their file was thrown away; the mapped fields' values and
    the consent guard's channel unsubscribes then read the whole project in the same
    windows again (against Iterable, each window a slow export, from 4 a minute). The
    members' windows now ask every field the later reads take, and they take its file."""
    ws, server, _big = windowed
    kept = _big_by_query(ws, server, monkeypatch, engine, also=("c@example.com",))
    server.emulator.clear_log()
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    body = plan.json()
    (dest,) = body["destinations"]
    assert dest["member_read"].startswith("members of 1 list read with the user export in ")
    assert "started before the sources were read" not in dest["member_read"]
    assert body["summary"]["members_channel_unsubscribed"] == 1  # c is held back
    assert body["summary"]["users_to_update"] == len(kept)
    windows = window_requests(server)
    # One windowed pass, the members', asking the later reads' fields: no second one.
    assert windows and all(
        "userListIds" in r.query and "onlyFields=tier" in r.query and CHANNELS in r.query
        for r in windows
    ), [r.query for r in windows]
    # Nor a whole export of the project tried first (against Iterable: 30 min to the cut).
    log = server.emulator.request_log
    whole = [r.query for r in log if r.path == EXPORT and "range=All" in r.query]
    assert not [q for q in whole if "dataTypeName=user" in q], whole
    assert f"({len(windows)} GET {EXPORT})" in dest["member_read"]  # every window its
    # The fields' read counts nothing of its own: the members' read made it.
    assert dest["field_updates"]["read"]["requests"] == 0


def test_the_members_windows_serve_another_destination_of_the_project(windowed, cli, monkeypatch):
    """A second destination of the project, its small list read by getUsers, read the
    whole project again in the same date windows for its consent guard, after the first
    destination's members' windows had read every profile. It now takes their file."""
    ws, server, _big = windowed
    _big_by_query(ws, server, monkeypatch, "python")
    ws.destination("stage")
    server.emulator.project("default").add_list("few")
    ws.audience("few", {"inline": ["c@example.com", "new@example.com"]}, destination="stage")
    server.emulator.clear_log()
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    body = plan.json()
    assert body["summary"]["members_channel_unsubscribed"] == 1  # c is held back
    assert body["summary"]["members_to_add"] == 1  # new
    # The date windows read are the first destination's members': 6, not 26.
    windows = window_requests(server)
    assert windows and all("userListIds" in r.query for r in windows), [r.query for r in windows]
    (prod,) = [d for d in body["destinations"] if d["name"] == "prod"]
    assert f"({len(windows)} GET {EXPORT})" in prod["member_read"]
    stage = next(d for d in body["destinations"] if d["name"] == "stage")
    assert (
        f"profiles' {CHANNELS} taken from the user export of destination 'prod', which names "
        "the same Iterable project"
    ) in stage["other_reads"], stage["other_reads"]


def test_a_whole_export_cut_off_for_one_destination_is_not_tried_by_another_of_the_project(
    windowed, tmp_path
):
    """A whole-project export cut off on every try made its client go to windows at once
    for the rest of the run; the client of a second destination naming the same Iterable
    project did not know, and tried the whole export again, every try cut off (against
    Iterable, half an hour each). The clients of one project now know it together."""
    ws, server, _big = windowed
    ws.destination("stage")
    manifests = load_manifests(ws.manifests)
    with ExitStack() as stack:
        clients = open_clients(manifests, stack, tmp_path / "state")
        keep = lambda _row: True  # noqa: E731
        first, _, _ = export_users_whole(clients["prod"], ["email"], keep, "hybrid")
        tried = len(whole_user_exports(server))
        assert tried >= 1  # cut off every time, then windows
        second, windows, whole = export_users_whole(clients["stage"], ["email"], keep, "hybrid")
    assert len(whole_user_exports(server)) == tried  # windows at once
    assert windows > 0 and not whole
    assert sorted(r["email"] for r in second) == sorted(r["email"] for r in first)


def whole_user_exports(server) -> list:
    """The whole-project user exports asked (range=All)."""
    return [
        r
        for r in server.emulator.request_log
        if r.path == EXPORT and "range=All" in r.query and "dataTypeName=user" in r.query
    ]


def small_destination(ws, server, name: str, list_name: str, members: object) -> None:
    """Destination `name`, of the project the fixture's `prod` names, with one audience of
    a few members on list `list_name` (made in Iterable): a read the route model gives
    one user export, the project's size unknown to it."""
    ws.destination(name)
    server.emulator.project("default").add_list(list_name)
    ws.audience(list_name, members, destination=name)


def test_a_list_read_chosen_as_one_export_after_the_project_was_cut_off_reads_by_getusers(
    windowed, cli, monkeypatch
):
    """Destination 'alpha' read its list with one user export, cut off on every try, then
    by getUsers. Destination 'beta' of the same project, its route chosen once its query
    was read (the engine forced: not counted before), chose one user export too and tried
    it whole again: 4 more tries, each cut off (against Iterable, up to half an hour
    each), then getUsers all the same. It now reads by getUsers at once, and says why."""
    ws, server, _big = windowed
    monkeypatch.setenv("RECONCILER_ENGINE", "python")
    opted_out_of_the_channel(server)
    small_destination(ws, server, "alpha", "few", {"inline": ["c@example.com", "n@example.com"]})
    ws.csv("more.csv", "email", ["p3@example.com", "n2@example.com"])
    query = {"sql": "SELECT email FROM read_csv('more.csv')", "database": ":memory:"}
    small_destination(ws, server, "beta", "more", query)
    server.emulator.clear_log()
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    body = plan.json()
    assert body["summary"]["members_to_add"] == 3  # n, p3 and n2; c is held back
    assert body["summary"]["members_channel_unsubscribed"] == 1
    reads = {d["name"]: d["member_read"] for d in body["destinations"]}
    assert "the user export could not be read" in reads["alpha"]
    assert len(whole_user_exports(server)) == 4  # alpha's tries alone
    assert reads["beta"].startswith("members of 1 list read with 1 getUsers call in ")
    assert EXPORT not in reads["beta"]
    assert reads["beta"].endswith(
        "read with getUsers at once, a whole user export of the project being cut off "
        "earlier in this run; 1 empty read checked against the list's size"
    )


def test_a_members_export_started_early_and_cut_off_marks_the_project_at_once(windowed, tmp_path):
    """The user export a destination's member read started before the sources were read,
    cut off on every try, marked the project only once the plan came to that destination's
    read: a destination planned before it (its route chosen once its query was read, or
    its consent and fields' reads) tried the whole export again meanwhile, 4 more tries
    each cut off. The early read marks it as it fails."""
    ws, server, _big = windowed
    small_destination(ws, server, "stage", "few", {"inline": ["n@example.com"]})
    manifests = load_manifests(ws.manifests)
    stage = manifests.destinations["stage"]
    with ExitStack() as stack:
        clients = open_clients(manifests, stack, tmp_path / "state")
        prefetch = start_prefetch(
            Engine.from_env(), clients["stage"], stage, [], {"few"}, sizes={"few": 1}
        )
        try:
            export = prefetch.take_export()
            assert export is not None and export.route.name == "export"
            export.done.wait()
            assert export.error is not None  # cut off on every try
        finally:
            prefetch.abandon()
        tried = len(whole_user_exports(server))
        assert tried == 4
        keep = lambda _row: True  # noqa: E731
        _users, windows, _ = export_users_whole(clients["prod"], ["email"], keep, "hybrid")
    assert len(whole_user_exports(server)) == tried  # windows at once
    assert windows > 0


def test_the_members_windows_started_early_serve_another_destination_of_the_project(
    windowed, cli, monkeypatch
):
    """As the windows chosen once the sources were read serve a second destination of the
    project, so do those started before: destination 'stage' read the whole project
    again in date windows of its own for its consent guard (20 window requests), after
    the early windows of 'prod' had read every profile with its channel unsubscribes."""
    ws, server, _big = windowed
    monkeypatch.setenv("RECONCILER_ENGINE", "python")
    monkeypatch.setattr("reconciler.state.consent.MAX_LOOKUPS", 0)  # profiles by export
    kept = gold_tier_members(ws)  # a file: counted, and its windows started early
    opted_out_of_the_channel(server)
    small_destination(ws, server, "stage", "few", {"inline": ["c@example.com", "n@example.com"]})
    server.emulator.clear_log()
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    body = plan.json()
    assert body["summary"]["members_channel_unsubscribed"] == 1  # c is held back
    assert body["summary"]["members_to_add"] == 1  # n
    assert body["summary"]["users_to_update"] == len(kept)
    prod, stage = (
        next(d for d in body["destinations"] if d["name"] == n) for n in ("prod", "stage")
    )
    assert "started before the sources were read" in prod["member_read"]
    # The date windows read are prod's members': none of stage's own.
    windows = window_requests(server)
    assert windows and all("userListIds" in r.query for r in windows), [r.query for r in windows]
    assert f"({len(windows)} GET {EXPORT})" in prod["member_read"]
    assert (
        f"profiles' {CHANNELS} taken from the user export of destination 'prod', which names "
        "the same Iterable project"
    ) in stage["other_reads"], stage["other_reads"]


def test_reads_that_took_another_destinations_windows_say_whose_and_count_none(
    windowed, cli, monkeypatch
):
    """Destination 'stage' took the file of the date windows that read the members of
    'prod' (chosen for the project's size, no whole export asked) for its mapped fields'
    values and consent guard. Its plan said "the user export in date windows (6 requests,
    one whole export being cut off)" and counted 7 requests: a whole export never made,
    and windows 'prod' made and counts. It now says whose export it took and its cost,
    counted there."""
    ws, server, _big = windowed
    _big_by_query(ws, server, monkeypatch, "python")
    ws.destination("stage")
    project = server.emulator.project("default")
    few = project.add_list("few")
    project.subscribe_direct(few, email="p3@example.com")
    ws.csv("few.csv", "email,tier", ["p3@example.com,gold", "c@example.com,gold"])
    ws.audience("few", {"csv": "few.csv", "email": "email"}, destination="stage", traits="crm")
    server.emulator.clear_log()
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    body = plan.json()
    assert body["summary"]["members_channel_unsubscribed"] == 1  # c is held back
    windows = window_requests(server)
    assert windows and all("userListIds" in r.query for r in windows)  # prod's alone
    prod, stage = (
        next(d for d in body["destinations"] if d["name"] == n) for n in ("prod", "stage")
    )
    assert f"({len(windows)} GET {EXPORT})" in prod["member_read"]  # counted there
    assert stage["field_updates"]["read"]["requests"] == 0
    said = (
        "the user export that read the members of destination 'prod', which names the same "
        f"Iterable project (in date windows: {len(windows)} requests, counted there)"
    )
    consent = next(line for line in stage["other_reads"] if line.startswith("consent read"))
    assert (
        f"1 export (emailUnSubscribe events) and profiles' {CHANNELS} from {said}"
    ) in consent, consent
    text = cli("plan", ws.manifests)
    assert text.exit_code == 0, text.output
    assert f"(current values read with {said} for 1 user)" in text.stdout, text.stdout
    # The run record counts every request sent once, the windows 'prod' made included.
    server.emulator.clear_log()
    applied = cli("apply", ws.manifests, "--yes", "--summary-json", "record.json")
    assert applied.exit_code == 0, applied.output
    record = json.loads(Path("record.json").read_text())
    assert record["requests"] == len(server.emulator.request_log)
