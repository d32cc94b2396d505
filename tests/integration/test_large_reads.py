"""Reads of lists that fail the way large lists fail against Iterable (issue 18): a stream
that dies midway, a list that keeps answering 500, an answer slower than the request
timeout; and a saved plan checked with one read per destination.

Every test runs the real CLI against the emulator over loopback HTTP.
"""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from reconciler.emulator import Faults
from reconciler.emulator.replies import EmulatorResponse
from tests.integration.conftest import API_KEY_VAR, Workspace, profile_faults

GET_USERS = "/api/lists/getUsers"
EXPORT = "/api/export/data.json"
WRITES = ("POST", "DELETE", "PUT")


def emails(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}@example.com" for i in range(n)]


@pytest.fixture
def three_lists(tmp_path, monkeypatch, fast_client, make_emulator_server, emulator_profile):
    """Lists "big" (30 members), "mid" (20) and "small" (10), each a little different from
    its audience: one member to remove, one to add. `faults` are added to the profile's."""

    def make(project_type: str = "hybrid", **faults):
        chosen = profile_faults(emulator_profile) or Faults()
        for name, value in faults.items():
            setattr(chosen, name, value)
        server = make_emulator_server(project_type=project_type, faults=chosen)
        monkeypatch.setenv(API_KEY_VAR, "test-key")
        monkeypatch.chdir(tmp_path)
        ws = Workspace(tmp_path, server.base_url, project_type)
        ws.destination()
        proj = server.emulator.project("default")
        for name, size in (("big", 30), ("mid", 20), ("small", 10)):
            list_id = proj.add_list(name)
            people = emails(f"{name}-", size)
            for email in people:
                proj.subscribe_direct(list_id, email=email)
            ws.audience(
                name,
                {"inline": [*people[1:], f"{name}-new@example.com"]},
                policy={"maxRemovalPercent": 50},
            )
        return ws, server

    return make


def calls(server, method: str = "GET") -> Counter[str]:
    """Requests by path; user exports counted only when they read members (a plan that adds
    also exports unsubscribe events and profiles' unsubscribedChannelIds for consent)."""
    return Counter(
        r.path
        for r in server.emulator.request_log
        if r.method == method and (r.path != EXPORT or _member_export(r.query))
    )


def _member_export(query: str) -> bool:
    return "dataTypeName=user" in query and "ListIds" in query


def writes(server) -> list:
    return [r for r in server.emulator.request_log if r.method in WRITES]


def list_id(server, name: str) -> int:
    (found,) = [x.id for x in server.emulator.project("default").lists.values() if x.name == name]
    return found


def members(server, name: str) -> set[str]:
    proj = server.emulator.project("default")
    (list_id,) = [x.id for x in proj.lists.values() if x.name == name]
    return set(proj.members(list_id))


def test_a_stream_that_dies_midway_is_retried_and_the_plan_is_exact(three_lists, cli):
    ws, server = three_lists()
    clean = cli("plan", ws.manifests, "--format", "json", "--show-members")
    assert clean.exit_code == 0, clean.output
    # The next two getUsers answers die after half their members.
    server.emulator.faults.update({"streams_to_cut": 2})
    server.emulator.clear_log()

    cut = cli("plan", ws.manifests, "--format", "json", "--show-members")

    assert cut.exit_code == 0, cut.output
    assert server.emulator.faults.streams_to_cut == 0  # two bodies were cut off midway...
    assert calls(server)[GET_USERS] == 3 + 2  # ...and read again
    plans = [clean.json(), cut.json()]
    said = [p["destinations"][0].pop("member_read") for p in plans]
    assert plans[0] == plans[1]  # exact: the same changes as from whole answers
    assert f"({calls(server)[GET_USERS]} GET {GET_USERS})" in said[1]
    assert (plans[1]["summary"]["members_to_add"], plans[1]["summary"]["members_to_remove"]) == (
        3,
        3,
    )
    # Progress counts each list once: the lines of a cut answer are taken back.
    for name, size in (("big", 30), ("mid", 20), ("small", 10)):
        assert f"reading list '{name}': finished, {size:,} members" in cut.stderr


