"""The command line: parse options, call the core, render, map errors to exit codes.

Exit codes (stable, documented in the README): 0 success (plan: no changes, or changes
without --detailed-exitcode), 1 error (including members skipped or rejected), 2 changes
present (plan --detailed-exitcode only), 3 blocked by the safety policy, 4 stale saved plan.
Everything for people goes to stderr except the plan/report itself, so `--format json`
leaves exactly one JSON object on stdout.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from typer.core import TyperGroup, TyperOption

try:  # typer from 0.2x carries its own copy of click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - older typer uses click itself
    from click.exceptions import UsageError  # type: ignore[assignment]

if TYPE_CHECKING:
    # The context class typer's group and options are typed with (its copy of click's).
    from typer._click.core import Context as ClickContext

from reconciler import __version__, alerts
from reconciler.adopt import import_lists
from reconciler.apply.executor import ApplyReport, apply_plan
from reconciler.apply.interrupt import stop_on_interrupt
from reconciler.apply.journal import Journal, last_unfinished, last_write_at
from reconciler.apply.lock import project_locks
from reconciler.apply.runrecord import Outcome, RunRecord
from reconciler.connect import open_client
from reconciler.emulator import emulator_app
from reconciler.errors import (
    ConfigError,
    ManifestError,
    ReconcilerError,
    SourceError,
    StalePlanError,
    UnsafePlanError,
)
from reconciler.github.cli import github_app
from reconciler.iterable import ClientSettings, IterableClient
from reconciler.manifest import Manifests, load_manifests, manifest_json_schema
from reconciler.manifest.repository import find_repository
from reconciler.members.model import Engine, SavedPlanTables, remove_directories
from reconciler.plan import Plan
from reconciler.plan.file import SavedPlan, load_plan, save_plan
from reconciler.plan.fingerprint import first_difference
from reconciler.planning import make_plan
from reconciler.progress import Progress, Task, console_progress
from reconciler.render.masking import mask_emails, quoted, reveal, shower
from reconciler.render.plans import (
    PLAN_RENDERERS,
    REPORT_RENDERERS,
    plan_markdown,
    report_json,
    report_markdown,
)
from reconciler.sources.snapshot import remove_snapshots
from reconciler.state.desired import build_desired, manifests_digest

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report a SIGINT
STATE_DIR_NAME = ".reconciler"


class _Group(TyperGroup):
    """Usage errors (a mistyped option, a bad --format) exit 1, not click's 2: 2 means
    "changes present" to `plan --detailed-exitcode`, so a typo in a workflow would pass
    as a plan with changes."""

    def make_context(self, *args: Any, **kwargs: Any) -> ClickContext:
        try:
            return super().make_context(*args, **kwargs)
        except UsageError as exc:
            exc.exit_code = EXIT_ERROR
            raise

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            exc.exit_code = EXIT_ERROR
            raise


def _display_type_rich(self: Any, ctx: ClickContext) -> str | None:
    """typer 0.2x shows a Python type beside every option: `<bool>` for a flag, which
    takes no value, and `<list[str]>` for a repeatable option. Flags show nothing, and
    every other option names its value with the metavar it declares."""
    if getattr(self, "is_flag", False) and self.metavar is None:
        return None
    return _typer_display_type_rich(self, ctx)


_typer_display_type_rich = TyperOption.display_type_rich
TyperOption.display_type_rich = _display_type_rich  # type: ignore[method-assign]


app = typer.Typer(
    cls=_Group,
    name="reconciler",
    help=(
        "Keep Iterable lists (audiences) in line with YAML manifests in git.\n\n"
        "validate checks manifests, plan shows what would change in Iterable, apply makes "
        "exactly those changes. Nothing is written to Iterable except by apply."
    ),
    no_args_is_help=True,
    add_completion=False,
    # Rich tracebacks print local variables, and a local can be an API key.
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        is_eager=True,
        callback=_print_version,
        help="Print reconciler's version and exit.",
    ),
) -> None:
    """Keep Iterable lists (audiences) in line with YAML manifests in git.

    validate checks manifests, plan shows what would change in Iterable, apply makes
    exactly those changes. Nothing is written to Iterable except by apply."""


app.add_typer(emulator_app, name="emulator", help="Run the local Iterable emulator.")
app.add_typer(
    github_app,
    name="github",
    help="Post plans to GitHub pull requests and drift issues (for the shipped workflows).",
)

err = Console(stderr=True, highlight=False, soft_wrap=True)


class OutputFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


PathArg = typer.Argument(
    Path("manifests"),
    metavar="PATH",
    help="Manifest file or directory (all *.yaml / *.yml files under it).",
    show_default=True,
)
StateDirOpt = typer.Option(
    None,
    "--state-dir",
    metavar="DIR",
    envvar="RECONCILER_STATE_DIR",
    help="Where local state lives: the sandbox (sandbox.json), locks, run journals and "
    "rejected-member files. Default: .reconciler in the repository that holds the manifests "
    "(their git work tree; without git, the directory that holds the manifest directory), "
    "wherever the command is run from.",
    show_default=False,
)
TargetOpt = typer.Option(
    None,
    "--target",
    "-t",
    metavar="AUDIENCE",
    help="Limit to this audience (repeatable). Other audiences are neither read nor changed.",
)
DebugOpt = typer.Option(False, "--debug", help="Show tracebacks for unexpected errors.")


@dataclass
class _Invocation:
    """The options of the command being run, as parsed, for the one place outside a
    command that needs them: main's handler of internal errors."""

    show_members: bool = False
    debug: bool = False


