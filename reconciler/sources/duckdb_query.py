"""Queries run in DuckDB, the embedded engine: Parquet files, and `sql` with `database`.

DuckDB streams a query's result: `fetchmany` pulls the next chunk through the query
pipeline, so a file or table far larger than memory is read without materialising it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb

from reconciler.errors import SourceError
from reconciler.identity import ProjectType
from reconciler.manifest import MembersSpec
from reconciler.sources import SourceResult
from reconciler.sources.rows import CHUNK_ROWS, find_columns, members_from_rows

IN_MEMORY = ":memory:"


def read_with_duckdb(
    *,
    database: str,
    query: str,
    parameters: Sequence[Any],
    base_dir: Path,
    spec: MembersSpec,
    project_type: ProjectType,
    declared_at: str,
    subject: str,
    where: Callable[[int], str],
    show_query: bool = True,
) -> SourceResult:
    """Run `query` in DuckDB (`database` is a file or :memory:) and build members from it.

    Relative file paths in the query (read_csv('data/x.csv')) start at `base_dir`, the
    manifest's directory, as every path in a manifest does. `subject` names what is read
    in messages ("the query", "Parquet file x.parquet"); `show_query=False` leaves out
    DuckDB's excerpt of the query, for queries the user did not write.
    """
    connection = open_connection(database, base_dir, declared_at)
    try:
        cursor = connection.execute(query, list(parameters))
        names = [column[0] for column in cursor.description or ()]
        columns = find_columns(names, spec, f"{declared_at}: {subject}")
        chunks = iter(lambda: cursor.fetchmany(CHUNK_ROWS), [])
        return members_from_rows(chunks, columns, project_type, where)
    except duckdb.Error as exc:
        message = str(exc) if show_query else str(exc).split("\n\nLINE ")[0]
        raise SourceError(f"{declared_at}: cannot read {subject}: {message}") from None
    finally:
        connection.close()


def open_connection(database: str, base_dir: Path, declared_at: str) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection set up for reading a member source."""
    try:
        # A database file is only read: reconciler never changes a member source.
        connection = duckdb.connect(database, read_only=database != IN_MEMORY)
    except duckdb.Error as exc:
        raise SourceError(f"{declared_at}: cannot open DuckDB database {database}: {exc}") from None
    try:
        # DuckDB's progress bar writes to stdout, which belongs to the plan (--format json).
        connection.execute("SET enable_progress_bar = false")
        connection.execute(f"SET file_search_path = {_string_literal(str(base_dir))}")
    except BaseException:
        connection.close()
        raise
    return connection


def _string_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