def test_a_list_that_keeps_failing_is_named_and_left_out_and_the_others_are_applied(
    three_lists, cli, monkeypatch
):
    monkeypatch.setenv("RECONCILER_BULK_READ_RETRIES", "2")
    ws, server = three_lists()
    big_id = list_id(server, "big")
    server.emulator.faults.update({"failing_list_ids": [big_id]})
    before = members(server, "big")

    result = cli("apply", ws.manifests, "--yes")

    assert result.exit_code == 1, result.output
    assert "list 'big'" in result.output
    assert "its members could not be read" in result.output
    assert "gave up after 3 attempts; last failure: HTTP 500" in result.output
    assert "left out of the plan" in result.output
    # The destination's line counted the list among those read, and said no more of it.
    (said,) = [x for x in result.stdout.splitlines() if x.startswith("Destination prod (")]
    assert said.startswith("Destination prod (hybrid project; members of 3 lists read with ")
    assert said.endswith("; 1 of them not read with confidence: its audience is left out)")
    assert members(server, "big") == before  # nothing added or removed from an unread list
    for name, size in (("mid", 20), ("small", 10)):
        expected = {*emails(f"{name}-", size)[1:], f"{name}-new@example.com"}
        assert members(server, name) == expected
    assert calls(server)[GET_USERS] == 3 + 2  # big's 3 attempts, one each for the others
    subscribed = {r.body["listId"] for r in writes(server) if r.path == "/api/lists/subscribe"}
    assert big_id not in subscribed


def test_a_read_failing_in_a_way_that_ends_the_plan_stops_the_other_reads(
    three_lists, cli, monkeypatch
):
    # An error no other list's read can get past (here a 400; a full disk, a revoked
    # key) ended the plan only once every other list had been read to its end: at 5
    # getUsers a minute, each streaming for minutes, all for nothing.
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    monkeypatch.setenv("RECONCILER_LIST_READ_CONCURRENCY", "1")
    # Each answer's first byte takes a moment: the read started as the first one failed
    # is still waiting for it when it is told to stop.
    ws, server = three_lists(get_users_first_byte_seconds=0.5)
    ids = {name: list_id(server, name) for name in ("big", "mid", "small")}
    server.emulator.faults.update({"failing_list_ids": [ids["big"]], "failing_list_status": 400})

    result = cli("plan", ws.manifests)

    assert result.exit_code == 1, result.output
    assert "GET /api/lists/getUsers: HTTP 400" in result.stderr
    read = [r.query for r in server.emulator.request_log if r.path == GET_USERS]
    # The largest is read first; the next had started when it failed; the last never.
    assert f"listId={ids['big']}&" in read[0]
    assert not any(f"listId={ids['small']}&" in query for query in read), read


def test_an_export_that_keeps_failing_is_replaced_by_getusers_and_the_plan_is_exact(
    three_lists, cli, monkeypatch
):
    ws, server = three_lists()
    # Removals only: a plan that adds also reads consent by export, and an export that
    # keeps failing then fails the plan (it cannot tell who opted out), as it should.
    for name, size in (("big", 30), ("mid", 20), ("small", 10)):
        ws.audience(
            name, {"inline": emails(f"{name}-", size)[1:]}, policy={"maxRemovalPercent": 50}
        )
    clean = cli("plan", ws.manifests, "--format", "json", "--show-members")
    assert clean.exit_code == 0, clean.output
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "export")
    monkeypatch.setenv("RECONCILER_BULK_READ_RETRIES", "1")
    server.emulator.faults.update({"fail_every": 1, "fail_status": 500, "paths": [EXPORT]})
    server.emulator.clear_log()

    result = cli("plan", ws.manifests, "--format", "json", "--show-members")

    assert result.exit_code == 0, result.output
    assert calls(server)[EXPORT] == 2 and calls(server)[GET_USERS] == 3
    assert "the user export could not be read" in result.stderr
    plans = [clean.json(), result.json()]
    said = [p["destinations"][0].pop("member_read") for p in plans]
    assert plans[0] == plans[1]
    assert "the user export could not be read (GET /api/export/data.json: gave up" in said[1]


