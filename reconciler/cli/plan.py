"""`reconciler plan`: show what apply would change in Iterable; reads only."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from reconciler import alerts
from reconciler.cli import annotate, exits
from reconciler.cli.exits import EXIT_CHANGES, err
from reconciler.cli.options import (
    AnnotationsMode,
    AnnotationsOpt,
    DebugOpt,
    OutputFormat,
    PathArg,
    ShowMembersOpt,
    StateDirOpt,
    SummaryFileOpt,
    TargetOpt,
    format_option,
)
from reconciler.errors import OutputError, ReconcilerError, SummaryFileError, UnsafePlanError
from reconciler.render.masking import quoted, shower

if TYPE_CHECKING:
    from reconciler.plan import Plan


def plan(
    path: Path = PathArg,
    output: OutputFormat = format_option(
        "text for people, markdown for pull requests, json for machines."
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
        "the full member lists (personal data): keep it private and short-lived. In a git "
        "work tree that does not ignore it, a warning says so (git add -A would commit it).",
    ),
    summary_file: Path | None = SummaryFileOpt,
    show_members: bool = ShowMembersOpt,
    target: list[str] | None = TargetOpt,
    state_dir: Path | None = StateDirOpt,
    annotations: AnnotationsMode = AnnotationsOpt,
    debug: bool = DebugOpt,
) -> None:
    """Show what apply would change in Iterable. Reads only; writes nothing to Iterable.

    Audiences of 10,000 source rows or more (with a trait mapping, a million) are planned
    in DuckDB, on disk under a memory limit: see RECONCILER_ENGINE in the README.

    Exit codes: 0 success (with --detailed-exitcode: no changes), 1 error, invalid members,
    field values not sent, audiences left out (list not read with confidence, or not
    certainly theirs) or a usage error, 2 changes present (--detailed-exitcode), 3 blocked
    by the safety policy, 130 interrupted (Ctrl-C). In GitHub Actions each located
    manifest error and warning, and each source row left out, is also a workflow command
    (::error file=...), shown on the pull request's diff.

    RECONCILER_LOG=requests prints a line per request to Iterable on stderr: method, path,
    status, time, and how a failed one failed (never the API key or a member), and every
    retry; without it a destination's first 20 retries are printed, then the rest are
    counted in a line at most once a minute and one at the end."""
    exits.started(show_members, debug, output, read_only="plan", annotations_mode=annotations)
    # Imported here: `plan --help` needs none of the client, the planner or the renderers.
    from reconciler.cli import session
    from reconciler.cli.output import append, check_output_path, print_plan
    from reconciler.leftovers import sweep_partials
    from reconciler.plan.file import save_plan
    from reconciler.render.plans import SUMMARY_LIMIT, plan_markdown
    from reconciler.state.desired import combined_digest, manifest_file_digests

    try:
        check_output_path("--out", out, replaced=True)
        check_output_path("--summary-file", summary_file)
        manifests, the_plan = session.read_plan(path, target, state_dir)
        if out is not None:
            files = manifest_file_digests(manifests, target)
            sweep_partials(Path(os.path.realpath(out)))  # what killed runs left beside it
            try:
                save_plan(out, the_plan, combined_digest(files), path, target, files)
            except OSError as exc:
                # A runner's full disk, a directory that cannot be made: no bug, and the
                # partial file is gone (save_plan removes it).
                raise ReconcilerError(
                    f"cannot write the plan to {out}: "
                    f"{exc.strerror or type(exc).__name__}; no plan was saved"
                ) from None
    except (ReconcilerError, KeyboardInterrupt) as exc:
        # A plan only reads, so after Ctrl-C there is nothing to undo.
        raise exits.fail(exc, alert="plan") from None
    _annotate(the_plan)
    unwritten: list[ReconcilerError] = []
    # The summary file first, so that with --format json the plan's object can say it was
    # not written (stdout is the one place a script reads); nor does it depend on stdout.
    if summary_file is not None:
        try:
            append(summary_file, plan_markdown(the_plan, show_members, limit=SUMMARY_LIMIT))
        except SummaryFileError as exc:
            unwritten.append(exc)
    try:
        error = unwritten[0] if unwritten else _exit_reason(the_plan)
        print_plan(the_plan, output, show_members, error=error)
    except OutputError as exc:
        unwritten.append(exc)
    if out is not None:
        err.print(
            # Quoted as a shell needs it: a path with a space or a quote pasted as printed
            # named other files.
            f"Plan saved to {out}; apply it with: reconciler apply --plan {shlex.quote(str(out))}",
            markup=False,
        )
        _warn_if_committable(out)
    exits.send_alert(alerts.for_plan(the_plan))
    if unwritten:
        # Not 0, 2 or 3: a script or a reviewer reading the plan did not get it. No JSON
        # error object: stdout has the plan's (saying the error), or is gone.
        raise [exits.fail(problem, json_object=False) for problem in unwritten][-1]
    reason = _exit_reason(the_plan)
    if reason is not None:
        raise typer.Exit(reason.exit_code)
    if detailed_exitcode and the_plan.has_changes:
        raise typer.Exit(EXIT_CHANGES)


def _exit_reason(the_plan: Plan) -> ReconcilerError | None:
    """Why plan exits 3 (blocked) or 1 (source rows or audiences left out) for what its
    plan holds; None when it exits 0 or 2. With --format json the plan's object carries it
    as `error` and `exit_code`: stdout is all a script reads, and stderr says nothing of it
    (the text plan does, on stdout)."""
    from reconciler.plan.policy import override_flags

    violations = the_plan.violations()
    if violations:
        reasons = "; ".join(f"{v.where}: {v.message}" for v in violations)
        flags = override_flags(violations)
        return UnsafePlanError(
            f"the safety policy blocks this plan: {reasons}; apply refuses it unless given {flags}"
        )
    if the_plan.summary.problems:
        return ReconcilerError(
            f"{the_plan.summary.describe_problems()}; the plan's skipped_members, "
            "field_issues and unread say which"
        )
    return None


def _warn_if_committable(out: Path) -> None:
    """A saved plan holds every member's identity: in a git work tree where it is not
    ignored, `git add -A` commits it (and a push publishes it). A warning, never a failure:
    the plan is saved, and git may be missing or the place no repository."""
    from reconciler.manifest.repository import git_would_commit, gitignore_pattern

    if not git_would_commit(out):
        return
    pattern = gitignore_pattern(Path(os.path.realpath(out)).name)
    err.print(
        f"warning: {out} holds members' emails and userIds and is in a git work tree that "
        f"does not ignore it, so 'git add -A' would commit it: add {pattern} to .gitignore, "
        "or save the plan outside the repository",
        markup=False,
    )


def _annotate(the_plan: Plan) -> None:
    """The source rows the plan leaves out (invalid members, values that cannot be sent:
    exit 1), and duplicate rows that disagreed (warnings), at their rows; masked."""
    destinations = the_plan.destinations
    show = quoted(shower(False))  # one numbering of the members masked
    annotate.emit(
        [
            *(
                annotate.from_issue(issue, "error", show)
                for d in destinations
                for _, issue in (*d.skipped_members, *d.field_issues)
            ),
            *(
                annotate.from_issue(issue, "warning", show)
                for d in destinations
                for _, issue in d.duplicate_conflicts
            ),
        ]
    )
