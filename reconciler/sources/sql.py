"""`members: {sql: QUERY, database: PATH}` (DuckDB) or `{sql: QUERY, url: URL}` (SQLAlchemy)."""

from __future__ import annotations

from reconciler.manifest import Audience
from reconciler.members.identity import ProjectType
from reconciler.sources import SourceResult
from reconciler.sources.duckdb_query import IN_MEMORY, read_with_duckdb
from reconciler.sources.read import source_path


def read_sql(audience: Audience, project_type: ProjectType) -> SourceResult:
    spec = audience.spec.members
    assert spec.sql is not None
    declared_at = str(audience.field_location("members", "sql"))
    if spec.url is not None:
        # Imported here: SQLAlchemy is only loaded by audiences that use it.
        from reconciler.sources.warehouse import read_warehouse

        return read_warehouse(audience, project_type)
    assert spec.database is not None  # MembersSpec: exactly one of database, url
    database = (
        IN_MEMORY if spec.database == IN_MEMORY else str(source_path(audience, spec.database))
    )
    return read_with_duckdb(
        database=database,
        query=spec.sql,
        parameters=(),
        base_dir=audience.base_dir,
        repository=audience.source_root,
        remember_rows=audience.spec.traits is not None,
        spec=spec,
        project_type=project_type,
        declared_at=declared_at,
        subject="the query",
        where=lambda row: f"{declared_at}: query row {row}",
    )