_invocation = _Invocation()


def _started(show_members: bool = False, debug: bool = False) -> None:
    _invocation.show_members, _invocation.debug = show_members, debug


def _fail(
    exc: ReconcilerError,
    show_members: bool = False,
    output: OutputFormat | None = None,
    alert: str | None = None,
) -> typer.Exit:
    """Report an error on stderr; with --format json also as the one object on stdout.
    `alert` names the command (plan, apply) whose failure goes to the alert webhook."""
    if output is OutputFormat.json:
        _json_error(_safe_message(exc, show_members), exc.exit_code, exc, show_members)
    if isinstance(exc, ManifestError):
        for problem in exc.problems:
            err.print(_shown(str(problem), show_members), markup=False)
        n = len(exc.problems)
        err.print(f"{n} problem{'s' if n != 1 else ''} found.", markup=False)
    else:
        err.print(f"error: {_safe_message(exc, show_members)}", markup=False)
    if alert is not None:
        _alert(alerts.for_error(alert, exc.exit_code, _safe_message(exc)))
    return typer.Exit(exc.exit_code)


def _alert(alert: alerts.Alert) -> None:
    """Post a blocked, stale or failed run to the alert webhook (issue 19; nothing unless
    RECONCILER_ALERT_WEBHOOK_URL is set). Never raises and never changes the exit code."""
    alerts.notify(alert, lambda text: err.print(f"warning: {text}", markup=False))


def _json_error(
    message: str, exit_code: int, exc: BaseException | None = None, show_members: bool = False
) -> None:
    """`--format json` promises exactly one JSON object on stdout, failures included."""
    payload: dict[str, object] = {"error": message, "exit_code": exit_code}
    if isinstance(exc, ManifestError):
        payload["problems"] = [_shown(str(problem), show_members) for problem in exc.problems]
    typer.echo(json.dumps(payload, indent=2))


def _safe_message(exc: BaseException, show_members: bool = False) -> str:
    """An error's text for logs and summaries: an Iterable message can quote a member's
    email, so emails are masked like everywhere else unless --show-members was given."""
    text = str(exc)
    destination = getattr(exc, "destination", None)
    if destination is not None:
        text = f"destination {destination!r}: {text}"
    return _shown(text, show_members)


