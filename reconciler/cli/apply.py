"""`reconciler apply`: make Iterable match the manifests, or a saved plan, exactly.

Parse, read and plan (with the destinations' locks held), show the plan, let the plan judge
itself (stale, unsafe), confirm, and hand it to `reconciler.apply.run`; then render the
report and the run record, and exit. What applying means lives in `reconciler.apply`.

The executor (`apply.run`, `apply.executor`, `apply.runrecord`), and the client, the
planner and the renderers it runs with, are imported inside the functions that use them:
`apply --help` needs none of them, and every command's process may import this module to
register `apply` (tests/unit/test_startup.py keeps them out of both).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import typer

from reconciler import alerts
from reconciler.apply.interrupt import AfterWork, report_after_work
from reconciler.apply.lock import project_locks
from reconciler.cli import exits
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
from reconciler.cli.stdout import emit
from reconciler.errors import OutputError, ReconcilerError, SummaryFileError, UnsafePlanError
from reconciler.uptime import uptime

if TYPE_CHECKING:
    from reconciler.apply.executor import ApplyReport
    from reconciler.apply.reads_lag import Lagging
    from reconciler.apply.run import Aborted
    from reconciler.apply.runrecord import RunRecord
    from reconciler.iterable import IterableClient
    from reconciler.manifest import Manifests
    from reconciler.plan import Plan, Violation
    from reconciler.plan.file import SavedPlan


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
    allow_field_clears: bool = typer.Option(
        False,
        "--allow-field-clears",
        help="Allow clearing mapped fields beyond maxFieldClearPercent.",
    ),
    allow_field_changes: bool = typer.Option(
        False,
        "--allow-field-changes",
        help="Allow changing mapped fields' values beyond maxFieldChangePercent.",
    ),
    allow_new_project: list[str] | None = typer.Option(
        None,
        "--allow-new-project",
        metavar="DESTINATION",
        help="Write to this destination though the project its API key reaches holds none "
        "of its lists while its audiences' listIds or the last apply from this state "
        "directory knew lists of it (a key of another project, or a destination moved to "
        "a new project). Repeat for several.",
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
    no_read_lag_wait: bool = typer.Option(
        False,
        "--no-read-lag-wait",
        help="End without waiting for Iterable's reads to show this apply's writes (up to "
        "RECONCILER_READ_LAG, 60 s by default): a plan started elsewhere then (a "
        "scheduled sync, the drift check) may plan them again. For runs no other run "
        "follows at once; a plan from this checkout waits for them anyway.",
    ),
    show_members: bool = ShowMembersOpt,
    target: list[str] | None = TargetOpt,
    state_dir: Path | None = StateDirOpt,
    debug: bool = DebugOpt,
) -> None:
    """Make Iterable match the manifests: create lists, add and remove members, prune.

    Shows the plan first and asks for confirmation unless --yes. Only the differences are
    sent; a second apply right after does nothing. Exit codes: 0 every change succeeded,
    1 error, rejected members, invalid members, field values not sent, audiences left out
    (list not read with confidence, or not certainly theirs) or a usage error, 3 blocked by
    the safety policy, 4 stale plan, 130 interrupted (Ctrl-C).

    RECONCILER_LOG=requests prints a line per request to Iterable on stderr: method, path,
    status, time, and how a failed one failed (never the API key or a member), and every
    retry; without it a destination's first 20 retries are printed, then the rest are
    counted in a line at most once a minute and one at the end."""
    # Here, as everything a run needs: see the module's docstring.
    from reconciler.apply.runrecord import RunRecord
    from reconciler.cli.output import check_output_path
    from reconciler.plan.policy import overridden_rules

    exits.started(show_members, debug, output)
    given = ctx.get_parameter_source("path")
    opts = _Options(
        # PATH given on the command line is used as it is, even beside --plan.
        path=path if given is not None and given.name != "DEFAULT" else None,
        saved=saved,
        targets=target,
        state_dir=state_dir,
        yes=yes,
        allowed=overridden_rules(
            allow_unsafe=allow_unsafe,
            allow_removals=allow_removals,
            allow_list_deletion=allow_list_deletion,
            allow_field_clears=allow_field_clears,
            allow_field_changes=allow_field_changes,
            allow_new_project=allow_new_project or (),
        ),
        output=output,
        show_members=show_members,
        summary_file=summary_file,
        summary_json=summary_json,
        wait_for_reads=not no_read_lag_wait,
    )
    try:
        # Before the run record exists: it is written to --summary-json whatever happens.
        check_output_path("--summary-file", summary_file)
        check_output_path("--summary-json", summary_json)
    except ReconcilerError as exc:
        raise exits.fail(exc) from None
    record = RunRecord()
    # SIGTERM means Ctrl-C (a cancelled CI job), and once the last request has ended a
    # signal no longer loses the report: see apply/interrupt.py.
    with report_after_work(lambda text: err.print(text, markup=False)) as after:
        try:
            report, lagging = _apply(opts, record, after.work_done)
        except (ReconcilerError, KeyboardInterrupt, typer.Exit) as exc:
            raise _stopped(exc, opts, record) from None
        except Exception as exc:
            # A bug or the machine (out of memory): reported by cli.main; the run record is
            # written whatever the outcome all the same.
            record.stopped(exc, exits.internal_error(exc))
            opts.write_record(record)
            raise
        _report(report, opts, record, after, lagging)


def _report(
    report: ApplyReport,
    opts: _Options,
    record: RunRecord,
    after: AfterWork,
    lagging: Lagging | None,
) -> None:
    """The run record, the report, the summary file and the alert of an apply that ran;
    then, unless it was interrupted, the wait for Iterable's reads to show what it wrote."""
    from reconciler.cli.output import append  # see the module's docstring
    from reconciler.render.plans import (
        REPORT_SUMMARY_LIMIT,
        report_json,
        report_markdown,
        report_text,
    )

    summary_file, show_members = opts.summary_file, opts.show_members
    opts.write_record(record)
    printing = False
    try:
        # A second signal since the work ended stops here, what the run did written down.
        after.recorded()
        unwritten = None
        # The summary file before the report, so that with --format json the report's
        # object can say it was not written: stdout is the one place a script reads.
        if summary_file is not None:
            try:
                # Bounded, after a plan that was: a step's summary over 1 MiB is dropped whole.
                markdown = report_markdown(
                    report, show_members, REPORT_SUMMARY_LIMIT, again=opts.again
                )
                append(summary_file, markdown)
            except SummaryFileError as exc:
                unwritten = f"{exc}; the apply itself is over (outcome: {record.outcome})"
        if opts.output is OutputFormat.json:
            text = report_json(
                report, show_members, error=_report_error(report, record, opts, unwritten)
            )
        elif opts.output is OutputFormat.markdown:
            text = report_markdown(report, show_members, again=opts.again)
        else:
            text = report_text(report, show_members, again=opts.again)
        printing = True
        written = _print_report(text, opts, record)
        if unwritten is not None:
            err.print(f"error: {unwritten}", markup=False)
            written = False
        exits.send_alert(
            alerts.for_record(record, EXIT_OK if record.outcome == "success" else EXIT_ERROR)
        )
    except KeyboardInterrupt:
        raise _report_stopped(opts, record, after.stopped_by or "a signal", printing) from None
    if lagging is not None and record.outcome != "interrupted" and not after.signalled:
        from reconciler.apply.reads_lag import skip_wait, wait_for_reads  # see the docstring

        end = wait_for_reads if opts.wait_for_reads else skip_wait
        end(lagging, lambda text: err.print(text, markup=False))
    if record.outcome == "interrupted":
        err.print(report.describe_not_done(opts.again), markup=False)
        raise typer.Exit(EXIT_INTERRUPTED)
    if record.outcome != "success" or not written:
        raise typer.Exit(EXIT_ERROR)


