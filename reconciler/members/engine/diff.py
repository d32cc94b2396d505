"""Live members read to disk and diffed against a DesiredTable with joins.

The rules are the Python planner's (plan/planner.py `diff_members`): a desired member is
present when any of its identifiers is live, and a live identifier stays when any desired
member has it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from reconciler.errors import LiveStateError, ReconcilerError
from reconciler.members.engine.desired_table import (
    LOOKS_LIKE_EMAIL,
    DesiredTable,
    known_skipped,
    not_blank_sql,
)
from reconciler.members.engine.rows import TableRows, identifier_rows, member_rows
from reconciler.members.engine.sql_text import sql_string
from reconciler.members.engine.workspace import Engine, unquoted_reason
from reconciler.members.fingerprint import MembersDigest, digest_relation
from reconciler.members.identity import Member

if TYPE_CHECKING:
    from reconciler.iterable.client import IterableClient


@dataclass(frozen=True)
class LiveTable:
    """A live list's members in the workspace (column `id`)."""

    table: str
    count: int
    digest: str
    text_bytes: int = 0  # the identifiers' length in all, to size the join

    @property
    def members_digest(self) -> MembersDigest:
        return MembersDigest(self.count, self.digest, self.text_bytes)


@dataclass(frozen=True)
class TableDiff:
    add: TableRows[Member]
    remove: TableRows[str]
    desired_count: int  # members, duplicates counted once


def read_live_table(
    engine: Engine,
    client: IterableClient,
    list_id: int,
    prefer_user_id: bool,
    on_lines: Callable[[int], None] | None = None,
) -> str:
    """getUsers streamed to a file in the workspace; returns the name of its relation."""
    table = engine.name("live")
    path = engine.directory / f"{table}.txt"
    client.download_list_members(list_id, prefer_user_id, path, on_lines)
    load_live_file(engine, path, table, f"getUsers for list {list_id}")
    return table


def load_live_file(engine: Engine, path: Path, table: str, origin: str) -> None:
    """A file of identifiers, one per line, as relation `table` (column `id`): a view
    over the file, read where it is used. Ten million identifiers held as a table would
    take a third of a gigabyte of the memory limit that the join needs. The file stays
    until the workspace goes."""
    # Taken as it is: no quoting, and a delimiter no identifier Iterable accepts contains.
    # The client saved it with \n line ends and no byte-order mark (MemberLineEnds); a line
    # of spaces is no member, as the Python engine (the client's _parse_lines) reads it.
    engine.connection.execute(
        f"CREATE VIEW {table} AS SELECT id FROM read_csv("
        f"{sql_string(path)}, header = false, auto_detect = false, columns = {{'id': 'VARCHAR'}}, "
        f"delim = '\x01', quote = '', escape = '') WHERE id IS NOT NULL "
        f"AND {not_blank_sql('id')}"
    )
    engine.remember(("origin", table), lambda: origin)


def _unreadable(engine: Engine, table: str, exc: duckdb.Error) -> ReconcilerError:
    said = engine.no_room(exc)  # Iterable's lines are fine; the room to read them is not
    if said is not None:
        return said
    origin = engine.remember(("origin", table), lambda: "Iterable")
    return LiveStateError(f"{origin} answered lines reconciler cannot read: {unquoted_reason(exc)}")


def resolve_user_ids(
    engine: Engine,
    emails_of: Callable[[list[str]], dict[str, str]],
    desired: DesiredTable,
    live: str,
) -> str:
    """live.py `_resolve_user_ids` for tables: in hybrid projects a profile the audience
    knows by email is reported by its userId once the app sets one (and in userID-based
    ones a row skipped for lacking a userId names a profile by email); such a userId is
    replaced by the member's email, looked up by `emails_of` (only identifiers that no
    desired member has and that are not emails, so in steady state only the real leavers).
    Returns the relation to use from here on: a table, since it may change."""
    live, candidates = user_id_candidates(engine, desired, live)
    # `emails_of` (live.py `emails_of_user_ids`) reads them per user or by one export.
    return resolve_candidates(engine, desired, live, list(emails_of(candidates).items()))


