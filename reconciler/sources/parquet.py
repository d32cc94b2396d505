"""`members: {parquet: FILE}`: a Parquet file, read by DuckDB in chunks."""

from __future__ import annotations

from reconciler.errors import SourceError
from reconciler.manifest import Audience
from reconciler.members.identity import ProjectType
from reconciler.sources import SourceResult
from reconciler.sources.duckdb_query import IN_MEMORY, read_with_duckdb
from reconciler.sources.read import source_path


def read_parquet(audience: Audience, project_type: ProjectType) -> SourceResult:
    spec = audience.spec.members
    assert spec.parquet is not None
    path = source_path(audience, spec.parquet)
    declared_at = str(audience.field_location("members", "parquet"))
    # Checked here because DuckDB's own message ("No files found that match the pattern")
    # reads as if the path were a glob.
    if not path.is_file():
        raise SourceError(f"{declared_at}: Parquet file not found: {path}")
    return read_with_duckdb(
        database=IN_MEMORY,
        query="SELECT * FROM read_parquet(?)",
        parameters=[str(path)],
        base_dir=audience.base_dir,
        repository=audience.source_root,
        remember_rows=audience.spec.traits is not None,
        spec=spec,
        project_type=project_type,
        declared_at=declared_at,
        subject=f"Parquet file {path}",
        where=lambda row: f"{path}:row {row}",
        show_query=False,
    )