def _report_error(
    report: ApplyReport, record: RunRecord, opts: _Options, unwritten: str | None
) -> tuple[str, int] | None:
    """(message, exit code) of an apply that ran and exits non-zero, for its JSON report's
    `error` and `exit_code`: a script reads stdout, and the exit code alone says no why."""
    from reconciler.render.plans import report_failure  # see the module's docstring

    reasons = [unwritten] if unwritten is not None else []
    if record.outcome == "interrupted":
        return "; ".join([report.describe_not_done(opts.again), *reasons]), EXIT_INTERRUPTED
    if record.outcome != "success":
        reasons.append(
            report_failure(report, opts.again) or f"the apply's outcome is {record.outcome}"
        )
    return ("; ".join(reasons), EXIT_ERROR) if reasons else None


def _report_stopped(opts: _Options, record: RunRecord, by: str, printing: bool) -> typer.Exit:
    """A second signal after the work: the report stops; the journal and the run record
    (and the rejected members' file) were written before it could."""
    written = (
        f"its run journal and its run record ({opts.summary_json}) are written"
        if opts.summary_json
        else "its run journal is written"
    )
    said = f"the apply is over (outcome: {record.outcome}); {written}"
    err.print(f"Report stopped by {by}: {said}.", markup=False)
    if opts.output is OutputFormat.json and not printing:
        exits.json_error(f"report stopped by {by}: {said}", EXIT_INTERRUPTED)
    return typer.Exit(EXIT_INTERRUPTED)


