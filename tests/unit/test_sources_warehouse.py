"""sources/warehouse.py (a query run where the data lives, via SQLAlchemy) and the
registry that picks each audience's kind, used directly (no CLI). SQLite stands in for
the warehouse; tests/unit/test_sources_sql.py runs the same against PostgreSQL."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from pathlib import Path

import pytest

from reconciler.errors import SourceChangedError, SourceError
from reconciler.members.model import estimate_rows
from reconciler.sources import read_members, source_for
from reconciler.sources.csv_file import CsvFile
from reconciler.sources.inline import Inline
from reconciler.sources.parquet import ParquetFile
from reconciler.sources.sql import DuckDbQuery
from reconciler.sources.time_limit import QueryTimedOut
from reconciler.sources.warehouse import Budget, Warehouse, _RowBytes
from tests.sources import RecordingReader, line_of, load_audience


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    connection = sqlite3.connect(tmp_path / "crm.db")
    with connection:
        connection.execute("CREATE TABLE people (email TEXT, user_id INTEGER, plan TEXT)")
        connection.executemany(
            "INSERT INTO people VALUES (?, ?, ?)",
            [("a@example.com", 1, "gold"), ("b@example.com", None, "free"), ("bad", 3, "x")],
        )
    connection.close()
    return tmp_path


def test_warehouse_streams_rows_and_counts_where_the_data_lives(repo: Path) -> None:
    audience = load_audience(
        repo,
        {
            "sql": "SELECT email, user_id AS userId, plan FROM people -- the CRM\n;",
            "url": "sqlite:///crm.db",
        },
        mapped=True,
    )
    source = source_for(audience)

    assert isinstance(source, Warehouse)
    assert source.files() == [] and source.digests() == []
    assert source.columns() is None
    assert source.estimate_rows() == 3  # SELECT count(*) over the query, a comment and all
    assert source.relation(RecordingReader()) == ("stream", source)
    chunks: list[tuple[list[str], list[tuple[object, ...]]]] = []
    source.stream(
        lambda names, rows: chunks.append((list(names), [tuple(r) for c in rows for r in c]))
    )
    assert chunks == [
        (
            ["email", "userId", "plan"],
            [("a@example.com", 1, "gold"), ("b@example.com", None, "free"), ("bad", 3, "x")],
        )
    ]

    result = source.read("hybrid")
    assert sorted(result.members) == ["1", "b@example.com"]
    assert result.members["1"].traits == {"plan": "gold"}
    (issue,) = result.issues
    assert issue.where.endswith(": query row 3") and issue.message == "invalid email"


def test_a_sqlite_file_in_the_repository_is_digested_as_the_query_read_it(repo: Path) -> None:
    """A saved plan digests a `url: sqlite:///...` file as it digests a CSV: a database
    changed between plan and apply made `apply --plan` apply a plan of the old rows."""
    spec = {"sql": "SELECT email FROM people", "url": "sqlite:///crm.db"}
    source = source_for(load_audience(repo, spec))
    assert source.digests() == []  # not read yet
    assert sorted(source.read("hybrid").members) == ["a@example.com", "b@example.com"]
    database = (repo / "crm.db").resolve()
    assert source.digests() == [(database, hashlib.sha256(database.read_bytes()).hexdigest())]

    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE people SET email = 'c@example.com' WHERE user_id = 1")
    connection.close()
    with pytest.raises(SourceChangedError, match=r"crm\.db, read by the query, changed since"):
        source.digests()


def test_the_registry_makes_one_source_of_the_declared_kind(repo: Path) -> None:
    (repo / "m.csv").write_text("email\na@example.com\n", encoding="utf-8")
    kinds = {
        "inline": ({"inline": ["a@example.com"]}, Inline),
        "csv": ({"csv": "m.csv"}, CsvFile),
        "parquet": ({"parquet": "m.parquet"}, ParquetFile),
        "duckdb query": ({"sql": "SELECT 1 AS email", "database": ":memory:"}, DuckDbQuery),
        "warehouse": ({"sql": "SELECT email FROM people", "url": "sqlite:///crm.db"}, Warehouse),
    }
    for kind, (members, cls) in kinds.items():
        audience = load_audience(repo, members)
        source = source_for(audience)
        assert type(source) is cls and source.kind == kind
        assert source_for(audience) is source
    assert list(read_members(load_audience(repo, {"csv": "m.csv"}), "email").members) == [
        "a@example.com"
    ]


def test_a_sqlite_query_that_would_run_for_ever_is_stopped_at_the_time_limit(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recursive CTE without an end ran in SQLite's C code with no time limit: `validate`
    in CI hung for good, and SIGTERM could not stop it (its handler never ran)."""
    monkeypatch.setenv("RECONCILER_QUERY_TIMEOUT", "0.5")
    forever = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
        "SELECT email FROM people, n WHERE i < 0"
    )
    audience = load_audience(repo, {"sql": forever, "url": "sqlite:///crm.db"})
    line = line_of(repo / "aud.yaml", '"sql"')
    errors = []
    for run in (lambda: estimate_rows(audience), lambda: read_members(audience, "email")):
        with pytest.raises(QueryTimedOut) as stopped:
            run()
        errors.append(str(stopped.value))
    for error in errors:
        assert error.startswith(f"aud.yaml:{line}:"), error
        assert "ran longer than 0.5 s" in error and "RECONCILER_QUERY_TIMEOUT" in error
    # The connection's interrupt lands on no later query: one in time still runs.
    kept = load_audience(repo, {"sql": "SELECT email FROM people", "url": "sqlite:///crm.db"})
    assert sorted(read_members(kept, "email").members) == ["a@example.com", "b@example.com"]


