"""The run journal: what one apply set out to do, and what came of each request, as JSON
lines in `<state dir>/runs/apply-n<number>-<UTC time>-<pid>.jsonl` (one file per apply that
writes). The number, one more than the state dir's highest, orders the runs: the time is
the machine's clock, which can be set back (NTP stepping a drifted clock, a VM restored
from a snapshot), and a run ordered by it would sort before the one it followed.
Journals named before the number (`apply-<UTC time>-<pid>.jsonl`) sort before every
numbered one, by their time, as they always did.

Each step's intent is written, and handed to the operating system, before its request is
sent, and its outcome right after; so when a run is killed the file still shows what was
done, what was in flight (an intent without an outcome: it may or may not have taken
effect) and what never started. Correctness never depends on it: the next apply reads
Iterable afresh and plans from what is there.

What a line may hold: counts, destination and list names, list ids, and the error messages
the report shows, masked as the report masks them by default. Never the API key (the
journal is never given it) and no member identifiers, also where an error from Iterable
quotes its request back (a server may echo its input): it is a log kept for the last 100
runs, not a second copy of the audience (the members Iterable rejected are in the
owner-only `rejected-*.csv` beside it, which is what it is for).

    {"event": "run_started", "at": ..., "format_version": 1, "pid": ..., "lists": [...]}
    {"event": "intent", "step": 3, "op": "subscribe", "destination": ..., "list": ...,
     "list_id": ..., "members": 1000}
    {"event": "outcome", "step": 3, "status": "done", "succeeded": 998, "rejected": 2}
    {"event": "outcome", "step": 4, "status": "failed", "error": "..."}
    {"event": "run_finished", "outcome": "success"|"failed"|"interrupted"|"error", ...}
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from reconciler import __version__
from reconciler.errors import ReconcilerError, WriteNotSent
from reconciler.open_flags import BINARY
from reconciler.owner_only import owner_only_directories
from reconciler.plan import Plan
from reconciler.processes import running
from reconciler.render.masking import marking_sent, mask_emails
from reconciler.words import quantity

# The journal's format, in its first line: raised when a line's key goes or changes its
# meaning (a key added keeps it), so a reader of journals kept across upgrades (the next
# apply's note, a person after a crash) can tell; every build of a release writes the same
# reconciler_version. A journal without it was written before it.
JOURNAL_FORMAT = 1

RUNS_DIR = "runs"
PREFIX = "apply-"
SUFFIX = ".jsonl"
KEEP = 100  # journals kept per state dir; older ones are removed when a run starts
# A run's number, zero-padded so that names sort as numbers do; `n` sorts after the digits
# of the names written before it (`apply-2026...`), so those sort first.
_NUMBERED = re.compile(r"n(?P<number>[0-9]+)-")
_NUMBER_WIDTH = 10

# What each operation moves, for the totals: created lists, added members, ...
_TOTAL_OF = {
    "create_list": "lists_created",
    "subscribe": "members_added",
    "unsubscribe": "members_removed",
    "delete_list": "lists_deleted",
}


def _done(t: dict[str, int]) -> str:
    return (
        f"{quantity(t['lists_created'], 'list')} created, "
        f"{quantity(t['members_added'], 'member')} added, "
        f"{t['members_removed']:,} removed, {quantity(t['lists_deleted'], 'list')} deleted"
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def runs_dir(state_dir: Path) -> Path:
    return state_dir / RUNS_DIR


class Step:
    """One request in flight; `done(...)` records its outcome (see Journal.step)."""

    def __init__(self, journal: Journal, number: int, op: str, destination: str = ""):
        self._journal = journal
        self.number = number
        self.op = op
        self.destination = destination
        self.finished = False

    def done(self, **fields: Any) -> None:
        self._journal._outcome(self, "done", fields)


class Journal:
    """Append-only, thread-safe; a journal without a path records nothing."""

    def __init__(self, path: Path | None, handle: IO[str] | None):
        self.path = path
        self._handle = handle
        # Reentrant: a second Ctrl-C ends the journal from a signal handler, which can run
        # while the main thread is inside _write.
        self._lock = threading.RLock()
        self._steps = 0
        self.totals: dict[str, int] = dict.fromkeys(_TOTAL_OF.values(), 0)
        # The same, per destination, in the order their first requests were sent.
        self.by_destination: dict[str, dict[str, int]] = {}
        self.in_flight = 0
        self.failed = 0
        self.finished = False
        # The write that failed (a full disk mid-run), after which nothing more is written:
        # the run goes on, since stopping would leave it half-applied for want of a log.
        self.lost: OSError | None = None
        self.lost_at_step = 0
        # When (time.monotonic()) this run's last request to each destination ended, kept
        # here too: the file may be lost, and Iterable's reads lag from then on. Not the
        # wall clock, which the lines' `at` is by: the wait at the end of the run is timed
        # from this (apply/reads_lag.py), and a wall clock stepped during the run (an NTP
        # step, a VM's clock corrected) moved it by the step.
        self.last_write_at: dict[str, float] = {}

    @classmethod
    def disabled(cls) -> Journal:
        return cls(None, None)

    @classmethod
    def start(cls, state_dir: Path, plan: Plan) -> Journal:
        """A new journal, its first line written. A state dir it cannot be written in (read
        only, full) is a ReconcilerError: nothing has been sent yet."""
        directory = runs_dir(state_dir)
        try:
            owner_only_directories(state_dir, directory)
            _prune(directory)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
            number = next_number(directory, PREFIX, SUFFIX)
            path = directory / f"{PREFIX}{number}{stamp}-{os.getpid()}{SUFFIX}"
            # Owner-only from the first byte: list names and errors are nobody else's business.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | BINARY, 0o600)
        except OSError as exc:
            raise _unwritable(directory, exc) from None
        journal = cls(path, os.fdopen(fd, "w", encoding="utf-8"))
        journal._write(
            {
                "event": "run_started",
                "format_version": JOURNAL_FORMAT,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "reconciler_version": __version__,
                "lists": [
                    {
                        "destination": d.destination,
                        "list": lp.list_name,
                        "list_id": lp.list_id,
                        "create": lp.create,
                        "add": len(lp.add),
                        "remove": len(lp.remove),
                    }
                    for d in plan.destinations
                    for lp in d.lists
                    if lp.has_changes
                ],
                "deletions": [
                    {"destination": d.destination, "list": x.list_name, "list_id": x.list_id}
                    for d in plan.destinations
                    for x in d.deletions
                ],
            }
        )
        if journal.lost is not None:
            path.unlink(missing_ok=True)  # a journal without its start would mislead
            raise _unwritable(directory, journal.lost)
        return journal

    @contextmanager
    def step(
        self,
        op: str,
        destination: str,
        list_name: str,
        *,
        list_id: int | None = None,
        members: int | None = None,
        sent: Callable[[], Iterable[Any]] | None = None,
    ) -> Iterator[Step]:
        """Record the intent now and the outcome when the block ends: `step.done(...)`, or
        failed with the error's message when it raises. Leaving without either (a crash)
        leaves the intent unanswered, which is exactly what a reader should see. `sent`
        gives the request's payloads, asked for only when it fails: the values an error
        quotes back from them are masked (a userId has no shape to be recognised by)."""
        with self._lock:
            self._steps += 1
            number = self._steps
            self.in_flight += 1
            self.by_destination.setdefault(destination, dict.fromkeys(_TOTAL_OF.values(), 0))
        current = Step(self, number, op, destination)
        intent: dict[str, Any] = {
            "event": "intent",
            "step": number,
            "op": op,
            "destination": destination,
            "list": list_name,
        }
        if list_id is not None:
            intent["list_id"] = list_id
        if members is not None:
            intent["members"] = members
        self._write(intent)
        try:
            yield current
        except ReconcilerError as exc:
            text = marking_sent(str(exc), sent()) if sent is not None else str(exc)
            self._outcome(current, "failed", {"error": mask_emails(text)})
            raise
        except WriteNotSent:
            self._outcome(current, "not_sent", {})
            raise
        except Exception as exc:
            # Not written for users, so only its type: a message could hold anything.
            self._outcome(current, "failed", {"error": f"internal error: {type(exc).__name__}"})
            raise
        except BaseException:
            # Ctrl-C a second time: the request may or may not have been answered.
            self._outcome(current, "unknown", {"error": "stopped at once while in flight"})
            raise
        if not current.finished:
            current.done()

    def finish(self, outcome: str, message: str | None = None, **fields: Any) -> None:
        if self.finished:
            return
        self.finished = True
        line: dict[str, Any] = {"event": "run_finished", "outcome": outcome, **self.totals}
        if message is not None:
            line["message"] = mask_emails(message)  # an error may quote anything
        line.update(fields)
        self._write(line)
        with self._lock:
            if self._handle is not None and not self._handle.closed:
                self._close()

    def describe_lost(self) -> str | None:
        """What a failed write left out of the journal, for people; None when nothing."""
        if self.lost is None:
            return None
        return (
            f"warning: could not write the run journal {self.path} from request "
            f"{self.lost_at_step} on ({self.lost.strerror or type(self.lost).__name__}); "
            "the apply went on without it, and its report is complete"
        )

    def describe_done(self) -> str:
        """What the run did so far, for people: per destination when it wrote to several
        (a total over a US and an EU project would not say which holds what)."""
        if len(self.by_destination) > 1:
            text = "; ".join(
                f"destination {name!r}: {_done(totals)}"
                for name, totals in self.by_destination.items()
            )
        else:
            text = _done(self.totals)
        if self.in_flight:
            were = "request was" if self.in_flight == 1 else "requests were"
            text += f"; {self.in_flight:,} {were} in flight and may or may not have taken effect"
        return text

    def _outcome(self, step: Step, status: str, fields: dict[str, Any]) -> None:
        if step.finished:
            return
        step.finished = True
        with self._lock:
            self.in_flight -= 1
            if status != "not_sent":
                self.last_write_at[step.destination] = time.monotonic()
            if status == "done":
                total = _TOTAL_OF.get(step.op)
                if total is not None:
                    counted = fields.get("succeeded", 1 if step.op.endswith("_list") else 0)
                    self.totals[total] += int(counted)
                    self.by_destination[step.destination][total] += int(counted)
            elif status == "failed":
                self.failed += 1
        self._write({"event": "outcome", "step": step.number, "status": status, **fields})

    def _write(self, line: dict[str, Any]) -> None:
        if self._handle is None:
            return
        text = json.dumps({"at": _now(), **line}, separators=(",", ":")) + "\n"
        with self._lock:
            if self._handle.closed:
                return
            try:
                self._handle.write(text)
                # To the OS now: a killed process loses nothing it wrote (fsync would only
                # add power-loss safety, at a disk flush per request).
                self._handle.flush()
            except OSError as exc:
                self.lost, self.lost_at_step = exc, self._steps
                self._close()

    def _close(self) -> None:
        """Close the file; what a full disk kept from it is lost either way."""
        assert self._handle is not None
        try:
            self._handle.close()
        except OSError as exc:
            self.lost = self.lost or exc


@dataclass
class JournalSummary:
    """What a journal file says about its run."""

    path: Path
    started_at: str | None = None
    pid: int | None = None
    host: str | None = None
    outcome: str | None = None  # None: the run never finished (killed, or still running)
    done: int = 0
    failed: int = 0
    in_flight: list[dict[str, Any]] = field(default_factory=list)  # intents never answered

    def describe_unfinished(self) -> str:
        text = (
            f"note: the apply started at {self.started_at} (pid {self.pid}) stopped without "
            f"finishing: {quantity(self.done, 'request')} done, {self.failed:,} failed"
        )
        if self.in_flight:
            text += f", {len(self.in_flight):,} in flight whose outcome is unknown"
        return (
            text + f" (see {self.path}). This run reads Iterable as it is now, so its plan "
            "includes whatever that run left undone."
        )


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    """A journal's events; a torn line (the process died mid-write) is passed over."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        for raw in handle:
            try:
                line = json.loads(raw)
            except (ValueError, RecursionError):  # nested too deep for the parser: damaged
                continue
            if isinstance(line, dict):
                yield line