def _shown(text: str, show_members: bool) -> str:
    """A message as output shows it: source data it quotes in full with --show-members,
    otherwise masked, with every email in it."""
    text = alerts.scrub(text)  # the alert webhook's URL is a credential, like an API key
    return reveal(text, True) if show_members else mask_emails(text)


def _state_dir(option: Path | None, path: Path) -> Path:
    """Local state belongs to the manifests, not to the working directory: two applies of
    one repository started from different directories must find the same lock."""
    return option if option is not None else find_repository(path) / STATE_DIR_NAME


def _load(path: Path, targets: list[str] | None) -> Manifests:
    manifests = load_manifests(path)
    unknown = sorted(set(targets or ()) - set(manifests.audiences))
    if unknown:
        raise ReconcilerError(
            f"--target names unknown audience(s): {', '.join(unknown)}; audiences are: "
            f"{', '.join(manifests.audiences) or '(none)'}"
        )
    return manifests


def _open_clients(
    manifests: Manifests, stack: ExitStack, state_dir: Path, targets: list[str] | None = None
) -> dict[str, IterableClient]:
    """Clients for the destinations in play; with --target, only those the targeted
    audiences use (an unrelated destination's missing key is not this run's problem)."""
    settings = ClientSettings.from_env()
    needed = (
        {manifests.audiences[t].spec.destination for t in targets}
        if targets
        else set(manifests.destinations)
    )
    clients = {
        name: stack.enter_context(open_client(dest, settings, state_dir))
        for name, dest in manifests.destinations.items()
        if name in needed
    }
    for name, client in clients.items():
        # Long rate-limit waits, retries and why a run waits (a new list Iterable does not
        # accept writes to yet, a lost answer checked against the lagging list index) are
        # said as they start, never silence.
        client.on_notice(functools.partial(_notice, name))
    return clients


def _notice(destination: str, text: str) -> None:
    err.print(f"destination {destination!r}: {text}", markup=False)


def _plan(
    manifests: Manifests,
    clients: dict[str, IterableClient],
    targets: list[str] | None,
    state_dir: Path,
    member_reads: str | None = None,
) -> Plan:
    notes = _wait_for_read_lag(manifests, clients, state_dir)
    with _progress() as progress:
        the_plan = make_plan(
            manifests,
            clients,
            targets=set(targets) if targets else None,
            progress=progress,
            member_reads=member_reads,
        )
    if not notes:
        return the_plan
    return dataclasses.replace(
        the_plan,
        destinations=tuple(
            dataclasses.replace(d, read_note=notes.get(d.destination))
            for d in the_plan.destinations
        ),
    )


def _wait_for_read_lag(
    manifests: Manifests, clients: dict[str, IterableClient], state_dir: Path
) -> dict[str, str]:
    """Iterable's reads lag its writes by up to about a minute, so a plan read right after
    an apply would plan that apply's changes again (and a list it created, a second time).
    The run journals say when the last apply to each destination was: wait until the lag
    has passed (settings.read_lag, bounded), say so, and note it in the plan."""
    now = time.time()
    recent: dict[str, tuple[float, float]] = {}
    for name, client in clients.items():
        spec = manifests.destinations[name].spec
        lag = client.settings.read_lag
        if lag <= 0 or (spec.region == "sandbox" and spec.baseUrl is None):
            continue  # the sandbox answers from its own state at once
        at = last_write_at(state_dir, name, lag, now)
        if at is not None:
            recent[name] = (max(0.0, now - at), lag)
    if not recent:
        return {}
    wait = max(lag - ago for ago, lag in recent.values())
    err.print(
        f"Waiting {wait:.1f} s before reading Iterable: the last apply to "
        f"{', '.join(sorted(recent))} was {min(a for a, _ in recent.values()):.1f} s ago, and "
        "Iterable's reads can lag its writes by up to "
        f"{max(lag for _, lag in recent.values()):g} s (RECONCILER_READ_LAG).",
        markup=False,
    )
    time.sleep(wait)
    return {
        name: (
            f"the last apply to this destination was {ago:.1f} s before this plan and "
            f"Iterable's reads can lag writes by up to {lag:g} s, so the plan waited "
            f"{wait:.1f} s before reading Iterable"
        )
        for name, (ago, lag) in recent.items()
    }


