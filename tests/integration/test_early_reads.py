"""The asynchronous export job starts before the sources are read (issue 18): at
Iterable's speeds it waits minutes in a queue, which then overlaps the sources' reading and
checking rather than following it. Its file is still read exactly as a job started later
would be; a job that fails still falls back to getUsers; a plan whose source fails, or that
is interrupted, leaves no job and no thread behind.

The order is observed, not timed: the audiences' CSV files are copied (the snapshot every
file source is read from) through a hook that waits for the emulator to have received the
job's POST /api/export/start. Were the job started only after the sources, that wait would
end without it; the waits are bounded only so that a regression fails rather than hangs.

Every test runs the real CLI against the emulator over loopback HTTP.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import pytest

from reconciler.sources import snapshot
from tests.integration.conftest import three_csv_lists

GET_USERS = "/api/lists/getUsers"
JOB_START = "/api/export/start"
# Generous: only a regression waits this long (the job is then never started).
BOUND_SECONDS = 30.0
BACKGROUND = ("reconciler-prefetch", "reconciler-export-files")


def emails(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}@example.com" for i in range(n)]


@pytest.fixture
def csv_lists(tmp_path, monkeypatch, fast_client, make_emulator_server, emulator_profile):
    """Lists "big" (30 members), "mid" (20) and "small" (10), each one member off its
    audience each way; every audience a CSV file. Read by one export job (forced: the
    route then needs no row counts, so nothing reads a source before the job starts)."""

    def make(**faults):
        env = {
            "RECONCILER_EXPORT_POLL": "0.02",
            "RECONCILER_EXPORT_JOBS_PER_SECOND": "1000",  # the emulator has none
            "RECONCILER_MEMBER_READS": "asyncExport",
        }
        return three_csv_lists(
            tmp_path, make_emulator_server, emulator_profile, monkeypatch, env, **faults
        )

    return make


def job_started(server) -> bool:
    return any(r.method == "POST" and r.path == JOB_START for r in server.emulator.request_log)


class SourcesWaitForTheJob:
    """The snapshot hook: the first source file read waits until the job was started, and
    records whether it was (then raises `then`, if given, as the source's read failing)."""

    def __init__(self, server, then: BaseException | None = None):
        self.server = server
        self.then = then
        self.seen: list[bool] = []
        self._lock = threading.Lock()

    def __call__(self, _path) -> None:
        with self._lock:
            if not self.seen:
                deadline = time.monotonic() + BOUND_SECONDS
                while not job_started(self.server) and time.monotonic() < deadline:
                    time.sleep(0.01)
                self.seen.append(job_started(self.server))
        if self.then is not None:
            raise self.then


def background_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(BACKGROUND) and t.is_alive()]


def plan_of(result) -> dict:
    plan = result.json()
    plan["destinations"][0].pop("member_read")
    # Which reads gave the consent guard its profiles (an export job's, or an export).
    plan["destinations"][0].pop("other_reads")
    return plan


@pytest.mark.parametrize("command", ["plan", "apply --plan"])
def test_the_export_job_starts_before_the_sources_are_read_and_the_plan_is_exact(
    csv_lists, cli, monkeypatch, command
):
    ws, server = csv_lists()
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    by_get_users = cli("plan", ws.manifests, "--format", "json", "--show-members")
    assert by_get_users.exit_code == 0, by_get_users.output
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "asyncExport")
    saved = ws.root / "saved.plan"
    if command == "apply --plan":
        made = cli("plan", ws.manifests, "--out", saved)
        assert made.exit_code == 0, made.output
    hook = SourcesWaitForTheJob(server)
    monkeypatch.setattr(snapshot, "_after_chunk", hook)
    server.emulator.clear_log()

    if command == "plan":
        result = cli("plan", ws.manifests, "--format", "json", "--show-members")
    else:
        result = cli("apply", "--plan", saved, "--yes")

    assert hook.seen == [True]  # the job was started while the first source was read
    if command == "plan":
        assert result.exit_code == 0, result.output
        assert plan_of(result) == plan_of(by_get_users)  # exact
        said = result.json()["destinations"][0]["member_read"]
        assert said.startswith("members of 3 lists read with 1 asynchronous export job in ")
        assert "started before the sources were read" in said
        # Its calls are the read's, though the job may have ended before the sources did.
        assert "1 POST /api/export/start" in said
    else:
        assert result.exit_code == 0, result.output  # not stale: applied
        assert members_of(server, "big") == set(emails("big-", 30)[1:]) | {"big-new@example.com"}
    log = server.emulator.request_log
    assert sum(r.path == JOB_START for r in log) == 1
    assert not any(r.path == GET_USERS for r in log)


