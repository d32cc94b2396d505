"""`members: {sql: QUERY, database: PATH}`: a query run in DuckDB, locked down
(duckdb_query.py), over a DuckDB database file or :memory: and the repository's files."""

from __future__ import annotations

from pathlib import Path

import duckdb

from reconciler.manifest.manifests import Audience
from reconciler.manifest.repository import real_path
from reconciler.members.identity import ProjectType
from reconciler.sources.base import (
    R,
    RelationReader,
    Source,
    SourceFile,
    digests_as_read,
    remember_read,
    source_path,
)
from reconciler.sources.duckdb_query import IN_MEMORY, DuckDbRelation, read_with_duckdb
from reconciler.sources.query_text import orders_its_rows
from reconciler.sources.result import SourceResult
from reconciler.sources.snapshot import FileState, file_digest


class DuckDbQuery(Source):
    kind = "duckdb query"
    field = "sql"
    traits_at_scale = True  # its typed columns are kept (engine/desired_table.py)
    counted_by_running = True  # estimate_rows: a count(*) over the query
    # read_csv('data/' || name), a glob, any repository file (duckdb_query.py): which
    # files a query reads is known only once it has run.
    reads_unnamed_files = True

    def __init__(self, audience: Audience) -> None:
        super().__init__(audience)
        # Each repository file a run of the query read (the database file, and any file
        # it names: read_csv('data/x.csv')), with its state then; None when two runs of
        # it (the row estimate, the read) saw different states.
        self._read: dict[Path, FileState | None] = {}

    @property
    def database(self) -> str:
        database = self.spec.database
        assert database is not None  # MembersSpec: exactly one of database, url
        return database if database == IN_MEMORY else str(source_path(self.audience, database))

    def files(self) -> list[SourceFile]:
        database = self.spec.database
        if database is None or database == IN_MEMORY:
            return []
        return [SourceFile("database", database, source_path(self.audience, database))]

    def files_read(self) -> list[Path]:
        return [*self.named_reads(), *self._read]

    def _record(self, path: Path, state: FileState) -> None:
        remember_read(self._read, real_path(path), state)

    def _described(self, names: list[str]) -> None:
        self.columns_read = names

    def digests(self) -> list[tuple[Path, str]]:
        # Nothing the query reads is copied (a database may be far larger than what the
        # query reads): bounded_connection checks none changed while the query ran and
        # records their state, and each is digested now, if it is still in that state.
        # A database file the query did not get to open is digested as it is.
        found = [
            (f.path, file_digest(f.path))
            for f in self.files()
            if real_path(f.path) not in self._read and f.path.is_file()
        ]
        return found + digests_as_read(self, self._read)

    def rows_in_order(self) -> bool:
        assert self.spec.sql is not None
        return orders_its_rows(self.spec.sql)

    def duckdb_relation(self) -> DuckDbRelation:
        assert self.spec.sql is not None
        declared_at = self.declared_at
        return DuckDbRelation(
            database=self.database,
            query=self.spec.sql,
            base_dir=self.audience.base_dir,
            repository=self.audience.source_root,
            declared_at=declared_at,
            subject="the query",
            where=lambda row: f"{declared_at}: query row {row}",
            audience=self.audience.name,
            record=self._record,
            described=self._described,
            key_files=self.audience.key_files,
        )

    def estimate_rows(self) -> int | None:
        """A `SELECT count(*)` over the query, where it runs (a second, cheaper run)."""
        relation = self.duckdb_relation()
        query = relation.select()  # refused before anything runs, as when it is read
        # The newline ends a `-- comment` on the query's last line, which would otherwise
        # swallow the closing parenthesis.
        counting = f"SELECT count(*) FROM ({query}\n) AS audience_rows"
        with relation.connection() as connection:
            try:
                row = connection.execute(counting).fetchone()
            except duckdb.Error as exc:
                raise relation.error(exc) from None
        return int(row[0]) if row else None

    def relation(self, reader: RelationReader[R]) -> R:
        return reader.duckdb(self.duckdb_relation())

    def read(self, project_type: ProjectType) -> SourceResult:
        return read_with_duckdb(self.duckdb_relation(), self.spec, project_type, self.mapped)
