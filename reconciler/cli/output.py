"""Writing for people and machines, shared by the commands: plans on stdout, progress on
stderr, the markdown summary file."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path

import typer

from reconciler.cli.exits import err
from reconciler.cli.options import OutputFormat
from reconciler.errors import ConfigError
from reconciler.plan import Plan
from reconciler.progress import Progress, console_progress
from reconciler.render.plans import PLAN_RENDERERS


def print_plan(
    the_plan: Plan, output: OutputFormat, show_members: bool, allowed: frozenset[str] = frozenset()
) -> None:
    typer.echo(PLAN_RENDERERS[output](the_plan, show_members, allowed), nl=False)


def append(path: Path, text: str) -> None:
    """Add to a summary file (`--summary-file`, e.g. $GITHUB_STEP_SUMMARY)."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text if text.endswith("\n") else text + "\n")


def progress_display() -> AbstractContextManager[Progress]:
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
