"""Writing for people and machines, shared by the commands: plans on stdout, progress on
stderr, the markdown summary file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path

from reconciler.cli import exits
from reconciler.cli.exits import err
from reconciler.cli.options import OutputFormat
from reconciler.cli.stdout import emit
from reconciler.env_numbers import SECONDS, env_float
from reconciler.errors import ConfigError, ReconcilerError, SummaryFileError
from reconciler.open_flags import BINARY
from reconciler.plan import Plan
from reconciler.progress import Progress, console_progress, redraws_in_place
from reconciler.render.plans import PLAN_RENDERERS, plan_json


def print_plan(
    the_plan: Plan,
    output: OutputFormat,
    show_members: bool,
    allowed: frozenset[str] = frozenset(),
    *,
    consequence: str | None = None,
    error: ReconcilerError | None = None,
    what: str = "the plan",
) -> None:
    """The plan on stdout, or OutputError (saying `consequence`) when stdout refuses it.
    `error`: what the command exits with although it shows its plan (the safety policy's
    block, a summary file not written); with --format json the plan's object carries it as
    `error` and `exit_code`, since that object is all a script reads."""
    if error is not None and output is OutputFormat.json:
        message = exits.safe_message(error, show_members)
        text = plan_json(the_plan, show_members, allowed, error=(message, error.exit_code))
    else:
        text = PLAN_RENDERERS[output](the_plan, show_members, allowed)
    emit(text, what, nl=False, consequence=consequence)


def check_output_path(
    option: str, path: Path | None, *, directory: bool = False, replaced: bool = False
) -> None:
    """Refuse, before any work, an output option that cannot be written: a file option
    naming a directory, a path under a file, or a place this user may not write. Otherwise
    the command would fail after its work (an apply after applying) as an internal error.
    `replaced`: the file is written beside and renamed over the path, which must then not be
    a device or a pipe (renamed over, `/dev/stdout` or `/dev/full` itself was replaced by a
    regular file when run as root, as CI containers run)."""
    if path is None:
        return
    kind = "directory" if directory else "file"
    if directory and path.is_symlink() and not path.exists():
        # A link whose target is missing or that loops: mkdir would meet the link itself
        # (FileExistsError, an internal error). A file option's link is written through.
        raise ConfigError(
            f"{option} {path}: is a symbolic link that leads to no directory (its target is "
            "missing, or it loops); give a directory path"
        )
    if path.is_dir() != directory and path.exists():
        other = "a file" if directory else "a directory"
        raise ConfigError(f"{option} {path}: is {other}; give a {kind} path")
    if replaced and path.exists() and not path.is_file():
        raise ConfigError(
            f"{option} {path}: is not a regular file (a device or a pipe); give a file path"
        )
    # The nearest part that exists decides: a file there means the path cannot be made.
    existing = path if path.exists() else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() and existing != path:
        raise ConfigError(f"{option} {path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK):
        raise ConfigError(f"{option} {path}: {existing} is not writable by this user")


def append(path: Path, text: str) -> None:
    """Add to a summary file (`--summary-file`, e.g. $GITHUB_STEP_SUMMARY), or raise
    SummaryFileError: a full disk (a runner's, where the job summary lives) was an internal
    error, and in apply one after the work was done."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # as --out and --summary-json do
        # A file made here is owner-only, as a saved plan is: with --show-members it holds
        # members in full. One that exists ($GITHUB_STEP_SUMMARY) keeps its mode.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | BINARY, 0o600)
        with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
            handle.write(text if text.endswith("\n") else text + "\n")
    except OSError as exc:
        raise SummaryFileError(
            f"could not add to --summary-file {path}: {exc.strerror or type(exc).__name__}"
        ) from None


def progress_display() -> AbstractContextManager[Progress]:
    """Progress on stderr: bars on a terminal that can redraw them, otherwise (a log, a
    file, TERM=dumb, whatever FORCE_COLOR says) a log line per task at most every
    RECONCILER_PROGRESS_INTERVAL seconds (default 10)."""
    return console_progress(err, interval=progress_interval(), bars=redraws_in_place(err))


def progress_interval(environ: Mapping[str, str] | None = None) -> float:
    """Seconds between progress lines, from RECONCILER_PROGRESS_INTERVAL."""
    env = os.environ if environ is None else environ
    return env_float(env, "RECONCILER_PROGRESS_INTERVAL", 10.0, SECONDS)
