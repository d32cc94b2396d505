"""What every member source answers, whatever its kind.

A Source is made once per audience and run (registry.source_for), so every question asked
of it in that run (its columns when the manifests load, its size when the engine is
chosen, its rows when the plan is made, its digest when the plan is saved) is answered
from the same snapshot of its files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from reconciler.errors import SourceChangedError, SourceError, display_path
from reconciler.manifest.file_names import on_disk
from reconciler.manifest.manifests import Audience
from reconciler.manifest.repository import real_path
from reconciler.members.identity import ProjectType
from reconciler.sources.result import SourceResult
from reconciler.sources.snapshot import FileState, Snapshot, file_digest, file_state

if TYPE_CHECKING:
    from reconciler.sources.duckdb_query import DuckDbRelation
    from reconciler.sources.shared_runs import SharedRun

R = TypeVar("R", covariant=True)

# What a query's rows are handed to: the column names, then the rows in chunks.
Consume = Callable[[Sequence[str], Iterable[Sequence[Sequence[Any]]]], None]


class RowStream(Protocol):
    """A source whose rows stream back from elsewhere (a warehouse)."""

    declared_at: str

    def stream(self, consume: Consume, sql: str | None = None) -> None: ...


class CsvRows(Protocol):
    """A CSV file as the engine reads it: its snapshot (sources/csv_file.py, CsvFile).
    A protocol here, so this module need not import the kind that implements it."""

    path: Path
    declared_at: str

    @property
    def snapshot(self) -> Snapshot: ...

    def header_columns(self, header: list[str]) -> tuple[list[str], int | None, int | None]: ...


class RelationReader(Protocol[R]):
    """What the DuckDB engine does with each shape of rows a source can hand it.

    A source calls the one method that fits it (Source.relation), so the engine never asks
    which kind of source it has."""

    def csv_file(self, source: CsvRows) -> R: ...

    def duckdb(self, relation: DuckDbRelation) -> R: ...

    def stream(self, source: RowStream) -> R: ...


def readable_copy(snapshot: Callable[[], Snapshot]) -> Path | None:
    """A one-file source's snapshot copy, to glance at its columns; None when the file
    cannot be copied (left to the reader, which reports why). A file that changed while it
    was copied is refused here as anywhere."""
    try:
        return snapshot().copy
    except SourceChangedError:
        raise
    except SourceError:
        return None


@dataclass(frozen=True)
class SourceFile:
    """A local file a source reads, named by the manifest field that declares it."""

    field: str  # members.<field>
    written: str  # as the manifest writes it
    path: Path  # as messages show it (source_path)


class Source:
    """One audience's member source. Subclasses set `kind` and `field` and answer read()."""

    kind: ClassVar[str]  # how the README and messages name it: "csv", "parquet", ...
    field: ClassVar[str]  # the members.<field> that declares it
    # Whether the DuckDB engine may plan it at scale (inline members live in the manifest,
    # so there are never many).
    scales: ClassVar[bool] = True
    # Whether columns() knows the columns when the manifests are loaded (then a trait
    # mapping's columns are checked there, with the line that names them).
    columns_at_load: ClassVar[bool] = False
    # Whether the DuckDB engine keeps this kind's other columns for a trait mapping
    # (members/engine/desired_table.py); kinds that cannot are planned in Python then.
    traits_at_scale: ClassVar[bool] = False
    # Whether estimate_rows runs the source's query a second time (a `count(*)` over it):
    # then it is asked only when the engine is chosen by size (RECONCILER_ENGINE=auto).
    counted_by_running: ClassVar[bool] = False
    # Whether a read reports its rows as they arrive (watch_rows): a query's stream from
    # its server, for minutes or hours, and a progress line silent that long looks hung.
    streams_rows: ClassVar[bool] = False
    # Whether the identifier columns are found by their exact names (a CSV header), or
    # case aside (Parquet and query columns: PostgreSQL folds `AS userId` to `userid`).
    exact_column_names: ClassVar[bool] = False
    # Whether a read may open repository files the manifest does not name: a DuckDB query
    # may read any of them, by a path it builds or a glob. A check of re-runs
    # (github/run_reads.py) then counts a newer change to any of them.
    reads_unnamed_files: ClassVar[bool] = False

    def __init__(self, audience: Audience) -> None:
        self.audience = audience
        self.spec = audience.spec.members
        self.declared_at = str(audience.field_location("members", self.field))
        self.rows_arrived: Callable[[int], None] | None = None
        # The run of its query this source shares with other audiences' (shared_runs.py).
        self.shared: SharedRun | None = None
        # The columns a query's last read gave, by name as the database named them: a
        # name given twice is refused where a trait mapping reads it (traits/values.py).
        self.columns_read: list[str] | None = None

    def run_key(self) -> str | None:
        """What two audiences' sources have alike exactly when they run the same query at
        the same database, so that one run serves both (shared_runs.py) and one count of
        its rows; None for a source that runs no query, or whose run is not shared."""
        return None

    def watch_rows(self, arrived: Callable[[int], None] | None) -> None:
        """Have the next reads (either engine's) tell `arrived` each batch's number of
        rows as it arrives, where the kind streams them (streams_rows); None stops it."""
        self.rows_arrived = arrived

    @property
    def mapped(self) -> bool:
        """The audience has a trait mapping. Only then are a member's other columns kept
        (its fields are made of them; otherwise nothing reads them, and duplicate rows
        differing in them only are no conflict, as in the DuckDB engine, which keeps them
        for mapped audiences alone) and each member's row remembered (to name the row of a
        value the mapping cannot make)."""
        return self.audience.spec.traits is not None

    def files(self) -> list[SourceFile]:
        """The local files this source reads (checked to be inside the repository)."""
        return []

    def named_reads(self) -> list[Path]:
        """The local files a read opens, as the manifest names them (without reading
        anything or the environment): files(), and a SQLite URL's database."""
        return [f.path for f in self.files()]

    def files_read(self) -> list[Path]:
        """named_reads(), and once the source has been read, the files its query opened
        (read_csv('data/x.csv')): what a change to would change its members."""
        return self.named_reads()

    def digests(self) -> list[tuple[Path, str]]:
        """(file, SHA-256 of its content) for each file whose content this run planned
        from: a saved plan records them, and applies only while they are the same."""
        return []

    def columns(self) -> tuple[str, list[str]] | None:
        """(what the source is called in messages, its columns) when they can be known
        cheaply now, else None (they are then checked when the source is read)."""
        return None

    def peek_columns(self) -> list[str] | None:
        """The columns when a glance at the file shows them, without the snapshot a read
        takes (for a warning at load: a `--target` run may never read this source)."""
        return None

    def identity_columns(self) -> tuple[str, str]:
        """The column names under which a row carries the member's email and userId."""
        return self.spec.email, self.spec.userId

    def estimate_rows(self) -> int | None:
        """The source's row count, or None when it cannot be had cheaply (the reader then
        reports why)."""
        return None

    def rows_in_order(self) -> bool:
        """Whether every read gives the rows in one order, so that of rows sharing an
        identity key the same one is first: a file's order is its own; a query's only what
        an ORDER BY sets (sources/query_text.py orders_its_rows)."""
        return True

    def read(self, project_type: ProjectType) -> SourceResult:
        """The members, for the Python engine."""
        raise NotImplementedError

    def relation(self, reader: RelationReader[R]) -> R:
        """The rows, handed to the DuckDB engine in the shape this source has."""
        raise SourceError(f"{self.declared_at}: {self.kind} members are planned in Python")


