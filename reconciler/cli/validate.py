"""`reconciler validate`: check manifests and member sources without contacting Iterable."""

from __future__ import annotations

from pathlib import Path

import typer

from reconciler.cli import exits
from reconciler.cli.exits import EXIT_ERROR, err
from reconciler.cli.options import DebugOpt, PathArg, ShowMembersOpt
from reconciler.errors import ReconcilerError, SourceError
from reconciler.manifest import load_manifests
from reconciler.members.model import Engine
from reconciler.render.masking import quoted, shower
from reconciler.state.desired import build_desired


def validate(
    path: Path = PathArg, show_members: bool = ShowMembersOpt, debug: bool = DebugOpt
) -> None:
    """Check manifests and member sources without contacting Iterable.

    Every problem is printed as FILE:LINE:COL: message (a source row as FILE:ROW), all at
    once: manifest errors, sources that cannot be read, invalid members, and mapped values
    that plan would not send. Exit 1 if any."""
    exits.started(show_members, debug)
    unreadable: list[SourceError] = []
    try:
        manifests = load_manifests(path)
        # Large sources are checked in DuckDB, as plan reads them.
        desired = build_desired(manifests, engine=Engine.from_env(), errors=unreadable)
    except ReconcilerError as exc:
        raise exits.fail(exc) from None
    for error in unreadable:
        err.print(exits.safe_message(error, show_members), markup=False)
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
