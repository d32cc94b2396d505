"""Which adds of an updateExistingUsersOnly audience Iterable knows, for adds that stay in
DuckDB (state/unsendable.py): matched there with the profiles of one user export, so a
first load of millions is never held as members.

A member exists as live.py `_read_by_export` finds one: a profile with its userId (not
in email-based projects, where userIds are not unique) or its lower-cased email (not in
userID-based projects, where an email is a plain attribute). One no profile has stays
in the adds when another list's subscribe creates it in the same apply
(unsendable.py `_created_by_other_lists`, in SQL): by the same userId, or in hybrid
projects by the same email unless the two name different userIds.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.members.engine.rows import TableRows, member_rows, write_table
from reconciler.members.engine.workspace import Engine
from reconciler.members.identity import Member, ProjectType

_FETCH = 10_000


def creators_table(engine: Engine, lists: Sequence[Sequence[Member]]) -> str:
    """A table (email, user_id) of the adds of `lists` (those whose subscribes create
    users), from DuckDB where they live there, else from the members."""
    table = engine.name("creators")
    members = [m for adds in lists if not isinstance(adds, TableRows) for m in adds]
    write_table(engine, table, ((m.email, m.user_id) for m in members), ("email", "user_id"))
    for adds in lists:
        if isinstance(adds, TableRows):
            engine.connection.execute(
                f"INSERT INTO {table} SELECT email, user_id FROM {adds.table}"
            )
    return table


def split_unknown(
    adds: TableRows[Member], profiles: str, creators: str, project_type: ProjectType
) -> tuple[TableRows[Member], tuple[str, ...]]:
    """The adds some profile of `profiles` (email, user_id) has or `creators` creates, as
    a table of their own, and the keys of the others, in key order."""
    found = []
    if project_type != "email":
        found.append(
            f"coalesce(a.user_id IN (SELECT user_id FROM {profiles} "
            "WHERE user_id IS NOT NULL), false)"
        )
    if project_type != "userId":
        found.append(
            f"coalesce(a.email IN (SELECT email FROM {profiles} WHERE email IS NOT NULL), false)"
        )
    found.append(f"EXISTS (SELECT 1 FROM {creators} c WHERE c.user_id = a.user_id)")
    if project_type == "hybrid":
        found.append(
            f"EXISTS (SELECT 1 FROM {creators} c WHERE c.email = a.email "
            "AND (c.user_id IS NULL OR a.user_id IS NULL OR c.user_id = a.user_id))"
        )
    known = " OR ".join(found)
    connection = adds.engine.connection
    kept = adds.engine.name("adds")
    connection.execute(
        f"CREATE TABLE {kept} AS SELECT key, key_kind, email, user_id FROM {adds.table} a "
        f"WHERE {known}"
    )
    cursor = adds.engine.cursor()
    try:
        cursor.execute(f"SELECT key FROM {adds.table} a WHERE NOT ({known}) ORDER BY key")
        # A cursor's worth at a time: a first load of millions is not held twice.
        gone: list[str] = []
        while rows := cursor.fetchmany(_FETCH):
            gone.extend(key for (key,) in rows)
    finally:
        cursor.close()
    return member_rows(adds.engine, kept, len(adds) - len(gone)), tuple(gone)