def _print_report(text: str, opts: _Options, record: RunRecord) -> bool:
    """The report `text` on stdout; False when stdout would not take it (then said on
    stderr, with what the apply did: it is over, whatever became of its report)."""
    try:
        emit(text, "the report", nl=False)
    except OutputError as exc:
        where = f"; its run record is in {opts.summary_json}" if opts.summary_json else ""
        err.print(
            f"error: {exc}. The apply itself is over (outcome: {record.outcome}){where}.",
            markup=False,
        )
        return False
    return True


@dataclass(frozen=True)
class _Options:
    """apply's options, as parsed."""

    path: Path | None
    saved: Path | None
    targets: list[str] | None
    state_dir: Path | None
    yes: bool
    allowed: frozenset[str]  # the safety rules this run was told to override
    output: OutputFormat
    show_members: bool
    summary_file: Path | None
    summary_json: Path | None
    wait_for_reads: bool  # not --no-read-lag-wait

    @property
    def again(self) -> str:
        """How to finish what an interrupted run left: a saved plan is stale once part of
        it is applied, so `apply --plan` again would only be refused."""
        if self.saved is None:
            return "Run apply again"
        return (
            "Run `reconciler apply` on the manifests again (not --plan: this plan is stale "
            "now that part of it is applied)"
        )

    def write_record(self, record: RunRecord) -> None:
        if self.summary_json is None:
            return
        try:
            record.write(self.summary_json)
        except OSError as exc:
            # The run is over by now (applied, or stopped): a full disk must not turn its
            # report into an internal error.
            err.print(
                f"warning: could not write the run record to {self.summary_json}: "
                f"{exc.strerror or type(exc).__name__}",
                markup=False,
            )


