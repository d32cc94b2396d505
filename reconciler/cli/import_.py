"""`reconciler import`: adopt lists that already exist in Iterable as manifests."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from reconciler.cli import exits
from reconciler.cli.exits import EXIT_ERROR, err
from reconciler.cli.options import DebugOpt, PathArg, StateDirOpt
from reconciler.cli.stdout import emit
from reconciler.errors import OutputError, ReconcilerError
from reconciler.owner_only import MODES_KEEP_OTHERS_OUT
from reconciler.words import quantity

if TYPE_CHECKING:
    from reconciler.adopt import ImportedList, ImportResult


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
    right after shows no changes. Member CSVs hold personal data: review before committing.

    Example: reconciler import --destination prod manifests --out manifests/imported

    Exit codes: 0 imported (or nothing to import), 1 error, a list left out because its read
    could not be trusted, or a usage error, 130 interrupted (Ctrl-C).

    RECONCILER_LOG=requests prints a line per request to Iterable on stderr: method, path,
    status, time, and how a failed one failed (never the API key or a member), and every
    retry; without it a destination's first 20 retries are printed, then the rest are
    counted in a line at most once a minute and one at the end."""
    # Imported here: every command's process registers this one, and only it adopts lists;
    # `import --help` needs none of the client or the manifests' models.
    from reconciler.adopt import destination_named, import_lists
    from reconciler.cli import session
    from reconciler.cli.output import check_output_path, progress_display
    from reconciler.connect import destination_project
    from reconciler.iterable.settings import ClientSettings
    from reconciler.manifest import load_manifests

    invocation = exits.started(debug=debug)
    invocation.interrupted = (
        "Interrupted: nothing was changed in Iterable (import only reads); lists not yet "
        "written have no files. Run import again."
    )
    try:
        check_output_path("--out", out, directory=True)
        manifests = load_manifests(path)
        state = session.state_dir(state_dir, path)
        # Iterable's list index and members lag an apply's writes: read right after one,
        # a list that apply deleted would be adopted, and the plan after would create it.
        # Any destination naming the same project (host and key) may have written it.
        project = destination_project(destination_named(manifests, destination))
        lag = ClientSettings.from_env().read_lag
        lags = {
            name: lag
            for name, other in manifests.destinations.items()
            if name == destination
            or (project is not None and destination_project(other) == project)
        }
        session.wait_for_read_lag(manifests, lags, state)
        # Progress goes to stderr only (bars on a terminal, else a line per read at most
        # every RECONCILER_PROGRESS_INTERVAL seconds); stdout keeps to what was imported.
        with progress_display() as progress:
            result = import_lists(
                manifests,
                destination,
                out,
                state_dir=state,
                lists=lists,
                force=force,
                progress=progress,
                on_notice=lambda text: progress.note(f"destination {destination!r}: {text}"),
            )
    except (ReconcilerError, KeyboardInterrupt) as exc:
        raise exits.fail(exc) from None
    for s in result.skipped:
        err.print(f"skipped list {s.list_id} {s.list_name!r}: {s.reason}", markup=False)
    for item in result.imported:
        if item.refused:
            err.print(_refused_note(item), markup=False)
    try:
        emit("\n".join(_imported_lines(result, out)), "the list of what was imported")
    except OutputError as exc:
        raise exits.fail(exc) from None
    if any(s.unread for s in result.skipped):
        raise typer.Exit(EXIT_ERROR)


def _refused_note(item: ImportedList) -> str:
    """Members Iterable holds with a userId a plan refuses from a source (an app that sent
    the text null): the plan right after skips their rows, so it does not show no changes."""
    return (
        f"list {item.list_id} {item.list_name!r}: {quantity(item.refused, 'member')} "
        "written with a userId a plan takes for an export's mistake (a missing value such "
        "as null, a spreadsheet error, a number in exponent form), though Iterable holds it "
        f"(an app sent that text): every plan skips those rows of {item.members_file.name}, "
        "keeping the members on the list, and exits 1; fix those profiles in Iterable"
    )


def _imported_lines(result: ImportResult, out: Path) -> list[str]:
    """What import says on stdout: what it wrote, or that there was nothing to import."""
    lines = []
    if result.member_read is not None:
        # Said as a plan says its read: the route, its calls and its time.
        lines.append(f"Destination {result.destination!r}: {result.member_read}")
    if result.other_read is not None:
        lines.append(f"  (also read: {result.other_read})")
    for item in result.imported:
        lines.append(
            f"{item.manifest}: audience {item.audience!r} <- list {item.list_id} "
            f"{item.list_name!r} ({item.members:,} member{'s' if item.members != 1 else ''} "
            f"in {item.members_file.name})"
        )
    if not result.imported:
        lines.append(
            f"Nothing imported: destination {result.destination!r} has no Standard list that "
            "no manifest manages yet"
            + (f" ({len(result.skipped):,} skipped, named above)." if result.skipped else ".")
        )
        return lines
    lines.append(
        f"Imported {quantity(len(result.imported), 'list')} from destination "
        f"{result.destination!r}, "
        f"skipped {len(result.skipped):,}. `reconciler plan` over a path holding {out} "
        "should now show no changes"
        + (" but the rows named above. " if any(i.refused for i in result.imported) else ". ")
        + _privacy(out)
    )
    return lines


def _privacy(out: Path) -> str:
    if MODES_KEEP_OTHERS_OUT:
        return "The member CSVs are owner-only: they hold personal data."
    return (
        f"The member CSVs hold personal data; on Windows whoever can read {out} can read "
        "them (a folder in your user profile is yours alone)."
    )