def members_of(server, name: str) -> set[str]:
    proj = server.emulator.project("default")
    (list_id,) = [x.id for x in proj.lists.values() if x.name == name]
    return set(proj.members(list_id))


def test_an_early_job_that_fails_still_falls_back_to_getusers(csv_lists, cli, monkeypatch):
    ws, server = csv_lists()
    clean = cli("plan", ws.manifests, "--format", "json", "--show-members")
    assert clean.exit_code == 0, clean.output
    server.emulator.faults.update({"export_jobs_to_fail": 1})
    hook = SourcesWaitForTheJob(server)
    monkeypatch.setattr(snapshot, "_after_chunk", hook)
    server.emulator.clear_log()

    result = cli("plan", ws.manifests, "--format", "json", "--show-members")

    assert hook.seen == [True]
    assert result.exit_code == 0, result.output
    assert "the user export could not be read (export job" in result.stderr
    assert "ended failed" in result.stderr
    assert Counter(r.path for r in server.emulator.request_log)[GET_USERS] == 3
    assert plan_of(result) == plan_of(clean)


@pytest.mark.parametrize("stop", ["source error", "Ctrl-C"])
def test_a_plan_stopped_while_its_job_runs_cancels_it_and_leaves_no_thread(
    csv_lists, cli, monkeypatch, stop
):
    # The job stays queued far longer than the test: only abandoning it ends its thread.
    ws, server = csv_lists(export_job_queue_seconds=3600)
    # A quote left open: the CSV source fails to load once it is parsed.
    ws.csv("mid.csv", "email", ['"mid-1@example.com'])
    then = KeyboardInterrupt() if stop == "Ctrl-C" else None
    hook = SourcesWaitForTheJob(server, then)
    monkeypatch.setattr(snapshot, "_after_chunk", hook)
    assert not background_threads()

    result = cli("plan", ws.manifests)

    assert hook.seen == [True]  # the job was running when the plan stopped
    if stop == "Ctrl-C":
        assert result.exit_code == 130, result.output
    else:
        assert result.exit_code == 1, result.output
        assert "mid.csv:2: not valid CSV" in result.stderr
    assert not background_threads()
    jobs = list(server.emulator.exports.jobs.values())
    assert len(jobs) == 1 and jobs[0].state == "Cancelled"  # not left holding a place


def test_the_route_is_chosen_from_the_sources_row_counts_before_they_are_parsed(
    csv_lists, cli, monkeypatch
):
    ws, server = csv_lists()
    clean = cli("plan", ws.manifests, "--format", "json", "--show-members")
    assert clean.exit_code == 0, clean.output
    # Chosen, not forced: getUsers and the user export modelled slow, the job quick.
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "auto")
    monkeypatch.setenv("RECONCILER_GET_USERS_RATE", "0.01")
    monkeypatch.setenv("RECONCILER_EXPORT_RATE", "0.01")
    monkeypatch.setenv("RECONCILER_EXPORT_JOB_QUEUE", "0")
    server.emulator.clear_log()

    result = cli("plan", ws.manifests, "--format", "json", "--show-members")

    assert result.exit_code == 0, result.output
    said = result.json()["destinations"][0]["member_read"]
    assert "chosen as faster: about " in said and " by one asynchronous export job " in said
    assert "started before the sources were read" in said
    log = server.emulator.request_log
    assert sum(r.path == JOB_START for r in log) == 1
    assert not any(r.path == GET_USERS for r in log)
    assert plan_of(result) == plan_of(clean)


def test_channel_unsubscribes_are_read_from_the_members_export_job(csv_lists, cli):
    ws, server = csv_lists()
    proj = server.emulator.project("default")
    # Someone not on the list, unsubscribed from the whole email channel, joins the source.
    gone = "gone@example.com"
    proj.add_user(email=gone)
    control = f"{server.base_url}/_emulator/self-unsubscribe"
    httpx.post(control, json={"email": gone, "channel": True}).raise_for_status()
    ws.csv("small.csv", "email", [*emails("small-", 10)[1:], "small-new@example.com", gone])
    server.emulator.clear_log()

    result = cli("plan", ws.manifests, "--format", "json")

    assert result.exit_code == 0, result.output
    body = result.json()
    assert body["summary"]["members_channel_unsubscribed"] == 1  # held back
    assert body["summary"]["members_to_add"] == 3
    log = server.emulator.request_log
    (start,) = [r for r in log if r.path == JOB_START]
    assert "unsubscribedChannelIds" in str(start.body)
    # The profiles' channel unsubscribes are not exported a second time.
    exports = [r for r in log if r.path == "/api/export/data.json"]
    assert not any("unsubscribedChannelIds" in r.query for r in exports)
    assert "from the members' export job" in result.output
