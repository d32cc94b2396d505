"""A hybrid list's removals with channelUnsubscribe resolved by one user export
(apply/channel_profiles.py) where that is modelled faster than a per-user read or two for
each: when the export fails, and when the run is interrupted while it streams. The
emulator over HTTP; the route chosen by the model's settings, not by a mock."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from reconciler.apply.channel_profiles import ChannelProfiles, PlanProfiles, read_channel_profiles
from reconciler.emulator import Faults
from reconciler.emulator.replies import EmulatorResponse
from reconciler.iterable import ClientSettings, IterableClient
from reconciler.plan import ListPlan
from tests.conftest import EMULATOR_API_KEY
from tests.integration.test_iterable_answers import (
    accepted,
    field_workspace,  # noqa: F401 - a fixture
    profile_reads,
    profile_route,
    the_list,
    user_exports,
)

EXPORT = "/api/export/data.json"
DAY_MS = 86_400_000


def test_a_failed_export_leaves_the_channel_removals_to_per_user_reads(
    field_workspace,  # noqa: F811
    cli,
    monkeypatch,
):
    """The export refused (a 400 no retry or date window gets past): the removals are
    resolved one by one as before, and the apply says why on stderr."""
    profile_route(monkeypatch, "export")
    monkeypatch.setenv("RECONCILER_USER_READS_PER_SECOND", "5")  # 10 reads: 2 s modelled
    ws, server, proj = field_workspace("hybrid")
    server.emulator.faults.counts_only_answers = False
    list_id = proj.add_list("vip")
    proj.subscribe_direct(list_id, email="keep@example.com", user_id="keep")
    for i in range(5):
        proj.subscribe_direct(list_id, email=f"m{i}@example.com", user_id=f"u{i}")
    ws.csv("data/vip.csv", "email", ["keep@example.com"])
    ws.audience(
        "vip",
        {"csv": "data/vip.csv"},
        policy={"maxRemovalPercent": 100},
        unsubscribe={"channelUnsubscribe": True},
    )
    emulator = server.emulator
    original = emulator.handle

    def refused(request: httpx.Request) -> EmulatorResponse:
        if request.url.path == EXPORT:
            return EmulatorResponse(400, body=b'{"code":"BadParams","msg":"refused"}')
        return original(request)

    emulator.handle = refused  # type: ignore[method-assign]
    server.emulator.clear_log()
    result = cli("apply", ws.manifests, "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    assert the_list(result.json())["removed"] == 5
    assert proj.members(list_id, False) == ["keep@example.com"]
    assert "the user export failed (HTTP 400); reading each profile instead" in result.stderr
    assert len(profile_reads(server)) == 5
    assert sorted(s["email"] for s in accepted(server, "/api/lists/unsubscribe")) == [
        f"m{i}@example.com" for i in range(5)
    ]


def test_an_interrupted_run_does_not_wait_for_the_export(make_emulator_server):
    """Ctrl-C sets the run's stop flag, which no read looks at: an export of a large
    project, streaming for many minutes, held the interrupted apply until it ended. The
    wait gives it up once the flag is set (the removals after it are not sent anyway)."""
    server = make_emulator_server("hybrid")
    emulator = server.emulator
    original = emulator.handle
    release, answered = threading.Event(), threading.Event()

    def slow(request: httpx.Request) -> EmulatorResponse:
        if request.url.path == EXPORT:
            release.wait(30)
            answered.set()
        return original(request)

    emulator.handle = slow  # type: ignore[method-assign]
    lp = ListPlan(
        audience="vip",
        list_name="vip",
        list_id=1,
        create=False,
        description=None,
        add=(),
        remove=tuple(f"m{i}@example.com" for i in range(300)),
        unchanged=1,
        live_count=301,
        desired_count=1,
        channel_unsubscribe=True,
    )
    stop = threading.Event()
    stop.set()
    settings = ClientSettings(user_reads_per_second=1, bulk_read_first_byte=0)
    try:
        with IterableClient(server.base_url, EMULATOR_API_KEY, settings=settings) as client:
            assert read_channel_profiles(client, [lp], stop) is None
            assert not answered.is_set()
    finally:
        release.set()


def test_many_removals_from_a_huge_list_are_read_one_by_one_when_that_is_faster(
    make_emulator_server,
):
    """60,000 removals from a list of 5M: at most 120,000 reads, 20 minutes, against an
    export of at least 5M profiles, 42 minutes and more. The consent read's cap on
    per-user reads (100,000, for the adds it holds) chose the export all the same."""
    server = make_emulator_server("hybrid")
    lp = ListPlan(
        audience="vip",
        list_name="vip",
        list_id=1,
        create=False,
        description=None,
        add=(),
        remove=tuple(f"m{i}@example.com" for i in range(60_000)),
        unchanged=4_940_000,
        live_count=5_000_000,
        desired_count=4_940_000,
        channel_unsubscribe=True,
    )
    with IterableClient(server.base_url, EMULATOR_API_KEY) as client:
        assert read_channel_profiles(client, [lp], threading.Event()) is None
    assert [r for r in server.emulator.request_log if r.path == EXPORT] == []


def test_a_project_too_big_for_one_export_stream_is_read_in_date_windows(
    make_emulator_server, tmp_path, monkeypatch
):
    """Iterable closes long export connections: the profiles come from the export in
    date windows then, as the members' read does, and answer as the per-user reads
    would: Ann's email is Bob's userId, and each text finds the profile that has it."""
    monkeypatch.setenv("RECONCILER_DUCKDB_TEMP_DIR", str(tmp_path))
    faults = Faults(export_members_per_second=200.0, export_stream_seconds=0.075)
    server = make_emulator_server("hybrid", faults=faults)
    project = server.emulator.project("default")
    vip = project.add_list("vip")
    now = int(time.time() * 1000)
    for i in range(40):
        user = project.subscribe_direct(vip, email=f"p{i}@example.com", user_id=f"u{i}")
        user.profile_updated_at = now - (i * 10 + 1) * DAY_MS
    project.subscribe_direct(vip, email="x@example.com", user_id="ann")
    project.add_user(user_id="x@example.com", email="bob@example.com")  # not on the list
    lp = ListPlan(
        audience="vip",
        list_name="vip",
        list_id=vip,
        create=False,
        description=None,
        add=(),
        remove=("p3@example.com", "p37@example.com", "x@example.com", "nobody@example.com"),
        unchanged=37,
        live_count=41,
        desired_count=37,
        channel_unsubscribe=True,
    )
    settings = ClientSettings(
        user_reads_per_second=1,
        bulk_read_first_byte=0,
        export_rate=200,
        export_stream_limit=0.15,
        export_window_days=400,
        exports_per_minute=100_000,
        backoff_base=0.001,
        backoff_cap=0.01,
    )
    with IterableClient(server.base_url, EMULATOR_API_KEY, settings=settings) as client:
        read = read_channel_profiles(client, [lp], threading.Event())
    assert read is not None
    windows = [
        r for r in server.emulator.request_log if r.path == EXPORT and "startDateTime" in r.query
    ]
    assert windows
    assert read.profile("email", "p37@example.com") == {
        "email": "p37@example.com",
        "userId": "u37",
        "userListIds": [vip],
    }
    assert read.profile("userId", "p37@example.com") is None
    assert read.profile("email", "x@example.com") == {
        "email": "x@example.com",
        "userId": "ann",
        "userListIds": [vip],
    }
    assert read.profile("userId", "x@example.com") == {
        "email": "bob@example.com",
        "userId": "x@example.com",
        "userListIds": [],
    }
    assert read.profile("email", "nobody@example.com") is None
    assert not read.answers("p5@example.com")


def test_a_member_leaving_several_channel_lists_is_read_once(field_workspace, cli):  # noqa: F811
    """Five members leave three lists of one destination, each with channelUnsubscribe,
    resolved by per-user reads (what the model chooses for a few): each member's profile
    was read again for every list it left (15 GET users/{email}), though one answer
    serves them all, as one export's does. Each is read once now, and each removal is
    still sent as the kind of the profile the list read named by it."""
    ws, server, proj = field_workspace("hybrid")
    server.emulator.faults.counts_only_answers = False
    lists = [proj.add_list(name) for name in ("a", "b", "c")]
    leaving = []
    for list_id in lists:
        proj.subscribe_direct(list_id, email="keep@example.com", user_id="keep")
    for i in range(5):
        for list_id in lists:
            user = proj.subscribe_direct(list_id, email=f"m{i}@example.com", user_id=f"u{i}")
        leaving.append(user)
    stranger = proj.add_user(user_id="m3@example.com")  # a userId that is m3's email
    ws.csv("data/keep.csv", "email", ["keep@example.com"])
    for name in ("a", "b", "c"):
        ws.audience(
            name,
            {"csv": "data/keep.csv"},
            policy={"maxRemovalPercent": 100},
            unsubscribe={"channelUnsubscribe": True},
        )
    server.emulator.clear_log()
    result = cli("apply", ws.manifests, "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    for list_id in lists:
        assert proj.members(list_id, False) == ["keep@example.com"]
    assert len(profile_reads(server)) == 5
    assert [r for r in server.emulator.request_log if r.path == EXPORT] == []
    sent = accepted(server, "/api/lists/unsubscribe")
    assert sorted(s["email"] for s in sent) == sorted(3 * [f"m{i}@example.com" for i in range(5)])
    assert all(p.unsubscribed_channel_ids for p in leaving)
    assert set(stranger.unsubscribed_channel_ids) == set()


def _churn(list_id: int, removals: int, live: int) -> ListPlan:
    return ListPlan(
        audience="vip",
        list_name="vip",
        list_id=list_id,
        create=False,
        description=None,
        add=(),
        remove=tuple(f"m{i}@example.com" for i in range(removals)),
        unchanged=live - removals,
        live_count=live,
        desired_count=live - removals,
        channel_unsubscribe=True,
    )


def test_a_few_removals_from_a_small_list_of_a_project_of_unknown_size_are_read_one_by_one(
    make_emulator_server,
):
    """300 removals from a list of 1,000: at most 600 reads, 6 s, against an export
    modelled at 2.5 s from the list's size alone; but the export streams every profile
    of the project, 5M of them (42 minutes) for all this run knows. With the project's
    size unknown the export must win by the margin the member read asks of one."""
    server = make_emulator_server("hybrid")
    with IterableClient(server.base_url, EMULATOR_API_KEY) as client:
        assert read_channel_profiles(client, [_churn(1, 300, 1000)], threading.Event()) is None
    assert [r for r in server.emulator.request_log if r.path == EXPORT] == []


def test_the_export_is_modelled_by_the_profiles_this_runs_export_counted(make_emulator_server):
    """Once a whole export of the project has ended in this run (the plan's member
    read), its count of profiles is the export's size, not the largest list's: 50
    removals from a list of 100 in a project of 2,100 (100 s of reads at 1 a second
    here) were sent to a second export of 2,100 profiles (210 s at 10 a second); and 10
    removals (20 s of reads) from a project the size of the list are exported (10 s),
    the margin for a project of unknown size no longer needed."""
    server = make_emulator_server("hybrid")
    project = server.emulator.project("default")
    vip = project.add_list("vip")
    for i in range(100):
        project.subscribe_direct(vip, email=f"m{i}@example.com", user_id=f"u{i}")
    settings = ClientSettings(user_reads_per_second=1, bulk_read_first_byte=0, export_rate=10)
    with IterableClient(server.base_url, EMULATOR_API_KEY, settings=settings) as client:
        list(client.export_users(["email"]))  # the plan's: 100 profiles
        assert read_channel_profiles(client, [_churn(vip, 10, 100)], threading.Event())
        for i in range(2000):
            project.add_user(email=f"other{i}@example.com")
        list(client.export_users(["email"], marked=(b"@",)))
        server.emulator.clear_log()
        assert read_channel_profiles(client, [_churn(vip, 50, 100)], threading.Event()) is None
        assert [r for r in server.emulator.request_log if r.path == EXPORT] == []
        assert client.project_profiles == 2100


def _leaving_list(field_workspace):  # noqa: F811
    """A hybrid list of 301 whose audience keeps one, with channelUnsubscribe, read by a
    user export (email, userId, userListIds) and per-user reads made slow in the model:
    the removals' profiles come from an export."""
    ws, server, proj = field_workspace("hybrid")
    server.emulator.faults.counts_only_answers = False
    list_id = proj.add_list("vip")
    proj.subscribe_direct(list_id, email="keep@example.com", user_id="keep")
    for i in range(300):
        proj.subscribe_direct(list_id, email=f"m{i:03d}@example.com", user_id=f"u{i}")
    stranger = proj.add_user(user_id="m007@example.com")  # a userId that is m007's email
    ws.csv("data/vip.csv", "email", ["keep@example.com"])
    ws.audience(
        "vip",
        {"csv": "data/vip.csv"},
        policy={"maxRemovalPercent": 100},
        unsubscribe={"channelUnsubscribe": True},
    )
    server.emulator.clear_log()
    return ws, server, proj, list_id, stranger


