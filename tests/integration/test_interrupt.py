"""Ctrl-C during apply: the requests in flight finish and are counted, no new one starts,
the report says what was done and what was not, and the exit code is 130. Issue 8."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.apply.journal import read_journal
from reconciler.emulator import EmulatorServer
from reconciler.emulator.replies import fault_reply
from tests.integration.conftest import Workspace
from tests.integration.reliability import (
    WRITES,
    StderrWatcher,
    assert_exactly_desired,
    build_scenario,
    journals,
    main_code,
    members_of,
    signal_after_writes,
    signal_masks,
    spawn_cli,
    subprocess_env,
    wait_for_writes,
    writes_held_after,
    writes_seen,
)

ADDS, CREATES, BATCH = 1500, 1500, 50


def private_tmp(workspace) -> Path:
    """A temporary directory for one run's files alone (its TMPDIR): the shared one holds
    what killed runs of other tests left, named by a PID this run's may reuse."""
    tmp = workspace.root / "tmp"
    tmp.mkdir(exist_ok=True)
    return tmp


def start(workspace, server, *args):
    scenario = build_scenario(workspace, server, adds=ADDS, creates=CREATES)
    server.emulator.faults.latency_seconds = 0.05
    env = subprocess_env(
        workspace,
        RECONCILER_BATCH_SIZE=str(BATCH),
        RECONCILER_CONCURRENCY="4",
        TMPDIR=str(private_tmp(workspace)),
    )
    return scenario, spawn_cli(workspace, "apply", "manifests", "--yes", *args, env=env)


def finish(workspace, cli, server, scenario):
    server.emulator.faults.latency_seconds = 0.0
    again = cli("apply", workspace.manifests, "--yes")
    assert again.exit_code == 0, again.output
    assert_exactly_desired(server, scenario)


def ctrl_c_within(proc, stderr, command, seconds):
    """Ctrl-C to a running command: its exit code and stderr, or a failure naming what it
    was still doing `seconds` later (the process is killed, not left behind)."""
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        masks = signal_masks(proc.pid)
        proc.kill()
        proc.wait()
        raise AssertionError(
            f"{command} still running {seconds} s after Ctrl-C: {stderr.text}\n{masks}"
        ) from None
    return code, stderr.finish()


def test_ctrl_c_finishes_what_is_in_flight_reports_it_and_exits_130(
    workspace, cli, emulator_server
):
    scenario, proc = start(workspace, emulator_server, "--format", "json")
    code, out, err = signal_after_writes(emulator_server, proc, 8, signal.SIGINT)
    assert code == 130, err

    report = json.loads(out)
    assert report["interrupted"] is True and report["ok"] is False
    # Why it exits 130, in the object a script reads (as every non-zero exit's says).
    assert report["exit_code"] == 130
    assert report["error"].startswith("Interrupted (Ctrl-C or SIGTERM): stopped after the")
    lists = {lr["list_name"]: lr for d in report["destinations"] for lr in d["lists"]}
    alpha, beta = lists["alpha"], lists["beta"]
    # Exactly what Iterable holds now: every request in flight was answered and counted.
    live_alpha = set(members_of(emulator_server, "alpha"))
    assert alpha["added"] == sum(m.startswith("alpha") for m in live_alpha)
    assert beta["added"] == len(members_of(emulator_server, "beta"))
    # ... and the rest is reported as not sent, not as failed or done.
    for lr in (alpha, beta):
        assert lr["added"] + lr["not_attempted_add"] == lr["planned_add"]
        assert lr["removed"] + lr["not_attempted_remove"] == lr["planned_remove"]
    assert alpha["not_attempted_add"] + beta["not_attempted_add"] > 0
    assert any(e.startswith("interrupted:") for e in alpha["errors"] + beta["errors"])
    # No request started after Ctrl-C: each write Iterable saw is one the report counts.
    sent = [r for r in emulator_server.emulator.request_log if r.method in WRITES]
    subscribed = sum(len(r.body["subscribers"]) for r in sent if r.path.endswith("/subscribe"))
    assert subscribed == alpha["added"] + beta["added"]

    assert "Interrupted: finishing the requests in flight" in err
    assert "Not done:" in err and "Run apply again" in err
    [journal] = journals(workspace.root / ".reconciler")
    summary = read_journal(journal)
    assert summary.outcome == "interrupted" and summary.in_flight == []

    finish(workspace, cli, emulator_server, scenario)


def test_ctrl_c_in_text_mode_prints_the_report_with_what_was_not_done(
    workspace, cli, emulator_server
):
    scenario, proc = start(workspace, emulator_server)
    code, out, err = signal_after_writes(emulator_server, proc, 4, signal.SIGINT)
    assert code == 130, err
    # The report's last line said "Apply finished with failures ... Run plan again to see
    # what is left" where stderr says to apply again to finish.
    last = out.splitlines()[-1]
    assert last.startswith("Apply interrupted: "), last
    assert last.endswith(
        "Run apply again to finish: it reads Iterable afresh and sends only what is left."
    )
    assert "interrupted:" in out and "were not sent" in out
    assert "Apply complete" not in out and "finished with failures" not in out
    finish(workspace, cli, emulator_server, scenario)