ShowMembersOpt = typer.Option(
    False,
    "--show-members",
    help="Show member emails and userIds in full. By default they are masked "
    "(j***@***#1), because plans are posted where many people can read them.",
)


@app.command()
def validate(
    path: Path = PathArg, show_members: bool = ShowMembersOpt, debug: bool = DebugOpt
) -> None:
    """Check manifests and member sources without contacting Iterable.

    Every problem is printed as FILE:LINE:COL: message (a source row as FILE:ROW), all at
    once: manifest errors, sources that cannot be read, invalid members, and mapped values
    that plan would not send. Exit 1 if any."""
    _started(show_members, debug)
    unreadable: list[SourceError] = []
    try:
        manifests = load_manifests(path)
        # Large sources are checked in DuckDB, as plan reads them.
        desired = build_desired(manifests, engine=Engine.from_env(), errors=unreadable)
    except ReconcilerError as exc:
        raise _fail(exc, show_members) from None
    for error in unreadable:
        err.print(_safe_message(error, show_members), markup=False)
    items = [item for d in desired.values() for item in d.lists]
    issues = [issue for item in items for issue in item.issues]
    # Values a trait mapping cannot convert (`'lots' is not a number`): plan leaves them out.
    values = [issue for item in items if item.fields is not None for issue in item.fields.issues]
    show = quoted(shower(show_members))
    for issue in [*issues, *values]:
        err.print(issue.describe(show), markup=False)
    conflicts = [issue for item in items for issue in item.conflicts]
    for issue in conflicts:
        err.print(f"warning: {issue.describe(show)}", markup=False)
    duplicates = sum(item.duplicates for item in items)
    unlisted = sum(item.table.skipped - len(item.issues) for item in items if item.table)
    if unlisted:
        err.print(f"... and {unlisted:,} more (large audiences list their first 1,000).")
    members = sum(item.table.count if item.table else len(item.members) for item in items)
    if unreadable or issues or values:
        found = [
            (len(unreadable), "source that cannot be read", "sources that cannot be read"),
            (len(issues) + unlisted, "invalid member", "invalid members"),
            (len(values), "value that cannot be sent", "values that cannot be sent"),
        ]
        err.print(
            ", ".join(f"{n:,} {one if n == 1 else many}" for n, one, many in found if n) + " found."
        )
        raise typer.Exit(EXIT_ERROR)
    collapsed = f" ({duplicates:,} duplicate row(s) collapsed)" if duplicates else ""
    typer.echo(
        f"OK: {len(manifests.destinations)} destination(s), {len(manifests.audiences)} "
        f"audience(s), {members:,} member(s){collapsed} in {len(manifests.files)} file(s)."
    )


SummaryFileOpt = typer.Option(
    None,
    "--summary-file",
    metavar="FILE",
    help='Also append the markdown version to this file (e.g. "$GITHUB_STEP_SUMMARY").',
)


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text if text.endswith("\n") else text + "\n")


