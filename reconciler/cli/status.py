"""`reconciler status`: one line per audience, a plan summarised; reads only."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from reconciler.cli import exits
from reconciler.cli.exits import EXIT_ERROR, err
from reconciler.cli.options import (
    DebugOpt,
    OutputFormat,
    PathArg,
    StateDirOpt,
    TargetOpt,
    format_option,
)
from reconciler.cli.stdout import emit
from reconciler.errors import OutputError, ReconcilerError
from reconciler.progress import redraws_in_place

if TYPE_CHECKING:
    from rich.console import RenderableType


def status(
    path: Path = PathArg,
    output: OutputFormat = format_option(
        "text (a table), markdown (a table for pull requests and job summaries) or json."
    ),
    target: list[str] | None = TargetOpt,
    state_dir: Path | None = StateDirOpt,
    debug: bool = DebugOpt,
) -> None:
    """One screen per audience: list id, members in Iterable, desired members, pending
    adds, removes and updates, and desired members held back (who left the list or its
    channel themselves, forgotten users, users updateExistingUsersOnly does not create);
    and a row per list prune deletes. Reads only (it is a plan, summarised).

    Exit codes: 0 success, 1 error (or source members or field values that could not be
    used, or an audience left out of the plan: a line below the table says why) or a usage
    error, 3 a source file changed while it was read (nothing was planned), 130
    interrupted (Ctrl-C).

    RECONCILER_LOG=requests prints a line per request to Iterable on stderr: method, path,
    status, time, and how a failed one failed (never the API key or a member), and every
    retry; without it a destination's first 20 retries are printed, then the rest are
    counted in a line at most once a minute and one at the end."""
    exits.started(debug=debug, output=output, read_only="status")
    # Imported here: `status --help` needs none of the client or the planner.
    from reconciler.cli import session
    from reconciler.render.status import status_json, status_markdown, status_rows

    try:
        _manifests, the_plan = session.read_plan(path, target, state_dir)
    except (ReconcilerError, KeyboardInterrupt) as exc:
        raise exits.fail(exc) from None
    rows = status_rows(the_plan)
    problems = None
    if the_plan.summary.problems:
        problems = f"{the_plan.summary.describe_problems()}; `reconciler plan` shows them"
        err.print(f"warning: {problems}", markup=False)
    try:
        if output is OutputFormat.json:
            # The exit code's reason in the object too: a script reads only stdout.
            error = None if problems is None else (problems, EXIT_ERROR)
            emit(status_json(rows, error), "the status")
        elif output is OutputFormat.markdown:
            emit(status_markdown(rows), "the status", nl=False)
        else:
            emit(_table_text(rows), "the status", nl=False)
    except OutputError as exc:
        raise exits.fail(exc) from None
    if the_plan.summary.problems:
        raise typer.Exit(EXIT_ERROR)


def _table_text(rows: list[dict[str, Any]]) -> str:
    """The table as text: in a log or a file every row on one line, however wide; in a
    terminal as wide as it is, stacked where the table would squeeze its names."""
    from rich.text import Text

    from reconciler.render.status import left_out_reasons, status_table, status_text

    screen = Console()
    shown: RenderableType
    if redraws_in_place(screen):
        width = screen.width
        shown = status_text(rows, width)
    else:  # a file or a pipe, even with FORCE_COLOR set
        shown = status_table(rows)
        width = max(100, Console(width=100_000).measure(shown).maximum)
    # Drawn into a string (styled as the terminal would show it), then written by emit as
    # every result is.
    drawn = io.StringIO()
    console = Console(file=drawn, force_terminal=screen.is_terminal, highlight=False, width=width)
    console.print(shown)
    for line in left_out_reasons(rows):
        # As text, not markup (a list name may hold "[...]"); in a log on one line.
        console.print(Text(line), soft_wrap=not redraws_in_place(screen))
    return drawn.getvalue()