def _stopped(
    exc: ReconcilerError | KeyboardInterrupt | typer.Exit, opts: _Options, record: RunRecord
) -> typer.Exit:
    """The run record of an apply that did not get to apply (or a second Ctrl-C stopped),
    and the exit that ends it."""
    from reconciler.cli.output import append  # see the module's docstring

    if isinstance(exc, typer.Exit):
        if record.finished_at is None:  # stopped before applying (a cancelled prompt)
            record.finish("error", "apply was cancelled before it started; nothing was changed")
        else:
            exits.send_alert(alerts.for_record(record, exc.exit_code))
        opts.write_record(record)
        return exc
    # Ctrl-C here came before apply started writing, or is a second one during it.
    message = (
        exits.safe_message(exc, opts.show_members) if isinstance(exc, ReconcilerError) else None
    )
    # The run record is kept (a CI artifact) and holds no member identifiers: masked
    # whatever --show-members says of the output people read.
    record.stopped(exc, exits.safe_message(exc) if isinstance(exc, ReconcilerError) else None)
    if opts.summary_file is not None and message is not None:
        # The error being reported may be this file's own; it is said below either way.
        with contextlib.suppress(SummaryFileError):
            append(
                opts.summary_file, f"\n**reconciler apply stopped ({record.outcome})**: {message}\n"
            )
    opts.write_record(record)
    # A blocked apply has already printed its plan, with the violations, as its object.
    return exits.fail(exc, json_object=not isinstance(exc, UnsafePlanError), alert="apply")


def _apply(
    opts: _Options, record: RunRecord, on_done: Callable[[], None]
) -> tuple[ApplyReport, Lagging | None]:
    """The report of the apply, and what Iterable's reads may not show of it yet."""
    # Here: see the module's docstring.
    from reconciler.apply.executor import ApplyReport, count_traffic
    from reconciler.apply.reads_lag import lagging
    from reconciler.apply.run import run_apply
    from reconciler.cli import session
    from reconciler.cli.output import append, print_plan, progress_display
    from reconciler.plan.campaigns import campaigns_now
    from reconciler.render.plans import SUMMARY_LIMIT, plan_markdown
    from reconciler.state.consent import recheck_saved
    from reconciler.state.desired import combined_digest, manifest_file_digests

    path, targets, loaded = opts.path, opts.targets, _saved_plan(opts)
    if loaded is not None:
        # A PATH given is used as it is: the manifest digest still has to match.
        path, targets = path or loaded.manifest_root, loaded.targets
    path = path or Path("manifests")
    if loaded is not None:
        # The plan's own --target: an audience gone since is a stale plan, not a usage error.
        manifests = session.load(path, None)
        loaded.raise_if_targets_gone(manifests.audiences)
    else:
        manifests = session.load(path, targets)
    state = session.state_dir(opts.state_dir, path)
    with ExitStack() as stack:
        clients = session.open_clients(manifests, stack, state, targets)
        record.sent_so_far = lambda: count_traffic(ApplyReport(), clients)
        # Keyed by the Iterable project, not the destination's name: two manifests, or two
        # checkouts, can name one project differently.
        stack.enter_context(
            project_locks(state, {name: c.project_id for name, c in clients.items()})
        )
        # A saved plan's stale check reads each destination once (one user export), not
        # every list again.
        reads = "export" if loaded is not None else None
        # Applied in this process right after it (not a saved plan's stale check): the
        # plan's export may answer its channel removals (apply/channel_profiles.py).
        the_plan = session.plan(
            manifests, clients, targets, state, member_reads=reads, for_apply=loaded is None
        )
        if loaded is not None:
            files = manifest_file_digests(manifests, targets)
            loaded.raise_if_stale(combined_digest(files), the_plan, files)
            # Who opted out since the plan was made is held back, as the plan made now does,
            # and the campaigns the adds reach are those running now.
            the_plan = campaigns_now(recheck_saved(loaded.plan, the_plan), the_plan)
        if opts.output is not OutputFormat.json:
            print_plan(
                the_plan,
                opts.output,
                opts.show_members,
                opts.allowed,
                consequence="nothing was applied",
            )
        if opts.summary_file is not None:
            markdown = plan_markdown(the_plan, opts.show_members, opts.allowed, SUMMARY_LIMIT)
            try:
                append(opts.summary_file, markdown)
            except SummaryFileError as exc:
                raise SummaryFileError(f"{exc}; nothing was applied") from None
        if not the_plan.has_changes:
            raise _nothing_to_do(the_plan, opts, record, count_traffic(ApplyReport(), clients))
        overridden = _check_policy(the_plan, opts)
        if not opts.yes:
            asked = uptime()
            _confirm(the_plan, opts)
            the_plan = _still_current(
                the_plan, uptime() - asked, manifests, clients, targets, state
            )
        with progress_display() as display:
            report = run_apply(
                the_plan,
                clients,
                state,
                say=lambda text: err.print(text, markup=False),
                display=display,
                on_abort=lambda aborted: _aborted(aborted, opts, record),
                on_done=on_done,
            )
        lags = session.read_lags(manifests, clients)
    report.overridden = overridden
    record.applied(report, opts.again)
    return report, lagging(report.last_write_at, lags)


