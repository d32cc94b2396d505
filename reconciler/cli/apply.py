"""`reconciler apply`: make Iterable match the manifests, or a saved plan, exactly."""

from __future__ import annotations

import csv
import json
import os
import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import typer

from reconciler.apply.executor import ApplyReport, apply_plan
from reconciler.apply.interrupt import stop_on_interrupt
from reconciler.apply.journal import Journal, last_unfinished
from reconciler.apply.lock import project_locks
from reconciler.apply.runrecord import Outcome, RunRecord
from reconciler.cli import exits, session
from reconciler.cli.exits import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, err
from reconciler.cli.options import (
    DebugOpt,
    OutputFormat,
    PathArg,
    ShowMembersOpt,
    StateDirOpt,
    SummaryFileOpt,
    TargetOpt,
    format_option,
)
from reconciler.cli.output import append, print_plan, problems, progress_display
from reconciler.errors import ReconcilerError, StalePlanError, UnsafePlanError
from reconciler.iterable import IterableClient
from reconciler.manifest import Manifests
from reconciler.members.model import remove_directories
from reconciler.plan import Plan
from reconciler.plan.file import SavedPlan, load_plan, manifests_digest
from reconciler.plan.fingerprint import first_difference
from reconciler.progress import Task
from reconciler.render.masking import shower
from reconciler.render.plans import REPORT_RENDERERS, plan_markdown, report_json, report_markdown


def _allowed_rules(
    allow_unsafe: bool, allow_removals: bool, allow_list_deletion: bool
) -> frozenset[str]:
    """The safety rules this apply was told to override."""
    return frozenset(
        rule
        for rule, allowed in (
            ("removals", allow_removals),
            ("list_deletion", allow_list_deletion),
            # The source guards have no flag of their own: the manifest says what is
            # intended (allowEmpty, ...), and --allow-unsafe overrides them for one run.
            ("active_campaign_adds", False),
            ("empty_source", False),
            ("bounds", False),
            ("additions", False),
        )
        if allowed or allow_unsafe
    )


def apply(
    ctx: typer.Context,
    path: Path = PathArg,
    yes: bool = typer.Option(
        False,
        "--yes",
        "-y",
        help="Do not ask for confirmation (needed without a terminal). "
        "Never overrides the safety policy.",
    ),
    saved: Path | None = typer.Option(
        None,
        "--plan",
        metavar="FILE",
        help="Apply this saved plan (from `plan --out`) exactly. Refused, with nothing "
        "changed, when the manifests or Iterable changed since it was made. PATH is not "
        "needed: the plan file records where its manifests are (a PATH given is used "
        "instead, and must hold the same manifests). Cannot be combined with --target: "
        "a saved plan is applied whole.",
    ),
    allow_unsafe: bool = typer.Option(
        False, "--allow-unsafe", help="Apply even when the safety policy blocks the plan."
    ),
    allow_removals: bool = typer.Option(
        False, "--allow-removals", help="Allow removals beyond maxRemovalPercent/maxRemovals."
    ),
    allow_list_deletion: bool = typer.Option(
        False,
        "--allow-list-deletion",
        help="Allow prune to delete lists without allowListDeletion in the policy.",
    ),
    output: OutputFormat = format_option("text for people, markdown, or json."),
    summary_file: Path | None = SummaryFileOpt,
    summary_json: Path | None = typer.Option(
        None,
        "--summary-json",
        metavar="FILE",
        help="Write a machine-readable record of this run (times, per-list counts, requests, "
        "rate-limit waits, outcome) to this file, whatever the outcome.",
    ),
    show_members: bool = ShowMembersOpt,
    target: list[str] | None = TargetOpt,
    state_dir: Path | None = StateDirOpt,
    debug: bool = DebugOpt,
) -> None:
    """Make Iterable match the manifests: create lists, add and remove members, prune.

    Shows the plan first and asks for confirmation unless --yes. Only the differences are
    sent; a second apply right after does nothing. Exit codes: 0 every change succeeded,
    1 error, rejected members or a usage error, 3 blocked by the safety policy, 4 stale
    saved plan, 130 interrupted (Ctrl-C)."""
    exits.started(show_members, debug, output)
    record = RunRecord()
    try:
        source = ctx.get_parameter_source("path")
        path_given = source is not None and source.name != "DEFAULT"
        report = _apply_command(
            path if path_given else None,
            saved,
            target,
            state_dir,
            output,
            show_members,
            summary_file,
            yes,
            allow_unsafe,
            allow_removals,
            allow_list_deletion,
            record,
            summary_json,
        )
    except ReconcilerError as exc:
        outcome: Outcome = "error"
        if isinstance(exc, UnsafePlanError):
            outcome = "blocked"
        elif isinstance(exc, StalePlanError):
            outcome = "stale"
        message = exits.safe_message(exc, show_members)
        record.finish(outcome, message)
        if summary_file is not None:
            append(summary_file, f"\n**reconciler apply stopped ({outcome})**: {message}\n")
        if summary_json is not None:
            record.write(summary_json)
        # A blocked apply has already printed its plan, with the violations, as its object.
        raise exits.fail(exc, json_object=not isinstance(exc, UnsafePlanError)) from None
    except typer.Exit as done:
        if record.finished_at is None:  # stopped before applying (a cancelled prompt)
            record.finish("error", "apply was cancelled before it started; nothing was changed")
        if summary_json is not None:
            record.write(summary_json)
        raise done
    except KeyboardInterrupt as exc:
        # Ctrl-C before apply started writing, or a second one during it.
        record.finish("interrupted", "stopped by Ctrl-C")
        if summary_json is not None:
            record.write(summary_json)
        raise exits.fail(exc) from None
    if summary_json is not None:
        record.write(summary_json)
    typer.echo(REPORT_RENDERERS[output](report, show_members), nl=False)
    if summary_file is not None:
        append(summary_file, report_markdown(report, show_members))
    if record.outcome == "interrupted":
        err.print(_not_done(report), markup=False)
        raise typer.Exit(EXIT_INTERRUPTED)
    if record.outcome != "success":
        raise typer.Exit(EXIT_ERROR)