@app.command()
def plan(
    path: Path = PathArg,
    output: OutputFormat = typer.Option(
        OutputFormat.text,
        "--format",
        "-f",
        help="text for people, markdown for pull requests, json for machines.",
    ),
    detailed_exitcode: bool = typer.Option(
        False,
        "--detailed-exitcode",
        help="Exit 0 when there is nothing to do, 2 when there are changes.",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        metavar="FILE",
        help="Save the plan to this file so `apply --plan` applies exactly it. The file holds "
        "the full member lists (personal data): keep it private and short-lived.",
    ),
    summary_file: Path | None = SummaryFileOpt,
    show_members: bool = ShowMembersOpt,
    target: list[str] | None = TargetOpt,
    state_dir: Path | None = StateDirOpt,
    debug: bool = DebugOpt,
) -> None:
    """Show what apply would change in Iterable. Reads only; writes nothing to Iterable.

    Audiences of a million rows or more are planned in DuckDB, on disk
    under a memory limit: see RECONCILER_ENGINE in the README.

    Exit codes: 0 success (with --detailed-exitcode: no changes), 1 error, invalid members
    or a usage error, 2 changes present (--detailed-exitcode), 3 blocked by the safety
    policy, 130 interrupted (Ctrl-C)."""
    _started(show_members, debug)
    try:
        manifests = _load(path, target)
        with ExitStack() as stack:
            state = _state_dir(state_dir, path)
            clients = _open_clients(manifests, stack, state, target)
            the_plan = _plan(manifests, clients, target, state)
        if out is not None:
            save_plan(out, the_plan, manifests_digest(manifests), path, target)
    except ReconcilerError as exc:
        raise _fail(exc, show_members, output, alert="plan") from None
    except KeyboardInterrupt:
        # A plan only reads, so there is nothing to undo; 130 as shells report a SIGINT.
        err.print("Interrupted: nothing was changed (plan only reads).")
        if output is OutputFormat.json:
            _json_error("interrupted: nothing was changed", EXIT_INTERRUPTED)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    _print_plan(the_plan, output, show_members)
    if summary_file is not None:
        _append(summary_file, plan_markdown(the_plan, show_members))
    if out is not None:
        err.print(
            f"Plan saved to {out}; apply it with: reconciler apply --plan {out}", markup=False
        )
    _alert(alerts.for_plan(the_plan))
    if the_plan.violations():
        raise typer.Exit(UnsafePlanError.exit_code)
    if the_plan.summary.problems:
        raise typer.Exit(EXIT_ERROR)
    if detailed_exitcode and the_plan.has_changes:
        raise typer.Exit(EXIT_CHANGES)


def _problems(the_plan: Plan) -> str:
    """What source data a plan could not use, in words."""
    s = the_plan.summary
    parts = []
    if s.members_skipped:
        n = s.members_skipped
        parts.append(f"{n:,} member{'s' if n != 1 else ''} could not be used")
    if s.field_values_skipped:
        n = s.field_values_skipped
        parts.append(f"{n:,} field value{'s' if n != 1 else ''} could not be sent")
    if s.lists_unread:
        n = s.lists_unread
        parts.append(
            f"{n:,} audience{'s were' if n != 1 else ' was'} left out "
            "(list not read with confidence)"
        )
    return " and ".join(parts)


def _print_plan(
    the_plan: Plan, output: OutputFormat, show_members: bool, allowed: frozenset[str] = frozenset()
) -> None:
    typer.echo(PLAN_RENDERERS[output](the_plan, show_members, allowed), nl=False)


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


