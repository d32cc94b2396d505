"""Shared by the reliability tests (issue 8): a mid-sized apply that creates a list, adds
and removes members, and the checks that Iterable ends exactly as the manifests say and
that a report never claims more than happened."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from reconciler.emulator import EmulatorServer
from reconciler.emulator.replies import EmulatorResponse
from tests.integration.conftest import API_KEY_VAR, Workspace

KEEP = [f"keep{i}@example.com" for i in range(100)]
OLD = [f"old{i}@example.com" for i in range(50)]


@dataclass
class Scenario:
    """Before: list alpha holds KEEP + OLD, beta does not exist. After: alpha holds KEEP and
    `adds` new alpha* members (50 removed), beta is created with `creates` beta* members."""

    desired: dict[str, set[str]]


def build_scenario(
    workspace: Workspace, server: EmulatorServer, adds: int = 400, creates: int = 600
) -> Scenario:
    proj = server.emulator.project("default")
    alpha = proj.add_list("alpha")
    for email in KEEP + OLD:
        proj.subscribe_direct(alpha, email=email)
    new_alpha = [f"alpha{i}@example.com" for i in range(adds)]
    beta = [f"beta{i}@example.com" for i in range(creates)]
    workspace.csv("data/alpha.csv", "email", KEEP + new_alpha)
    workspace.csv("data/beta.csv", "email", beta)
    workspace.audience("alpha", {"csv": "data/alpha.csv"}, policy={"maxRemovalPercent": 100})
    workspace.audience("beta", {"csv": "data/beta.csv"})
    return Scenario({"alpha": set(KEEP + new_alpha), "beta": set(beta)})


def lists_by_name(server: EmulatorServer) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for list_id, record in server.emulator.project("default").lists.items():
        out.setdefault(record.name, []).append(list_id)
    return out


def members_of(server: EmulatorServer, name: str) -> list[str]:
    ids = lists_by_name(server).get(name, [])
    assert len(ids) <= 1, f"list {name!r} exists {len(ids)} times: {ids}"
    return server.emulator.project("default").members(ids[0]) if ids else []


def assert_exactly_desired(server: EmulatorServer, scenario: Scenario) -> None:
    """Each list once, each member once, nothing missing, nothing extra, no user twice."""
    by_name = lists_by_name(server)
    assert {name: len(ids) for name, ids in by_name.items()} == dict.fromkeys(scenario.desired, 1)
    for name, want in scenario.desired.items():
        got = members_of(server, name)
        assert len(got) == len(set(got)), f"{name}: a member is on the list twice"
        missing, extra = want - set(got), set(got) - want
        assert not missing and not extra, (
            f"{name}: {len(missing)} missing (e.g. {sorted(missing)[:3]}), "
            f"{len(extra)} extra (e.g. {sorted(extra)[:3]})"
        )
    emails = [u.email for u in server.emulator.project("default").users.values() if u.email]
    assert len(emails) == len(set(emails)), "a user profile was created twice"


def assert_report_within_reality(report: dict, server: EmulatorServer) -> None:
    """What the report says was done really happened (it may say less: an answer lost in
    transit leaves work done that the run could not confirm)."""
    for dest in report["destinations"]:
        for lr in dest["lists"]:
            live = set(members_of(server, lr["list_name"]))
            if lr["list_name"] == "alpha":
                added = sum(m.startswith("alpha") for m in live)
                removed = len(set(OLD) - live)
            else:
                added = len(live)
                removed = 0
            assert lr["added"] <= added, (lr["list_name"], lr["added"], added)
            assert lr["removed"] <= removed, (lr["list_name"], lr["removed"], removed)
            if lr["created"]:
                assert lists_by_name(server).get(lr["list_name"]), lr["list_name"]


def subprocess_env(workspace: Workspace, **extra: str) -> dict[str, str]:
    """The environment for `python -m reconciler.cli` against the test's emulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    env.update(
        {
            API_KEY_VAR: os.environ.get(API_KEY_VAR, "test-key"),
            "RECONCILER_LIST_READS_PER_MINUTE": "100000",
            "RECONCILER_BACKOFF_BASE": "0.001",
            "RECONCILER_BACKOFF_CAP": "0.01",
            "RECONCILER_TIMEOUT": "5",
            "PYTHONUNBUFFERED": "1",
        }
    )
    # The read-lag and fresh-list bounds the fixtures chose for this emulator (conftest.py).
    for name in ("RECONCILER_READ_LAG", "RECONCILER_FRESH_LIST_WAIT"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra)
    return env


def main_code(hangup: str = "SIG_DFL") -> str:
    """`python -c` code starting the CLI as a terminal starts it, with Ctrl-C raising
    KeyboardInterrupt and a hangup at `hangup`, whatever the test runner inherited: a runner
    started in the background by a script (`pytest &`) has SIGINT ignored, one started
    under `nohup` SIGHUP, and a child inherits both, so signal tests failed for how they
    were run (reconciler leaves an ignored hangup ignored, as `nohup` asks)."""
    return (
        "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        f"signal.signal(signal.SIGHUP, signal.{hangup}); "
        "runpy.run_module('reconciler.cli', run_name='__main__', alter_sys=True)"
    )


_MAIN = main_code()