def user_id_candidates(engine: Engine, desired: DesiredTable, live: str) -> tuple[str, list[str]]:
    """resolve_user_ids' first half: the live relation as a table of its own (it may
    change), and the identifiers on it whose emails are to be looked up. Several lists'
    are looked up at once (live.py), then each is resolved by resolve_candidates."""
    table = engine.name("live")
    try:
        engine.connection.execute(f"CREATE TABLE {table} AS SELECT id FROM {live}")
    except duckdb.Error as exc:
        raise _unreadable(engine, live, exc) from None
    found = engine.connection.execute(
        f"SELECT id FROM {table} l WHERE NOT regexp_full_match(id, '{LOOKS_LIKE_EMAIL}') "
        f"AND NOT EXISTS (SELECT 1 FROM {desired.rows_table} d WHERE d.user_id = l.id) "
        f"AND NOT EXISTS (SELECT 1 FROM {desired.rows_table} d WHERE d.email = l.id)"
    ).fetchall()
    return table, [identifier for (identifier,) in found]


def resolve_candidates(
    engine: Engine, desired: DesiredTable, live: str, pairs: list[tuple[str, str]]
) -> str:
    """resolve_user_ids' second half, on the table user_id_candidates made and the
    (userId, email) pairs found for its candidates."""
    if not pairs:
        return live
    found = engine.name("resolved")
    connection = engine.connection
    connection.execute(f"CREATE TEMP TABLE {found} (id VARCHAR, email VARCHAR)")
    connection.executemany(f"INSERT INTO {found} VALUES (?, ?)", pairs)
    # Only emails of desired members known by email alone count as that member, or
    # another spelling of one, and those of rows skipped as invalid (keep_skipped_rows
    # and keep_respelled_rows then keep the member).
    respelled = ""
    if desired.respellable:
        respelled = (
            f" AND NOT EXISTS (SELECT 1 FROM {desired.spellings()} s "
            f"JOIN {desired.rows_table} d ON d.email = s.email "
            f"WHERE s.alt = f.email AND d.user_id IS NULL)"
        )
    connection.execute(
        f"DELETE FROM {found} f WHERE NOT EXISTS (SELECT 1 FROM {desired.rows_table} d "
        f"WHERE d.email = f.email AND d.user_id IS NULL) AND NOT EXISTS "
        f"(SELECT 1 FROM {known_skipped(desired)} s WHERE s.id = f.email){respelled}"
    )
    connection.execute(f"DELETE FROM {live} WHERE id IN (SELECT id FROM {found})")
    connection.execute(
        f"INSERT INTO {live} SELECT DISTINCT email FROM {found} f "
        f"WHERE NOT EXISTS (SELECT 1 FROM {live} l WHERE l.id = f.email)"
    )
    connection.execute(f"DROP TABLE {found}")
    return live


def describe_live(engine: Engine, live: str) -> LiveTable:
    """Its size, and an order-independent digest for the saved-plan staleness check."""
    try:
        digest = digest_relation(engine.connection, live)
    except duckdb.Error as exc:
        raise _unreadable(engine, live, exc) from None
    return LiveTable(live, digest.count, digest.digest, digest.text_bytes)


