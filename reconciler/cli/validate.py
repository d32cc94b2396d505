"""`reconciler validate`: check manifests and member sources without contacting Iterable."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from reconciler.cli import annotate, exits
from reconciler.cli.exits import EXIT_ERROR, err
from reconciler.cli.options import (
    AnnotationsMode,
    AnnotationsOpt,
    DebugOpt,
    PathArg,
    ShowMembersOpt,
)
from reconciler.cli.stdout import emit
from reconciler.errors import OutputError, ReconcilerError
from reconciler.render.masking import Show, quoted, shower

if TYPE_CHECKING:
    from reconciler.validation import Validation


def validate(
    path: Path = PathArg,
    show_members: bool = ShowMembersOpt,
    annotations: AnnotationsMode = AnnotationsOpt,
    debug: bool = DebugOpt,
) -> None:
    """Check manifests and member sources without contacting Iterable.

    Every problem is printed as FILE:LINE:COL: message (a CSV row as FILE:LINE, the
    line it starts on), all at once: every manifest error; once the manifests load,
    sources that cannot be read, invalid members, and mapped values that plan would not
    send (the first 5 rows of each file and error; the rest counted). Exit 1 if any; 130
    interrupted (Ctrl-C). In GitHub Actions each located one is also a workflow command
    (::error file=...), shown on the pull request's diff."""
    exits.started(show_members, debug, read_only="validate", annotations_mode=annotations)
    # Imported here: `validate --help` needs none of the manifests' models, YAML, DuckDB
    # or templates these bring.
    from reconciler import validation
    from reconciler.members.model import Engine

    try:
        # Large sources are checked in DuckDB, as plan reads them.
        found = validation.validate(path, engine=Engine.from_env())
    except (ReconcilerError, KeyboardInterrupt) as exc:
        # Ctrl-C (or SIGTERM: a cancelled CI job) exits 130 as every command does, not
        # click's "Aborted!" and 1.
        raise exits.fail(exc) from None
    for error in found.unreadable:
        err.print(exits.safe_message(error, show_members), markup=False)
    show = quoted(shower(show_members))
    for line in found.lines(show):
        err.print(line, markup=False)
    # Masked even with --show-members; numbered as the log's lines when those are masked.
    _annotate(found, show if not show_members else quoted(shower(False)))
    if not found.ok:
        err.print(found.count_problems(), markup=False)
        raise typer.Exit(EXIT_ERROR)
    try:
        emit(found.describe(), "the summary")
    except OutputError as exc:
        raise exits.fail(exc) from None


def _annotate(found: Validation, show: Show) -> None:
    """The located problems (errors), then the warnings, each kind as the log orders it."""
    annotate.emit(
        [
            *(
                annotate.located(exits.safe_message(error), "error", shown=True)
                for error in found.unreadable
            ),
            *(annotate.from_issue(issue, "error", show) for issue in found.invalid),
            *(annotate.from_issue(issue, "error", show) for issue in found.values),
            *(
                annotate.from_problem(warning, "warning")
                for warning in (*found.manifest_warnings, *found.workflow_warnings)
            ),
            *(annotate.from_issue(issue, "warning", show) for issue in found.conflicts),
        ]
    )
