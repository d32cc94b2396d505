"""`reconciler status`: one line per audience, a plan summarised; reads only."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from reconciler.cli import exits, session
from reconciler.cli.exits import EXIT_ERROR, EXIT_OK, err
from reconciler.cli.options import (
    DebugOpt,
    OutputFormat,
    PathArg,
    StateDirOpt,
    TargetOpt,
    format_option,
)
from reconciler.errors import ReconcilerError


def status(
    path: Path = PathArg,
    output: OutputFormat = format_option(
        "text (a table), markdown (a table for pull requests and job summaries) or json."
    ),
    target: list[str] | None = TargetOpt,
    state_dir: Path | None = StateDirOpt,
    debug: bool = DebugOpt,
) -> None:
    """One screen per audience: list id, members in Iterable, desired members, and pending
    adds, removes and updates. Reads only (it is a plan, summarised)."""
    exits.started(debug=debug, output=output, read_only="status")
    try:
        _manifests, the_plan = session.read_plan(path, target, state_dir)
    except (ReconcilerError, KeyboardInterrupt) as exc:
        raise exits.fail(exc) from None
    rows = [
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
        err.print(
            f"warning: {the_plan.summary.describe_problems()}; `reconciler plan` shows them",
            markup=False,
        )
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