def spawn_cli(workspace: Workspace, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _MAIN, *args],
        cwd=workspace.root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def signal_masks(pid: int) -> str:
    """Where a process's threads stand with Ctrl-C, as Linux shows them (its /proc): for a
    test's failure saying why a process did not act on a signal. Each thread's id, state
    and whether it blocks SIGINT; and SIGINT pending for the process (every thread blocks
    it) or for one thread. Neither pending nor blocked in the main thread: a thread took
    it and the main thread never ran its handler. Empty where there is no /proc."""
    tasks = Path(f"/proc/{pid}/task")
    try:
        ids = sorted(tasks.iterdir(), key=lambda t: int(t.name))
    except OSError:
        return ""
    lines = []
    for task in ids:
        try:
            fields = dict(line.split(":", 1) for line in (task / "status").read_text().splitlines())
        except (OSError, ValueError):
            continue  # ended meanwhile

        def has_sigint(name: str, fields: dict[str, str] = fields) -> bool:
            return bool(int(fields[name].strip(), 16) & 2)

        main = " (main)" if task.name == str(pid) else ""
        lines.append(
            f"thread {task.name}{main} {fields['State'].strip()}: SIGINT "
            f"{'blocked' if has_sigint('SigBlk') else 'unblocked'}"
            f"{', ignored' if has_sigint('SigIgn') else ''}"
            f"{', pending here' if has_sigint('SigPnd') else ''}"
            f"{', pending for the process' if main and has_sigint('ShdPnd') else ''}"
        )
    return "\n".join(lines)


def journals(state_dir: Path) -> list[Path]:
    return sorted((state_dir / "runs").glob("apply-*.jsonl"))


WRITES = ("POST", "DELETE")


def writes_seen(server: EmulatorServer) -> int:
    """Writes the emulator has handled (it logs a request once it has acted on it)."""
    return sum(
        1
        for r in list(server.emulator.request_log)
        if r.method in WRITES and r.path.startswith("/api/")
    )


def wait_for_writes(server: EmulatorServer, proc: subprocess.Popen[str], count: int) -> None:
    deadline = time.monotonic() + 30
    while writes_seen(server) < count:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"apply ended before {count} writes:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {count} writes within 30 s")
        time.sleep(0.002)


@contextmanager
def writes_held_after(server: EmulatorServer, count: int) -> Iterator[threading.Event]:
    """Once the emulator has handled `count` writes, later ones wait (unanswered, in
    flight) until the event yielded is set, or the block ends: a test signalling a run
    after `count` writes knows it is still running then, however long the machine kept
    the test from sending the signal (a run of 60 batches ended first at load 20)."""
    release = threading.Event()
    handle = server.emulator.handle
    lock = threading.Lock()
    handled = threading.Semaphore(0)  # one release per held request handled
    held_count = 0

    def held(request: httpx.Request) -> EmulatorResponse:
        nonlocal held_count
        hold = request.method in WRITES and request.url.path.startswith("/api/")
        with lock:
            hold = hold and not release.is_set() and writes_seen(server) >= count
            held_count += hold
        if not hold:
            return handle(request)
        try:
            release.wait(60)
            return handle(request)
        finally:
            handled.release()

    server.emulator.handle = held  # type: ignore[method-assign]
    try:
        yield release
    finally:
        with lock:
            release.set()
        # The held requests are acted on now (as Iterable acts on a request whose client
        # died): wait for them, so what the test does next sees their effect.
        for _ in range(held_count):
            handled.acquire(timeout=30)
        server.emulator.handle = handle  # type: ignore[method-assign]


@contextmanager
def requests_held(server: EmulatorServer) -> Iterator[threading.Event]:
    """Every API request waits, unanswered, until the block ends; the event yielded is set
    once one has arrived: a run is then known to be at that request, for as long as the
    test needs, however loaded the machine."""
    arrived, release = threading.Event(), threading.Event()
    handle = server.emulator.handle

    def held(request: httpx.Request) -> EmulatorResponse:
        if request.url.path.startswith("/api/"):
            arrived.set()
            release.wait(120)
        return handle(request)

    server.emulator.handle = held  # type: ignore[method-assign]
    try:
        yield arrived
    finally:
        release.set()
        server.emulator.handle = handle  # type: ignore[method-assign]


def signal_after_writes(
    server: EmulatorServer, proc: subprocess.Popen[str], count: int, sig: int
) -> tuple[int, str, str]:
    """Send `sig` to a running apply once `count` writes are done, the rest held until it
    says it was interrupted; then its exit code, stdout and stderr."""
    stderr = StderrWatcher(proc)
    with writes_held_after(server, count):
        wait_for_writes(server, proc, count)
        proc.send_signal(sig)
        stderr.wait_for("Interrupted", proc)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"still running 30 s after {sig!r}: {stderr.text}") from None
    assert proc.stdout is not None
    return code, proc.stdout.read(), stderr.finish()


class StderrWatcher:
    """Collects a child's stderr on a thread, so a test can wait for a line while the
    child runs (communicate() would wait for it to end)."""

    def __init__(self, proc: subprocess.Popen[str]):
        assert proc.stderr is not None
        self._stream = proc.stderr
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            self.lines.append(line)

    def wait_for(self, text: str, proc: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 30
        while not any(text in line for line in self.lines):
            assert proc.poll() is None, f"ended before printing {text!r}: {self.text}"
            assert time.monotonic() < deadline, f"no {text!r} within 30 s: {self.text}"
            time.sleep(0.005)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def finish(self) -> str:
        self._thread.join(timeout=30)
        return self.text