def diff_tables(
    engine: Engine,
    desired: DesiredTable,
    live_table: LiveTable | None,
    partitions: int | None = None,
) -> TableDiff:
    """Adds and removes as workspace tables, and the number of members. A list that does
    not exist yet (`live_table` None) gets every desired member. `partitions` overrides
    the number of passes the join with the list is split into (`join_partitions`)."""
    connection = engine.connection
    adds, removes = engine.name("adds"), engine.name("removes")
    columns = "key, key_kind, email, user_id"
    if live_table is None:
        d = desired.deduplicated()
        connection.execute(f"CREATE VIEW {adds} AS SELECT {columns} FROM {d}")
        connection.execute(f"CREATE TABLE {removes} (id VARCHAR)")
        return TableDiff(
            member_rows(engine, adds, desired.count),
            identifier_rows(engine, removes, 0),
            desired.count,
        )
    by_email, by_user_id = desired.with_email > 0, desired.with_user_id > 0
    if by_email != by_user_id:
        if partitions is None:
            partitions = join_partitions(engine, live_table)
        return _diff_one_identifier(engine, desired, live_table, partitions, adds, removes)
    if not by_email:  # no members at all: every live identifier goes
        connection.execute(
            f"CREATE TABLE {adds} (key VARCHAR, key_kind VARCHAR, email VARCHAR, user_id VARCHAR)"
        )
        connection.execute(f"CREATE TABLE {removes} AS SELECT DISTINCT id FROM {live_table.table}")
        return TableDiff(
            member_rows(engine, adds, 0),
            identifier_rows(engine, removes, _count(connection, removes)),
            desired.count,
        )
    d = desired.deduplicated()
    if partitions is None:
        partitions = join_partitions(engine, live_table)
    return _diff_two_identifiers(engine, desired, d, live_table, partitions, adds, removes)


# What the join's hash table takes per live identifier beyond the identifier's own bytes
# (DuckDB 1.x, measured at five and ten million), and the share of the free memory a
# pass may plan to fill: what DuckDB reports free is not all there is to have.
_JOIN_BYTES_PER_ROW = 48
_JOIN_SHARE = 0.9
# Each pass reads the list's file again: beyond this many, one pass that spills to disk
# costs less (ten million emails: 1.9 s in 3 passes, 2.2 s in 4, 2.7 s in 6, 3.4 s in 8,
# 2.7-3.3 s in one pass spilling).
_MAX_PASSES = 5


def join_partitions(engine: Engine, live: LiveTable) -> int:
    """Into how many passes to split the join so that each pass's hash table fits in the
    memory the workspace has left; 1 when that would take more than _MAX_PASSES."""
    needed = live.count * _JOIN_BYTES_PER_ROW + live.text_bytes
    limit = engine.settings.duckdb_memory_bytes
    row = engine.connection.execute(
        "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()"
    ).fetchone()
    free = max(limit - int(row[0] if row else 0), 1)
    passes = math.ceil(needed / (free * _JOIN_SHARE))
    return passes if 1 <= passes <= _MAX_PASSES else 1


def _unmatched(engine: Engine, rows: str, live: str, partitions: int) -> str:
    """`rows` (a query of columns row, ident; ident never NULL) joined with the live
    identifiers: a new table (row, ident, id) of what either side left unmatched (id NULL:
    a row whose identifier is not live; ident NULL: a live identifier no row has). In
    `partitions` passes split by hash when one would not fit in memory: equal
    identifiers hash alike, so each pass is exact on its own."""
    connection = engine.connection
    table = engine.name("unmatched")
    connection.execute(f"CREATE TABLE {table} (row BIGINT, ident VARCHAR, id VARCHAR)")
    for part in range(partitions):
        desired_part = live_part = ""
        if partitions > 1:
            # The high bits: DuckDB's hash table places keys by the low ones.
            desired_part = f" WHERE (hash(ident) >> 40) % {partitions} = {part}"
            live_part = f" WHERE (hash(id) >> 40) % {partitions} = {part}"
        connection.execute(
            f"INSERT INTO {table} SELECT d.row, d.ident, l.id "
            f"FROM (SELECT row, ident FROM ({rows}){desired_part}) d "
            f"FULL OUTER JOIN (SELECT id FROM {live}{live_part}) l ON l.id = d.ident "
            f"WHERE d.ident IS NULL OR l.id IS NULL"
        )
    return table