def test_a_read_slower_than_the_request_timeout_waits_for_the_bulk_timeout_and_says_so(
    three_lists, cli, monkeypatch
):
    # Every getUsers answers after 1.5 s, past RECONCILER_TIMEOUT: a bulk read has its own.
    monkeypatch.setenv("RECONCILER_TIMEOUT", "0.5")
    monkeypatch.setenv("RECONCILER_PROGRESS_INTERVAL", "0.2")
    ws, server = three_lists(latency_seconds=1.5, paths=[GET_USERS])

    result = cli("plan", ws.manifests, "--format", "json")

    assert result.exit_code == 0, result.output
    assert calls(server)[GET_USERS] == 3  # no timeouts, no retries
    # While no member has arrived yet, the read still says how long it has waited.
    assert "reading list 'big': 0 members, " in result.stderr
    assert result.json()["summary"]["members_to_add"] == 3


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_saved_plan_is_checked_with_one_export_and_a_stale_one_still_refused(
    three_lists, cli, monkeypatch, tmp_path, engine
):
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    ws, server = three_lists()
    proj = server.emulator.project("default")
    # A member the audience knows by email alone, whose profile has since got a userId:
    # getUsers names it by the userId, and both reads must name it alike.
    ws.audience(
        "hybrid",
        {"inline": [{"email": "late@example.com"}, {"userId": "U-1", "email": "u1@example.com"}]},
        policy={"maxRemovalPercent": 50},
    )
    hybrid = proj.add_list("hybrid")
    proj.subscribe_direct(hybrid, email="late@example.com", user_id="U-LATE")
    proj.subscribe_direct(hybrid, email="u1@example.com", user_id="U-1")
    proj.subscribe_direct(hybrid, email="gone@example.com", user_id="U-GONE")
    planfile = tmp_path / "p.plan"
    made = cli("plan", ws.manifests, "--out", planfile)
    assert made.exit_code == 0, made.output
    assert calls(server)[GET_USERS] == 4 and calls(server)[EXPORT] == 0  # planned by getUsers

    server.emulator.clear_log()
    applied = cli("apply", "--plan", planfile, "--yes")
    assert applied.exit_code == 0, applied.output
    assert calls(server)[GET_USERS] == 0 and calls(server)[EXPORT] == 1  # one read, not four
    assert members(server, "hybrid") == {"late@example.com", "u1@example.com"}

    planfile.unlink()
    assert cli("plan", ws.manifests, "--out", planfile).exit_code == 0
    proj.subscribe_direct(hybrid, email="someone@example.com")
    server.emulator.clear_log()
    stale = cli("apply", "--plan", planfile, "--yes")
    assert stale.exit_code == 4, stale.output
    assert "stale plan: list 'hybrid' changed" in stale.stderr
    assert writes(server) == []
    assert calls(server)[GET_USERS] == 0 and calls(server)[EXPORT] == 1


def test_import_reads_by_one_export_what_it_reads_by_getusers(three_lists, cli, monkeypatch):
    ws, server = three_lists("hybrid")
    proj = server.emulator.project("default")
    both = proj.add_list("both kinds")
    proj.subscribe_direct(both, email="e@example.com")
    proj.subscribe_direct(both, user_id="only-id")
    proj.subscribe_direct(both, email="x@example.com", user_id="U-X")
    (ws.manifests / "aud-big.yaml").unlink()  # "big" is imported too
    files = {}
    for route in ("getUsers", "export"):
        monkeypatch.setenv("RECONCILER_MEMBER_READS", route)
        out = ws.root / f"imported-{route}"
        server.emulator.clear_log()
        result = cli("import", ws.manifests, "--destination", "prod", "--out", out)
        assert result.exit_code == 0, result.output
        assert calls(server)[GET_USERS if route == "getUsers" else EXPORT] == (
            2 if route == "getUsers" else 1
        )
        files[route] = {p.name: sorted(csv.reader(p.open())) for p in sorted(out.glob("*.csv"))}
    assert files["getUsers"] == files["export"]
    assert sorted(files["export"]) == ["big.csv", "both-kinds.csv"]
    assert sorted(files["export"]["both-kinds.csv"]) == sorted(
        [["email", "userId"], ["e@example.com", ""], ["", "only-id"], ["", "U-X"]]
    )