@app.command()
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
    output: OutputFormat = typer.Option(
        OutputFormat.text, "--format", "-f", help="text for people, markdown, or json."
    ),
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
    _started(show_members, debug)
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
        message = _safe_message(exc, show_members)
        record.finish(outcome, message)
        if summary_file is not None:
            _append(summary_file, f"\n**reconciler apply stopped ({outcome})**: {message}\n")
        if summary_json is not None:
            record.write(summary_json)
        # A blocked apply has already printed its plan, with the violations, as its object.
        json_out = None if isinstance(exc, UnsafePlanError) else output
        raise _fail(exc, show_members, json_out, alert="apply") from None
    except typer.Exit as done:
        if record.finished_at is None:  # stopped before applying (a cancelled prompt)
            record.finish("error", "apply was cancelled before it started; nothing was changed")
        else:
            _alert(alerts.for_record(record, done.exit_code))
        if summary_json is not None:
            record.write(summary_json)
        raise done
    except KeyboardInterrupt:
        # Ctrl-C before apply started writing, or a second one during it.
        record.finish("interrupted", "stopped by Ctrl-C")
        if summary_json is not None:
            record.write(summary_json)
        err.print("Interrupted.")
        if output is OutputFormat.json:
            _json_error("interrupted", EXIT_INTERRUPTED)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if summary_json is not None:
        record.write(summary_json)
    typer.echo(REPORT_RENDERERS[output](report, show_members), nl=False)
    if summary_file is not None:
        _append(summary_file, report_markdown(report, show_members))
    _alert(alerts.for_record(record, EXIT_OK if record.outcome == "success" else EXIT_ERROR))
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
        loaded = load_plan(saved, SavedPlanTables())
        # A PATH given is used as it is: the manifest digest still has to match.
        path, target = path or loaded.manifest_root, loaded.targets
    path = path or Path("manifests")
    manifests = _load(path, target)
    state = _state_dir(state_dir, path)
    allowed = _allowed_rules(allow_unsafe, allow_removals, allow_list_deletion)
    with ExitStack() as stack:
        clients = _open_clients(manifests, stack, state, target)
        # Keyed by the Iterable project, not the destination's name: two manifests, or two
        # checkouts, can name one project differently.
        stack.enter_context(
            project_locks(state, {name: c.project_id for name, c in clients.items()})
        )
        # A saved plan's stale check reads each destination once (one user export), not
        # every list again.
        the_plan = _plan(manifests, clients, target, state, "export" if saved is not None else None)
        if saved is not None:
            _check_fresh(loaded, manifests, the_plan)
            the_plan = loaded.plan
        if output is not OutputFormat.json:
            _print_plan(the_plan, output, show_members, allowed)
        if summary_file is not None:
            _append(summary_file, plan_markdown(the_plan, show_members, allowed))
        skipped = the_plan.summary.problems
        if not the_plan.has_changes:
            record.finish(
                "failed" if skipped else "no_changes",
                _problems(the_plan) if skipped else None,
            )
            if output is OutputFormat.json:
                nothing = ApplyReport(source_problems=_problems(the_plan) or None)
                typer.echo(report_json(nothing, show_members), nl=False)
            raise typer.Exit(EXIT_ERROR if skipped else EXIT_OK)
        try:
            _check_policy(the_plan, allow_unsafe, allow_removals, allow_list_deletion)
        except UnsafePlanError as exc:
            if output is OutputFormat.json:
                blocked = the_plan.to_dict(shower(show_members))
                blocked.update(error=_safe_message(exc, show_members), exit_code=exc.exit_code)
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
                _json_error(f"aborted by a second Ctrl-C; done: {done}", EXIT_INTERRUPTED)

        report = _journaled_apply(the_plan, clients, state, aborted)
        report.rejected_file = _write_rejected(report, state)
        report.source_problems = _problems(the_plan) or None
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
        # members (DuckDB's workspace, source snapshots) go first: os._exit runs no cleanup.
        remove_directories()
        remove_snapshots()
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
    with _progress() as progress:

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


def _progress() -> AbstractContextManager[Progress]:
    """Progress on stderr: bars on a terminal, otherwise a log line per task at most every
    RECONCILER_PROGRESS_INTERVAL seconds (default 10)."""
    raw = os.environ.get("RECONCILER_PROGRESS_INTERVAL", "").strip()
    if not raw:
        return console_progress(err)
    try:
        interval = float(raw)
    except ValueError:
        interval = -1.0
    if not 0 <= interval < float("inf"):
        raise ConfigError(
            f"RECONCILER_PROGRESS_INTERVAL must be a number of seconds (0 or more), got {raw!r}"
        )
    return console_progress(err, interval=interval)


