"""`reconciler validate`: check manifests and member sources without contacting Iterable."""

from __future__ import annotations

from pathlib import Path

import typer

from reconciler import validation
from reconciler.cli import exits
from reconciler.cli.exits import EXIT_ERROR, err
from reconciler.cli.options import DebugOpt, PathArg, ShowMembersOpt
from reconciler.cli.stdout import emit
from reconciler.errors import OutputError, ReconcilerError
from reconciler.members.model import Engine
from reconciler.render.masking import quoted, shower


def validate(
    path: Path = PathArg, show_members: bool = ShowMembersOpt, debug: bool = DebugOpt
) -> None:
    """Check manifests and member sources without contacting Iterable.

    Every problem is printed as FILE:LINE:COL: message (a CSV row as FILE:LINE, the
    line it starts on), all at once: every manifest error; once the manifests load,
    sources that cannot be read, invalid members, and mapped values that plan would not
    send. Exit 1 if any; 130 interrupted (Ctrl-C)."""
    exits.started(show_members, debug, read_only="validate")
    try:
        # Large sources are checked in DuckDB, as plan reads them.
        found = validation.validate(path, engine=Engine.from_env())
    except (ReconcilerError, KeyboardInterrupt) as exc:
        # Ctrl-C (or SIGTERM: a cancelled CI job) exits 130 as every command does, not
        # click's "Aborted!" and 1.
        raise exits.fail(exc) from None
    for error in found.unreadable:
        err.print(exits.safe_message(error, show_members), markup=False)
    for line in found.lines(quoted(shower(show_members))):
        err.print(line, markup=False)
    if not found.ok:
        err.print(found.count_problems(), markup=False)
        raise typer.Exit(EXIT_ERROR)
    try:
        emit(found.describe(), "the summary")
    except OutputError as exc:
        raise exits.fail(exc) from None
