"""sources/warehouse.py (a query run where the data lives, via SQLAlchemy) and the
registry that picks each audience's kind, used directly (no CLI). SQLite stands in for
the warehouse; tests/unit/test_sources_sql.py runs the same against PostgreSQL."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from reconciler.errors import SourceChangedError
from reconciler.sources import read_members, source_for
from reconciler.sources.csv_file import CsvFile
from reconciler.sources.inline import Inline
from reconciler.sources.parquet import ParquetFile
from reconciler.sources.sql import DuckDbQuery
from reconciler.sources.warehouse import Warehouse
from tests.sources import RecordingReader, load_audience


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