def _apply_command(
    path: Path | None,
    saved: Path | None,
    target: list[str] | None,
    state_dir: Path | None,
    output: OutputFormat,
    show_members: bool,
    summary_file: Path | None,
    yes: bool,
    allow_unsafe: bool,
    allow_removals: bool,
    allow_list_deletion: bool,
    record: RunRecord,
    summary_json: Path | None = None,
) -> ApplyReport:
    if saved is not None:
        if target:
            # Filtering a reviewed plan would apply something nobody reviewed as such.
            raise ReconcilerError(
                "--target cannot be combined with --plan: a saved plan is applied whole, "
                "exactly as reviewed. To apply only some audiences, save a plan of them: "
                "reconciler plan PATH --target AUDIENCE --out FILE"
            )
        loaded = load_plan(saved)
        # A PATH given is used as it is: the manifest digest still has to match.
        path, target = path or loaded.manifest_root, loaded.targets
    path = path or Path("manifests")
    manifests = session.load(path, target)
    state = session.state_dir(state_dir, path)
    allowed = _allowed_rules(allow_unsafe, allow_removals, allow_list_deletion)
    with ExitStack() as stack:
        clients = session.open_clients(manifests, stack, state, target)
        # Keyed by the Iterable project, not the destination's name: two manifests, or two
        # checkouts, can name one project differently.
        stack.enter_context(
            project_locks(state, {name: c.project_id for name, c in clients.items()})
        )
        the_plan = session.plan(manifests, clients, target, state)
        if saved is not None:
            _check_fresh(loaded, manifests, the_plan)
            the_plan = loaded.plan
        if output is not OutputFormat.json:
            print_plan(the_plan, output, show_members, allowed)
        if summary_file is not None:
            append(summary_file, plan_markdown(the_plan, show_members, allowed))
        skipped = the_plan.summary.problems
        if not the_plan.has_changes:
            record.finish(
                "failed" if skipped else "no_changes",
                problems(the_plan) if skipped else None,
            )
            if output is OutputFormat.json:
                nothing = ApplyReport(source_problems=problems(the_plan) or None)
                typer.echo(report_json(nothing, show_members), nl=False)
            raise typer.Exit(EXIT_ERROR if skipped else EXIT_OK)
        try:
            _check_policy(the_plan, allow_unsafe, allow_removals, allow_list_deletion)
        except UnsafePlanError as exc:
            if output is OutputFormat.json:
                blocked = the_plan.to_dict(shower(show_members))
                blocked.update(error=exits.safe_message(exc, show_members), exit_code=exc.exit_code)
                typer.echo(json.dumps(blocked, indent=2))
            raise
        if not yes:
            _confirm()

        def aborted(done: str) -> None:
            # The second Ctrl-C ends the process at once: the record is written here.
            record.finish("aborted", f"stopped at once by a second Ctrl-C; done: {done}")
            if summary_json is not None:
                record.write(summary_json)
            if output is OutputFormat.json:
                exits.json_error(f"aborted by a second Ctrl-C; done: {done}", EXIT_INTERRUPTED)

        report = _journaled_apply(the_plan, clients, state, aborted)
        report.rejected_file = _write_rejected(report, state)
        report.source_problems = problems(the_plan) or None
    record.report = report
    if report.interrupted:
        record.finish("interrupted", "stopped by Ctrl-C after the requests in flight")
    elif report.ok and not skipped:
        record.finish("success")
    else:
        record.finish(
            "failed", "some changes failed or source data could not be used; see the report"
        )
    return report