# Over 35 MB in SQLite's own memory, not in the rows that reach Python: a string doubled
# to 64 MB (one row, its length), and 20,000 rows sorted by a 10 KB key (200 MB to sort).
_HEAVY_SQLITE_QUERIES = {
    "a huge string": (
        "WITH RECURSIVE r(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM r "
        "WHERE length(s) < 64000000) SELECT 'a@example.com' AS email FROM r "
        "WHERE length(s) > 60000000"
    ),
    "a huge sort": (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 20000) "
        "SELECT 'a' || i || '@example.com' AS email FROM n ORDER BY randomblob(10000)"
    ),
}


@pytest.mark.parametrize(
    "query", list(_HEAVY_SQLITE_QUERIES.values()), ids=list(_HEAVY_SQLITE_QUERIES)
)
def test_a_sqlite_query_is_held_to_the_memory_a_manifest_s_query_may_use(
    repo: Path, monkeypatch: pytest.MonkeyPatch, query: str
) -> None:
    """A SQLite query had only its time limit: a recursive CTE doubling a string took
    gigabytes of memory, and a large ORDER BY or DISTINCT wrote its sort to temporary files
    without end, within the five minutes. It now gets what a DuckDB query does (a share of
    RECONCILER_MEMORY_LIMIT), its sorts kept in that memory too, and fails at its line."""
    monkeypatch.setenv("RECONCILER_MEMORY_LIMIT", "64MB")  # 35.2 MB for the query
    audience = load_audience(repo, {"sql": query, "url": "sqlite:///crm.db"})
    line = line_of(repo / "aud.yaml", '"sql"')
    with pytest.raises(SourceError) as stopped:
        read_members(audience, "email")
    error = str(stopped.value)
    assert error.startswith(f"aud.yaml:{line}:"), error
    assert "more memory than" in error and "RECONCILER_MEMORY_LIMIT" in error, error
    # SQLite's limit is the process's: lifted once the query ends, and a query within it
    # still runs.
    with contextlib.closing(sqlite3.connect(":memory:")) as other:
        assert other.execute("PRAGMA hard_heap_limit").fetchone() == (0,)
    kept = load_audience(repo, {"sql": "SELECT email FROM people", "url": "sqlite:///crm.db"})
    assert sorted(read_members(kept, "email").members) == ["a@example.com", "b@example.com"]


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_sqlite_query_s_rows_are_held_to_the_memory_limit_as_postgresql_s_are(
    repo: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    """SQLite's heap limit bounds one value, not how many rows of them reach Python, where
    the Python engine keeps every row: 10,000 rows of a 30 MB value each (below the engine
    threshold) would have been 300 GB. A SQLite query's rows are now counted as PostgreSQL's
    are: all of them for the Python engine, any chunk's worth for DuckDB's."""
    monkeypatch.setenv("RECONCILER_MEMORY_LIMIT", "64MB")
    wide = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT {rows}) "
        "SELECT 'u' || i || '@example.com' AS email, hex(zeroblob(500000)) AS note FROM n"
    )
    audience = load_audience(repo, {"sql": wide.format(rows=100), "url": "sqlite:///crm.db"})
    held: list[int] = []

    def hold(_names: object, chunks: object) -> None:
        held.extend(len(row[1]) for chunk in chunks for row in chunk)  # type: ignore[attr-defined]

    with pytest.raises(SourceError) as refused:
        if engine == "python":
            read_members(audience, "email")
        else:
            source_for(audience).stream(hold)  # type: ignore[attr-defined]
    error = str(refused.value)
    line = line_of(repo / "aud.yaml", '"sql"')
    assert error.startswith(f"aud.yaml:{line}:"), error
    assert "its rows hold more than 64,000,000 bytes of values" in error, error
    assert "RECONCILER_MEMORY_LIMIT" in error
    assert sum(held) <= 64_000_000
    # Under the limit the same rows are read, in the query's order and with its columns.
    audience = load_audience(repo, {"sql": wide.format(rows=30), "url": "sqlite:///crm.db"})
    assert len(read_members(audience, "email").members) == 30
    ordered = "SELECT email, plan FROM people ORDER BY email DESC"
    rows: list[tuple[object, ...]] = []
    names: list[str] = []

    def take(columns: object, chunks: object) -> None:
        names.extend(columns)  # type: ignore[call-overload]
        rows.extend(tuple(row) for chunk in chunks for row in chunk)  # type: ignore[attr-defined]

    source = source_for(load_audience(repo, {"sql": ordered, "url": "sqlite:///crm.db"}))
    source.stream(take)  # type: ignore[attr-defined]
    assert names == ["email", "plan"]
    assert rows == [("bad", "x"), ("b@example.com", "free"), ("a@example.com", "gold")]


def test_a_sqlite_query_cannot_take_back_the_bytes_its_rows_were_counted(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counting function has a name the manifest's own query could call, and its call
    would run before the count's: with a negative size, each row would take bytes off the
    count and any number of rows would reach Python. The query is described before the
    function exists (so naming it fails), and a size below 0 counts as 0 besides."""
    monkeypatch.setenv("RECONCILER_MEMORY_LIMIT", "64MB")
    sql = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 100) "
        "SELECT 'u' || i || '@example.com' AS email, hex(zeroblob(500000)) AS note, "
        "reconciler_read_bytes(-1000000000000000) AS taken FROM n"
    )
    audience = load_audience(repo, {"sql": sql, "url": "sqlite:///crm.db"})
    with pytest.raises(SourceError) as refused:
        read_members(audience, "email")
    assert "no such function: reconciler_read_bytes" in str(refused.value)
    counted = _RowBytes(Budget(bytes=100, rows=None))
    assert counted(-(10**15)) == 1 and counted.total == 0
    with pytest.raises(ValueError):
        counted(101)