def source_path(audience: Audience, relative: str) -> Path:
    """Paths in a manifest are relative to the manifest file's directory. The path is
    given relative to the working directory when it is under it, as every message that
    names the file (or one of its rows) shows it: messages end up in pull-request
    comments, where a runner's absolute path is noise. A part of it the directory lists
    in another Unicode form only is spelt as listed."""
    path = Path(relative)
    path = path if path.is_absolute() else audience.base_dir / path
    if not path.exists():
        # A name written in another Unicode form than the directory lists (NFD from a
        # Mac, NFC on disk) is that file, as it is on macOS (manifest/file_names.py).
        spelling = on_disk(audience.base_dir, relative)
        if spelling is not None and not spelling.reasons:
            path = Path(spelling.path)
            path = path if path.is_absolute() else audience.base_dir / path
    return Path(display_path(_normalised(path)))


def _normalised(path: Path) -> Path:
    """`path` without `.` and `dir/..` (`manifests/../data/x.csv` shown as `data/x.csv`),
    when that names the same file: through a symbolic link `..` is the parent of the
    link's target, so such a path is kept as written, and opens what the system finds."""
    plain = Path(os.path.normpath(path))
    if plain == path:
        return path
    try:
        same = real_path(plain) == real_path(path)
    except (OSError, RuntimeError):  # a loop of links: left to the read to report
        same = False
    return plain if same else path


def remember_read(read: dict[Path, FileState | None], path: Path, state: FileState) -> None:
    """Note that a run of a source's query read `path` in `state`; a file two runs (the
    row estimate, the read) found in different states is noted as None."""
    read[path] = state if read.get(path, state) == state else None


def digests_as_read(
    source: Source, read: Mapping[Path, FileState | None]
) -> list[tuple[Path, str]]:
    """(file, SHA-256) of each file a source's query read and did not copy (a database,
    a CSV named in the query), digested now if it is still as the query read it: a file
    written since would lend a saved plan a content it was not made from."""
    found = []
    for path, state in sorted(read.items()):
        try:
            digest = file_digest(path)
        except OSError:
            digest = ""
        if state is None or not digest or file_state(path) != state:
            raise SourceChangedError(
                f"{source.declared_at}: audience {source.audience.name!r}: guard "
                f"source_changed: {display_path(path)}, read by the query, changed since "
                "(it was written to); nothing was planned or changed. Run again once "
                "whatever writes it has finished"
            )
        found.append((path, digest))
    return found