def read_journal(path: Path) -> JournalSummary:
    """Summarise a journal; a torn last line (the process died mid-write) is ignored."""
    summary = JournalSummary(path)
    intents: dict[int, dict[str, Any]] = {}
    for line in _lines(path):
        event = line.get("event")
        if event == "run_started":
            summary.started_at = line.get("at")
            summary.pid = line.get("pid")
            summary.host = line.get("host")
        elif event == "intent" and isinstance(line.get("step"), int):
            intents[line["step"]] = line
        elif event == "outcome":
            step = line.get("step")
            if isinstance(step, int):  # a line of another shape (damaged) settles nothing
                intents.pop(step, None)
            if line.get("status") == "done":
                summary.done += 1
            elif line.get("status") == "failed":
                summary.failed += 1
        elif event == "run_finished":
            summary.outcome = line.get("outcome")
    summary.in_flight = list(intents.values())
    return summary


def journal_files(state_dir: Path) -> list[Path]:
    """Every journal in the state dir, oldest first (the names sort by run number, those
    written before numbers first, by start time)."""
    return sorted(runs_dir(state_dir).glob(f"{PREFIX}*{SUFFIX}"))


def next_number(directory: Path, prefix: str, suffix: str) -> str:
    """The number part of the next file `<prefix><number><time>-<pid><suffix>` in
    `directory` (`n0000000007-`): one more than the highest of its files (1 for none), so
    that, whatever the clock says, a run's file sorts after every earlier run's, and files
    named before numbers (`<prefix><time>...`) sort first. Two applies started at once (on
    other destinations) may take one number; their names still differ, by time and pid.
    The journals' and the rejected-member files' (apply/rejected.py)."""
    numbers = (
        _NUMBERED.match(path.name, len(prefix)) for path in directory.glob(f"{prefix}n*{suffix}")
    )
    highest = max((int(found["number"]) for found in numbers if found), default=0)
    return f"n{highest + 1:0{_NUMBER_WIDTH}d}-"