def test_an_apply_takes_its_channel_removals_profiles_from_its_plans_export(
    field_workspace,  # noqa: F811
    cli,
    monkeypatch,
):
    """`apply` read the lists by one user export and then, for its channel removals,
    exported every profile of the project again moments later: two exports of the whole
    project (one of Iterable's 4 a minute each; hours for a large one). Made in the same
    process well within a minute of it (the lag any export may have), the plan's export
    answers: one export, no reads, the same unsubscribes, nobody else's channel."""
    monkeypatch.setenv("RECONCILER_USER_READS_PER_SECOND", "1")
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "export")
    ws, server, proj, list_id, stranger = _leaving_list(field_workspace)
    result = cli("apply", ws.manifests, "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    assert len(user_exports(server)) == 1
    assert profile_reads(server) == []
    assert proj.members(list_id, False) == ["keep@example.com"]
    sent = accepted(server, "/api/lists/unsubscribe")
    assert sorted(s["email"] for s in sent) == [f"m{i:03d}@example.com" for i in range(300)]
    assert set(stranger.unsubscribed_channel_ids) == set()
    assert "from the plan's user export, started" in result.stderr
    assert "m007@example.com" not in result.stderr


@pytest.mark.skipif(not hasattr(time, "CLOCK_BOOTTIME"), reason="Linux's clock of sleep")
def test_a_plans_export_is_not_fresh_after_the_machine_slept_an_hour(
    field_workspace,  # noqa: F811
    cli,
    monkeypatch,
):
    """time.monotonic stops while the machine sleeps: a laptop closed for an hour between
    the plan's export and its apply (at the confirmation, say) took that export for a
    moment old and resolved the channel removals by it. The time asleep counts now: the
    removals' profiles are exported afresh."""
    monkeypatch.setenv("RECONCILER_USER_READS_PER_SECOND", "1")
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "export")
    ws, server, proj, list_id, stranger = _leaving_list(field_workspace)
    asleep = {"seconds": 0.0}
    awake = time.clock_gettime

    def clock_gettime(clock: int) -> float:
        # CLOCK_MONOTONIC (time.monotonic) stops during a suspend; CLOCK_BOOTTIME does not.
        return awake(clock) + (asleep["seconds"] if clock == time.CLOCK_BOOTTIME else 0.0)

    monkeypatch.setattr(time, "clock_gettime", clock_gettime)
    from reconciler.apply import run

    planned = run.run_apply

    def after_a_sleep(*args: Any, **kwargs: Any) -> Any:
        asleep["seconds"] = 3600.0
        return planned(*args, **kwargs)

    monkeypatch.setattr(run, "run_apply", after_a_sleep)
    result = cli("apply", ws.manifests, "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    assert asleep["seconds"] == 3600.0
    assert "from the plan's user export" not in result.stderr
    assert len(user_exports(server)) == 2  # the plan's, then the removals' own
    assert proj.members(list_id, False) == ["keep@example.com"]
    assert set(stranger.unsubscribed_channel_ids) == set()


@pytest.mark.parametrize("member_reads", ["export", "getUsers"])
def test_unnamed_removals_are_answered_by_the_export_the_channel_removals_took(
    field_workspace,  # noqa: F811
    cli,
    monkeypatch,
    member_reads,
):
    """A hybrid destination with channel removals (vip) and removals without
    channelUnsubscribe that answers of counts leave unnamed (trial's 300 Carols): the
    export that answered the channel removals (the plan's, or the apply's own where the
    lists were read by getUsers) kept only their texts, so the unnamed ones exported the
    whole project again, a second or third export in one run. That export answers both
    now: one export, no per-user reads, the same removals."""
    monkeypatch.setenv("RECONCILER_USER_READS_PER_SECOND", "1")
    monkeypatch.setenv("RECONCILER_BULK_READ_FIRST_BYTE", "0")
    monkeypatch.setenv("RECONCILER_MEMBER_READS", member_reads)
    ws, server, proj, list_id, stranger = _leaving_list(field_workspace)
    server.emulator.faults.counts_only_answers = True
    trial = proj.add_list("trial")
    proj.subscribe_direct(trial, email="keep@example.com", user_id="keep")
    carols = [f"carol{i:03d}@example.com" for i in range(300)]
    for carol in carols:
        proj.subscribe_direct(trial, email=carol)  # no userId: named by email
    ws.csv("data/trial.csv", "userId", ["keep"])
    ws.audience("trial", {"csv": "data/trial.csv"}, policy={"maxRemovalPercent": 100})
    server.emulator.clear_log()

    result = cli("apply", ws.manifests, "--yes", "--format", "json")

    assert result.exit_code == 0, result.output
    assert len(user_exports(server)) == 1
    assert profile_reads(server) == []
    assert proj.members(list_id, False) == ["keep@example.com"]
    assert proj.members(trial, True) == ["keep"]
    sent = accepted(server, "/api/lists/unsubscribe")
    assert sorted(s["email"] for s in sent if s.get("email", "").startswith("carol")) == carols
    assert set(stranger.unsubscribed_channel_ids) == set()
    assert "@example.com" not in result.stderr


def test_a_saved_plans_export_is_never_taken_for_its_channel_removals(
    field_workspace,  # noqa: F811
    cli,
    monkeypatch,
    tmp_path,
):
    """`apply --plan`: the plan was made by another process, its export gone and maybe
    hours old; the stale check's export is not kept for the removals either (the saved
    plan's removals are what is sent). The removals' profiles are exported afresh."""
    monkeypatch.setenv("RECONCILER_USER_READS_PER_SECOND", "1")
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "export")
    ws, server, proj, list_id, stranger = _leaving_list(field_workspace)
    saved = tmp_path / "plan.json"
    assert cli("plan", ws.manifests, "--out", saved).exit_code == 0
    server.emulator.clear_log()
    result = cli("apply", "--plan", saved, "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    assert len(user_exports(server)) == 2  # the stale check's, then the removals'
    assert proj.members(list_id, False) == ["keep@example.com"]
    assert set(stranger.unsubscribed_channel_ids) == set()
    assert "from the plan's user export" not in result.stderr


def test_the_plans_export_answers_only_within_a_minute_of_its_start():
    """A minute is as old as a fresh export may be (Iterable's reads lag its writes by up
    to one); beyond it (a long confirmation, subscribes taking minutes) the removals'
    profiles are read again. The emulator's time scale divides the minute."""
    kept = PlanProfiles(ChannelProfiles(frozenset(), frozenset()), started=100.0)
    assert kept.fresh(1.0, now=160.0)
    assert not kept.fresh(1.0, now=160.5)
    assert kept.fresh(20.0, now=103.0)
    assert not kept.fresh(20.0, now=103.5)


@pytest.mark.parametrize("member_reads", ["getUsers", "export"])
@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_user_id_projects_channel_removals_read_their_profiles_by_one_export(
    field_workspace,  # noqa: F811
    cli,
    engine,
    member_reads,
    monkeypatch,
):
    """A userID-based project whose userIds are emails: each removal with
    channelUnsubscribe was one GET byUserId before it was sent, whatever their number (a
    churn of a million, hours), where a hybrid project's were one export. The export
    names each profile by its userId (unique here) with its userListIds, what that read
    is judged by: where it is modelled faster (profile_route), it answers them all, and
    one whose userId's profile is off the list is still read by email and not sent.
    Where the lists were read by a user export in the same run, that export answers."""
    profile_route(monkeypatch, "export")
    monkeypatch.setenv("RECONCILER_MEMBER_READS", member_reads)
    ws, server, proj = field_workspace("userId", engine)
    server.emulator.faults.counts_only_answers = False
    list_id = proj.add_list("vip")
    proj.add_user(user_id="keep", list_ids=[list_id])
    leaving = [
        proj.add_user(user_id=f"m{i:02d}@example.com", list_ids=[list_id]) for i in range(30)
    ]
    ws.csv("data/vip.csv", "userId", ["keep"])
    ws.audience(
        "vip",
        {"csv": "data/vip.csv"},
        policy={"maxRemovalPercent": 100},
        unsubscribe={"channelUnsubscribe": True},
    )
    server.emulator.clear_log()
    result = cli("apply", ws.manifests, "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    lr = the_list(result.json())
    assert (lr["removed"], lr["already_gone"], lr["rejected"]) == (30, 0, [])
    assert proj.members(list_id) == ["keep"]
    assert profile_reads(server) == []
    assert len(user_exports(server)) == 1
    sent = accepted(server, "/api/lists/unsubscribe")
    assert sorted(s["userId"] for s in sent) == [f"m{i:02d}@example.com" for i in range(30)]
    assert all(p.unsubscribed_channel_ids for p in leaving)
    how = "by 1 user export" if member_reads == "getUsers" else "from the plan's user export"
    assert (
        "30 removals with channelUnsubscribe whose userId is shaped like an email: reading "
        f"which profile each names {how}" in result.stderr
    )
    assert "m07@example.com" not in result.stderr
