"""sources/sqlite_memory.py: SQLite's process-wide heap limit is set while any query runs
under it and put back as it was once the last one ends."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest

from reconciler.sources.sqlite_memory import _heap_limit_setter, heap_limit


def _limit() -> int:
    with contextlib.closing(sqlite3.connect(":memory:")) as connection:
        (value,) = connection.execute("PRAGMA hard_heap_limit").fetchone()
    return int(value)


@pytest.mark.skipif(_heap_limit_setter() is None, reason="sqlite3's library has no setter")
def test_the_limit_holds_while_queries_run_and_is_put_back_after_the_last() -> None:
    before = _limit()
    first, second = 512 * 2**20, 256 * 2**20
    expected = min(first, before) if before > 0 else first
    with heap_limit(first):
        assert _limit() == expected
        with heap_limit(second):  # another audience's query: the limit is the first's
            assert _limit() == expected
        assert _limit() == expected  # one query still runs
    assert _limit() == before


@pytest.mark.skipif(_heap_limit_setter() is None, reason="sqlite3's library has no setter")
def test_an_allocation_past_the_limit_fails_the_query_not_the_machine() -> None:
    doubling = (
        "WITH RECURSIVE s(x) AS (SELECT 'a' UNION ALL SELECT x || x FROM s "
        "WHERE length(x) < 100000000) SELECT max(length(x)) FROM s"
    )
    with (
        heap_limit(8 * 2**20),
        contextlib.closing(sqlite3.connect(":memory:")) as db,
        pytest.raises(MemoryError),
    ):
        db.execute(doubling).fetchone()