def last_unfinished(state_dir: Path) -> JournalSummary | None:
    """The most recent run, if it never wrote its end: killed, crashed or still running."""
    files = journal_files(state_dir)
    if not files:
        return None
    try:
        summary = read_journal(files[-1])
    except OSError:
        # Not readable (a file another user's `sudo` run left, a directory of its name):
        # the note is for people, and no run may fail for want of it.
        return None
    if summary.outcome is not None:
        return None
    if summary.host == socket.gethostname() and isinstance(summary.pid, int):
        if summary.pid == os.getpid():
            # Not this run's (it has not started its journal): an earlier process that had
            # this pid, as a restarted container's apply does.
            return summary
        if not running(summary.pid):
            return summary
        return None  # still running: another apply, on another destination
    return summary


def recorded_list_ids(state_dir: Path, destination: str) -> frozenset[int]:
    """The ids of the lists that the last apply to `destination` recorded in this state
    directory wrote to or found (the newest journal naming the destination with a list
    id; a list it deleted is not counted): what state/unfamiliar_project.py holds the
    project's list index to. Empty when no journal here names it (a first apply, a fresh
    CI checkout) or none can be read."""
    for path in reversed(journal_files(state_dir)):
        try:
            found = _list_ids_in(path, destination)
        except OSError:
            continue  # not readable: as last_unfinished, no run fails for want of it
        if found:
            return frozenset(found)
    return frozenset()


