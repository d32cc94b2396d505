"""The command line: parse options, call the core, render, map errors to exit codes.

Exit codes: 0 success (plan: no changes, or changes without --detailed-exitcode),
1 error (including members skipped or rejected), 2 changes present (plan
--detailed-exitcode only). Everything for people goes to stderr except the plan/report
itself, so `--format json` leaves exactly one JSON object on stdout.
"""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console

from reconciler import __version__
from reconciler.apply import ApplyReport, apply_plan
from reconciler.connect import open_client
from reconciler.desired import build_desired
from reconciler.emulator import emulator_app
from reconciler.errors import ManifestError, ReconcilerError
from reconciler.iterable import ClientSettings, IterableClient
from reconciler.manifest import Manifests, load_manifests, manifest_json_schema
from reconciler.plan import Plan
from reconciler.reconcile import make_plan
from reconciler.render import plan_json, plan_text, report_json, report_text

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2

app = typer.Typer(
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
app.add_typer(emulator_app, name="emulator", help="Run the local Iterable emulator.")

err = Console(stderr=True, highlight=False, soft_wrap=True)


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


PathArg = typer.Argument(
    Path("manifests"),
    help="Manifest file or directory (all *.yaml / *.yml files under it).",
    show_default=True,
)
StateDirOpt = typer.Option(
    Path(".reconciler"),
    "--state-dir",
    envvar="RECONCILER_STATE_DIR",
    help="Where local state lives (the sandbox's emulated Iterable: sandbox.json).",
)
TargetOpt = typer.Option(
    None,
    "--target",
    "-t",
    help="Limit to this audience (repeatable). Other audiences are neither read nor changed.",
)
DebugOpt = typer.Option(False, "--debug", help="Show tracebacks for unexpected errors.")


def _fail(exc: ReconcilerError) -> typer.Exit:
    if isinstance(exc, ManifestError):
        for problem in exc.problems:
            err.print(str(problem), markup=False)
        n = len(exc.problems)
        err.print(f"{n} problem{'s' if n != 1 else ''} found.", markup=False)
    else:
        err.print(f"error: {exc}", markup=False)
    return typer.Exit(exc.exit_code)


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
    manifests: Manifests, stack: ExitStack, state_dir: Path
) -> dict[str, IterableClient]:
    settings = ClientSettings.from_env()
    return {
        name: stack.enter_context(open_client(dest, settings, state_dir))
        for name, dest in manifests.destinations.items()
    }


def _plan(
    manifests: Manifests, clients: dict[str, IterableClient], targets: list[str] | None
) -> Plan:
    with err.status("Reading live state from Iterable...") as status:

        def on_read(list_name: str) -> None:
            status.update(f"Reading members of list {list_name!r}...")

        return make_plan(
            manifests, clients, targets=set(targets) if targets else None, on_read=on_read
        )


@app.command()
def validate(path: Path = PathArg, debug: bool = DebugOpt) -> None:
    """Check manifests and member sources without contacting Iterable.

    Every problem is printed as FILE:LINE:COL: message, all at once. Exit 1 if any."""
    try:
        manifests = load_manifests(path)
        desired = build_desired(manifests)
    except ReconcilerError as exc:
        raise _fail(exc) from None
    issues = [issue for d in desired.values() for item in d.lists for issue in item.issues]
    for issue in issues:
        err.print(str(issue), markup=False)
    members = sum(len(item.members) for d in desired.values() for item in d.lists)
    if issues:
        err.print(f"{len(issues)} invalid member{'s' if len(issues) != 1 else ''} found.")
        raise typer.Exit(EXIT_ERROR)
    typer.echo(
        f"OK: {len(manifests.destinations)} destination(s), {len(manifests.audiences)} "
        f"audience(s), {members} member(s) in {len(manifests.files)} file(s)."
    )