def test_import_names_a_list_it_cannot_read_and_imports_the_others(three_lists, cli, monkeypatch):
    monkeypatch.setenv("RECONCILER_BULK_READ_RETRIES", "1")
    ws, server = three_lists("email")
    big_id = list_id(server, "big")
    server.emulator.faults.update({"failing_list_ids": [big_id]})
    for name in ("big", "mid", "small"):
        (ws.manifests / f"aud-{name}.yaml").unlink()
    out = ws.root / "imported"

    result = cli("import", ws.manifests, "--destination", "prod", "--out", out)

    assert result.exit_code == 1, result.output
    assert "its members could not be read" in result.stderr
    assert f"skipped list {big_id} 'big': its members could not be read" in result.stderr
    assert sorted(p.name for p in out.glob("*.csv")) == ["mid.csv", "small.csv"]


# -- the asynchronous export -------------------------------------------------------------

JOB_PATHS = ("/api/export/start", "/api/export/{jobId}/files")


def job_calls(server) -> tuple[int, int, int]:
    """export/start calls, export/{jobId}/files calls, files fetched."""
    log = server.emulator.request_log
    return (
        sum(r.path == "/api/export/start" for r in log),
        sum(r.path.startswith("/api/export/") and r.path.endswith("/files") for r in log),
        sum(r.path.startswith("/export-files/") for r in log),
    )


@pytest.fixture
def job_reads(monkeypatch):
    monkeypatch.setenv("RECONCILER_EXPORT_POLL", "0.02")
    monkeypatch.setenv("RECONCILER_EXPORT_JOBS_PER_SECOND", "1000")  # the emulator has none


@pytest.mark.parametrize("engine", ["python", "duckdb"])
@pytest.mark.parametrize("restart", ["none", "keeps files", "resets files"])
def test_an_export_job_reads_exactly_what_getusers_reads_even_when_it_restarts(
    three_lists, cli, monkeypatch, job_reads, engine, restart
):
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    ws, server = three_lists()
    clean = cli("plan", ws.manifests, "--format", "json", "--show-members")
    assert clean.exit_code == 0, clean.output
    # Small files (several per job) produced slowly enough for the job to be seen
    # running, going back to enqueued at half way, and running again.
    server.emulator.faults.update(
        {
            "export_file_bytes": 600,
            "export_job_members_per_second": 300,
            "export_job_queue_seconds": 0.05,
            "export_jobs_to_restart": 0 if restart == "none" else 1,
            "export_restart_resets_files": restart == "resets files",
        }
    )
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "asyncExport")
    server.emulator.clear_log()

    result = cli("plan", ws.manifests, "--format", "json", "--show-members")

    assert result.exit_code == 0, result.output
    starts, listings, fetched = job_calls(server)
    assert starts == 1 and listings > 2 and fetched >= 2
    assert calls(server)[GET_USERS] == 0 and calls(server)[EXPORT] == 0
    if restart != "none":
        assert server.emulator.faults.export_jobs_to_restart == 0  # it did restart
    plans = [clean.json(), result.json()]
    said = [p["destinations"][0].pop("member_read") for p in plans]
    # The consent read says the job gave the profiles' channel unsubscribes too.
    consent = [p["destinations"][0].pop("other_reads") for p in plans]
    assert "from the members' export job" in " ".join(consent[1])
    assert plans[0] == plans[1]
    assert said[1].startswith("members of 3 lists read with 1 asynchronous export job in ")


