"""What `reconciler validate` checks, without contacting Iterable: the manifests load,
every member source can be read, its members are valid, and the values its trait mapping
maps convert. The command (cli/validate.py) prints the result and exits with it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import Problem, SourceError, line_safe_path
from reconciler.github.workflow_paths import unwatched_reads
from reconciler.manifest import load_manifests
from reconciler.members.issue import MemberIssue
from reconciler.members.model import Engine
from reconciler.render.masking import without_data
from reconciler.state.desired import DesiredList, build_desired, refuse_unordered_conflicts
from reconciler.traits import values as trait_values
from reconciler.words import quantity

# Rows listed per source file and error for values that cannot be sent: a template failing
# on every row (`{{ 1/0 }}`) is one mistake to fix, not 500 lines in a CI log; the rest of
# its rows are counted on one line.
SAME_ERROR_SHOWN = 5
# Where a row is, after its source in an issue's location: a CSV file's `:LINE`, a Parquet
# file's `:row N`, a query's `: query row N` (after the sql: line of its manifest).
_ROW_AT_END = re.compile(r"(?::\d+)+$|(?:^|:|: query )row \d+$")


@dataclass(frozen=True)
class Validation:
    """What validate found. Problems (exit 1): sources that cannot be read, invalid members,
    and mapped values that plan would not send. Warnings: duplicate rows that disagreed
    with the row kept, and the manifests' own (an identifier column left unused)."""

    destinations: int
    audiences: int
    files: int
    members: int
    duplicates: int = 0  # source rows collapsed into an earlier row with the same key
    unreadable: tuple[SourceError, ...] = ()
    invalid: tuple[MemberIssue, ...] = ()  # invalid members, as listed
    # Invalid members beyond those listed: large audiences list their first 1,000.
    unlisted: int = 0
    # Values a trait mapping cannot convert (`'lots' is not a number`): plan leaves them out.
    values: tuple[MemberIssue, ...] = ()
    # Values beyond those listed: each audience lists its first 1,000 per field.
    values_unlisted: int = 0
    conflicts: tuple[MemberIssue, ...] = ()
    # Duplicates that disagreed beyond those listed: large audiences list their first 1,000.
    conflicts_unlisted: int = 0
    # Manifests that load but likely do not say what their author meant.
    manifest_warnings: tuple[Problem, ...] = ()
    # Member files the plan and apply workflows' paths: filters leave out.
    workflow_warnings: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not (self.unreadable or self.invalid or self.values)

    def lines(self, show: Callable[[str], str]) -> list[str]:
        """The invalid members and values, then the warnings, one line each, located
        (FILE:LINE:COL, or FILE:LINE for a CSV row); source data in them goes through
        `show`. Sources that cannot be read are errors the command prints before these."""
        out = [
            f"warning: {warning}" for warning in (*self.manifest_warnings, *self.workflow_warnings)
        ]
        out.extend(issue.describe(show) for issue in self.invalid)
        out.extend(_same_errors_counted(self.values, show))
        out.extend(f"warning: {issue.describe(show)}" for issue in self.conflicts)
        if self.unlisted:
            out.append(f"... and {self.unlisted:,} more (large audiences list their first 1,000).")
        if self.conflicts_unlisted:
            out.append(
                f"warning: ... and {self.conflicts_unlisted:,} more duplicate rows with other "
                "values (large audiences list their first 1,000)."
            )
        if self.values_unlisted:
            out.append(
                f"... and {self.values_unlisted:,} more values that cannot be sent (each "
                f"audience lists its first {trait_values.MAX_FIELD_ISSUES:,} per field)."
            )
        return out

    def count_problems(self) -> str:
        """'1 source that cannot be read, 3 invalid members found.'"""
        found = [
            (len(self.unreadable), "source that cannot be read", "sources that cannot be read"),
            (len(self.invalid) + self.unlisted, "invalid member", "invalid members"),
            (
                len(self.values) + self.values_unlisted,
                "value that cannot be sent",
                "values that cannot be sent",
            ),
        ]
        return (
            ", ".join(f"{n:,} {one if n == 1 else many}" for n, one, many in found if n) + " found."
        )

    def describe(self) -> str:
        """The line a clean validation ends with."""
        collapsed = (
            f" ({quantity(self.duplicates, 'duplicate row')} collapsed)" if self.duplicates else ""
        )
        return (
            f"OK: {quantity(self.destinations, 'destination')}, "
            f"{quantity(self.audiences, 'audience')}, "
            f"{quantity(self.members, 'member')}{collapsed} "
            # Manifest files: "82 members in 5 files" read as if the members were in them.
            f"in {quantity(self.files, 'manifest file')}."
        )