def _saved_plan(opts: _Options) -> SavedPlan | None:
    from reconciler.members.model import SavedPlanTables  # see the module's docstring
    from reconciler.plan.file import load_plan

    if opts.saved is None:
        return None
    if opts.targets:
        # Filtering a reviewed plan would apply something nobody reviewed as such.
        raise ReconcilerError(
            "--target cannot be combined with --plan: a saved plan is applied whole, "
            "exactly as reviewed. To apply only some audiences, save a plan of them: "
            "reconciler plan PATH --target AUDIENCE --out FILE"
        )
    return load_plan(opts.saved, SavedPlanTables())


def _nothing_to_do(
    the_plan: Plan, opts: _Options, record: RunRecord, sent: ApplyReport
) -> typer.Exit:
    """`sent`: the plan's requests (no changes, but Iterable was read)."""
    from reconciler.apply.held_back import held_back  # see the module's docstring
    from reconciler.render.plans import report_failure, report_json

    problems = the_plan.summary.describe_problems()
    # Nothing applied; who was held back is still said (JSON, the run record), and the
    # reads sent. The problems are the record's message already.
    sent.held_back = held_back(the_plan)
    record.report = sent
    record.finish("failed" if problems else "no_changes", problems or None)
    if opts.output is OutputFormat.json:
        nothing = replace(sent, source_problems=problems or None)
        failure = report_failure(nothing)
        error = (f"{failure}; nothing else to apply", EXIT_ERROR) if failure else None
        emit(report_json(nothing, opts.show_members, error=error), "the report", nl=False)
    return typer.Exit(EXIT_ERROR if problems else EXIT_OK)


def _check_policy(the_plan: Plan, opts: _Options) -> list[Violation]:
    """Raise UnsafePlanError (its plan shown first with --format json) when the policy
    blocks the plan; otherwise warn of, and return, the violations the options override."""
    from reconciler.cli.output import print_plan  # see the module's docstring

    try:
        overridden = the_plan.raise_if_unsafe(opts.allowed)
    except UnsafePlanError as exc:
        if opts.output is OutputFormat.json:
            print_plan(
                the_plan,
                opts.output,
                opts.show_members,
                opts.allowed,
                consequence="the safety policy blocks it, and nothing was applied",
                error=exc,
                what="the blocked plan",
            )
        raise
    for v in overridden:
        # Where, as the block names it: the message alone ("removes 1 of 2 members") does
        # not say which list, and with --format json this line is all stderr says of it.
        err.print(
            f"warning: applying despite the safety policy: {v.where}: {v.message}",
            markup=False,
        )
    return overridden