def _diff_one_identifier(
    engine: Engine,
    desired: DesiredTable,
    live_table: LiveTable,
    partitions: int,
    adds: str,
    removes: str,
) -> TableDiff:
    """The usual case, one identifier in play (emails, or userIds): a member's key is that
    identifier and its other one is absent, so duplicated keys are identical rows, and
    one full outer join of the identifiers alone finds both sides' leftovers with one
    narrow hash table, where two anti-joins would build two wide ones. When that table
    would not fit in memory, the identifiers are split by hash into passes that each
    fit (equal identifiers hash alike, so each pass is exact on its own)."""
    connection = engine.connection
    by_email = desired.with_email > 0
    column, kind = ("email", "email") if by_email else ("user_id", "userId")
    both = _unmatched(
        engine,
        # Straight from the checked rows, not through the members view: measured 0.25 s
        # quicker at ten million. Duplicated keys are identical rows: no row needed.
        f"SELECT NULL::BIGINT AS row, {column} AS ident FROM {desired.checked} "
        f"WHERE problem IS NULL",
        live_table.table,
        partitions,
    )
    connection.execute(
        f"CREATE TABLE {adds} AS SELECT DISTINCT ident AS key, '{kind}' AS key_kind, "
        f"{'ident' if by_email else 'NULL::VARCHAR'} AS email, "
        f"{'NULL::VARCHAR' if by_email else 'ident'} AS user_id "
        f"FROM {both} WHERE ident IS NOT NULL"
    )
    connection.execute(
        f"CREATE TABLE {removes} AS SELECT DISTINCT id FROM {both} WHERE ident IS NULL"
    )
    added, removed = _count(connection, adds), _count(connection, removes)
    # Members = those to add + those already on the list. getUsers names each member of a
    # list once, so the live identifiers that matched are that many distinct members:
    # the count a distinct-count of ten million keys would give, without its second.
    return TableDiff(
        member_rows(engine, adds, added),
        identifier_rows(engine, removes, removed),
        added + live_table.count - removed,
    )


def _diff_two_identifiers(
    engine: Engine,
    desired: DesiredTable,
    d: str,
    live_table: LiveTable,
    partitions: int,
    adds: str,
    removes: str,
) -> TableDiff:
    """Members with emails and userIds (hybrid audiences): a member is present when either
    of its identifiers is live, and a live identifier stays when any member (`d`, one row
    per key: which row of a duplicated key counts matters here) has it.

    One identifier joins with the list as in `_diff_one_identifier` (in passes when it
    would not fit), the one more members have; only the members it leaves unmatched and
    the live identifiers it leaves over are then looked up by the other identifier, joins
    whose small side DuckDB builds from. At ten million members with both (1% churn),
    four joins of ten million each way took 8.5-8.9 s and spilled; this takes 2.6-3.1 s."""
    connection = engine.connection
    first, second = ("user_id", "email")
    if desired.with_email > desired.with_user_id:
        first, second = second, first
    unmatched = _unmatched(
        engine,
        f"SELECT row, {first} AS ident FROM {d} WHERE {first} IS NOT NULL",
        live_table.table,
        partitions,
    )
    # Members whose first identifier is not live (or who have none) are present only if
    # their second one is live: left over above, or another member's first identifier
    # that was found.
    candidates, found = engine.name("candidates"), engine.name("found")
    connection.execute(
        f"CREATE TABLE {candidates} AS SELECT key, key_kind, email, user_id FROM {d} "
        f"WHERE {first} IS NULL OR row IN (SELECT row FROM {unmatched} WHERE id IS NULL)"
    )
    connection.execute(
        f"CREATE TABLE {found} AS SELECT id FROM {unmatched} WHERE ident IS NULL "
        f"UNION SELECT DISTINCT c.{second} FROM {candidates} c JOIN {d} d "
        f"ON d.{first} = c.{second} WHERE NOT EXISTS "
        f"(SELECT 1 FROM {unmatched} u WHERE u.id IS NULL AND u.ident = c.{second})"
    )
    connection.execute(
        f"CREATE TABLE {adds} AS SELECT * FROM {candidates} c WHERE c.{second} IS NULL "
        f"OR NOT EXISTS (SELECT 1 FROM {found} f WHERE f.id = c.{second})"
    )
    # Live identifiers no member has as its first: they go unless one has it as second.
    connection.execute(
        f"CREATE TABLE {removes} AS SELECT DISTINCT id FROM {unmatched} u "
        f"WHERE ident IS NULL AND id NOT IN (SELECT DISTINCT u2.id FROM {unmatched} u2 "
        f"JOIN {d} d ON d.{second} = u2.id WHERE u2.ident IS NULL)"
    )
    for table in (candidates, found, unmatched):
        connection.execute(f"DROP TABLE {table}")
    return TableDiff(
        member_rows(engine, adds, _count(connection, adds)),
        identifier_rows(engine, removes, _count(connection, removes)),
        desired.count,
    )