@app.command()
def plan(
    path: Path = PathArg,
    output: OutputFormat = typer.Option(
        OutputFormat.text, "--format", "-f", help="text for people, json for machines."
    ),
    detailed_exitcode: bool = typer.Option(
        False,
        "--detailed-exitcode",
        help="Exit 0 when there is nothing to do, 2 when there are changes, 1 on error.",
    ),
    target: list[str] | None = TargetOpt,
    state_dir: Path = StateDirOpt,
    debug: bool = DebugOpt,
) -> None:
    """Show what apply would change in Iterable. Reads only; writes nothing."""
    try:
        manifests = _load(path, target)
        with ExitStack() as stack:
            clients = _open_clients(manifests, stack, state_dir)
            the_plan = _plan(manifests, clients, target)
    except ReconcilerError as exc:
        raise _fail(exc) from None
    typer.echo(
        plan_json(the_plan) if output is OutputFormat.json else plan_text(the_plan),
        nl=output is not OutputFormat.text,
    )
    if the_plan.summary.members_skipped:
        raise typer.Exit(EXIT_ERROR)
    if detailed_exitcode and the_plan.has_changes:
        raise typer.Exit(EXIT_CHANGES)


@app.command()
def apply(
    path: Path = PathArg,
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Do not ask for confirmation (needed without a terminal)."
    ),
    output: OutputFormat = typer.Option(
        OutputFormat.text, "--format", "-f", help="text for people, json for machines."
    ),
    target: list[str] | None = TargetOpt,
    state_dir: Path = StateDirOpt,
    debug: bool = DebugOpt,
) -> None:
    """Make Iterable match the manifests: create lists, add and remove members.

    Shows the plan first and asks for confirmation unless --yes. Only the differences
    are sent; a second apply right after does nothing. Exit 0 only when every change
    succeeded."""
    try:
        manifests = _load(path, target)
        with ExitStack() as stack:
            clients = _open_clients(manifests, stack, state_dir)
            the_plan = _plan(manifests, clients, target)
            if output is OutputFormat.text:
                typer.echo(plan_text(the_plan), nl=False)
            if not the_plan.has_changes:
                if output is OutputFormat.json:
                    typer.echo(report_json(ApplyReport()))
                raise typer.Exit(EXIT_ERROR if the_plan.summary.members_skipped else EXIT_OK)
            if not yes:
                _confirm()
            report = _apply_with_progress(the_plan, clients)
    except ReconcilerError as exc:
        raise _fail(exc) from None
    typer.echo(
        report_json(report) if output is OutputFormat.json else report_text(report),
        nl=output is OutputFormat.json,
    )
    if not report.ok or the_plan.summary.members_skipped:
        raise typer.Exit(EXIT_ERROR)


def _confirm() -> None:
    if not sys.stdin.isatty():
        raise ReconcilerError(
            "apply needs confirmation but stdin is not a terminal; review the plan and "
            "pass --yes to apply without a prompt"
        )
    if not typer.confirm("Apply these changes to Iterable?", default=False, err=True):
        err.print("Apply cancelled; nothing was changed.")
        raise typer.Exit(EXIT_ERROR)


def _apply_with_progress(the_plan: Plan, clients: dict[str, IterableClient]) -> ApplyReport:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    s = the_plan.summary
    total = s.members_to_add + s.members_to_remove
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task("Applying", total=total)
        return apply_plan(the_plan, clients, progress=lambda _phase, n: progress.advance(task, n))


@app.command()
def schema() -> None:
    """Print the manifests' JSON Schema (for editors: yaml-language-server, VS Code)."""
    typer.echo(json.dumps(manifest_json_schema(), indent=2))


@app.command()
def version() -> None:
    """Print reconciler's version."""
    typer.echo(__version__)


def main() -> None:
    debug = "--debug" in sys.argv
    try:
        app()
    except Exception:
        # Anything that is not a ReconcilerError is a bug. Without --debug show one line
        # (tracebacks can carry request data); with it, the traceback (no locals).
        if debug:
            raise
        exc_type, exc, _ = sys.exc_info()
        err.print(
            f"internal error: {exc_type.__name__ if exc_type else 'Exception'}: {exc}\n"
            "This is a bug in reconciler; run again with --debug for the traceback.",
            markup=False,
        )
        sys.exit(EXIT_ERROR)


if __name__ == "__main__":
    main()