def _confirm(the_plan: Plan, opts: _Options) -> None:
    from reconciler.render.plans import plan_text  # see the module's docstring

    # stdin is None when the process started with it closed (`<&-`, some job runners).
    if not _is_terminal(sys.stdin):
        raise ReconcilerError(
            "apply needs confirmation but stdin is not a terminal; review the plan and "
            "pass --yes to apply without a prompt"
        )
    # The question goes where someone sees it: stderr, or stdout when stderr goes to a file
    # (`apply 2>apply.log`), where it waited unseen for an answer. Neither: refused.
    on_stderr = _is_terminal(sys.stderr)
    if not on_stderr and (opts.output is OutputFormat.json or not _is_terminal(sys.stdout)):
        raise ReconcilerError(
            "apply needs confirmation but its question would go to a file (stderr is "
            "redirected, and stdout is too or carries JSON); review the plan and pass --yes "
            "to apply without a prompt"
        )
    if opts.output is OutputFormat.json:
        # stdout keeps to its one JSON object, so the plan was not shown: the person asked
        # to confirm reads it where the question is asked, not blind.
        err.print(plan_text(the_plan, opts.show_members, opts.allowed), end="", markup=False)
    try:
        confirmed = typer.confirm("Apply these changes to Iterable?", default=False, err=on_stderr)
    except typer.Abort as exc:
        # click turns Ctrl-C and Ctrl-D at its prompt into Abort, which ended the command
        # with its own "Aborted." and exit 1: no JSON object, and the run record called it
        # an internal error. Ctrl-C is an interrupt as it is anywhere else (130); end of
        # input is an answer of no. click keeps what it caught as the context.
        typer.echo("", err=on_stderr)  # the question's line, left open by no Enter
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        confirmed = False
    if not confirmed:
        err.print("Apply cancelled; nothing was changed.")
        if opts.output is OutputFormat.json:
            exits.json_error("apply cancelled; nothing was changed", EXIT_ERROR)
        raise typer.Exit(EXIT_ERROR)


def _still_current(
    shown: Plan,
    waited: float,
    manifests: Manifests,
    clients: dict[str, IterableClient],
    targets: list[str] | None,
    state: Path,
) -> Plan:
    """`shown`, once its confirmation was answered after `waited` seconds: after more than
    RECONCILER_CONFIRM_WAIT, read again as a saved plan's stale check reads. A person may
    leave the question for an hour while another writer (a scheduled apply) changes the
    lists, or a member opts out: sent as shown, the adds re-subscribed them and the rest
    undid the other writer's changes. A list changed is a stale plan (exit 4), nothing
    written; who opted out meanwhile is held back, as `apply --plan` holds them back."""
    from reconciler.cli import session  # see the module's docstring
    from reconciler.plan.campaigns import campaigns_now
    from reconciler.plan.file import changed_since
    from reconciler.progress import duration
    from reconciler.state.consent import recheck_saved

    limit = min((c.settings.confirm_wait for c in clients.values()), default=0.0)
    if waited <= limit:
        return shown
    took = duration(waited)
    err.print(
        f"The confirmation waited {took} (more than RECONCILER_CONFIRM_WAIT, {limit:g} s): "
        "reading Iterable again to check that the plan shown still holds.",
        markup=False,
    )
    now = session.plan(manifests, clients, targets, state, member_reads="export")
    error = changed_since(
        shown,
        now,
        since=f"while the confirmation waited {took}",
        applied="did another apply make these changes meanwhile?",
        again="nothing was applied: run apply again for a plan of Iterable as it is now",
    )
    if error is not None:
        raise error
    return campaigns_now(recheck_saved(shown, now), now)


def _is_terminal(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):  # closed
        return False


def _aborted(aborted: Aborted, opts: _Options, record: RunRecord) -> None:
    """A second Ctrl-C: the run record and the last words, then the process ends at once."""
    try:
        record.report = aborted.report
        by = "a second Ctrl-C" if aborted.by == "Ctrl-C" else aborted.by
        record.finish(
            "aborted", f"stopped at once by {by}; done: {aborted.done}. {opts.again} to finish."
        )
        opts.write_record(record)
        if opts.output is OutputFormat.json:
            exits.json_error(f"aborted by {by}; done: {aborted.done}", EXIT_INTERRUPTED)
    except Exception as exc:  # the exit below must happen whatever this does
        err.print(f"could not write the run record: {exc}", markup=False)
    err.print(
        f"Stopped at once. Done before it stopped: {aborted.done}. Run "
        f"journal: {aborted.journal}. {opts.again} to finish.",
        markup=False,
    )
    exits.exit_now(EXIT_INTERRUPTED)  # which releases the lock too (os._exit skips `finally`)