def _check_fresh(loaded: SavedPlan, manifests: Manifests, current: Plan) -> None:
    if manifests_digest(manifests) != loaded.manifest_digest:
        raise StalePlanError(
            "stale plan: the manifests or their member sources changed since the plan was "
            "made; run plan again"
        )
    difference = first_difference(loaded.plan.fingerprint, current.fingerprint)
    if difference is not None:
        raise StalePlanError(f"stale plan: {difference} since the plan was made; run plan again")


def _check_policy(
    the_plan: Plan, allow_unsafe: bool, allow_removals: bool, allow_list_deletion: bool
) -> None:
    allowed = {"removals": allow_removals, "list_deletion": allow_list_deletion}
    blocking = [
        v for v in the_plan.violations() if not (allow_unsafe or allowed.get(v.rule, False))
    ]
    if blocking:
        reasons = "; ".join(f"{v.destination}/{v.list_name}: {v.message}" for v in blocking)
        raise UnsafePlanError(
            f"the safety policy blocks this plan, nothing was changed: {reasons}. Review it, "
            "then pass --allow-unsafe (or --allow-removals / --allow-list-deletion) to apply"
        )
    for v in the_plan.violations():
        err.print(f"warning: applying despite the safety policy: {v.message}", markup=False)


def _write_rejected(report: ApplyReport, state_dir: Path) -> str | None:
    """Every rejected member in full, in a local file, since output masks them."""
    rows = [
        (d.destination, lr.list_name, member, reason)
        for d in report.destinations
        for lr in d.lists
        for member, reason in sorted(lr.rejected.items())
    ] + [
        (d.destination, "(user fields)", member, reason)
        for d in report.destinations
        if d.fields is not None
        for member, reason in sorted(d.fields.rejected.items())
    ]
    if not rows:
        return None
    runs = state_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = runs / f"rejected-{stamp}-{os.getpid()}.csv"
    # Owner-only from the first byte: the file holds personal data.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["destination", "list", "member", "reason"])
        writer.writerows([_spreadsheet_safe(cell) for cell in row] for row in rows)
    path.chmod(0o600)
    return str(path)


