"""Where an audience's members come from: one module per kind of source.

    inline.py        members written in the manifest
    csv_file.py      a CSV file
    parquet.py       a Parquet file, read by DuckDB
    sql.py           a query run in DuckDB (`sql` with `database`), locked down (duckdb_query.py)
    warehouse.py     a query run where the data lives (`sql` with `url`), via SQLAlchemy
    shared_runs.py   one run of a `url` query for every audience of a plan that names it

Each kind is a `Source` (base.py) that answers files(), columns(), estimate_rows(), read()
(rows -> members, for the Python engine) and relation() (its rows for the DuckDB engine).
`source_for` (registry.py) is the one place that looks at which kind a manifest declares;
everything else asks the source. Files are read once into a snapshot (snapshot.py) that is
refused when the file changed while it was read.

Every source yields the same thing: the valid members (deduplicated by identity key, first
row wins) and, for every row that could not be used, an issue naming where it came from.
An invalid member never aborts the run; a source that cannot be read at all does
(SourceError).
"""

from __future__ import annotations

from reconciler.sources.registry import read_members, source_for
from reconciler.sources.result import MemberIssue, SourceResult

__all__ = ["MemberIssue", "SourceResult", "read_members", "source_for"]