def validate(path: Path, engine: Engine | None = None) -> Validation:
    """Load the manifests under `path` and read every member source as plan would (large
    sources in DuckDB through `engine`). A manifest that does not load raises its
    ManifestError; a source that cannot be read is reported, and the others still read."""
    unreadable: list[SourceError] = []
    manifests = load_manifests(path)
    try:
        # A query is run once: sizing it for an engine would run it a second time.
        desired = build_desired(manifests, engine=engine, errors=unreadable, count_queries=False)
    except Exception as exc:
        # The sources are read into the temporary directory: a full one is said as such.
        said = engine.no_room(exc) if engine is not None else None
        if said is None:
            raise
        raise said from None
    items = [item for d in desired.values() for item in d.lists]
    # A table counts its disagreeing rows as it lists the first of them, which the refusal
    # of an unordered query's reads.
    conflicts, conflicts_unlisted = _once([_conflicts(item) for item in items])
    for item in items:
        if item.table is not None:  # the Python engine's read refused it already
            try:
                refuse_unordered_conflicts(item)
            except SourceError as exc:
                unreadable.append(exc)
    invalid, unlisted = _once(
        (item.issues, item.table.skipped - len(item.issues) if item.table else 0) for item in items
    )
    values, values_unlisted = _once(
        (item.fields.issues, item.fields.unlisted) for item in items if item.fields is not None
    )
    return Validation(
        destinations=len(manifests.destinations),
        audiences=len(manifests.audiences),
        files=len(manifests.files),
        members=sum(_members(item) for item in items),
        duplicates=sum(_duplicates(item) for item in items),
        unreadable=tuple(unreadable),
        invalid=invalid,
        unlisted=unlisted,
        values=values,
        values_unlisted=values_unlisted,
        conflicts=conflicts,
        conflicts_unlisted=conflicts_unlisted,
        manifest_warnings=manifests.warnings,
        # After the reads: a DuckDB query's files are known once it has run.
        workflow_warnings=tuple(unwatched_reads(manifests, path)),
    )


def _duplicates(item: DesiredList) -> int:
    """Rows collapsed into an earlier one: planning learns them for a table from its
    join with the list; validate, which reads no list, counts them."""
    return item.table.duplicates if item.table else item.duplicates


def _conflicts(item: DesiredList) -> tuple[list[MemberIssue], int]:
    """Those of them that disagreed with the first row, as plan warns of them, and how many
    more a table counted beyond those it lists."""
    if item.table is None:
        return item.conflicts, 0
    listed = item.table.conflicts()
    return listed, item.table.conflict_count - len(listed)


def _once(
    found: Iterable[tuple[Sequence[MemberIssue], int]],
) -> tuple[tuple[MemberIssue, ...], int]:
    """Each audience's issues (listed, and how many more it counted), each said and counted
    once: audiences reading one file alike (one list kept in a sandbox's and production's
    project) find its bad rows word for word, one set of rows to fix, not two. Counts
    beyond a listing are the same rows where two audiences listed the same ones."""
    listed: dict[MemberIssue, None] = {}
    seen: set[tuple[tuple[MemberIssue, ...], int]] = set()
    more = 0
    for issues, unlisted in found:
        key = (tuple(issues), unlisted)
        if key in seen:
            continue
        seen.add(key)
        listed.update(dict.fromkeys(issues))
        more += unlisted
    return tuple(listed), more


def _members(item: DesiredList) -> int:
    return item.table.count if item.table else len(item.members)


def _same_errors_counted(issues: Sequence[MemberIssue], show: Callable[[str], str]) -> list[str]:
    """The issues, one line each, but only the first SAME_ERROR_SHOWN of each source file
    and error (field and reason, whatever the row's value); the rest of each are counted
    on one line after them, naming its first row, so no distinct problem is hidden."""
    out: list[str] = []
    shown: dict[tuple[str, str], list[str]] = {}  # the rows listed, per file and error
    more: dict[tuple[str, str], int] = {}
    for issue in issues:
        key = (_ROW_AT_END.sub("", issue.where), without_data(issue.message))
        rows = shown.setdefault(key, [])
        if len(rows) < SAME_ERROR_SHOWN:
            rows.append(issue.where)
            out.append(issue.describe(show))
        else:
            more[key] = more.get(key, 0) + 1
    for (file, _), count in more.items():
        rows_more = f"{count:,} more row{'s' if count != 1 else ''}"
        first = line_safe_path(shown[(file, _)][0])
        out.append(f"{line_safe_path(file)}: ... and {rows_more} with the same error as {first}")
    return out