def keep_skipped_rows(
    engine: Engine, desired: DesiredTable, diff: TableDiff
) -> tuple[TableDiff, int]:
    """plan/planner.py `keep_skipped` for tables: removals less the live members that rows
    skipped as invalid stand for, and how many were kept."""
    if not desired.skipped or not len(diff.remove):
        return diff, 0
    connection = engine.connection
    removes = engine.name("removes")
    connection.execute(
        f"CREATE TABLE {removes} AS SELECT id FROM {diff.remove.table} r WHERE NOT EXISTS "
        f"(SELECT 1 FROM {desired.skipped_ids()} s WHERE s.id = r.id)"
    )
    count = _count(connection, removes)
    kept = len(diff.remove) - count
    if not kept:
        connection.execute(f"DROP TABLE {removes}")
        return diff, 0
    return replace(diff, remove=identifier_rows(engine, removes, count)), kept


def keep_respelled_rows(
    engine: Engine, desired: DesiredTable, live_table: LiveTable | None, diff: TableDiff
) -> tuple[TableDiff, int, tuple[str, ...]]:
    """plan/planner.py `keep_respelled` for tables: adds and removals less those that only
    respell one address (identity.other_spellings), how many live members were kept, and
    the keys of the members counted present by another spelling.
    Nothing is read unless some member's email is not plain ASCII or holds a punycode
    label (`desired.respellable`, counted in the scan that checked the rows); the list is
    then read once more only when such a member is to be added."""
    if not desired.respellable or live_table is None or not (len(diff.add) or len(diff.remove)):
        return diff, 0, ()
    connection = engine.connection
    spellings = desired.spellings()
    kept = 0
    present: tuple[str, ...] = ()
    if len(diff.remove):
        removes = engine.name("removes")
        connection.execute(
            f"CREATE TABLE {removes} AS SELECT id FROM {diff.remove.table} r WHERE NOT EXISTS "
            f"(SELECT 1 FROM {spellings} s WHERE s.alt = r.id)"
        )
        count = _count(connection, removes)
        kept = len(diff.remove) - count
        diff = replace(diff, remove=identifier_rows(engine, removes, count))
    if len(diff.add):
        respelled = engine.name("respelled")
        connection.execute(
            f"CREATE TABLE {respelled} AS SELECT DISTINCT a.email, s.alt "
            f"FROM {diff.add.table} a JOIN {spellings} s ON s.email = a.email"
        )
        if _count(connection, respelled):
            adds = engine.name("adds")
            # An add whose email Iterable has in another spelling is present already.
            on_list = f"SELECT r.email FROM {respelled} r JOIN {live_table.table} l ON l.id = r.alt"
            rows = connection.execute(
                f"SELECT DISTINCT key FROM {diff.add.table} WHERE email IN ({on_list}) ORDER BY key"
            ).fetchall()
            present = tuple(str(key) for (key,) in rows)
            connection.execute(
                f"CREATE TABLE {adds} AS SELECT * FROM {diff.add.table} "
                f"WHERE NOT list_contains(?::VARCHAR[], key)",
                [list(present)],
            )
            diff = replace(diff, add=member_rows(engine, adds, _count(connection, adds)))
        connection.execute(f"DROP TABLE {respelled}")
    return diff, kept, present


def _count(connection: duckdb.DuckDBPyConnection, table: str) -> int:
    row: Any = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def needs_user_id_resolution(desired: DesiredTable) -> bool:
    # Skipped rows count: one with a valid email and an over-long userId names a member
    # Iterable may report by the profile's userId (live.py `_known_by_email`); so does an
    # email-only row in a userID-based project. Email-based projects never prefer userIds.
    known_by_email = desired.email_only > 0 or desired.skipped > 0
    return desired.prefer_user_id and known_by_email
