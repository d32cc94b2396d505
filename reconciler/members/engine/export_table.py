"""One user export for every managed list, read to disk and into the workspace: the
DuckDB side of live.py's export read, for projects too large to parse row by row.

Each list's members are named as live.py `_export_identifier` names them: by the
identifier its audience knows the member by, else as getUsers would report them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import duckdb

from reconciler.errors import LiveStateError
from reconciler.iterable import IterableClient
from reconciler.members.engine.desired_table import DesiredTable
from reconciler.members.engine.workspace import Engine
from reconciler.members.identity import ProjectType


def read_export_table(
    engine: Engine,
    client: IterableClient,
    membership: str,
    list_ids: Collection[int],
    on_lines: Callable[[int], None] | None = None,
) -> str:
    """Users on any of `list_ids`: table (email, user_id, lists)."""
    table = engine.name("export")
    path = engine.directory / f"{table}.jsonl"
    ids = ", ".join(str(int(i)) for i in sorted(list_ids)) or "NULL"
    try:
        client.download_export(["email", "userId", membership], path, on_lines)
        try:
            engine.connection.execute(
                f"CREATE TABLE {table} AS SELECT lower(email) AS email, userId AS user_id, "
                f'lists FROM (SELECT email, userId, "{membership}" AS lists FROM read_json('
                f"'{path}', format = 'newline_delimited', columns = {{'email': 'VARCHAR', "
                f"'userId': 'VARCHAR', '{membership}': 'BIGINT[]'}})) "
                f"WHERE list_has_any(lists, [{ids}])"
            )
        except duckdb.Error as exc:
            raise LiveStateError(
                f"the user export answered lines reconciler cannot read: {str(exc).splitlines()[0]}"
            ) from None
    finally:
        path.unlink(missing_ok=True)
    return table


def live_from_export(
    engine: Engine,
    export: str,
    list_id: int,
    desired: DesiredTable,
    project_type: ProjectType,
) -> str:
    """The list's members from the export, as table (id)."""
    table = engine.name("live")
    if project_type == "userId":
        fallback = "coalesce(e.user_id, e.email)"
    elif project_type == "email":
        fallback = "e.email"
    elif desired.prefer_user_id:
        fallback = "coalesce(e.user_id, e.email)"
    else:
        fallback = "coalesce(e.email, e.user_id)"
    d = desired.rows_table
    engine.connection.execute(
        f"""
        CREATE TABLE {table} AS
        SELECT CASE WHEN de.email IS NOT NULL THEN e.email
                    WHEN du.user_id IS NOT NULL THEN e.user_id
                    ELSE {fallback} END AS id
        FROM (SELECT email, user_id FROM {export} WHERE list_contains(lists, {int(list_id)})) e
        LEFT JOIN (SELECT DISTINCT email FROM {d} WHERE email IS NOT NULL) de
            ON de.email = e.email
        LEFT JOIN (SELECT DISTINCT user_id FROM {d} WHERE user_id IS NOT NULL) du
            ON du.user_id = e.user_id
        """
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