@app.command()
def status(
    path: Path = PathArg,
    output: OutputFormat = typer.Option(
        OutputFormat.text,
        "--format",
        "-f",
        help="text (a table), markdown (a table for pull requests and job summaries) or json.",
    ),
    target: list[str] | None = TargetOpt,
    state_dir: Path | None = StateDirOpt,
    debug: bool = DebugOpt,
) -> None:
    """One screen per audience: list id, members in Iterable, desired members, and pending
    adds, removes and updates. Reads only (it is a plan, summarised)."""
    _started(debug=debug)
    try:
        manifests = _load(path, target)
        with ExitStack() as stack:
            state = _state_dir(state_dir, path)
            clients = _open_clients(manifests, stack, state, target)
            the_plan = _plan(manifests, clients, target, state)
    except ReconcilerError as exc:
        raise _fail(exc, output=output) from None
    except KeyboardInterrupt:
        err.print("Interrupted: nothing was changed (status only reads).")
        if output is OutputFormat.json:
            _json_error("interrupted: nothing was changed", EXIT_INTERRUPTED)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    rows: list[dict[str, Any]] = [
        {
            "destination": d.destination,
            "audience": lp.audience,
            "list_name": lp.list_name,
            "list_id": lp.list_id,
            "iterable_members": lp.live_count if lp.list_id is not None else None,
            "desired_members": lp.desired_count,
            "pending_adds": len(lp.add),
            "pending_removes": len(lp.remove),
            "pending_updates": len(lp.field_update_keys),
            "blocked": any(v.list_name == lp.list_name for v in d.violations()),
        }
        for d in the_plan.destinations
        for lp in d.lists
    ]
    if the_plan.summary.problems:
        err.print(f"warning: {_problems(the_plan)}; `reconciler plan` shows them", markup=False)
    if output is OutputFormat.json:
        typer.echo(json.dumps({"audiences": rows}, indent=2))
        raise typer.Exit(EXIT_ERROR if the_plan.summary.problems else EXIT_OK)
    if output is OutputFormat.markdown:
        typer.echo(_status_markdown(rows), nl=False)
        raise typer.Exit(EXIT_ERROR if the_plan.summary.problems else EXIT_OK)
    from rich.table import Table

    table = Table(title=None, show_edge=False, header_style="bold")
    for column, justify in (
        ("destination", "left"),
        ("audience", "left"),
        ("list id", "right"),
        ("in Iterable", "right"),
        ("desired", "right"),
        ("+add", "right"),
        ("-remove", "right"),
        ("~update", "right"),
        ("policy", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(
            r["destination"],
            r["audience"],
            *_status_cells(r),
        )
    Console(highlight=False, width=max(100, Console().width)).print(table)
    if the_plan.summary.problems:
        raise typer.Exit(EXIT_ERROR)


def _status_cells(r: dict[str, object]) -> list[str]:
    """A status row's list id, counts (with thousands separators) and policy, as shown."""
    live = r["iterable_members"]
    return [
        str(r["list_id"]) if r["list_id"] is not None else "(not created)",
        f"{live:,}" if live is not None else "-",
        *(f"{r[k]:,}" for k in ("desired_members", "pending_adds", "pending_removes")),
        f"{r['pending_updates']:,}",
        "BLOCKED" if r["blocked"] else "",
    ]


def _status_markdown(rows: list[dict[str, object]]) -> str:
    from reconciler.render.plans import markdown_cell

    header = (
        "| destination | audience | list id | in Iterable | desired | +add | -remove | "
        "~update | policy |\n|---|---|---:|---:|---:|---:|---:|---:|---|\n"
    )
    body = "".join(
        "| "
        + " | ".join(
            markdown_cell(str(cell))
            for cell in (r["destination"], r["audience"], *_status_cells(r))
        )
        + " |\n"
        for r in rows
    )
    return "### reconciler status\n\n" + header + body


@app.command("import")
def import_(
    path: Path = PathArg,
    destination: str = typer.Option(
        ...,
        "--destination",
        "-d",
        metavar="NAME",
        help="The Destination (in PATH) whose lists to adopt.",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        metavar="DIR",
        help="Directory for the new manifests and member CSVs; put it under PATH so plan "
        "and apply see them.",
    ),
    lists: list[str] | None = typer.Option(
        None, "--list", metavar="NAME", help="Import only this Iterable list (by name; repeatable)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite files that already exist."),
    state_dir: Path | None = StateDirOpt,
    debug: bool = DebugOpt,
) -> None:
    """Adopt lists that already exist in Iterable: write an Audience manifest and a CSV of its
    current members for each Standard list no manifest manages yet. Reads only; a plan
    right after shows no changes. Member CSVs hold personal data: review before committing."""
    _started(debug=debug)
    try:
        manifests = load_manifests(path)
        with err.status("Reading lists from Iterable...") as status:
            result = import_lists(
                manifests,
                destination,
                out,
                state_dir=_state_dir(state_dir, path),
                lists=lists,
                force=force,
                on_read=lambda name: status.update(f"Reading members of list {name!r}..."),
                on_notice=lambda text: err.print(
                    f"destination {destination!r}: {text}", markup=False
                ),
            )
    except ReconcilerError as exc:
        raise _fail(exc) from None
    for s in result.skipped:
        err.print(f"skipped list {s.list_id} {s.list_name!r}: {s.reason}", markup=False)
    for item in result.imported:
        typer.echo(
            f"{item.manifest}: audience {item.audience!r} <- list {item.list_id} "
            f"{item.list_name!r} ({item.members} members in {item.members_file.name})"
        )
    if not result.imported:
        typer.echo(
            f"Nothing imported: destination {result.destination!r} has no Standard list that "
            "no manifest manages yet"
            + (f" ({len(result.skipped)} skipped, named above)." if result.skipped else ".")
        )
        return
    typer.echo(
        f"Imported {len(result.imported)} list(s) from destination {result.destination!r}, "
        f"skipped {len(result.skipped)}. `reconciler plan` over a path holding {out} should "
        "now show no changes. The member CSVs are owner-only: they hold personal data."
    )
    if any(s.unread for s in result.skipped):
        raise typer.Exit(EXIT_ERROR)


@app.command()
def schema() -> None:
    """Print the manifests' JSON Schema (for editors: yaml-language-server, VS Code)."""
    typer.echo(json.dumps(manifest_json_schema(), indent=2))


@app.command()
def version() -> None:
    """Print reconciler's version."""
    typer.echo(__version__)


def main() -> None:
    try:
        app()
    except MemoryError:
        # Not a bug to report but a machine too small for what was asked.
        sys.stderr.write(
            "error: out of memory. Large audiences are planned in DuckDB under "
            "RECONCILER_MEMORY_LIMIT (see the README's Large audiences section): lower it, "
            "set RECONCILER_ENGINE=duckdb for file and query sources, or use a larger machine.\n"
        )
        if _json_requested(sys.argv[1:]):
            _json_error("out of memory", EXIT_ERROR)
        sys.exit(EXIT_ERROR)
    except Exception as exc:
        # Anything that is not a ReconcilerError is a bug. Without --debug show one line;
        # with it, the traceback (no locals). Either way emails in it are masked, as in
        # every other output, unless --show-members was given.
        text = (
            "".join(traceback.format_exception(exc))
            if _invocation.debug
            else f"internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in reconciler; run again with --debug for the traceback.\n"
        )
        text = _shown(text, _invocation.show_members)
        sys.stderr.write(text)
        if _json_requested(sys.argv[1:]):
            _json_error(f"internal error: {type(exc).__name__}", EXIT_ERROR)
        sys.exit(EXIT_ERROR)


def _json_requested(args: list[str]) -> bool:
    """Whether the command line asked for `--format json` (for errors typer never saw)."""
    pairs = zip(args, [*args[1:], ""], strict=True)
    return any(
        (a in ("--format", "-f") and b == "json") or a in ("--format=json", "-fjson")
        for a, b in pairs
    )