def test_a_second_ctrl_c_stops_at_once_and_still_says_what_was_done(
    workspace, cli, emulator_server
):
    scenario = build_scenario(workspace, emulator_server, adds=ADDS, creates=CREATES)
    emulator_server.emulator.faults.latency_seconds = 0.5  # in flight long enough to abandon
    env = subprocess_env(workspace, RECONCILER_BATCH_SIZE=str(BATCH), RECONCILER_CONCURRENCY="4")
    record = workspace.root / "run.json"
    proc = spawn_cli(
        workspace,
        "apply",
        "manifests",
        "--yes",
        "--format",
        "json",
        "--summary-json",
        record,
        env=env,
    )
    stderr = StderrWatcher(proc)
    wait_for_writes(emulator_server, proc, 3)
    proc.send_signal(signal.SIGINT)
    stderr.wait_for("Interrupted: finishing the requests in flight", proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    err = stderr.finish()
    # The run record is written even so, and stdout still holds one JSON object.
    written = json.loads(record.read_text())
    assert written["outcome"] == "aborted" and written["finished_at"]
    # The requests sent before it stopped are counted, not reported as none.
    assert written["requests"] >= writes_seen(emulator_server) >= 3
    assert "second Ctrl-C" in written["message"]
    assert json.loads(proc.stdout.read())["exit_code"] == 130
    assert "Stopped at once. Done before it stopped:" in err
    assert "in flight and may or may not have taken effect" in err
    assert "Traceback" not in err
    summary = read_journal(journals(workspace.root / ".reconciler")[-1])
    assert summary.outcome == "aborted"
    # The lock goes too, though the process ended without unwinding.
    assert list((workspace.root / ".reconciler" / "locks").glob("*.lock")) == []
    finish(workspace, cli, emulator_server, scenario)


HIDE_CURSOR, SHOW_CURSOR = b"\x1b[?25l", b"\x1b[?25h"


@pytest.mark.parametrize("earlier", [False, True], ids=["one", "second"])
def test_ctrl_c_just_after_the_last_request_ended_keeps_the_report(
    workspace, cli, emulator_server, monkeypatch, earlier
):
    """A Ctrl-C (or the second one, meant to stop the requests in flight) that came just
    after the last request ended stopped a finished apply with 130 and 'interrupted', and
    without the report of what it had done. The signals are sent from inside the run, at
    the moments they stand for: no timing."""
    from reconciler.apply import run

    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    real_apply, real_write_rejected = run.apply_plan, run.write_rejected

    def apply_then_ctrl_c(*args, **kwargs):
        report = real_apply(*args, **kwargs)
        if earlier:
            os.kill(os.getpid(), signal.SIGINT)  # the first: as the last request ends
        return report

    def ctrl_c_then_write_rejected(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # the work is over: only its record is left
        return real_write_rejected(*args, **kwargs)

    monkeypatch.setattr(run, "apply_plan", apply_then_ctrl_c)
    monkeypatch.setattr(run, "write_rejected", ctrl_c_then_write_rejected)
    result = cli("apply", workspace.manifests, "--yes")

    assert result.exit_code == 0, result.output
    assert "Apply complete" in result.stdout
    assert "Ctrl-C: the apply is over, writing down what it did (Ctrl-C again" in result.stderr
    assert sorted(members_of(emulator_server, "vip")) == ["a@example.com", "b@example.com"]
    [journal] = journals(workspace.root / ".reconciler")
    assert read_journal(journal).outcome == "success"


@pytest.mark.parametrize("when", ["last request", "record"])
def test_a_ctrl_c_after_the_last_request_skips_the_wait_for_iterable_s_reads(
    workspace, cli, emulator_server, monkeypatch, when
):
    """An apply that wrote waits, before it ends, until Iterable's reads show its writes;
    one told to stop as its last request ended, or while it wrote down what it did, did not
    stop: it waited the whole lag after saying the apply was over. The signals are sent
    from inside the run, at the moments they stand for: no timing."""
    from reconciler.apply import run

    emulator_server.emulator.faults.read_lag_seconds = 0.0
    monkeypatch.setenv("RECONCILER_READ_LAG", "30")  # waited for, the test takes 30 s
    workspace.audience("vip", {"inline": ["a@example.com"]})
    step = run.apply_plan if when == "last request" else run.write_rejected

    def then_ctrl_c(*args, **kwargs):
        result = step(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return result

    monkeypatch.setattr(run, step.__name__, then_ctrl_c)
    result = cli("apply", workspace.manifests, "--yes")

    assert result.exit_code == 0, result.output
    assert "Apply complete" in result.stdout
    assert "before ending, for Iterable's reads" not in result.stderr
    assert members_of(emulator_server, "vip") == ["a@example.com"]


def test_a_second_ctrl_c_on_a_terminal_leaves_its_cursor_shown(workspace, emulator_server):
    # The progress bars hide the terminal's cursor while they are drawn; the second Ctrl-C
    # ends the process with os._exit, which skipped what shows it again: the shell was
    # left without a cursor (until `reset`), its prompt on the bars' unended line.
    build_scenario(workspace, emulator_server, adds=ADDS, creates=CREATES)
    env = subprocess_env(
        workspace,
        RECONCILER_BATCH_SIZE=str(BATCH),
        RECONCILER_CONCURRENCY="4",
        TERM="xterm-256color",
        COLUMNS="120",
    )
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", main_code(), "apply", "manifests", "--yes"],
        cwd=workspace.root,
        env=env,
        stdin=child,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    shown = bytearray()

    def read_terminal() -> None:
        with contextlib.suppress(OSError):  # EIO once the process has ended
            while chunk := os.read(main, 65536):
                shown.extend(chunk)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    try:
        with writes_held_after(emulator_server, 4):
            wait_for_writes(emulator_server, proc, 4)
            proc.send_signal(signal.SIGINT)
            deadline = time.monotonic() + 30
            while b"Ctrl-C again to stop at once" not in shown:
                assert time.monotonic() < deadline, bytes(shown)
                time.sleep(0.01)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 130
        reader.join(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)
    assert b"Stopped at once" in shown
    assert HIDE_CURSOR in shown  # the bars were drawn
    assert shown.rfind(SHOW_CURSOR) > shown.rfind(HIDE_CURSOR), bytes(shown[-400:])
    # The bars' last line is ended: the shell's prompt starts a line of its own.
    assert shown.removesuffix(SHOW_CURSOR).endswith(b"\n"), bytes(shown[-400:])


def test_ctrl_c_while_reading_iterable_changes_nothing(workspace, cli, emulator_server):
    scenario = build_scenario(workspace, emulator_server)
    emulator_server.emulator.faults.latency_seconds = 1  # the first read hangs
    env = subprocess_env(workspace)
    proc = spawn_cli(workspace, "apply", "manifests", "--yes", env=env)
    while not emulator_server.emulator.request_log:
        assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Interrupted." in err and "Traceback" not in err
    assert writes_seen(emulator_server) == 0
    finish(workspace, cli, emulator_server, scenario)


def test_ctrl_c_during_plan_exits_130_having_changed_nothing(workspace, emulator_server):
    build_scenario(workspace, emulator_server)
    emulator_server.emulator.faults.latency_seconds = 1  # the first read hangs
    proc = spawn_cli(workspace, "plan", "manifests", env=subprocess_env(workspace))
    while not emulator_server.emulator.request_log:
        assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Interrupted: nothing was changed" in err and "Traceback" not in err
    assert writes_seen(emulator_server) == 0


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_ctrl_c_while_a_list_is_streaming_ends_the_run_without_waiting_for_the_read(
    workspace, cli, emulator_server, command
):
    # Iterable's getUsers can take over an hour for a big list (README, "Reading large
    # lists"); the reads run on worker threads, and Ctrl-C must not wait for them to end.
    scenario = build_scenario(workspace, emulator_server)
    emulator_server.emulator.faults.get_users_first_byte_seconds = 120
    env = subprocess_env(workspace, RECONCILER_MEMBER_READS="getUsers")
    args = ("--yes",) if command == "apply" else ()
    proc = spawn_cli(workspace, command, "manifests", *args, env=env)
    stderr = StderrWatcher(proc)
    stderr.wait_for("reading list 'alpha': started", proc)
    code, err = ctrl_c_within(proc, stderr, command, seconds=20)
    assert code == 130, err
    assert "Interrupted" in err and "Traceback" not in err
    assert writes_seen(emulator_server) == 0
    assert not list((workspace.root / ".reconciler" / "locks").glob("*.lock"))
    emulator_server.emulator.faults.get_users_first_byte_seconds = 0
    finish(workspace, cli, emulator_server, scenario)


def test_ctrl_c_while_a_large_source_loads_into_duckdb_is_said_as_ctrl_c_not_as_a_bug(
    workspace, emulator_server
):
    # DuckDB takes the KeyboardInterrupt a signal raises while it runs into its own error
    # ("RuntimeError: Query interrupted"): plan ended in "internal error: ... This is a
    # bug in reconciler", exit code 1.
    data = workspace.manifests / "data" / "big.csv"
    data.parent.mkdir(parents=True, exist_ok=True)
    with data.open("w", encoding="utf-8") as handle:
        handle.write("email\n")
        handle.writelines(f"m{i}@example.com\n" for i in range(3_000_000))
    workspace.audience("big", {"csv": "data/big.csv"})
    env = subprocess_env(workspace, RECONCILER_ENGINE="duckdb")
    proc = spawn_cli(workspace, "plan", "manifests", env=env)
    stderr = StderrWatcher(proc)
    stderr.wait_for("reading audience 'big' into DuckDB: started", proc)
    time.sleep(1.0)  # past the file's snapshot, into DuckDB's load (seconds long)
    # Ctrl-C until the command ends, each given time to end it: one landing in Python
    # (not in DuckDB) ends it as Ctrl-C whatever DuckDB does, and one sent while an
    # error unwinds would hide that error.
    deadline = time.monotonic() + 30
    while proc.poll() is None:
        assert time.monotonic() < deadline, stderr.text
        proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1)
    code, err = proc.returncode, stderr.finish()
    assert code == 130, err
    assert "Interrupted: nothing was changed" in err
    assert "internal error" not in err and "Traceback" not in err


def test_ctrl_c_while_profiles_are_read_one_by_one_ends_the_plan_without_waiting_for_them(
    workspace, emulator_server
):
    # The consent guard reads the profiles of a few members to add one by one; Ctrl-C
    # waited for the reads in flight, each retrying a 503 for minutes here (half a minute
    # and more at the default backoff), before it said it was interrupted.
    build_scenario(workspace, emulator_server, adds=5, creates=0)
    emulator_server.emulator.faults.update(
        {"fail_every": 1, "fail_status": 503, "paths": ["/api/users/alpha"]}
    )
    env = subprocess_env(workspace, RECONCILER_BACKOFF_BASE="5", RECONCILER_BACKOFF_CAP="30")
    proc = spawn_cli(workspace, "plan", "manifests", env=env)
    stderr = StderrWatcher(proc)
    stderr.wait_for("GET /api/users/{email}: HTTP 503; retry 1 of 6", proc)
    code, err = ctrl_c_within(proc, stderr, "plan", seconds=20)
    assert code == 130, err
    assert "Interrupted: nothing was changed" in err and "Traceback" not in err


def test_ctrl_c_while_large_lists_are_read_early_ends_the_plan_without_waiting_for_them(
    tmp_path, make_emulator_server
):
    # A large list of an email-based project is read while the sources are (the DuckDB
    # engine's early getUsers). Ctrl-C waited 10 s for each destination's such read
    # still waiting for Iterable's first byte, one destination after the other: 30 s
    # here, longer than a cancelled CI job's 7.5 s before SIGTERM.
    server = make_emulator_server(project_type="email")
    ws = Workspace(tmp_path, server.base_url, "email")
    env = subprocess_env(ws, RECONCILER_ENGINE="duckdb", RECONCILER_MEMBER_READS="getUsers")
    names = ("d0", "d1", "d2")
    for name in names:
        key = f"key-{name}"
        server.emulator.add_project(name, "email", key)
        env[f"KEY_{name.upper()}"] = key
        ws.destination(name, apiKey={"env": f"KEY_{name.upper()}"})
        proj = server.emulator.project(name)
        proj.subscribe_direct(proj.add_list(f"big-{name}"), email="gone@example.com")
        ws.csv(f"data/{name}.csv", "email", [f"m{i}@example.com" for i in range(5)])
        ws.audience(f"big-{name}", {"csv": f"data/{name}.csv"}, destination=name)
    server.emulator.faults.get_users_first_byte_seconds = 120
    proc = spawn_cli(ws, "plan", "manifests", env=env)
    stderr = StderrWatcher(proc)
    for name in names:
        stderr.wait_for(f"destination {name!r}: reading list 'big-{name}': started", proc)
    code, err = ctrl_c_within(proc, stderr, "plan", seconds=20)
    assert code == 130, err
    assert "Interrupted: nothing was changed" in err and "Traceback" not in err


def test_ctrl_c_while_writes_are_refused_with_429_sends_them_no_more(
    workspace, cli, emulator_server
):
    # A 429 says Iterable did nothing, and its retries backed off for half a minute and
    # more after "starting no more" (here minutes: a cancelled CI job's SIGTERM comes
    # 7.5 s after its SIGINT, then stopped the run at once with its requests unknown).
    scenario = build_scenario(workspace, emulator_server, adds=ADDS, creates=CREATES)
    env = subprocess_env(
        workspace,
        RECONCILER_BATCH_SIZE=str(BATCH),
        RECONCILER_CONCURRENCY="4",
        RECONCILER_BACKOFF_BASE="5",
        RECONCILER_BACKOFF_CAP="30",
    )
    proc = spawn_cli(workspace, "apply", "manifests", "--yes", "--format", "json", env=env)
    stderr = StderrWatcher(proc)
    wait_for_writes(emulator_server, proc, 4)
    emulator_server.emulator.faults.write_rate_per_second = 0.001  # every write refused now
    stderr.wait_for(": HTTP 429; retry 1 of 6 in", proc)
    code, err = ctrl_c_within(proc, stderr, "apply", seconds=20)
    assert code == 130, err
    assert "Traceback" not in err
    report = json.loads(proc.stdout.read())
    lists = [lr for d in report["destinations"] for lr in d["lists"]]
    assert sum(lr["not_attempted_add"] for lr in lists) > 0
    assert not any(e for lr in lists for e in lr["errors"] if not e.startswith("interrupted:"))
    [journal] = journals(workspace.root / ".reconciler")
    summary = read_journal(journal)
    assert summary.outcome == "interrupted" and summary.in_flight == []
    emulator_server.emulator.faults.write_rate_per_second = None
    finish(workspace, cli, emulator_server, scenario)


def writes_sent(server) -> list[tuple[str, str]]:
    """Each write the emulator has handled, in order, as (path, body)."""
    return [
        (r.path, json.dumps(r.body, sort_keys=True))
        for r in list(server.emulator.request_log)
        if r.method in WRITES and r.path.startswith("/api/")
    ]


@contextlib.contextmanager
def first_subscribe_answered_late(server) -> Iterator[threading.Event]:
    """The first subscribe is acted on, and its answer held until the event yielded is
    set (or the block ends): its client, timing out first, cannot know it was taken."""
    handle, release, first = server.emulator.handle, threading.Event(), threading.Lock()

    def late(request):
        answer = handle(request)
        if request.url.path == "/api/lists/subscribe" and first.acquire(blocking=False):
            release.wait(60)
        return answer

    server.emulator.handle = late
    try:
        yield release
    finally:
        release.set()
        server.emulator.handle = handle


@pytest.mark.parametrize("answer", ["on time", "late"])
def test_ctrl_c_while_writes_wait_for_the_rate_limit_sends_them_no_more(
    workspace, cli, emulator_server, answer
):
    # Writes paced far apart (a pace learnt from 429s reaches one per 30 s; a Retry-After
    # holds them for up to 2 minutes; here RECONCILER_WRITES_PER_SECOND) waited out their
    # turn after Ctrl-C and were then sent, one writer after another: "starts no new
    # request" broken, and the run held past a cancelled CI job's SIGTERM 7.5 s later.
    # A write in flight whose answer came after the timeout may have been taken: it is
    # sent again to know (write_step), after Ctrl-C too, and that is all that is sent.
    # Under load an answer can be that late at the usual 5 s: 5 writes where 2, once.
    scenario = build_scenario(workspace, emulator_server, adds=ADDS, creates=CREATES)
    env = subprocess_env(
        workspace,
        RECONCILER_BATCH_SIZE=str(BATCH),
        RECONCILER_CONCURRENCY="4",
        RECONCILER_WRITES_PER_SECOND="0.1",  # one subscribe or unsubscribe per 10 s
        **({"RECONCILER_TIMEOUT": "1"} if answer == "late" else {}),
    )
    with first_subscribe_answered_late(emulator_server) as answered:
        if answer == "on time":
            answered.set()
        proc = spawn_cli(workspace, "apply", "manifests", "--yes", "--format", "json", env=env)
        stderr = StderrWatcher(proc)
        stderr.wait_for("for Iterable's rate limit on", proc)
        answered.set()
        sent = writes_sent(emulator_server)
        code, err = ctrl_c_within(proc, stderr, "apply", seconds=120)
    assert code == 130, err
    again = writes_sent(emulator_server)
    assert again[: len(sent)] == sent, err
    # Nothing new after Ctrl-C: at most what was in flight, sent again.
    assert set(again[len(sent) :]) <= set(sent), err
    if answer == "late":
        assert len(set(again)) < len(again), err  # the late one was, before or after
    report = json.loads(proc.stdout.read())
    lists = [lr for d in report["destinations"] for lr in d["lists"]]
    assert sum(lr["added"] for lr in lists) == BATCH
    assert not any(e for lr in lists for e in lr["errors"] if not e.startswith("interrupted:"))
    [journal] = journals(workspace.root / ".reconciler")
    summary = read_journal(journal)
    assert summary.outcome == "interrupted" and summary.in_flight == []
    finish(workspace, cli, emulator_server, scenario)


def test_ctrl_c_while_channel_removals_read_their_profiles_stops_the_reads(
    workspace, cli, emulator_server
):
    # A hybrid batch of removals with channelUnsubscribe reads up to two profiles each
    # before its unsubscribe (1,000 of them: 10 to 20 s at Iterable's 100 reads a second):
    # after Ctrl-C the batch read on to its end, for an unsubscribe then not sent.
    proj = emulator_server.emulator.project("default")
    vip = proj.add_list("vip")
    proj.subscribe_direct(vip, email="keep@example.com")
    leaving = [f"m{i}@example.com" for i in range(40)]
    for email in leaving:
        proj.subscribe_direct(vip, email=email)
    workspace.csv("data/vip.csv", "email", ["keep@example.com"])
    workspace.audience(
        "vip",
        {"csv": "data/vip.csv"},
        policy={"maxRemovalPercent": 100},
        unsubscribe={"channelUnsubscribe": True},
    )
    proc, err, reads = _ctrl_c_at_the_first_profile_read(workspace, emulator_server, "/api/users/")
    # The reads in flight or waiting for their turn then: not the rest of the batch.
    assert 0 < len(reads()) <= 4, (reads(), err)
    assert writes_seen(emulator_server) == 0
    report = json.loads(proc.stdout.read())
    (lr,) = [lr for d in report["destinations"] for lr in d["lists"]]
    assert lr["removed"] == 0 and lr["errors"] == [
        "interrupted: 40 of 40 removals were not sent"
    ], lr["errors"]
    again = cli("apply", workspace.manifests, "--yes")
    assert again.exit_code == 0, again.output
    assert proj.members(vip, False) == ["keep@example.com"]


def test_ctrl_c_while_waiting_for_a_new_list_to_take_writes_stops_the_wait(
    workspace, cli, emulator_server
):
    # A list created moments ago refuses writes (400 invalidListId) and apply waits for it
    # up to RECONCILER_FRESH_LIST_WAIT (60 s). Ctrl-C ends that wait: the batches waiting
    # on the list are not sent, and are reported so, not as refused by Iterable.
    scenario = build_scenario(workspace, emulator_server)
    emulator_server.emulator.faults.fresh_list_seconds = 600
    env = subprocess_env(workspace, RECONCILER_FRESH_LIST_WAIT="300")
    proc = spawn_cli(workspace, "apply", "manifests", "--yes", "--format", "json", env=env)
    stderr = StderrWatcher(proc)
    stderr.wait_for("does not accept writes to it yet", proc)
    code, err = ctrl_c_within(proc, stderr, "apply", seconds=20)
    assert code == 130, err
    report = json.loads(proc.stdout.read())
    beta = next(
        lr for d in report["destinations"] for lr in d["lists"] if lr["list_name"] == "beta"
    )
    assert beta["created"] and beta["added"] == 0
    assert beta["not_attempted_add"] == beta["planned_add"] == len(scenario.desired["beta"])
    assert [e for e in beta["errors"] if not e.startswith("interrupted:")] == []
    [journal] = journals(workspace.root / ".reconciler")
    assert read_journal(journal).in_flight == []
    for record in emulator_server.emulator.project("default").lists.values():
        record.fresh_until = 0.0  # the list's minute has passed
    finish(workspace, cli, emulator_server, scenario)


# -- SIGTERM: a cancelled GitHub Actions job, `docker stop`, Kubernetes, `timeout` ---------


def _locks(workspace):
    return list((workspace.root / ".reconciler" / "locks").glob("*.lock"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_during_apply_stops_as_ctrl_c_does(workspace, cli, emulator_server, sig):
    # Their default ended the process on the spot: no report, no run record, the journal
    # without an end, the lock left and members' files in the temporary directory.
    record = workspace.root / "run.json"
    scenario, proc = start(
        workspace, emulator_server, "--format", "json", "--summary-json", str(record)
    )
    code, out, err = signal_after_writes(emulator_server, proc, 4, sig)
    assert code == 130, err
    assert f"Interrupted by {sig.name}: finishing the requests in flight" in err
    report = json.loads(out)
    assert report["interrupted"] is True
    lists = [lr for d in report["destinations"] for lr in d["lists"]]
    assert sum(lr["not_attempted_add"] for lr in lists) > 0
    assert json.loads(record.read_text())["outcome"] == "interrupted"
    [journal] = journals(workspace.root / ".reconciler")
    assert read_journal(journal).outcome == "interrupted"
    assert _locks(workspace) == []
    assert list(private_tmp(workspace).glob("reconciler-*")) == []
    finish(workspace, cli, emulator_server, scenario)


def test_a_cancelled_ci_job_sigint_then_sigterm_stops_at_once_with_its_record(
    workspace, cli, emulator_server
):
    # GitHub Actions cancels a step with SIGINT, then SIGTERM 7.5 s later, then SIGKILL.
    scenario = build_scenario(workspace, emulator_server, adds=ADDS, creates=CREATES)
    emulator_server.emulator.faults.latency_seconds = 0.5  # in flight long enough to abandon
    env = subprocess_env(workspace, RECONCILER_BATCH_SIZE=str(BATCH), RECONCILER_CONCURRENCY="4")
    record = workspace.root / "run.json"
    proc = spawn_cli(workspace, "apply", "manifests", "--yes", "--summary-json", record, env=env)
    stderr = StderrWatcher(proc)
    wait_for_writes(emulator_server, proc, 3)
    proc.send_signal(signal.SIGINT)
    stderr.wait_for("Interrupted: finishing the requests in flight", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 130
    err = stderr.finish()
    assert "Stopped at once. Done before it stopped:" in err and "Traceback" not in err
    written = json.loads(record.read_text())
    assert written["outcome"] == "aborted" and "SIGTERM" in written["message"]
    summary = read_journal(journals(workspace.root / ".reconciler")[-1])
    assert summary.outcome == "aborted"
    assert _locks(workspace) == []
    finish(workspace, cli, emulator_server, scenario)


def test_sigterm_while_reading_iterable_changes_nothing_and_keeps_the_record(
    workspace, cli, emulator_server
):
    scenario = build_scenario(workspace, emulator_server)
    emulator_server.emulator.faults.latency_seconds = 1  # the first read hangs
    record = workspace.root / "run.json"
    proc = spawn_cli(
        workspace,
        "apply",
        "manifests",
        "--yes",
        "--summary-json",
        record,
        env=subprocess_env(workspace),
    )
    while not emulator_server.emulator.request_log:
        assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Interrupted." in err and "Traceback" not in err
    assert writes_seen(emulator_server) == 0
    assert json.loads(record.read_text())["outcome"] == "interrupted"
    assert _locks(workspace) == []
    finish(workspace, cli, emulator_server, scenario)


@pytest.mark.parametrize("command", ["plan", "status"])
def test_sigterm_stops_a_read_only_command_as_ctrl_c_does(workspace, cli, emulator_server, command):
    # Its default ended the process on the spot: members' private copies of the sources
    # stayed in the temporary directory (until a later run's sweep), and nothing was said.
    scenario = build_scenario(workspace, emulator_server)
    emulator_server.emulator.faults.latency_seconds = 1  # the first read hangs
    tmp = private_tmp(workspace)
    proc = spawn_cli(
        workspace, command, "manifests", env=subprocess_env(workspace, TMPDIR=str(tmp))
    )
    while not emulator_server.emulator.request_log:
        assert proc.poll() is None
    assert list(tmp.glob(f"reconciler-source-{proc.pid}-*"))  # copied
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Interrupted" in err and "Traceback" not in err
    assert list(tmp.glob("reconciler-*")) == []
    finish(workspace, cli, emulator_server, scenario)


def test_a_hangup_does_not_stop_an_apply_started_to_ignore_it(workspace, cli, emulator_server):
    # `nohup reconciler apply ...`: the hangup was to be ignored, and stays so.
    scenario = build_scenario(workspace, emulator_server, adds=ADDS, creates=CREATES)
    emulator_server.emulator.faults.latency_seconds = 0.02
    env = subprocess_env(workspace, RECONCILER_BATCH_SIZE=str(BATCH), RECONCILER_CONCURRENCY="4")
    proc = subprocess.Popen(
        [sys.executable, "-c", main_code(hangup="SIG_IGN"), "apply", "manifests", "--yes"],
        cwd=workspace.root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_writes(emulator_server, proc, 4)
    proc.send_signal(signal.SIGHUP)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Interrupted" not in err
    assert_exactly_desired(emulator_server, scenario)


def test_an_interrupted_saved_plan_says_to_apply_the_manifests_not_the_plan_again(
    workspace, cli, emulator_server
):
    # Once part of a saved plan is applied, the plan no longer matches Iterable: `apply
    # --plan` again is refused as stale, so "run apply again" has to say which apply.
    scenario = build_scenario(workspace, emulator_server, adds=ADDS, creates=CREATES)
    saved = workspace.root / "reviewed.plan"
    made = cli("plan", workspace.manifests, "--out", str(saved))
    assert saved.is_file(), made.output
    emulator_server.emulator.faults.latency_seconds = 0.05
    env = subprocess_env(workspace, RECONCILER_BATCH_SIZE=str(BATCH), RECONCILER_CONCURRENCY="4")
    proc = spawn_cli(workspace, "apply", "--plan", str(saved), "--yes", env=env)
    code, _out, err = signal_after_writes(emulator_server, proc, 4, signal.SIGINT)
    assert code == 130, err
    assert "Run `reconciler apply` on the manifests again (not --plan" in err
    emulator_server.emulator.faults.latency_seconds = 0.0
    assert cli("apply", "--plan", str(saved), "--yes").exit_code == 4  # stale, as it said
    finish(workspace, cli, emulator_server, scenario)


# -- a manifest's DuckDB query running when the signal comes ---------------------------------

FOREVER = "SELECT 'a' || range::VARCHAR || '@x.com' AS email FROM range(10000000000000)"


def _cpu_seconds(pid: int) -> float:
    """CPU time the process has used: once it is well past start-up, the query is running."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize(
    ("command", "sig", "time_limit"),
    [
        ("validate", signal.SIGINT, ""),
        ("plan", signal.SIGINT, ""),
        ("plan", signal.SIGTERM, ""),
        # The largest it takes (env_numbers.MAX_VALUE): 1e10 is refused now.
        ("validate", signal.SIGTERM, "1000000000"),
    ],
    ids=["validate-Ctrl-C", "plan-Ctrl-C", "plan-SIGTERM", "validate-SIGTERM-no-time-limit"],
)
def test_a_signal_while_a_manifest_query_runs_ends_the_command_at_once(
    workspace, emulator_server, command, sig, time_limit
):
    """Python runs signal handlers only between bytecodes, and the main thread waited in
    DuckDB (the row count of a query source): Ctrl-C and SIGTERM did nothing until the
    query's time limit, 5 minutes, then ended as the time limit's error or an internal one.
    A pre-commit hook or a cancelled CI job must stop at once, with 130.

    RECONCILER_QUERY_TIMEOUT=1e10 (a time limit meant as none) made the thread watching for
    the limit and the signals die at its first wait, longer than select() takes: the
    query then ran for ever, and SIGTERM (`timeout 15 reconciler validate`) did nothing."""
    workspace.audience("q", {"sql": FOREVER, "database": ":memory:"})
    env = subprocess_env(workspace)
    if time_limit:
        env["RECONCILER_QUERY_TIMEOUT"] = time_limit
    proc = spawn_cli(workspace, command, "manifests", env=env)
    stderr = StderrWatcher(proc)
    while _cpu_seconds(proc.pid) < 2.5:  # imports take well under a second of CPU
        assert proc.poll() is None, stderr.text
        time.sleep(0.05)
    proc.send_signal(sig)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{command} still running 30 s after the signal") from None
    err = stderr.finish()
    assert code == 130, err
    assert f"Interrupted: nothing was changed ({command} only reads)" in err
    assert "internal error" not in err and "ran longer than" not in err


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_sigterm_while_a_sqlite_query_runs_ends_validate_at_once(workspace, emulator_server):
    """SQLite runs a query in C, where Python's signal handlers wait: `timeout 15 reconciler
    validate` over a recursive CTE without an end ran on past SIGTERM until SIGKILL."""
    import sqlite3

    database = workspace.root / "crm.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE people (email TEXT)")
    connection.close()
    forever = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
        "SELECT email FROM people, n WHERE i < 0"
    )
    workspace.audience("q", {"sql": forever, "url": f"sqlite:///{database}"})
    proc = spawn_cli(workspace, "validate", "manifests", env=subprocess_env(workspace))
    stderr = StderrWatcher(proc)
    while _cpu_seconds(proc.pid) < 2.5:  # imports take well under a second of CPU
        assert proc.poll() is None, stderr.text
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("validate still running 30 s after SIGTERM") from None
    err = stderr.finish()
    assert code == 130, err
    assert "Interrupted: nothing was changed (validate only reads)" in err
    assert "internal error" not in err and "ran longer than" not in err


def _two_ctrl_c_then(real):
    """`real`, called after two Ctrl-Cs: the first says the apply is over, the second is
    the one meant to stop what is left. Sent from inside the run, at the moment they stand
    for: no timing."""

    def twice(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    return twice


@pytest.mark.parametrize("where", ["writing down", "printing"])
def test_a_second_ctrl_c_after_the_work_stops_only_the_report(
    workspace, cli, emulator_server, monkeypatch, where
):
    """A second Ctrl-C while a finished apply wrote down what it did (its rejected members'
    file) left a run record saying "interrupted", with no lists, and the rejected members
    saved nowhere; one while its report printed ended it with 130 and no word. The journal,
    the rejected members and the run record are written first; only the report stops."""
    from reconciler.apply import run
    from reconciler.cli import apply as apply_command

    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    if where == "writing down":
        monkeypatch.setattr(run, "write_rejected", _two_ctrl_c_then(run.write_rejected))
    else:
        monkeypatch.setattr(apply_command, "_print_report", _two_ctrl_c_then(lambda *a: True))
    record = workspace.root / "run.json"
    result = cli("apply", workspace.manifests, "--yes", "--summary-json", record)

    assert result.exit_code == 130, result.output
    assert "Apply complete" not in result.stdout
    assert result.stderr.endswith(
        "Report stopped by a second Ctrl-C: the apply is over (outcome: success); its run "
        f"journal and its run record ({record}) are written.\n"
    ), result.stderr
    assert "Traceback" not in result.stderr
    written = json.loads(record.read_text())
    assert written["outcome"] == "success"
    assert [entry["list_name"] for entry in written["lists"]] == ["vip"]
    [journal] = journals(workspace.root / ".reconciler")
    assert read_journal(journal).outcome == "success"
    assert sorted(members_of(emulator_server, "vip")) == ["a@example.com", "b@example.com"]


def test_a_second_ctrl_c_before_the_report_still_prints_one_json_object(
    workspace, cli, emulator_server, monkeypatch
):
    from reconciler.apply import run

    workspace.audience("vip", {"inline": ["a@example.com"]})
    monkeypatch.setattr(run, "write_rejected", _two_ctrl_c_then(run.write_rejected))
    result = cli("apply", workspace.manifests, "--yes", "--format", "json")
    assert result.exit_code == 130, result.output
    answer = json.loads(result.stdout)
    assert answer["exit_code"] == 130
    assert answer["error"].startswith("report stopped by a second Ctrl-C: the apply is over")


def test_ctrl_c_after_a_removal_answered_short_stops_its_follow_up_reads(
    workspace, cli, emulator_server
):
    # A hybrid removal keyed by userId that Iterable answers by counts that fall short
    # (as it often answers) reads each text it left unnamed by userId (GET byUserId), then
    # sends those no profile has again as emails. After Ctrl-C those reads went on, each
    # through its rate-limit wait (40 here at 1 a second), and then the second unsubscribe
    # was sent: the unsubscribe already sent made the step one that "may have taken effect".
    # The reads and that second request now stop; the 40 are reported as not sent.
    emulator_server.emulator.faults.counts_only_answers = True
    proj = emulator_server.emulator.project("default")
    vip = proj.add_list("vip")
    proj.subscribe_direct(vip, email="keep@example.com", user_id="keep")
    carols = [f"carol{i:02d}@example.com" for i in range(40)]
    for carol in carols:
        proj.subscribe_direct(vip, email=carol)  # no userId: named by email
    workspace.csv("data/vip.csv", "userId", ["keep"])
    workspace.audience("vip", {"csv": "data/vip.csv"}, policy={"maxRemovalPercent": 100})
    proc, err, reads = _ctrl_c_at_the_first_profile_read(
        workspace, emulator_server, "/api/users/byUserId/"
    )
    # The read in flight or waiting for its turn then: not the rest of the batch.
    assert 0 < len(reads()) <= 3, (reads(), err)
    unsubscribes = [
        r for r in emulator_server.emulator.request_log if r.path == "/api/lists/unsubscribe"
    ]
    assert len(unsubscribes) == 1, err
    report = json.loads(proc.stdout.read())
    (lr,) = [lr for d in report["destinations"] for lr in d["lists"]]
    assert (lr["removed"], lr["already_gone"], lr["not_attempted_remove"]) == (0, 0, 40), lr
    assert lr["errors"] == ["interrupted: 40 of 40 removals were not sent"], lr["errors"]
    assert len(proj.members(vip, True)) == 41
    # What was sent is in the run journal; the next apply reads the list and finishes.
    again = cli("apply", workspace.manifests, "--yes")
    assert again.exit_code == 0, again.output
    assert proj.members(vip, True) == ["keep"]


def test_ctrl_c_while_a_create_whose_answer_was_lost_is_looked_for_stops_looking(
    workspace, cli, emulator_server
):
    # A create answered 503 may or may not have been done, so the list index is watched up
    # to RECONCILER_READ_LAG (60 s) a try, for up to 7 tries, before it is sent again. Ctrl-C
    # let that run on (here 300 s a try), and then sent the create again: a new write after
    # "starting no more". It now stops looking at once; the list's creation is reported as
    # unknown, its members as not sent, and the next apply reads the index afresh.
    emulator = emulator_server.emulator
    original = emulator.handle
    creates = []

    def handle(request):
        if request.method == "POST" and request.url.path == "/api/lists":
            creates.append(request)
            return fault_reply(503, None)  # refused before anything was done
        return original(request)

    emulator.handle = handle  # type: ignore[method-assign]
    workspace.audience("lost", {"inline": ["a@example.com"]})
    env = subprocess_env(workspace, RECONCILER_READ_LAG="300")
    proc = spawn_cli(workspace, "apply", "manifests", "--yes", "--format", "json", env=env)
    stderr = StderrWatcher(proc)
    stderr.wait_for("so the list may or may not have been created", proc)
    code, err = ctrl_c_within(proc, stderr, "apply", seconds=20)
    assert len(creates) == 1, err
    assert code == 130, err
    report = json.loads(proc.stdout.read())
    (lr,) = [lr for d in report["destinations"] for lr in d["lists"]]
    assert not lr["created"] and lr["added"] == 0, lr
    assert any("interrupted before Iterable's list index showed" in e for e in lr["errors"]), lr
    emulator.handle = original  # type: ignore[method-assign]
    again = cli("apply", workspace.manifests, "--yes")
    assert again.exit_code == 0, again.output
    (list_id,) = [i for i, r in emulator.project("default").lists.items() if r.name == "lost"]
    assert emulator.project("default").members(list_id) == ["a@example.com"]


def _ctrl_c_at_the_first_profile_read(
    workspace: Workspace, emulator_server: EmulatorServer, prefix: str
) -> tuple[subprocess.Popen[bytes], str, Callable[[], list[str]]]:
    """An apply of the workspace's manifests reading profiles one a second, one at a time
    (not by an export), given Ctrl-C at its first read of a path starting with `prefix`:
    the process, its stderr and the reads so far (asked again), once it exited 130."""
    env = subprocess_env(
        workspace,
        RECONCILER_USER_READS_PER_SECOND="1",  # 40 reads: 40 s and more
        RECONCILER_MEMBER_READS="getUsers",
        RECONCILER_BULK_READ_FIRST_BYTE="3600",  # so the model reads each, not an export
        RECONCILER_CONCURRENCY="1",
    )
    proc = spawn_cli(workspace, "apply", "manifests", "--yes", "--format", "json", env=env)
    stderr = StderrWatcher(proc)

    def reads() -> list[str]:
        log = list(emulator_server.emulator.request_log)
        return [r.path for r in log if r.path.startswith(prefix)]

    deadline = time.monotonic() + 60
    while not reads() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    code, err = ctrl_c_within(proc, stderr, "apply", seconds=120)
    assert code == 130, err
    return proc, err, reads