def _list_ids_in(path: Path, destination: str) -> set[int]:
    found: set[int] = set()
    creates: set[int] = set()  # the steps creating a list of the destination
    for number, line in enumerate(_lines(path)):
        event = line.get("event")
        if event == "run_started":
            lists = line.get("lists")
            named = [x for x in lists if isinstance(x, dict)] if isinstance(lists, list) else []
            found.update(
                x["list_id"]
                for x in named
                if x.get("destination") == destination and isinstance(x.get("list_id"), int)
            )
            if not any(x.get("destination") == destination for x in named):
                return found  # a run of other destinations: its steps are not read
        elif number == 0:
            return found  # no start line: damaged, or of another shape
        elif event == "intent" and line.get("destination") == destination:
            if line.get("op") == "create_list" and isinstance(line.get("step"), int):
                creates.add(line["step"])
            elif line.get("op") != "delete_list" and isinstance(line.get("list_id"), int):
                found.add(line["list_id"])
        elif (
            event == "outcome"
            and line.get("step") in creates
            and isinstance(line.get("list_id"), int)
        ):
            found.add(line["list_id"])
    return found


def last_write_at(state_dir: Path, destination: str, within: float, now: float) -> float | None:
    """When (epoch seconds) an apply last sent or was answered a request for
    `destination`, if that was less than `within` seconds before `now`: Iterable's reads
    may not show that apply's changes yet. Only journals written to since then are read."""
    latest: float | None = None
    for path in journal_files(state_dir):
        try:
            if path.stat().st_mtime < now - within:
                continue
            found = _last_write_in(path, destination)
        except OSError:
            continue  # not readable: no wait is known from it (as last_unfinished)
        if found is not None and (latest is None or found > latest):
            latest = found
    if latest is None or latest < now - within:
        return None
    return latest


def _last_write_in(path: Path, destination: str) -> float | None:
    steps: set[int] = set()
    latest: float | None = None
    for line in _lines(path):
        event, step = line.get("event"), line.get("step")
        if event == "intent" and line.get("destination") == destination:
            if isinstance(step, int):
                steps.add(step)
        elif not (event == "outcome" and step in steps):
            continue
        try:
            at = datetime.fromisoformat(str(line.get("at"))).timestamp()
        except ValueError:
            continue
        latest = at if latest is None else max(latest, at)
    return latest


def _unwritable(directory: Path, exc: OSError) -> ReconcilerError:
    return ReconcilerError(
        f"cannot write the run journal in {directory}: "
        f"{exc.strerror or type(exc).__name__}; the state directory must be writable "
        "(--state-dir or RECONCILER_STATE_DIR choose another). Nothing was changed."
    )


def _prune(directory: Path) -> None:
    files = sorted(directory.glob(f"{PREFIX}*{SUFFIX}"))
    for old in files[: max(0, len(files) - (KEEP - 1))]:
        old.unlink(missing_ok=True)
