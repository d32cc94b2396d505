"""One apply run (reconciler.apply.run) directly against the emulator: the run journal,
Ctrl-C once and twice, the note about an unfinished run, and the owner-only file of
rejected members (reconciler.apply.rejected)."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest

from reconciler.apply.journal import KEEP, journal_files, last_write_at, read_journal, runs_dir
from reconciler.apply.run import Aborted, run_apply
from reconciler.errors import ReconcilerError
from reconciler.leftovers import IDLE_SECONDS
from reconciler.members.identity import Member
from reconciler.plan import DestinationPlan, Plan
from tests.apply.limits import file_size_limit
from tests.apply.support import client, list_plan, member


class _Display:
    """A progress display that presses Ctrl-C `presses` times when the first batch is done."""

    def __init__(self, presses: int = 0) -> None:
        self.presses = presses
        self.advanced: list[tuple[str, int]] = []

    def task(self, description: str, total: int | None = None, unit: str = "members"):
        display = self

        class _Task:
            def advance(self, n: int = 1) -> None:
                display.advanced.append((description, n))
                for _ in range(display.presses):
                    os.kill(os.getpid(), signal.SIGINT)
                display.presses = 0

            def finish(self) -> None:
                pass

        return _Task()


def _adds(server, count: int) -> Plan:
    list_id = server.emulator.project("default").add_list("vip")
    adds = tuple(member(f"m{i}@example.com") for i in range(count))
    return Plan(
        (DestinationPlan("prod", "hybrid", (list_plan("vip", list_id=list_id, add=adds),)),)
    )


def test_rejected_members_go_to_an_owner_only_file_with_formulas_made_text(
    emulator_server, tmp_path
):
    emulator_server.emulator.faults.counts_only_answers = False
    proj = emulator_server.emulator.project("default")
    list_id = proj.add_list("vip")
    formula = "=cmd|' /C calc'!A0"
    # The email belongs to another userId's profile: Iterable rejects the member (conflict).
    proj.add_user(email="f@example.com", user_id="other")
    adds = (Member(formula, "userId", email="f@example.com", user_id=formula),)
    plan = Plan(
        (DestinationPlan("prod", "hybrid", (list_plan("vip", list_id=list_id, add=adds),)),)
    )
    with client(emulator_server) as c:
        report = run_apply(plan, {"prod": c}, tmp_path)
    assert report.rejected_file is not None
    path = Path(report.rejected_file)
    assert path.parent == runs_dir(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    assert rows[0] == ["destination", "list", "member", "reason"]
    assert rows[1][:3] == ["prod", "vip", "'" + formula]
    assert report.source_problems is None
    (journal,) = journal_files(tmp_path)
    assert read_journal(journal).outcome == "failed"


def test_a_clean_run_writes_no_rejected_file_and_a_successful_journal(emulator_server, tmp_path):
    plan = _adds(emulator_server, 3)
    display = _Display()
    with client(emulator_server) as c:
        report = run_apply(plan, {"prod": c}, tmp_path, display=display)
    assert report.ok and report.rejected_file is None
    assert list(runs_dir(tmp_path).glob("rejected-*")) == []
    (journal,) = journal_files(tmp_path)
    summary = read_journal(journal)
    assert summary.outcome == "success" and summary.done == 1
    assert display.advanced == [("adding members", 3)]


def test_first_ctrl_c_lets_requests_in_flight_finish_and_sends_no_more(emulator_server, tmp_path):
    plan = _adds(emulator_server, 8)
    said: list[str] = []
    with client(emulator_server, batch_size=1, concurrency=1) as c:
        report = run_apply(plan, {"prod": c}, tmp_path, say=said.append, display=_Display(1))
    (result,) = report.destinations[0].lists
    assert report.interrupted
    assert 1 <= result.added < 8
    assert result.added + result.not_attempted_add == 8
    subscribes = [
        r for r in emulator_server.emulator.request_log if r.path == "/api/lists/subscribe"
    ]
    assert len(subscribes) == result.added  # every request sent was answered and counted
    assert any(text.startswith("Interrupted: finishing the requests in flight") for text in said)
    (journal,) = journal_files(tmp_path)
    assert read_journal(journal).outcome == "interrupted"


def test_second_ctrl_c_hands_what_was_done_to_on_abort(emulator_server, tmp_path):
    plan = _adds(emulator_server, 8)
    aborted: list[Aborted] = []
    said: list[str] = []
    # on_abort returns here instead of ending the process: the second Ctrl-C then raises.
    with (
        client(emulator_server, batch_size=1, concurrency=1) as c,
        pytest.raises(KeyboardInterrupt),
    ):
        run_apply(
            plan,
            {"prod": c},
            tmp_path,
            say=said.append,
            display=_Display(2),
            on_abort=aborted.append,
        )
    (journal,) = journal_files(tmp_path)
    assert [a.journal for a in aborted] == [journal]
    assert re.search(r"\b\d+ members? added", aborted[0].done)
    assert "(s)" not in aborted[0].done
    last = json.loads(journal.read_text().splitlines()[-1])
    assert last["event"] == "run_finished" and last["outcome"] == "aborted"
    assert said[-1].startswith("Done before it stopped: ")


def test_a_run_that_stopped_unfinished_before_is_named(emulator_server, tmp_path):
    runs = runs_dir(tmp_path)
    runs.mkdir(parents=True)
    # A run on this host by a process that no longer exists, which never wrote its end.
    started = {"event": "run_started", "at": "t0", "pid": 2**22 + 12345}
    started["host"] = socket.gethostname()
    (runs / "apply-20000101T000000.000000Z-1.jsonl").write_text(json.dumps(started) + "\n")
    said: list[str] = []
    with client(emulator_server) as c:
        run_apply(_adds(emulator_server, 1), {"prod": c}, tmp_path, say=said.append)
    assert said[0].startswith("note: the apply started at t0 (pid 4206649) stopped without")


def test_an_unfinished_runs_note_counts_only_the_requests_without_an_outcome_as_in_flight(
    tmp_path,
):
    # Written as a killed run leaves it: three requests answered (two done, one failed), one
    # sent whose answer never came, and a torn last line.
    path = tmp_path / "apply-20000101T000000.000000Z-1.jsonl"
    events = [{"event": "run_started", "at": "t0", "pid": 7, "host": "elsewhere"}]
    for step, status in ((1, "done"), (2, "failed"), (3, None), (4, "done")):
        events.append({"event": "intent", "step": step, "op": "subscribe"})
        if status is not None:
            events.append({"event": "outcome", "step": step, "status": status})
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + '{"event": "outc')
    summary = read_journal(path)
    assert (summary.done, summary.failed, summary.outcome) == (2, 1, None)
    assert [line["step"] for line in summary.in_flight] == [3]
    assert "2 requests done, 1 failed, 1 in flight whose outcome is unknown" in (
        summary.describe_unfinished()
    )
    # One request done is said in the singular; thousands get separators.
    summary.done, summary.failed = 1, 0
    assert "stopped without finishing: 1 request done, 0 failed, 1 in flight" in (
        summary.describe_unfinished()
    )
    summary.done, summary.failed = 12_345, 1_000
    assert "finishing: 12,345 requests done, 1,000 failed," in summary.describe_unfinished()


# -- a state directory that fills up, or cannot be written -------------------------------


def test_a_journal_that_fills_the_disk_midway_does_not_stop_the_apply(emulator_server, tmp_path):
    # Stopping there would leave the apply half-done for want of its log: it goes on, says
    # from which request the journal is missing, and its report is whole.
    plan = _adds(emulator_server, 8)
    said: list[str] = []
    with client(emulator_server, batch_size=1, concurrency=1) as c, file_size_limit(1500):
        report = run_apply(plan, {"prod": c}, tmp_path, say=said.append)
    assert report.ok and report.destinations[0].lists[0].added == 8
    [warning] = [text for text in said if text.startswith("warning: could not write the run")]
    assert "the apply went on without it" in warning
    (journal,) = journal_files(tmp_path)
    assert 0 < journal.stat().st_size <= 1500
    (list_id,) = emulator_server.emulator.project("default").lists
    assert len(emulator_server.emulator.project("default").members(list_id)) == 8


def test_a_state_dir_the_journal_cannot_be_written_in_changes_nothing(emulator_server, tmp_path):
    (tmp_path / "runs").write_text("a file where the journals go")
    plan = _adds(emulator_server, 3)
    with client(emulator_server) as c, pytest.raises(ReconcilerError) as caught:
        run_apply(plan, {"prod": c}, tmp_path)
    assert "cannot write the run journal" in str(caught.value)
    assert "Nothing was changed" in str(caught.value)
    assert [r for r in emulator_server.emulator.request_log if r.method == "POST"] == []


def test_rejected_members_that_do_not_fit_on_disk_leave_no_file_and_the_report_whole(
    emulator_server, tmp_path
):
    # Everything is applied by the time the file is written: a full disk there must not
    # turn the report into a crash, nor leave a file cut short that looks whole.
    emulator_server.emulator.faults.counts_only_answers = False
    proj = emulator_server.emulator.project("default")
    list_id = proj.add_list("vip")
    adds = []
    for i in range(300):
        # The email belongs to another userId's profile: Iterable rejects the member.
        proj.add_user(email=f"f{i}@example.com", user_id=f"other{i}")
        adds.append(Member(f"u{i}", "userId", email=f"f{i}@example.com", user_id=f"u{i}"))
    plan = Plan(
        (DestinationPlan("prod", "hybrid", (list_plan("vip", list_id=list_id, add=tuple(adds)),)),)
    )
    said: list[str] = []
    with client(emulator_server) as c, file_size_limit(4000):
        report = run_apply(plan, {"prod": c}, tmp_path, say=said.append)
    assert len(report.destinations[0].lists[0].rejected) == 300
    assert report.rejected_file is None
    [warning] = [t for t in said if "could not write the file of rejected members" in t]
    # The text report shows 20 of a list's rejected members: the warning must not promise
    # the 300 are all below, and says where they are not (the journal counts them only).
    assert "lists them" not in warning
    assert "300 members Iterable rejected" in warning
    assert "at most 20 per list" in warning
    assert "--format json" in warning and "--show-members" in warning
    assert [p.name for p in runs_dir(tmp_path).iterdir() if "rejected" in p.name] == []
    (journal,) = journal_files(tmp_path)
    assert read_journal(journal).outcome == "failed"


def test_an_unfinished_run_by_a_process_that_had_this_pid_is_named(emulator_server, tmp_path):
    # A container's apply killed and started again runs at the same pid (pid 1): that pid
    # is alive (it is this process), yet the run that wrote the journal is gone.
    runs = runs_dir(tmp_path)
    runs.mkdir(parents=True)
    started = {"event": "run_started", "at": "t0", "pid": os.getpid()}
    started["host"] = socket.gethostname()
    (runs / "apply-20000101T000000.000000Z-1.jsonl").write_text(json.dumps(started) + "\n")
    said: list[str] = []
    with client(emulator_server) as c:
        run_apply(_adds(emulator_server, 1), {"prod": c}, tmp_path, say=said.append)
    assert said[0].startswith(f"note: the apply started at t0 (pid {os.getpid()}) stopped")


def test_an_interrupted_run_names_only_the_lists_the_index_did_not_show_yet(
    emulator_server, tmp_path
):
    # An apply waits for the lagging list index to show its new lists before it sends
    # them members. Interrupted during the members, the index has shown them: a run
    # started elsewhere finds them, and no note tells anyone to wait (it told them to
    # wait up to 45 s for nothing, and the README said an interrupted run never waits).
    adds = tuple(member(f"m{i}@example.com") for i in range(4))
    plan = Plan((DestinationPlan("prod", "hybrid", (list_plan("fresh", add=adds),)),))
    said: list[str] = []
    with client(emulator_server, batch_size=1, concurrency=1, read_lag=45) as c:
        report = run_apply(plan, {"prod": c}, tmp_path, say=said.append, display=_Display(1))
    (result,) = report.destinations[0].lists
    assert report.interrupted and result.created and result.listed
    assert result.added >= 1 and result.not_attempted_add >= 1
    assert [text for text in said if "list index" in text] == []


def test_ctrl_c_during_the_wait_for_the_list_index_still_says_a_run_elsewhere_must_wait(
    emulator_server, tmp_path
):
    # The list was created: Ctrl-C came while the run waited for the index to show it
    # (before its members are sent, to look for a copy another apply made meanwhile), and
    # cut that wait short; its members were not sent.
    from dataclasses import replace

    from reconciler.iterable import IterableClient
    from tests.apply.support import FAST
    from tests.conftest import EMULATOR_API_KEY

    emulator_server.emulator.faults.read_lag_seconds = 30
    pressed: list[float] = []

    def sleep(seconds: float) -> None:
        if not pressed:
            pressed.append(seconds)
            os.kill(os.getpid(), signal.SIGINT)

    adds = (member("a@example.com"),)
    plan = Plan((DestinationPlan("prod", "hybrid", (list_plan("fresh", add=adds),)),))
    said: list[str] = []
    settings = replace(FAST, read_lag=30)
    with IterableClient(
        emulator_server.base_url, EMULATOR_API_KEY, settings=settings, sleep=sleep
    ) as c:
        report = run_apply(plan, {"prod": c}, tmp_path, say=said.append)
    assert pressed and report.interrupted
    (result,) = report.destinations[0].lists
    assert result.created and result.not_attempted_add == 1
    [note] = [text for text in said if "list index" in text]
    assert "'fresh'" in note and "started elsewhere" in note


def test_what_a_second_ctrl_c_left_done_is_said_per_destination(
    emulator_server, make_emulator_server, tmp_path
):
    # "prod" is done (2 adds) when Ctrl-C is pressed twice during "eu" (a project of its
    # own): one total over both would not say which project holds what.
    eu = make_emulator_server()
    prod_plan = _adds(emulator_server, 2).destinations[0]
    eu_list = eu.emulator.project("default").add_list("vip")
    adds = tuple(member(f"e{i}@example.com") for i in range(8))
    plan = Plan(
        (
            prod_plan,
            DestinationPlan("eu", "hybrid", (list_plan("vip", list_id=eu_list, add=adds),)),
        )
    )
    display = _Display()
    pressed = display.task

    def task(description: str, total: int | None = None, unit: str = "members"):
        inner = pressed(description, total, unit)

        class _Task:
            def advance(self, n: int = 1) -> None:
                inner.advance(n)
                if len(display.advanced) == 3:  # eu's first member
                    for _ in range(2):
                        os.kill(os.getpid(), signal.SIGINT)

            def finish(self) -> None:
                inner.finish()

        return _Task()

    display.task = task  # type: ignore[method-assign]
    # eu's answers come late: its second request, which the pool sends as soon as the first
    # is answered, is still unanswered when the presses land (under load they could land
    # after its answer, which made 2 members done).
    eu.emulator.faults.latency_seconds = 1.0
    aborted: list[Aborted] = []
    with (
        client(emulator_server, batch_size=1, concurrency=1) as prod_client,
        client(eu, batch_size=1, concurrency=1) as eu_client,
        pytest.raises(KeyboardInterrupt),
    ):
        run_apply(
            plan,
            {"prod": prod_client, "eu": eu_client},
            tmp_path,
            display=display,
            on_abort=aborted.append,
        )
    assert aborted[0].done.startswith(
        "destination 'prod': 0 lists created, 2 members added, 0 removed, 0 lists "
        "deleted; destination 'eu': 0 lists created, 1 member added"
    )


def test_rejected_member_files_are_kept_as_the_journals_are(emulator_server, tmp_path):
    """A member Iterable refuses on every run (an email another userId's profile holds)
    wrote a rejected-member file, in full, at every hourly apply, and none was ever
    removed: 8,760 copies of members' identities a year. The newest KEEP are kept, and
    what a run killed while writing one left under its partial name goes once idle."""
    runs = runs_dir(tmp_path)
    runs.mkdir(parents=True)
    older = [runs / f"rejected-20250101T{i // 60:02}{i % 60:02}00Z-7.csv" for i in range(KEEP)]
    for path in older:
        path.write_text("destination,list,member,reason\n", encoding="utf-8")
    killed, recent = runs / ".rejected-abc123.csv", runs / ".rejected-def456.csv"
    for path in (killed, recent):
        path.write_text("destination,list,member,reason\nprod,vip,x@example.com,", "utf-8")
    then = time.time() - IDLE_SECONDS - 60
    os.utime(killed, (then, then))

    emulator_server.emulator.faults.counts_only_answers = False
    proj = emulator_server.emulator.project("default")
    list_id = proj.add_list("vip")
    proj.add_user(email="f@example.com", user_id="other")
    adds = (Member("f", "userId", email="f@example.com", user_id="f"),)
    plan = Plan(
        (DestinationPlan("prod", "hybrid", (list_plan("vip", list_id=list_id, add=adds),)),)
    )
    with client(emulator_server) as c:
        report = run_apply(plan, {"prod": c}, tmp_path)
    assert report.rejected_file is not None
    kept = sorted(runs.glob("rejected-*.csv"))
    assert len(kept) == KEEP
    assert kept[-1] == Path(report.rejected_file) and kept[0] == older[1]
    assert not older[0].exists()
    assert not killed.exists() and recent.exists()  # a write under way may be another run's


def test_rejected_member_files_an_earlier_version_left_are_pruned_by_a_run_rejecting_none(
    emulator_server, tmp_path
):
    """The version before the newest KEEP rejected-member files were kept wrote one at every
    apply that had a rejected member, and removed none; the files were pruned only when a
    run wrote another, so after an upgrade, and the member fixed, the hundreds it left (in
    full: members' identities) stayed for good. A run that rejects nobody prunes them too,
    as it does the journals."""
    runs = runs_dir(tmp_path)
    runs.mkdir(parents=True)
    older = [runs / f"rejected-20250101T{i // 60:02}{i % 60:02}00Z-7.csv" for i in range(KEEP + 5)]
    for path in older:  # as 540a71e wrote them
        path.write_text(
            "destination,list,member,reason\nprod,vip,other6,email and userId belong to "
            "different users\n",
            encoding="utf-8",
        )
    with client(emulator_server) as c:
        report = run_apply(_adds(emulator_server, 1), {"prod": c}, tmp_path)
    assert report.ok and report.rejected_file is None
    assert sorted(runs.glob("rejected-*.csv")) == older[5:]


def test_a_journal_that_cannot_be_read_fails_no_later_plan_or_apply(emulator_server, tmp_path):
    """The newest journal unreadable (one a `sudo reconciler apply` left owned by root; here
    a directory of a journal's name, which fails to open as that does) failed every later
    apply, and every plan within a minute of it, as "internal error: IsADirectoryError" /
    "PermissionError", until someone deleted it. The journals are for people: a run reads
    Iterable, not them, and goes on without their note and wait."""
    runs = runs_dir(tmp_path)
    (runs / "apply-29991231T000000.000000Z-1.jsonl").mkdir(parents=True)
    assert last_write_at(tmp_path, "prod", 60, time.time()) is None
    with client(emulator_server) as c:
        report = run_apply(_adds(emulator_server, 1), {"prod": c}, tmp_path)
    assert report.ok
