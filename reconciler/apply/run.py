"""One apply run around the executor: the run journal, Ctrl-C, progress by phase, and the
file of rejected members.

The first Ctrl-C lets the requests in flight finish and starts no more (the report says
what was not sent). The second stops at once: the journal is closed as "aborted" and
`on_abort` is called, which ends the process (threads blocked in a request or a retry
cannot be stopped any other way; whatever they leave unknown, the next apply reads back
from Iterable). Without `on_abort` the second Ctrl-C raises KeyboardInterrupt.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.apply.executor import ApplyReport, Progress, apply_plan, count_traffic
from reconciler.apply.held_back import held_back
from reconciler.apply.interrupt import signal_name, stop_on_interrupt
from reconciler.apply.journal import Journal, last_unfinished
from reconciler.apply.rejected import write_rejected
from reconciler.errors import ReconcilerError
from reconciler.iterable import IterableClient
from reconciler.plan import Plan
from reconciler.progress import Progress as Display
from reconciler.progress import Task

# The executor's progress phases, in the order it runs them: (task description, unit).
PHASES = {
    "add": ("adding members", "members"),
    "update": ("updating user fields", "users"),
    "remove": ("removing members", "members"),
}


@dataclass(frozen=True)
class Aborted:
    """What a second Ctrl-C leaves behind, for the last words before the process ends."""

    done: str  # what the run did, as the journal counted it
    journal: Path | None
    # The requests sent so far (answered or not), for the run record: counts only.
    report: ApplyReport = field(default_factory=ApplyReport)
    by: str = "Ctrl-C"  # the signal that stopped it: Ctrl-C, or SIGTERM (a cancelled job)


def stopped_by(signum: int) -> str:
    """The second signal, for people: a second Ctrl-C, or SIGTERM (after Ctrl-C or not)."""
    return "a second Ctrl-C" if signum == signal.SIGINT else signal_name(signum)


def _silent(_text: str) -> None:
    pass


def run_apply(
    plan: Plan,
    clients: Mapping[str, IterableClient],
    state_dir: Path,
    *,
    say: Callable[[str], None] = _silent,
    display: Display | None = None,
    on_abort: Callable[[Aborted], None] | None = None,
    on_done: Callable[[], None] | None = None,
) -> ApplyReport:
    """Apply `plan` with a run journal in `state_dir`, the first Ctrl-C letting the
    requests in flight finish; rejected members go to a file there (report.rejected_file).
    `say` receives what people should know as it happens; `on_done` is called once the
    last request has ended, before Ctrl-C stops meaning "stop the requests"."""
    previous = last_unfinished(state_dir)
    if previous is not None:
        say(previous.describe_unfinished())
    journal = Journal.start(state_dir, plan)

    def first_interrupt(signum: int) -> None:
        by = "" if signum == signal.SIGINT else f" by {signal_name(signum)}"
        say(
            f"Interrupted{by}: finishing the requests in flight, starting no more "
            "(Ctrl-C again to stop at once)..."
        )

    def second_interrupt(signum: int) -> None:
        by = signal_name(signum)
        journal.finish("aborted", f"stopped at once by {stopped_by(signum)}")
        if on_abort is not None:
            sent = count_traffic(ApplyReport(), clients)
            on_abort(Aborted(journal.describe_done(), journal.path, sent, by))

    try:
        with stop_on_interrupt(first_interrupt, second_interrupt) as stop:
            report = _apply(plan, clients, journal, stop, display)
            if on_done is not None:
                on_done()
    except BaseException as exc:
        outcome = "interrupted" if isinstance(exc, KeyboardInterrupt) else "error"
        journal.finish(outcome, str(exc) if isinstance(exc, ReconcilerError) else None)
        _say_lost(journal, say)
        say(f"Done before it stopped: {journal.describe_done()}. Run journal: {journal.path}")
        raise
    journal.finish(
        "interrupted" if report.interrupted else "success" if report.ok else "failed",
        not_attempted=report.not_attempted,
    )
    _say_lost(journal, say)
    if stop.is_set():  # also when it came during that wait, after the last request
        _say_unlisted(report, clients, say)
    else:  # told to stop, the run does not wait for Iterable's reads to show its writes
        report.last_write_at = dict(journal.last_write_at)
    try:
        report.rejected_file = write_rejected(report, state_dir)
    except OSError as exc:
        # Everything is applied by now: a full disk must not turn the report into a crash.
        say(
            f"warning: could not write the file of rejected members in {state_dir}: "
            f"{exc.strerror or type(exc).__name__}; {_rejected_unsaved(report)}"
        )
    report.source_problems = plan.summary.describe_problems() or None
    report.held_back = held_back(plan)
    return report


def _rejected_unsaved(report: ApplyReport) -> str:
    """Where the rejected members are when their file could not be written: the text and
    markdown reports show a sample of each list's, the JSON report all, the run journal
    and run record count them only; so the report is all there is, and only in part."""
    from reconciler.render.plans import SAMPLE  # here: rendering is not apply's to load

    n = sum(len(lr.rejected) for d in report.destinations for lr in d.lists) + sum(
        len(d.fields.rejected) for d in report.destinations if d.fields is not None
    )
    members = f"{n:,} members Iterable rejected are" if n != 1 else "member Iterable rejected is"
    return (
        f"the {members} saved nowhere: a text or markdown report below shows at "
        f"most {SAMPLE * 2} per list, a --format json report every one, identifiers "
        "masked unless --show-members; the run journal only counts them"
    )


def _say_unlisted(
    report: ApplyReport, clients: Mapping[str, IterableClient], say: Callable[[str], None]
) -> None:
    """A run interrupted before Iterable's list index showed the lists it created (an
    apply waits for that before it sends them members): a run started elsewhere within
    the lag, without this run's journal, would not see them and would create them a
    second time. Lists the index showed are not named."""
    for d in report.destinations:
        lag = clients[d.destination].settings.read_lag
        created = [lr.list_name for lr in d.lists if lr.created and not lr.listed]
        if created and lag > 0:
            say(
                f"note: destination {d.destination!r}: this run created "
                f"{', '.join(repr(n) for n in created)}, which Iterable's list index may "
                f"not show for up to {lag:g} s. An apply from this checkout waits for that; "
                "one started elsewhere (another runner or --state-dir) before then would "
                "create the list again, so start it after that time."
            )


def _say_lost(journal: Journal, say: Callable[[str], None]) -> None:
    lost = journal.describe_lost()
    if lost is not None:
        say(lost)


def _apply(
    plan: Plan,
    clients: Mapping[str, IterableClient],
    journal: Journal,
    stop: threading.Event,
    display: Display | None,
) -> ApplyReport:
    if display is None:
        return apply_plan(plan, clients, journal=journal, stop=stop)
    with _phases(plan, display) as progress:
        return apply_plan(plan, clients, progress=progress, journal=journal, stop=stop)


@contextmanager
def _phases(plan: Plan, display: Display) -> Iterator[Progress]:
    """The executor's (phase, members done) as one task per phase, each started when the
    one before it ends (not at its first finished batch, so its rate and time include it)."""
    s = plan.summary
    totals = {"add": s.members_to_add, "update": s.users_to_update, "remove": s.members_to_remove}
    order = [phase for phase in PHASES if totals[phase]]
    tasks: dict[str, Task] = {}
    done = dict.fromkeys(totals, 0)
    lock = threading.Lock()

    def start(phase: str) -> Task:
        description, unit = PHASES[phase]
        tasks[phase] = display.task(description, totals[phase], unit)
        return tasks[phase]

    def advance(phase: str, n: int) -> None:
        if phase not in PHASES:
            return  # a phase this display does not know is no reason to stop an apply
        with lock:
            task = tasks.get(phase) or start(phase)
            task.advance(n)
            done[phase] += n
            if done[phase] < totals[phase]:
                return
            task.finish()
            later = order[order.index(phase) + 1 :] if phase in order else []
            if later and later[0] not in tasks:
                start(later[0])

    if order:
        start(order[0])
    try:
        yield advance
    finally:
        for task in tasks.values():
            task.finish()
