"""members/engine/rows.py: adds and removes kept in DuckDB behave as the tuples the Python
engine puts in a plan (length, indexing, slices, equality, batches), and text survives the
trip through the workspace's CSV files exactly (empty text is not NULL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from reconciler.members.engine.rows import (
    batches,
    identifiers_into_table,
    members_into_table,
    rows_without,
    write_table,
)
from reconciler.members.engine.settings import EngineSettings
from reconciler.members.engine.sql_text import sql_string
from reconciler.members.engine.workspace import Engine
from reconciler.members.identity import Member


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    # A quote in the path, as in the temporary directory of a Windows user O'Brien
    # (C:\Users\O'Brien\AppData\Local\Temp): DuckDB is given its files' paths in SQL.
    with Engine(EngineSettings(temp_dir=tmp_path / "O'Brien")) as engine:
        yield engine


MEMBERS = [
    Member("b@x.io", "email", "b@x.io", None),
    Member("u-1", "userId", 'q"uote,d@x.io', "u-1"),
    Member("a@x.io", "email", "a@x.io", None),
]


def test_members_in_a_table_read_back_as_the_python_engine_orders_them(engine: Engine) -> None:
    rows = members_into_table(engine, MEMBERS, len(MEMBERS))
    ordered = sorted(MEMBERS, key=lambda m: m.key)
    assert len(rows) == 3
    assert list(rows) == ordered
    assert rows == tuple(ordered) and rows != tuple(MEMBERS)
    assert rows[0] == ordered[0] and rows[-1] == ordered[-1]
    assert rows[1:] == ordered[1:] and rows[5:] == []
    assert rows[::2] == ordered[::2]
    with pytest.raises(IndexError):
        rows[3]
    assert rows[2].email == 'q"uote,d@x.io'  # quotes and commas through the CSV file


def test_batches_come_in_order_whatever_holds_the_rows(engine: Engine) -> None:
    ids = [f"id-{n:03d}" for n in range(25)]
    table = identifiers_into_table(engine, reversed(ids), len(ids))
    assert [len(b) for b in batches(table, 10)] == [10, 10, 5]
    assert [i for b in batches(table, 10) for i in b] == ids
    assert [list(b) for b in batches(ids[:5], 2)] == [ids[0:2], ids[2:4], ids[4:5]]


def test_empty_text_stays_apart_from_no_value(engine: Engine) -> None:
    write_table(engine, "t", [("", None), (None, "x")], ("a", "b"))
    assert engine.connection.execute("SELECT a, b FROM t ORDER BY b NULLS FIRST").fetchall() == [
        ("", None),
        (None, "x"),
    ]
    # The CSV written on the way is removed.
    assert list(engine.directory.glob("*.csv")) == []


@pytest.mark.parametrize(
    "text",
    [
        "C:\\Users\\O'Brien\\Temp",
        "/tmp/it''s",
        '/tmp/"quoted"/x',
        "/tmp/back\\slash\\'",
        "/tmp/Zoë ✓",
    ],
)
def test_a_path_put_into_duckdb_s_sql_reads_back_as_it_is(text: str) -> None:
    # POSIX paths may hold any character but NUL: quotes of both kinds, backslashes.
    with duckdb.connect() as connection:
        assert connection.execute(f"SELECT {sql_string(text)}").fetchone() == (text,)
    assert sql_string(Path("/tmp/O'Brien")) == "'/tmp/O''Brien'"


def test_rows_without_some_keep_their_kind_and_order_and_drop_only_those(engine: Engine) -> None:
    adds = members_into_table(engine, MEMBERS, len(MEMBERS))
    kept = rows_without(adds, "key", {"u-1", "not-there"})
    assert list(kept) == [m for m in sorted(MEMBERS, key=lambda m: m.key) if m.key != "u-1"]
    assert len(kept) == 2
    removes = identifiers_into_table(engine, ["c@x.io", "", "a@x.io"], 3)
    # An empty identifier is a value, not NULL: dropping it leaves the others.
    assert list(rows_without(removes, "id", [""])) == ["a@x.io", "c@x.io"]
    assert list(rows_without(removes, "id", [])) == ["", "a@x.io", "c@x.io"]
