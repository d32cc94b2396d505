"""One user export for every managed list, read to disk and into the workspace: the
DuckDB side of live.py's export read, for projects too large to parse row by row.

Each list's members are named as live.py `_export_identifier` names them: as getUsers
and the userId resolution (diff.py `resolve_user_ids`) name them, so either read gives
the same live table and digest.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from reconciler.errors import LiveStateError
from reconciler.iterable.names import CHANNELS_FIELD
from reconciler.members.engine.desired_table import LOOKS_LIKE_EMAIL, DesiredTable, known_skipped
from reconciler.members.engine.diff import needs_user_id_resolution
from reconciler.members.engine.sql_text import sql_string
from reconciler.members.engine.workspace import Engine, lower_sql, unquoted_reason
from reconciler.members.identity import ProjectType

if TYPE_CHECKING:
    from reconciler.iterable.client import IterableClient


def read_export_table(
    engine: Engine,
    client: IterableClient,
    membership: str,
    list_ids: Collection[int],
    on_lines: Callable[[int], None] | None = None,
    asynchronous: bool = False,
    download: Callable[[Sequence[str], Path, Callable[[int], None] | None], int] | None = None,
    downloaded: Callable[[Callable[[int], None] | None], Path] | None = None,
    channels: list[dict[str, Any]] | None = None,
) -> str:
    """Users on any of `list_ids`: table (email, user_id, lists). `asynchronous`: read by
    an export job (its files joined) rather than the synchronous export; `download`: read
    by this instead (the export in date windows, merged into one file); `downloaded`: the
    file of an export already started (engine/prefetch.py), waited for. `channels`: given
    for a job's file or one `downloaded` (both ask for the profiles' channel unsubscribes),
    gets every profile with any, for the consent guard (state/consent.py)."""
    table = engine.name("export")
    path = engine.directory / f"{table}.jsonl"
    ids = ", ".join(str(int(i)) for i in sorted(list_ids)) or "NULL"
    try:
        if downloaded is not None:
            path = downloaded(on_lines)
        else:
            if download is None:
                download = client.download_export_job if asynchronous else client.download_export
            fields = ["email", "userId", membership]
            download([*fields, CHANNELS_FIELD] if channels is not None else fields, path, on_lines)
        try:
            engine.connection.execute(
                f"CREATE TABLE {table} AS SELECT {lower_sql('email')} AS email, "
                "userId AS user_id, "
                f'lists FROM (SELECT email, userId, "{membership}" AS lists FROM read_json('
                f"{sql_string(path)}, format = 'newline_delimited', "
                f"columns = {{'email': 'VARCHAR', 'userId': 'VARCHAR', "
                f"'{membership}': 'BIGINT[]'}})) "
                f"WHERE list_has_any(lists, [{ids}])"
            )
            if channels is not None:
                channels.extend(_channel_unsubscribed(engine, path))
        except duckdb.Error as exc:
            said = engine.no_room(exc)  # the export is fine; the room to read it is not
            if said is not None:
                raise said from None
            raise LiveStateError(
                f"the user export answered lines reconciler cannot read: {unquoted_reason(exc)}"
            ) from None
    finally:
        path.unlink(missing_ok=True)
    return table


def _channel_unsubscribed(engine: Engine, path: Path) -> list[dict[str, Any]]:
    """The export's profiles with channel unsubscribes (a few: held as rows, as live.py
    `_job_rows` holds them)."""
    found = engine.connection.execute(
        f"SELECT email, userId, {CHANNELS_FIELD} FROM read_json({sql_string(path)}, format = "
        f"'newline_delimited', columns = {{'email': 'VARCHAR', 'userId': 'VARCHAR', "
        f"'{CHANNELS_FIELD}': 'BIGINT[]'}}) WHERE len({CHANNELS_FIELD}) > 0"
    ).fetchall()
    return [
        {"email": email, "userId": user_id, CHANNELS_FIELD: list(ids)}
        for email, user_id, ids in found
    ]


# From this many lists planned in DuckDB, the export is sorted by list once (export_by_list)
# rather than scanned whole for each list: below it the scans cost less than the sort (a
# few lists of a million members, bench/large_reads.py, are read as before).
EXPORT_BY_LIST_FROM = 8


def export_by_list(engine: Engine, export: str, list_ids: Collection[int]) -> str:
    """The export's rows of `list_ids`, one per list a user is on: table (list_id, email,
    user_id), sorted by list, so a list's read (live_from_export) skips the row groups
    of the others. Each list's read was a scan of the whole export, which grew with the
    lists times the users: 300 lists of 10,000 members took 8.6 s of CPU, 30 took 0.16."""
    table = engine.name("export_by_list")
    ids = ", ".join(str(int(i)) for i in sorted(list_ids)) or "NULL"
    with engine.ordered():  # kept sorted as written: DuckDB skips by each row group's range
        engine.connection.execute(
            f"CREATE TABLE {table} AS SELECT list_id, email, user_id FROM (SELECT "
            f"unnest(lists) AS list_id, email, user_id FROM {export}) "
            f"WHERE list_id IN ({ids}) ORDER BY list_id"
        )
    return table


def live_from_export(
    engine: Engine,
    export: str,
    list_id: int,
    desired: DesiredTable,
    project_type: ProjectType,
    by_list: str | None = None,
) -> str:
    """The list's members from the export, as table (id); from `by_list` (export_by_list
    of the export) when given."""
    table = engine.name("live")
    d = desired.rows_table
    rows = (
        f"{by_list} WHERE list_id = {int(list_id)}"
        if by_list is not None
        else f"{export} WHERE list_contains(lists, {int(list_id)})"
    )
    if project_type == "email":
        name = "e.email"
    elif not desired.prefer_user_id:
        name = "coalesce(e.email, e.user_id)"
    elif not needs_user_id_resolution(desired):
        # No member is known by email alone: the CASE below would always pick the userId,
        # after joins with every desired row (ten million in a large userId project).
        name = "coalesce(e.user_id, e.email)"
    else:
        # A profile the audience knows by its email alone, reported by a userId it got
        # later (or, in a userID-based project, a profile a row skipped for lacking a
        # userId names by its email): named by that email, as resolve_user_ids does.
        # Or by another spelling of that email (keep_respelled_rows then keeps it).
        skipped = known_skipped(desired)
        respelled = ""
        if desired.respellable:
            respelled = (
                f" OR EXISTS (SELECT 1 FROM {desired.spellings()} s JOIN {d} d "
                f"ON d.email = s.email WHERE s.alt = e.email AND d.user_id IS NULL)"
            )
        name = f"""CASE WHEN e.user_id IS NULL THEN e.email
            WHEN e.email IS NOT NULL
                AND (EXISTS (SELECT 1 FROM {d} d WHERE d.email = e.email AND d.user_id IS NULL)
                    OR EXISTS (SELECT 1 FROM {skipped} s WHERE s.id = e.email){respelled})
                AND NOT EXISTS (SELECT 1 FROM {d} d WHERE d.user_id = e.user_id)
                AND NOT EXISTS (SELECT 1 FROM {d} d WHERE d.email = e.user_id)
                AND NOT regexp_full_match(e.user_id, '{LOOKS_LIKE_EMAIL}')
            THEN e.email ELSE e.user_id END"""
    engine.connection.execute(
        f"CREATE TABLE {table} AS SELECT {name} AS id FROM (SELECT email, user_id FROM {rows}) e"
    )
    engine.connection.execute(f"DELETE FROM {table} WHERE id IS NULL")
    return table


def export_rows(
    engine: Engine, export: str, membership: str, list_ids: Collection[int]
) -> list[dict[str, Any]]:
    """Rows for lists planned in Python, shaped as export_users yields them."""
    if not list_ids:
        return []
    ids = ", ".join(str(int(i)) for i in sorted(list_ids))
    rows = engine.connection.execute(
        f"SELECT email, user_id, lists FROM {export} WHERE list_has_any(lists, [{ids}])"
    ).fetchall()
    return [{"email": e, "userId": u, membership: list(lists)} for e, u, lists in rows]
