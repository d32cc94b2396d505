"""One digest of a live list's members, whichever engine read them.

A saved plan carries it (plan/fingerprint.py) so that apply can tell whether the list
changed since. Both engines compute it with the same DuckDB expression: the Python
engine over its set of identifiers, the DuckDB engine over the table it read, so a plan
saved under one engine reads as unchanged under the other. The digest is a sum of
per-identifier hashes, order-independent (getUsers promises no order) and cheap at ten
million (one pass, no sort).
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass
from itertools import islice

import duckdb

from reconciler.duckdb_connect import connect

# DuckDB's hash() is not promised to stay the same across its versions: a digest is tagged
# with the version, and a mismatch reads as "changed", never as "same".
DIGEST_KIND = f"duckdb-{duckdb.__version__}"
# Identifiers passed to DuckDB at a time when digesting a Python set (bounds the copy).
_CHUNK = 10_000


@dataclass(frozen=True)
class MembersDigest:
    count: int
    digest: str
    text_bytes: int = 0  # the identifiers' length in all (sizes the DuckDB engine's join)


def _sums(relation: str) -> str:
    return (
        f"SELECT count(*), coalesce(sum(hash(id)), 0), coalesce(sum(strlen(id)), 0) FROM {relation}"
    )


def _digest(count: int, total: int, text_bytes: int) -> MembersDigest:
    return MembersDigest(count, f"{DIGEST_KIND}:{count}:{total:x}", text_bytes)


def digest_relation(connection: duckdb.DuckDBPyConnection, relation: str) -> MembersDigest:
    """The digest of a relation's `id` column (one row per member)."""
    row = connection.execute(_sums(relation)).fetchone()
    count, total, text_bytes = row if row is not None else (0, 0, 0)
    return _digest(int(count), int(total), int(text_bytes))


_lock = threading.Lock()
_connection: duckdb.DuckDBPyConnection | None = None


def _shared_connection() -> duckdb.DuckDBPyConnection:
    """One small in-memory DuckDB for the process: opening one costs more than digesting
    a few thousand identifiers, and a plan may digest many lists."""
    global _connection
    if _connection is None:
        connection = connect()
        connection.execute("SET enable_progress_bar = false")
        _connection = connection
    return _connection


def digest_members(identifiers: Collection[str]) -> MembersDigest:
    """The digest of a set of identifiers, equal to `digest_relation` over the same ones.
    Sums are exact integers, so digesting in chunks gives the same digest as one pass."""
    count = total = text_bytes = 0
    items = iter(identifiers)
    with _lock:
        connection = _shared_connection()
        while chunk := list(islice(items, _CHUNK)):
            row = connection.execute(
                _sums("(SELECT unnest($ids::VARCHAR[]) AS id)"), {"ids": chunk}
            ).fetchone()
            assert row is not None
            count += int(row[0])
            total += int(row[1])
            text_bytes += int(row[2])
    return _digest(count, total, text_bytes)