def _spreadsheet_safe(cell: str) -> str:
    """A userId such as `=cmd|' /C calc'!A0` is a formula to a spreadsheet that opens this
    file; a leading apostrophe makes it text (OWASP's advice for CSV injection)."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def _confirm() -> None:
    if not sys.stdin.isatty():
        raise ReconcilerError(
            "apply needs confirmation but stdin is not a terminal; review the plan and "
            "pass --yes to apply without a prompt"
        )
    if not typer.confirm("Apply these changes to Iterable?", default=False, err=True):
        err.print("Apply cancelled; nothing was changed.")
        raise typer.Exit(EXIT_ERROR)


def _journaled_apply(
    the_plan: Plan,
    clients: dict[str, IterableClient],
    state_dir: Path,
    on_abort: Callable[[str], None] | None = None,
) -> ApplyReport:
    """Apply with a run journal; the first Ctrl-C lets the requests in flight finish."""
    previous = last_unfinished(state_dir)
    if previous is not None:
        err.print(previous.describe_unfinished(), markup=False)
    journal = Journal.start(state_dir, the_plan)

    def first_interrupt() -> None:
        err.print(
            "Interrupted: finishing the requests in flight, starting no more "
            "(Ctrl-C again to stop at once)...",
            markup=False,
        )

    def second_interrupt() -> None:
        journal.finish("aborted", "stopped at once by a second Ctrl-C")
        if on_abort is not None:
            try:
                on_abort(journal.describe_done())
            except Exception as exc:  # the exit below must happen whatever this does
                err.print(f"could not write the run record: {exc}", markup=False)
        err.print(
            f"Stopped at once. Done before it stopped: {journal.describe_done()}. Run "
            f"journal: {journal.path}. Run apply again to finish.",
            markup=False,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        # Worker threads blocked in a request or a retry cannot be stopped any other way;
        # whatever they leave unknown, the next apply reads back from Iterable. Files of
        # members (DuckDB's workspace) go first: os._exit runs no cleanup.
        remove_directories()
        os._exit(EXIT_INTERRUPTED)

    try:
        with stop_on_interrupt(first_interrupt, second_interrupt) as stop:
            report = _apply_with_progress(the_plan, clients, journal, stop)
    except BaseException as exc:
        outcome = "interrupted" if isinstance(exc, KeyboardInterrupt) else "error"
        journal.finish(outcome, str(exc) if isinstance(exc, ReconcilerError) else None)
        err.print(
            f"Done before it stopped: {journal.describe_done()}. Run journal: {journal.path}",
            markup=False,
        )
        raise
    journal.finish(
        "interrupted" if report.interrupted else "success" if report.ok else "failed",
        not_attempted=report.not_attempted,
    )
    return report


def _not_done(report: ApplyReport) -> str:
    lists = [lr for d in report.destinations for lr in d.lists]
    adds = sum(lr.not_attempted_add for lr in lists)
    removes = sum(lr.not_attempted_remove for lr in lists)
    creates = sum(lr.create_not_attempted for lr in lists)
    deletions = sum(1 for d in report.destinations for x in d.deletions if not x.deleted)
    return (
        "Interrupted (Ctrl-C): stopped after the requests in flight. Not done: "
        f"{adds} addition(s), {removes} removal(s), {creates} list creation(s), "
        f"{deletions} list deletion(s). Run apply again to finish: it reads Iterable afresh "
        "and sends only what is left."
    )


def _apply_with_progress(
    the_plan: Plan,
    clients: dict[str, IterableClient],
    journal: Journal | None = None,
    stop: threading.Event | None = None,
) -> ApplyReport:
    s = the_plan.summary
    totals = {"add": s.members_to_add, "update": s.users_to_update, "remove": s.members_to_remove}
    order = [phase for phase in _APPLY_PHASES if totals[phase]]
    tasks: dict[str, Task] = {}
    done = dict.fromkeys(totals, 0)
    lock = threading.Lock()
    with progress_display() as progress:

        def start(phase: str) -> Task:
            description, unit = _APPLY_PHASES[phase]
            tasks[phase] = progress.task(description, totals[phase], unit)
            return tasks[phase]

        def advance(phase: str, n: int) -> None:
            if phase not in _APPLY_PHASES:
                return  # a phase this display does not know is no reason to stop an apply
            with lock:
                task = tasks.get(phase) or start(phase)
                task.advance(n)
                done[phase] += n
                if done[phase] < totals[phase]:
                    return
                task.finish()
                # The next phase starts now, not at its first finished batch, so its rate
                # and time include that batch.
                later = order[order.index(phase) + 1 :] if phase in order else []
                if later and later[0] not in tasks:
                    start(later[0])

        if order:
            start(order[0])
        try:
            return apply_plan(the_plan, clients, progress=advance, journal=journal, stop=stop)
        finally:
            for task in tasks.values():
                task.finish()


# apply's progress phases, in the order it runs them: (task description, unit).
_APPLY_PHASES = {
    "add": ("adding members", "members"),
    "update": ("updating user fields", "users"),
    "remove": ("removing members", "members"),
}
