"""`members: {parquet: FILE}`: a Parquet file, read by DuckDB in chunks from a snapshot of it."""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import duckdb

from reconciler.duckdb_connect import connect
from reconciler.errors import SourceError
from reconciler.manifest.manifests import Audience
from reconciler.members.identity import ProjectType
from reconciler.sources.base import (
    R,
    RelationReader,
    Source,
    SourceFile,
    readable_copy,
    source_path,
)
from reconciler.sources.duckdb_query import IN_MEMORY, DuckDbRelation, read_with_duckdb
from reconciler.sources.missing_file import missing_file_hint
from reconciler.sources.result import SourceResult
from reconciler.sources.snapshot import Snapshot, take_snapshot

# Footer reads are bounded as every query over a manifest's files is: the file is untrusted
# input, and its footer is read when manifests load (validate, in pre-commit hooks and CI).
_FOOTER_READS: dict[str, str | bool | int | float | list[str]] = {
    "memory_limit": "256MB",
    "threads": 1,
}


# A path with one of these names no file of its own but a pattern (DuckDB would glob it).
_PATTERN = re.compile(r"[*?\[]")


def many_files_advice(written: str) -> str:
    """What to write instead of `parquet: WRITTEN` naming a directory or a pattern: a
    writer's many files (Spark's part-*.parquet beside _SUCCESS and .crc files, a dataset
    partitioned as country=DE/, a warehouse's unload) are read by a DuckDB query, which
    also gives a partition's column from its directory's name."""
    pattern = written if _PATTERN.search(written) else written.rstrip("/\\") + "/**/*.parquet"
    literal = pattern.replace("'", "''")
    which = "it matches" if pattern == written else "below it"
    return (
        f"parquet: reads one file; to read every Parquet file {which}, write "
        f"`sql: SELECT * FROM read_parquet('{literal}')` and `database: \":memory:\"` under "
        "members in its place"
    )


def _schema(path: Path) -> list[str] | None:
    """The column names in a Parquet file's footer (nothing else is read), or None when
    DuckDB cannot read it (the read reports why)."""
    try:
        with connect(config=_FOOTER_READS) as connection:
            rows = connection.execute(
                "DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]
            ).fetchall()
    except duckdb.Error:
        return None
    return [str(row[0]) for row in rows]


class ParquetFile(Source):
    kind = "parquet"
    field = "parquet"
    # The footer holds the schema, so a trait mapping's columns are checked when the
    # manifests load: every field at its own line, before anything is read.
    columns_at_load: ClassVar[bool] = True
    traits_at_scale = True  # its typed columns are kept (engine/desired_table.py)

    def __init__(self, audience: Audience) -> None:
        super().__init__(audience)
        assert self.spec.parquet is not None
        self.path = source_path(audience, self.spec.parquet)

    @cached_property
    def snapshot(self) -> Snapshot:
        # Checked first because DuckDB's own message ("No files found that match the
        # pattern") reads as if the path were a glob.
        if not self.path.is_file():
            assert self.spec.parquet is not None
            advice = (
                f"; {many_files_advice(self.spec.parquet)}"
                if _PATTERN.search(self.spec.parquet) and not self.path.exists()
                else missing_file_hint(
                    self.spec.parquet, self.audience.base_dir, self.audience.source_root
                )
                if not self.path.exists()
                else ""
            )
            raise SourceError(f"{self.declared_at}: Parquet file not found: {self.path}{advice}")
        try:
            return take_snapshot(self.path, self.audience.name, self.declared_at)
        except OSError as exc:
            raise SourceError(
                f"{self.declared_at}: cannot read {self.path}: {exc.strerror}"
            ) from None

    def files(self) -> list[SourceFile]:
        assert self.spec.parquet is not None
        return [SourceFile(self.field, self.spec.parquet, self.path)]

    def digests(self) -> list[tuple[Path, str]]:
        return [(self.path, self.snapshot.digest)]

    def columns(self) -> tuple[str, list[str]] | None:
        copy = readable_copy(lambda: self.snapshot)
        if copy is None:
            return None
        names = _schema(copy)
        if names is None:
            return None
        return f"the columns of {self.path}", names  # as csv_file.CsvFile.columns

    def peek_columns(self) -> list[str] | None:
        if "snapshot" in vars(self):  # read already: its schema is the one to judge
            found = self.columns()
            return found[1] if found else None
        # A path that names no file is not handed to DuckDB, which would take it as a glob.
        if not self.path.is_file():
            return None
        return _schema(self.path)

    def estimate_rows(self) -> int | None:
        # The footer says how many rows each row group holds: nothing else is read.
        with connect(config=_FOOTER_READS) as connection:
            row = connection.execute(
                "SELECT sum(num_rows) FROM parquet_file_metadata(?)", [str(self.snapshot.copy)]
            ).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def duckdb_relation(self) -> DuckDbRelation:
        path = self.path
        copy = str(self.snapshot.copy).replace("'", "''")
        return DuckDbRelation(
            database=IN_MEMORY,
            query=f"SELECT * FROM read_parquet('{copy}')",
            base_dir=self.audience.base_dir,
            repository=self.audience.source_root,
            declared_at=self.declared_at,
            subject=f"Parquet file {path}",
            where=lambda row: f"{path}:row {row}",
            audience=self.audience.name,
            show_query=False,
            snapshots=(self.snapshot,),
        )

    def relation(self, reader: RelationReader[R]) -> R:
        return reader.duckdb(self.duckdb_relation())

    def read(self, project_type: ProjectType) -> SourceResult:
        return read_with_duckdb(self.duckdb_relation(), self.spec, project_type, self.mapped)