@pytest.mark.parametrize("fault", ["truncated", "failed"])
def test_an_export_job_that_is_truncated_or_fails_is_not_taken_as_complete(
    three_lists, cli, monkeypatch, job_reads, fault
):
    ws, server = three_lists()
    clean = cli("plan", ws.manifests, "--format", "json", "--show-members")
    assert clean.exit_code == 0, clean.output
    server.emulator.faults.update(
        {"export_max_bytes": 1000} if fault == "truncated" else {"export_jobs_to_fail": 1}
    )
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "asyncExport")
    server.emulator.clear_log()

    result = cli("plan", ws.manifests, "--format", "json", "--show-members")

    assert result.exit_code == 0, result.output
    what = "was truncated (exportTruncated" if fault == "truncated" else "ended failed"
    assert "the user export could not be read (export job" in result.stderr
    assert what in result.stderr
    assert calls(server)[GET_USERS] == 3  # read again, list by list
    plans = [clean.json(), result.json()]
    for p in plans:
        p["destinations"][0].pop("member_read")
    assert plans[0] == plans[1]


def test_an_export_file_that_cannot_be_fetched_gives_up_the_job_without_waiting_for_its_end(
    three_lists, cli, monkeypatch, job_reads
):
    # A file of a running job whose fetch failed for good was found out only once the job
    # had completed (minutes to hours against Iterable) and every other file had been
    # fetched: all of it thrown away, since the plan then reads the lists with getUsers.
    ws, server = three_lists()
    clean = cli("plan", ws.manifests, "--format", "json", "--show-members")
    assert clean.exit_code == 0, clean.output
    # Small files, the job producing them far slower than the test.
    server.emulator.faults.update({"export_file_bytes": 300, "export_job_members_per_second": 1})
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "asyncExport")
    monkeypatch.setenv("RECONCILER_BULK_READ_RETRIES", "0")
    handle = server.emulator.handle

    def files_fail(request):
        if request.url.path.startswith("/export-files/"):
            return EmulatorResponse(500, {"Content-Type": "application/xml"}, b"<Error/>")
        return handle(request)

    monkeypatch.setattr(server.emulator, "handle", files_fail)
    server.emulator.clear_log()

    result = cli("plan", ws.manifests, "--format", "json", "--show-members")

    assert result.exit_code == 0, result.output
    assert "the user export could not be read (GET export job" in result.stderr
    (job,) = server.emulator.exports.jobs.values()
    assert job.state == "Cancelled"  # given up on while it ran, not waited for
    assert calls(server)[GET_USERS] == 3  # read again, list by list
    plans = [clean.json(), result.json()]
    for p in plans:
        p["destinations"][0].pop("member_read")
    assert plans[0] == plans[1]


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_an_export_job_that_never_ends_is_given_up_on_after_its_bound(
    three_lists, cli, monkeypatch, job_reads, engine
):
    """An export job Iterable keeps Enqueued (a stuck queue) held the plan for ever: it is
    cancelled after RECONCILER_EXPORT_JOB_WAIT, and the lists read with getUsers, as for a
    job that failed."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    ws, server = three_lists()
    clean = cli("plan", ws.manifests, "--format", "json", "--show-members")
    assert clean.exit_code == 0, clean.output
    server.emulator.faults.update({"export_job_queue_seconds": 3600})
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "asyncExport")
    monkeypatch.setenv("RECONCILER_EXPORT_JOB_WAIT", "0.3")
    server.emulator.clear_log()

    result = cli("plan", ws.manifests, "--format", "json", "--show-members")

    assert result.exit_code == 0, result.output
    assert "the user export could not be read (export job" in result.stderr
    assert "was still enqueued after " in result.stderr
    assert "(RECONCILER_EXPORT_JOB_WAIT is 0.3 s)" in result.stderr
    log = server.emulator.request_log
    assert [r.method for r in log if r.path.startswith("/api/export/")].count("DELETE") == 1
    assert calls(server)[GET_USERS] == 3  # read again, list by list
    plans = [clean.json(), result.json()]
    for p in plans:
        p["destinations"][0].pop("member_read")
    assert plans[0] == plans[1]
