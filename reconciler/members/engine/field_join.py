"""The merge of a few trait-mapped audiences (field_tables.py `JOINED_MAX` or fewer): their
values tables joined side by side by key, a column per audience and field, and the merged
view read straight from that join. For one or two audiences of millions of members this
is quicker than gathering every value into one long table (field_tables.py does that for
more audiences: the join grows with audiences times members, and DuckDB ran out of memory
on it from about 30 audiences)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from reconciler.members.engine.sql_text import sql_string

if TYPE_CHECKING:
    from reconciler.members.engine.field_tables import MappedTable, MergedTables


def joined_candidates(
    merged: MergedTables, batch: int
) -> Iterator[list[tuple[str, str, list[tuple[int, int, int, str]]]]]:
    """field_tables.conflict_candidates over the join, one query per field."""
    lists = merged.lists
    joined = _joined(lists)
    for name in merged.names:
        holders = merged.holding(name)
        if len(holders) < 2:
            continue
        texts = ", ".join(f"w{i}.f{c}" for i, c in holders)
        cells = ", ".join(f"w{i}.pos, w{i}.f{c}" for i, c in holders)
        differ = f"len(list_distinct([{texts}])) > 1"
        if len({lists[i].merge_nested_objects for i, _ in holders}) > 1:
            # One merges nested objects, another replaces them: equal objects conflict
            # too (plan/fields.py conflict_reason). An object's JSON text starts with {.
            objects = " OR ".join(f"starts_with(w{i}.f{c}, '{{')" for i, c in holders)
            differ = f"({differ} OR ({objects}) IS TRUE)"
        cursor = merged.engine.cursor()
        try:
            cursor.execute(
                f"SELECT {_key(len(lists))} AS key, {cells} FROM {joined} "
                f"WHERE {differ} ORDER BY key"
            )
            while chunk := cursor.fetchmany(batch):
                out = []
                for key, *flat in chunk:
                    held = [
                        (i, int(flat[2 * n]), c, flat[2 * n + 1])
                        for n, (i, c) in enumerate(holders)
                        if flat[2 * n + 1] is not None
                    ]
                    out.append((str(key), name, held))
                yield out
        finally:
            cursor.close()


def create_joined_view(merged: MergedTables) -> str:
    """The merged view (field_tables.MergedTables) over the join; returns its name."""
    lists = merged.lists
    n = len(lists)

    def first(column: str) -> str:
        cases = " ".join(f"WHEN w{i}.key IS NOT NULL THEN w{i}.{column}" for i in range(n))
        return f"CASE {cases} END"

    merge = " OR ".join(
        f"w{i}.key IS NOT NULL" for i, m in enumerate(lists) if m.merge_nested_objects
    )
    columns = [
        f"{_key(n)} AS key",
        f"{first('key_kind')} AS key_kind",
        f"{first('email')} AS email",
        f"{first('user_id')} AS user_id",
        f"({merge or 'false'}) AS merge",
    ]
    for j, name in enumerate(merged.names):
        holders = merged.holding(name)
        value = "coalesce(" + ", ".join(f"w{i}.f{c}" for i, c in holders) + ")"
        conflicted = (
            f"EXISTS (SELECT 1 FROM {merged.conflicted} x WHERE x.key = {_key(n)} "
            f"AND x.field = {sql_string(name)})"
            if merged.conflicts
            else "false"
        )
        # Sent on a subscribe in this plan (by any audience): not read.
        covered = " OR ".join(f"(w{i}.adding AND w{i}.f{c} IS NOT NULL)" for i, c in holders)
        # Already on some list mapping it, with a value: read to compare.
        held = " OR ".join(
            f"(w{i}.key IS NOT NULL AND NOT w{i}.adding AND w{i}.f{c} IS NOT NULL)"
            for i, c in holders
        )
        columns.append(f"{value} AS d{j}")
        columns.append(f"(({held}) AND NOT ({covered}) AND NOT {conflicted}) IS TRUE AS want{j}")
    view = merged.engine.name("merged")
    merged.engine.connection.execute(
        f"CREATE VIEW {view} AS SELECT {', '.join(columns)} FROM {_joined(lists)}"
    )
    return view


def _joined(lists: Sequence[MappedTable]) -> str:
    """Every audience's values beside each other, joined by key (w0, w1, ...), with
    `adding` telling whether that audience's list subscribes the member."""
    parts = []
    for i, m in enumerate(lists):
        source = (
            f"(SELECT v.*, a.key IS NOT NULL AS adding FROM {m.values.table} v "
            f"LEFT JOIN {m.adding} a ON a.key = v.key)"
        )
        if i == 0:
            parts.append(f"{source} w0")
        else:
            parts.append(f"FULL JOIN {source} w{i} ON w{i}.key = {_key(i)}")
    return " ".join(parts)


def _key(n: int) -> str:
    return "coalesce(" + ", ".join(f"w{i}.key" for i in range(n)) + ")" if n > 1 else "w0.key"
