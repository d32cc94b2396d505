"""Trait-mapped field values at scale: per audience a table of each member's mapped values,
merged across audiences, compared with Iterable's, in the DuckDB workspace.

The values themselves are made in Python (conversions and templates: traits/values.py), a
batch at a time, and land here as canonical JSON text, one column per mapped field (NULL:
the value could not be made). Every decision that needs Python's notion of equality
(traits.compare.same_value) is taken in Python too, over batches read back in key order,
so both engines decide alike; SQL only narrows down where Python has to look and joins
what belongs together. Plans carry the results as lazy views (FieldValues, TableRows).
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.members.engine.rows import TableRows, write_table
from reconciler.members.engine.sql_text import sql_string
from reconciler.members.engine.workspace import Engine, lower_sql
from reconciler.plan import fields as fields_plan
from reconciler.plan.fingerprint import scalar_json
from reconciler.traits.types import as_doubles

# Rows per batch handed to Python: memory is bounded by the batch, not the audience.
BATCH = 20_000

# Audiences of a destination up to which their values are merged by joining their tables
# side by side (quickest for one or two large audiences); beyond it, in long
# tables grouped by member (MergedTables), whose cost grows with the values alone (the
# join grows with audiences times members: at 100 audiences of 2 x 200,000 members it took
# minutes, and it ran out of memory from about 30 audiences once any conflict was found).
JOINED_MAX = 4


def to_json(value: Any) -> str:
    """A value as the JSON text stored for it (and read back by `from_json`): what
    json.dumps gives, with the common scalars made directly (ten million values and more
    pass through here)."""
    text = scalar_json(value)
    return text if text is not None else json.dumps(value, separators=(",", ":"))


_CONSTANTS: dict[str, Any] = {"null": None, "true": True, "false": False}
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")
_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)")


# The JSON texts of the values that clear a field (traits/compare.holds_value): a
# subscribe leaves them out (plan/fields.sent_on_subscribe says why).
CLEAR_TEXTS = frozenset({"null", '""', "[]", "{}"})


def sent_unread_sql(column: str) -> str:
    """SQL: the JSON text in `column` is a value a subscribe sends unread: not a clear,
    not an object (plan/fields.sent_on_subscribe)."""
    clears = ", ".join(quote(t) for t in sorted(CLEAR_TEXTS))
    return f"({column} NOT IN ({clears}) AND NOT starts_with({column}, '{{'))"


def object_sql(column: str) -> str:
    """SQL: the JSON text in `column` is an object a subscribe may carry once its member's
    field is read (plan/fields._object): any but `{}`."""
    return f"(starts_with({column}, '{{') AND {column} <> '{{}}')"


def object_on_subscribe(text: str, held: str | None) -> bool:
    """plan/fields.object_on_subscribe over JSON texts (`held` None: not read or absent)."""
    return fields_plan.object_on_subscribe(
        from_json(text), from_json(held) if held is not None else None
    )


def from_json(text: str) -> Any:
    """json.loads, with plain strings, integers and constants read directly."""
    if text[:1] == '"' and "\\" not in text:
        # No escapes: the text between the quotes is the string itself.
        return text[1:-1]
    if text in _CONSTANTS:
        return _CONSTANTS[text]
    if _INTEGER.fullmatch(text):
        return int(text)
    if _DECIMAL.fullmatch(text):
        return float(text)  # as json.loads reads a number with a fraction or exponent
    return json.loads(text)


def quote(name: str) -> str:
    """A string as an SQL literal."""
    return "'" + name.replace("'", "''") + "'"


@dataclass
class ValuesTable:
    """One audience's mapped values: table (key, key_kind, email, user_id, pos, f0, f1,
    ...), one row per member; `pos` orders members as the source gave them (their first
    row), f<i> is field `fields[i]`'s value as JSON text, NULL where it could not be made."""

    engine: Engine = field(repr=False)
    table: str
    fields: tuple[str, ...]
    count: int

    def position(self, key: str) -> int | None:
        """Where a member stands in `pos` order (for naming its source row)."""
        cursor = self.engine.cursor()
        try:
            found = cursor.execute(f"SELECT pos FROM {self.table} WHERE key = ?", [key]).fetchone()
        finally:
            cursor.close()
        return None if found is None else int(found[0])

    def has(self, key: str, name: str) -> bool:
        """Whether this audience made a value of field `name` for member `key`."""
        if name not in self.fields:
            return False
        column = f"f{self.fields.index(name)}"
        cursor = self.engine.cursor()
        try:
            found = cursor.execute(
                f"SELECT 1 FROM {self.table} WHERE key = ? AND {column} IS NOT NULL", [key]
            ).fetchone()
        finally:
            cursor.close()
        return found is not None


ValueRow = tuple[str, str, str | None, str | None, int, Sequence[str | None]]


def values_into_table(
    engine: Engine, rows: Iterable[ValueRow], fields: Sequence[str]
) -> ValuesTable:
    """Rows (key, key_kind, email, user_id, pos, [JSON text or None per field]) into a
    workspace table, through a CSV file (far quicker than inserting them one by one)."""
    table = engine.name("field_values")
    columns = ["key", "key_kind", "email", "user_id", "pos", *(f"f{i}" for i in range(len(fields)))]
    count = 0

    def lines() -> Iterator[tuple[str | None, ...]]:
        nonlocal count
        for key, kind, email, user_id, pos, values in rows:
            count += 1
            yield (key, kind, email, user_id, str(pos), *values)

    write_table(engine, table, lines(), columns, {"pos": "BIGINT"})
    return ValuesTable(engine, table, tuple(fields), count)


def keys_table(engine: Engine, keys: Sequence[Any]) -> str:
    """A table (key) of the members a list plan adds: its own table when the adds are
    rows still in the workspace, else the keys written into one."""
    if isinstance(keys, TableRows):
        return f"(SELECT key FROM {keys.table})"
    table = engine.name("adding")
    write_table(engine, table, ((m.key,) for m in keys), ["key"])
    return table


@dataclass(frozen=True)
class MappedTable:
    """One audience's values as the field planner needs them."""

    audience: str
    values: ValuesTable
    adding: str  # table or subquery (key): members its list subscribes in this plan
    merge_nested_objects: bool = False


@dataclass
class MergedTables:
    """The audiences' values side by side, in a table `view` with one row per member:
    key, identity (from the first audience holding it), merge, and per field of `names`
    d<j> (the first audience's value) and want<j> (its current value must be read).

    Beyond JOINED_MAX audiences, made from `cells`, every value of every audience in one
    long table (key, list index i, pos, field number j in `names`, column c in its
    audience, JSON text, adding), and `identities` (key, i, key_kind, email, user_id):
    each step groups those by key once, so its cost grows with the values, not with
    audiences times members (a join of every audience to every other did: 100 audiences
    of 30 fields had not planned in 23 minutes). Up to it, a view over their join."""

    engine: Engine = field(repr=False)
    lists: Sequence[MappedTable]
    names: tuple[str, ...]  # every mapped field, sorted
    view: str = ""
    conflicted: str = ""  # table (key, field)
    conflicts: int = 0
    conflicted_by_key: str = ""  # table (key, [field...]), made when first needed
    cells: str = ""
    identities: str = ""

    def wanted(self) -> tuple[int, list[str]]:
        """Members whose current values are needed, and the fields wanted of any."""
        wants = ", ".join(f"count(*) FILTER (want{j})" for j in range(len(self.names)))
        any_want = " OR ".join(f"want{j}" for j in range(len(self.names))) or "false"
        row = self.engine.connection.execute(
            f"SELECT count(*) FILTER ({any_want}), {wants} FROM {self.view}"
        ).fetchone()
        assert row is not None
        users, *per_field = row
        return int(users), [n for n, c in zip(self.names, per_field, strict=True) if c]

    @property
    def any_want(self) -> str:
        return " OR ".join(f"want{j}" for j in range(len(self.names))) or "false"

    def holding(self, name: str) -> list[tuple[int, int]]:
        """(list index, column) of the audiences mapping field `name`, in list order."""
        return [
            (i, m.values.fields.index(name))
            for i, m in enumerate(self.lists)
            if name in m.values.fields
        ]


def merge_tables(engine: Engine, lists: Sequence[MappedTable]) -> MergedTables:
    """The audiences' values in long tables; the (key, field) pairs two audiences disagree
    about are found by SQL (different JSON text) and settled by `settle` (same_value) in
    the caller: see `conflict_candidates` and `mark_conflicts`, which makes the view."""
    names = tuple(sorted({n for m in lists for n in m.values.fields}))
    merged = MergedTables(engine, lists, names)
    connection = engine.connection
    merged.conflicted = engine.name("conflicted")
    connection.execute(f"CREATE TABLE {merged.conflicted} (key VARCHAR, field VARCHAR)")
    if len(lists) <= JOINED_MAX:
        return merged
    merged.identities = engine.name("mapped_identities")
    connection.execute(
        f"CREATE TABLE {merged.identities} "
        "(key VARCHAR, i INTEGER, key_kind VARCHAR, email VARCHAR, user_id VARCHAR)"
    )
    merged.cells = engine.name("mapped_cells")
    connection.execute(
        f"CREATE TABLE {merged.cells} (key VARCHAR, i INTEGER, pos BIGINT, j INTEGER, "
        "c INTEGER, text VARCHAR, adding BOOLEAN)"
    )
    number = {name: j for j, name in enumerate(names)}
    for i, m in enumerate(lists):
        table = m.values.table
        connection.execute(
            f"INSERT INTO {merged.identities} "
            f"SELECT key, {i}, key_kind, email, user_id FROM {table}"
        )
        fields = m.values.fields
        if not fields:
            continue
        # One row per value made (a NULL cell is no value): the columns side by side
        # unnest together, a row per field.
        numbers = ", ".join(str(number[n]) for n in fields)
        columns = ", ".join(str(c) for c in range(len(fields)))
        texts = ", ".join(f"v.f{c}" for c in range(len(fields)))
        connection.execute(
            f"INSERT INTO {merged.cells} SELECT key, {i}, pos, j, c, text, adding FROM ("
            f"SELECT v.key, v.pos, EXISTS (SELECT 1 FROM {m.adding} a WHERE a.key = v.key) "
            f"AS adding, unnest([{numbers}]) AS j, unnest([{columns}]) AS c, "
            f"unnest([{texts}]) AS text FROM {table} v) WHERE text IS NOT NULL"
        )
    return merged


def conflict_candidates(
    merged: MergedTables,
) -> Iterator[list[tuple[str, str, list[tuple[int, int, int, str]]]]]:
    """Batches of (key, field, [(list index, pos, field number, JSON text)...]) for every
    pair whose values differ as text between audiences, field by field (in `names` order)
    and in key order: only those may be conflicts (equal text is an equal value), and,
    where the audiences holding the field differ in mergeNestedObjects, every pair where
    one holds an object."""
    lists = merged.lists
    if len(lists) < 2:
        return
    if not merged.cells:
        yield from _joined_candidates(merged, BATCH)
        return
    shared, mixed = [], []
    for j, name in enumerate(merged.names):
        holders = merged.holding(name)
        if len(holders) < 2:
            continue
        shared.append(str(j))
        if len({lists[i].merge_nested_objects for i, _ in holders}) > 1:
            # One merges nested objects, another replaces them: equal objects conflict
            # too (plan/fields.py conflict_reason). An object's JSON text starts with {.
            mixed.append(str(j))
    if not shared:
        return
    objects = (
        f" OR (j IN ({', '.join(mixed)}) AND bool_or(starts_with(text, '{{')))" if mixed else ""
    )
    cursor = merged.engine.cursor()
    try:
        # The pairs first (cheap aggregates over every value), then the values of those.
        cursor.execute(
            f"WITH found AS (SELECT j, key FROM {merged.cells} WHERE j IN ({', '.join(shared)}) "
            f"GROUP BY j, key HAVING min(text) <> max(text){objects}) "
            f"SELECT c.j, c.key, list([c.i, c.pos, c.c] ORDER BY c.i), "
            f"list(c.text ORDER BY c.i) "
            f"FROM {merged.cells} c JOIN found f ON f.j = c.j AND f.key = c.key "
            f"GROUP BY c.j, c.key ORDER BY c.j, c.key"
        )
        while chunk := cursor.fetchmany(BATCH):
            yield [
                (
                    str(key),
                    merged.names[j],
                    [
                        (int(i), int(pos), int(c), text)
                        for (i, pos, c), text in zip(places, texts, strict=True)
                    ],
                )
                for j, key, places, texts in chunk
            ]
    finally:
        cursor.close()


def same_person_candidates(
    merged: MergedTables,
) -> Iterator[tuple[int, int, str, int, str, int, list[tuple[str, str, str]]]]:
    """plan/fields.same_person_pairs over the tables, with their values: (i, pos, email
    key, j, userId key, pos in j, [(field, text in i, text in j)...]) for every field both
    lists made a value of, those two texts differing (or, where one list merges nested
    objects and the other does not, one an object), neither key already in conflict on
    it. In the order of i, pos, j and pos in j. Beyond JOINED_MAX audiences, one join of
    the long tables (`_long_same_person`); up to it, one join per pair of lists where one
    keys some member by email and the other some by a userId with an email (a hybrid
    project)."""
    lists = merged.lists
    if len(lists) < 2:
        return
    if merged.cells:
        yield from _long_same_person(merged)
        return
    connection = merged.engine.connection
    by_email, by_user = [], []
    for m in lists:
        row = connection.execute(
            f"SELECT bool_or(key_kind = 'email'), "
            f"bool_or(key_kind = 'userId' AND email IS NOT NULL) FROM {m.values.table}"
        ).fetchone()
        by_email.append(bool(row and row[0]))
        by_user.append(bool(row and row[1]))
    for i, a in enumerate(lists):
        if not by_email[i]:
            continue
        for j, b in enumerate(lists):
            shared = [n for n in a.values.fields if n in b.values.fields]
            if j == i or not by_user[j] or not shared:
                continue
            mixed = a.merge_nested_objects != b.merge_nested_objects
            found = []
            for n in shared:
                ca, cb = f"a.f{a.values.fields.index(n)}", f"b.f{b.values.fields.index(n)}"
                differ = f"{ca} <> {cb}" + (f" OR starts_with({ca}, '{{')" if mixed else "")
                found.append(
                    f"CASE WHEN {ca} IS NOT NULL AND {cb} IS NOT NULL AND ({differ}) AND NOT "
                    f"EXISTS (SELECT 1 FROM {merged.conflicted} x WHERE x.field = "
                    f"{sql_string(n)} AND x.key IN (a.key, b.key)) THEN [{ca}, {cb}] END"
                )
            cursor = merged.engine.cursor()
            try:
                cursor.execute(
                    f"SELECT a.pos, a.key, b.key, b.pos, [{', '.join(found)}] "
                    f"FROM {a.values.table} a JOIN {b.values.table} b ON b.email = a.key "
                    "WHERE a.key_kind = 'email' AND b.key_kind = 'userId' "
                    "ORDER BY a.pos, b.pos"
                )
                while chunk := cursor.fetchmany(BATCH):
                    for pos, email_key, user_key, other_pos, texts in chunk:
                        values = [
                            (n, t[0], t[1])
                            for n, t in zip(shared, texts, strict=True)
                            if t is not None
                        ]
                        if values:
                            yield (
                                i,
                                int(pos),
                                str(email_key),
                                j,
                                str(user_key),
                                int(other_pos),
                                values,
                            )
            finally:
                cursor.close()


def _long_same_person(
    merged: MergedTables,
) -> Iterator[tuple[int, int, str, int, str, int, list[tuple[str, str, str]]]]:
    """same_person_candidates over the long tables, in one join of every email-keyed
    value against every value keyed by a userId with an email: a join per pair of lists
    grew with the square of the audiences (40 audiences of 20,000 members, 400 joins, a
    quarter of the plan), each shipping every shared member's row to Python."""
    names = ", ".join(f"({j}, {sql_string(n)})" for j, n in enumerate(merged.names))
    merging = [str(i) for i, m in enumerate(merged.lists) if m.merge_nested_objects]
    # The two lists differ in mergeNestedObjects: equal objects conflict too.
    modes_differ = (
        f" OR ((a.i IN ({', '.join(merging)})) <> (b.i IN ({', '.join(merging)})) "
        "AND starts_with(a.text, '{'))"
        if merging
        else ""
    )
    cursor = merged.engine.cursor()
    try:
        cursor.execute(
            f"WITH names(j, name) AS (VALUES {names}), "
            f"a AS (SELECT c.i, c.pos, c.key, c.j, c.text FROM {merged.cells} c "
            f"JOIN {merged.identities} d ON d.key = c.key AND d.i = c.i "
            "WHERE d.key_kind = 'email'), "
            f"b AS (SELECT c.i, c.pos, c.key, d.email, c.j, c.text FROM {merged.cells} c "
            f"JOIN {merged.identities} d ON d.key = c.key AND d.i = c.i "
            "WHERE d.key_kind = 'userId' AND d.email IS NOT NULL) "
            "SELECT a.i, a.pos, a.key, b.i, b.pos, b.key, "
            "list([n.name, a.text, b.text] ORDER BY n.j) "
            "FROM a JOIN b ON b.email = a.key AND b.j = a.j AND b.i <> a.i "
            "JOIN names n ON n.j = a.j "
            f"WHERE (a.text <> b.text{modes_differ}) AND NOT EXISTS (SELECT 1 FROM "
            f"{merged.conflicted} x WHERE x.field = n.name AND x.key IN (a.key, b.key)) "
            "GROUP BY a.i, a.pos, a.key, b.i, b.pos, b.key "
            "ORDER BY a.i, a.pos, b.i, b.pos"
        )
        while chunk := cursor.fetchmany(BATCH):
            for i, pos, email_key, j, other_pos, user_key, values in chunk:
                yield (
                    int(i),
                    int(pos),
                    str(email_key),
                    int(j),
                    str(user_key),
                    int(other_pos),
                    [(str(n), str(t), str(u)) for n, t, u in values],
                )
    finally:
        cursor.close()


def two_kinds_conflicts(
    merged: MergedTables,
) -> Iterator[list[tuple[str, int, int, int, list[str]]]]:
    """plan/fields.two_kinds_keys over the tables: batches of (key, first list, later
    list, pos in the first, [field...]) for each key one list holds as an email and
    another as a userId whose email is not that text, with every field a list made a
    value of for it, in the first list's order. Those (key, field) pairs are recorded in
    conflict first, so no other search meets them (same_person_candidates skips them)."""
    lists = merged.lists
    if len(lists) < 2 or not merged.names:
        return
    connection = merged.engine.connection
    kind = "CASE WHEN key_kind = 'userId' THEN 1 ELSE 0 END"
    # A userId given with that same email is one person with either kind: neither.
    either = "NOT coalesce(key_kind = 'userId' AND email = key, false)"
    members = " UNION ALL ".join(
        f"SELECT {i} AS i, pos, key, {kind} AS kind FROM {m.values.table} WHERE {either}"
        for i, m in enumerate(lists)
    )
    if not _any_row(
        connection, f"SELECT 1 FROM ({members}) GROUP BY key HAVING min(kind) <> max(kind)"
    ):
        return
    found = merged.engine.name("two_kinds")
    connection.execute(
        f"CREATE TABLE {found} AS WITH m AS ({members}), "
        "f AS (SELECT key, min(i) AS first, arg_min(pos, i) AS pos, arg_min(kind, i) AS kind "
        "FROM m GROUP BY key HAVING min(kind) <> max(kind)) "
        "SELECT f.key, f.first, min(m.i) AS later, f.pos FROM f JOIN m ON m.key = f.key "
        "AND m.kind <> f.kind GROUP BY f.key, f.first, f.pos"
    )
    if merged.cells:  # one scan of the long table, not one per audience and field
        numbered = ", ".join(f"({j}, {sql_string(n)})" for j, n in enumerate(merged.names))
        made = (
            f"SELECT c.key, n.name FROM {merged.cells} c JOIN (VALUES {numbered}) n(j, name) "
            f"ON n.j = c.j WHERE c.key IN (SELECT key FROM {found})"
        )
    else:
        made = " UNION ALL ".join(
            f"SELECT key, {sql_string(n)} AS name FROM {m.values.table} "
            f"WHERE f{c} IS NOT NULL AND key IN (SELECT key FROM {found})"
            for m in lists
            for c, n in enumerate(m.values.fields)
        )
    names = merged.engine.name("two_kinds_fields")
    connection.execute(
        f"CREATE TABLE {names} AS SELECT DISTINCT key, name FROM ({made or _NO_NAMES})"
    )
    connection.execute(f"INSERT INTO {merged.conflicted} SELECT key, name FROM {names}")
    cursor = merged.engine.cursor()
    try:
        cursor.execute(
            f"SELECT f.key, f.first, f.later, f.pos, list(n.name ORDER BY n.name) "
            f"FROM {found} f JOIN {names} n ON n.key = f.key "
            "GROUP BY f.key, f.first, f.later, f.pos ORDER BY f.first, f.pos"
        )
        while chunk := cursor.fetchmany(BATCH):
            yield [
                (str(key), int(first), int(later), int(pos), [str(n) for n in fields])
                for key, first, later, pos, fields in chunk
            ]
    finally:
        cursor.close()


# No values made (no audience maps a field): no (key, name) rows.
_NO_NAMES = "SELECT NULL::VARCHAR AS key, NULL::VARCHAR AS name WHERE false"


def mark_conflicts(
    merged: MergedTables,
    pairs: Iterable[tuple[str, str]],
    then: Callable[[], Iterable[tuple[str, str]]] | None = None,
) -> None:
    """Record the (key, field) pairs found in conflict, and those `then` finds once they
    are recorded (same_person_candidates reads them), then build the merged table."""
    table = merged.conflicted
    staged = merged.engine.name("conflicts_found")
    write_table(merged.engine, staged, pairs, ["key", "field"])
    merged.engine.connection.execute(f"INSERT INTO {table} SELECT * FROM {staged}")
    if then is not None:
        staged = merged.engine.name("conflicts_found")
        write_table(merged.engine, staged, then(), ["key", "field"])
        merged.engine.connection.execute(f"INSERT INTO {table} SELECT * FROM {staged}")
        _hold_back_other_keys(merged)
    (merged.conflicts,) = merged.engine.connection.execute(
        f"SELECT count(*) FROM {table}"
    ).fetchone() or (0,)
    _create_merged_view(merged)


def _hold_back_other_keys(merged: MergedTables) -> None:
    """plan/fields._hold_back_other_keys: a field in conflict under one of a person's two
    keys (keyed by email in one list, by a userId given with that email in another) is
    in conflict under the other too, where its list made a value of it; until no more."""
    connection = merged.engine.connection
    tables = [merged.identities] if merged.cells else [m.values.table for m in merged.lists]
    with_email = " UNION ALL ".join(
        f"SELECT 1 FROM {t} WHERE key_kind = 'userId' AND email IS NOT NULL" for t in tables
    )
    if (
        not merged.names
        or not _any_row(connection, f"SELECT 1 FROM {merged.conflicted}")
        or not _any_row(connection, with_email)  # no person has two keys (not hybrid)
    ):
        return
    values = merged.engine.name("person_values")
    connection.execute(f"CREATE TABLE {values} AS {_values_made(merged)}")
    # Each pair once from either side: the key held back, from its partner's conflict.
    pairs = (
        f"SELECT b.key, b.name, a.key AS other FROM {values} a JOIN {values} b "
        "ON a.name = b.name AND a.i <> b.i AND {on}"
    )
    found = " UNION ".join(
        pairs.format(on=on)
        for on in (
            "a.key_kind = 'email' AND b.key_kind = 'userId' AND b.email = a.key",
            "a.key_kind = 'userId' AND b.key_kind = 'email' AND a.email = b.key",
        )
    )
    while True:
        (added,) = connection.execute(
            f"INSERT INTO {merged.conflicted} SELECT DISTINCT p.key, p.name FROM ({found}) p "
            f"WHERE EXISTS (SELECT 1 FROM {merged.conflicted} x WHERE x.key = p.other "
            f"AND x.field = p.name) AND NOT EXISTS (SELECT 1 FROM {merged.conflicted} x "
            "WHERE x.key = p.key AND x.field = p.name)"
        ).fetchone() or (0,)
        if not added:
            return


def _any_row(connection: Any, query: str) -> bool:
    return connection.execute(f"{query} LIMIT 1").fetchone() is not None


def _values_made(merged: MergedTables) -> str:
    """SQL: (i, key, key_kind, email, name) for each value audience i made, of the members
    keyed by email and of those keyed by a userId given with an email."""
    kinds = "(key_kind = 'email' OR (key_kind = 'userId' AND email IS NOT NULL))"
    if merged.cells:
        names = ", ".join(f"({j}, {sql_string(n)})" for j, n in enumerate(merged.names))
        return (
            f"SELECT c.i, c.key, d.key_kind, d.email, n.name FROM {merged.cells} c "
            f"JOIN {merged.identities} d ON d.key = c.key AND d.i = c.i "
            f"JOIN (VALUES {names}) n(j, name) ON n.j = c.j WHERE {kinds}"
        )
    return " UNION ALL ".join(
        f"SELECT {i} AS i, key, key_kind, email, {sql_string(n)} AS name "
        f"FROM {m.values.table} WHERE f{c} IS NOT NULL AND {kinds}"
        for i, m in enumerate(merged.lists)
        for c, n in enumerate(m.values.fields)
    )


def _create_merged_view(merged: MergedTables) -> None:
    """The merged table, one row per member of any audience. Per field, as the audiences
    were taken in list order: d<j> the first value made; want<j> when some audience whose
    list already has the member made one, or one subscribing it made a clear or an object
    (read to compare: neither is sent on a subscribe unread), none subscribing it in this
    plan made one it sends unread, and the field is not in conflict; obj<j> when one
    subscribing it made an object (plan/fields.object_on_subscribe) not in conflict;
    joins<j> when no audience whose list already has the member made one (read for a
    joiner alone: plan/fields.MergedFields.joining)."""
    if not merged.cells:
        merged.view = _create_joined_view(merged)
        return
    merging = [str(i) for i, m in enumerate(merged.lists) if m.merge_nested_objects]
    merge = f"bool_or(i IN ({', '.join(merging)}))" if merging else "false"
    numbers = ", ".join(f"({quote(name)}, {j})" for j, name in enumerate(merged.names))
    conflicted = (
        f"AND NOT EXISTS (SELECT 1 FROM {merged.conflicted} x "
        f"JOIN (VALUES {numbers}) n(name, j) ON n.name = x.field "
        f"WHERE x.key = p.key AND n.j = p.j)"
        if merged.conflicts and merged.names
        else ""
    )
    columns = "".join(
        f", first(p.d) FILTER (p.j = {j}) AS d{j}, "
        f"coalesce(bool_or(p.want) FILTER (p.j = {j}), false) AS want{j}, "
        f"coalesce(bool_or(p.obj) FILTER (p.j = {j}), false) AS obj{j}, "
        f"coalesce(bool_or(p.joins) FILTER (p.j = {j}), false) AS joins{j}"
        for j in range(len(merged.names))
    )
    wanted = "".join(
        f", x.d{j}, coalesce(x.want{j}, false) AS want{j}, coalesce(x.obj{j}, false) AS obj{j}"
        f", coalesce(x.joins{j}, false) AS joins{j}"
        for j in range(len(merged.names))
    )
    merged.view = merged.engine.name("merged")
    merged.engine.connection.execute(
        f"""CREATE TABLE {merged.view} AS
        WITH who AS (
            SELECT key, arg_min({{'kind': key_kind, 'email': email, 'user_id': user_id}}, i)
                AS id, {merge} AS merge
            FROM {merged.identities} GROUP BY key
        ), per AS (
            SELECT key, j, arg_min(text, i) AS d,
                bool_or(NOT adding OR NOT {sent_unread_sql("text")})
                AND NOT bool_or(adding AND {sent_unread_sql("text")}) AS want,
                bool_or(adding AND {object_sql("text")}) AS obj,
                NOT bool_or(NOT adding) AS joins
            FROM {merged.cells} GROUP BY key, j
        ), flagged AS (
            SELECT p.key, p.j, p.d, p.want {conflicted} AS want, p.obj {conflicted} AS obj,
                p.joins
            FROM per p
        ), wide AS (
            SELECT p.key{columns} FROM flagged p GROUP BY p.key
        )
        SELECT w.key, w.id.kind AS key_kind, w.id.email AS email, w.id.user_id AS user_id,
            w.merge{wanted}
        FROM who w LEFT JOIN wide x ON x.key = w.key"""
    )
    merged.engine.connection.execute(f"DROP TABLE {merged.cells}")
    merged.engine.connection.execute(f"DROP TABLE {merged.identities}")


def add_fields_rows(
    merged: MergedTables,
    index: int,
    live: str | None = None,
    names: Sequence[str] = (),
) -> Iterator[list[tuple[str, list[tuple[str, str | None]]]]]:
    """Batches of (key, [(field, JSON text or None: absent)]) for the members list `index`
    subscribes, in key order, minus the fields found in conflict, the clears
    (CLEAR_TEXTS), and the objects over a value the member's profile holds (`live`, the
    table of the values read, a column per `names`: object_on_subscribe)."""
    m = merged.lists[index]
    values = ", ".join(f"v.f{c}" for c in range(len(m.values.fields)))
    # The value read of each field, where it was (NULL: not read, or not there).
    held = "".join(
        f", lv.l{names.index(name)}" if live is not None and name in names else ", NULL"
        for name in m.values.fields
    )
    values += held
    held_join = f"LEFT JOIN {live} lv ON lv.key = v.key " if live is not None else ""
    width = len(m.values.fields)
    # A member's conflicted fields, one lookup per member (an EXISTS per field joined the
    # conflicts to every audience once per field: 100 audiences of 30 fields with 34,000
    # conflicts took 71 s).
    conflicted, joined = ", NULL", ""
    if merged.conflicts:
        conflicted = ", x.fields"
        joined = f"LEFT JOIN {_conflicted_by_key(merged)} x ON x.key = v.key "
    cursor = merged.engine.cursor()
    try:
        cursor.execute(
            f"SELECT v.key, {values}{conflicted} FROM {m.values.table} v {joined}{held_join}"
            f"WHERE v.key IN (SELECT key FROM {m.adding}) ORDER BY v.key"
        )
        while chunk := cursor.fetchmany(BATCH):
            out = []
            for key, *cells, fields in chunk:
                flagged = frozenset(fields or ())
                out.append(
                    (
                        str(key),
                        [
                            (name, _sent(cells[c], cells[width + c], name in flagged))
                            for c, name in enumerate(m.values.fields)
                        ],
                    )
                )
            yield out
    finally:
        cursor.close()


def _sent(text: str | None, held: str | None, conflicted: bool) -> str | None:
    """A subscribe's JSON text of one field (None: not sent): add_fields_rows."""
    if text is None or conflicted or text in CLEAR_TEXTS:
        return None
    if text.startswith("{") and not object_on_subscribe(text, held):
        return None
    return text


def _conflicted_by_key(merged: MergedTables) -> str:
    """Table (key, fields): the fields found in conflict per member, made once."""
    if not merged.conflicted_by_key:
        table = merged.engine.name("conflicted_by_key")
        merged.engine.connection.execute(
            f"CREATE TABLE {table} AS SELECT key, list(DISTINCT field) AS fields "
            f"FROM {merged.conflicted} GROUP BY key"
        )
        merged.conflicted_by_key = table
    return merged.conflicted_by_key


def _joined_candidates(
    merged: MergedTables, batch: int
) -> Iterator[list[tuple[str, str, list[tuple[int, int, int, str]]]]]:
    """conflict_candidates for JOINED_MAX audiences or fewer: their values tables
    joined side by side by key, one query per field."""
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


def _create_joined_view(merged: MergedTables) -> str:
    """The merged view over the join of a few audiences; returns its name."""
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
            f"AND x.field = {quote(name)})"
            if merged.conflicts
            else "false"
        )
        # Sent on a subscribe in this plan (by any audience) unread: not read.
        # (A clear or an object is not: plan/fields.sent_on_subscribe.)
        covered = " OR ".join(
            f"(w{i}.adding AND w{i}.f{c} IS NOT NULL AND {sent_unread_sql(f'w{i}.f{c}')})"
            for i, c in holders
        )
        # Already on some list mapping it, with a value, or subscribed with a clear or an
        # object (not sent on the subscribe unread): read to compare.
        held = " OR ".join(
            f"(w{i}.key IS NOT NULL AND w{i}.f{c} IS NOT NULL "
            f"AND (NOT w{i}.adding OR NOT {sent_unread_sql(f'w{i}.f{c}')}))"
            for i, c in holders
        )
        # Subscribed with an object: on the subscribe where the profile holds none.
        objects = " OR ".join(f"(w{i}.adding AND {object_sql(f'w{i}.f{c}')})" for i, c in holders)
        columns.append(f"{value} AS d{j}")
        columns.append(f"(({held}) AND NOT ({covered}) AND NOT {conflicted}) IS TRUE AS want{j}")
        columns.append(f"(({objects}) AND NOT {conflicted}) IS TRUE AS obj{j}")
        # Read for a joiner alone: no list already holding the member maps it a value.
        on_list = " OR ".join(
            f"(w{i}.key IS NOT NULL AND w{i}.f{c} IS NOT NULL AND NOT w{i}.adding)"
            for i, c in holders
        )
        columns.append(f"NOT (({on_list}) IS TRUE) AS joins{j}")
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


class FieldValues(Mapping[str, dict[str, Any]]):
    """Member key -> the fields sent with its subscribe: table (key, data JSON text) read
    back lazily, a window of keys at a time (apply asks in key order). Whole numbers bound
    for `doubles` fields are read as floats; keys in `excluded` are left out."""

    def __init__(
        self,
        engine: Engine,
        table: str,
        count: int,
        doubles: frozenset[str] = frozenset(),
        excluded: frozenset[str] = frozenset(),
    ):
        self._engine = engine
        self._table = table
        self._count = count
        self._doubles = doubles
        self._excluded = excluded
        self._windows: OrderedDict[tuple[str, str | None], dict[str, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._length: int | None = None

    @property
    def table(self) -> str:
        return self._table

    def __repr__(self) -> str:
        return f"<field values of {len(self)} members in {self._table}>"

    def with_doubles(self, doubles: Iterable[str]) -> FieldValues:
        return FieldValues(
            self._engine, self._table, self._count, frozenset(doubles), self._excluded
        )

    def without(self, keys: Iterable[str]) -> FieldValues:
        gone = self._excluded | frozenset(keys)
        if gone == self._excluded:
            return self
        return FieldValues(self._engine, self._table, self._count, self._doubles, gone)

    def __len__(self) -> int:
        if self._length is None:
            if not self._excluded:
                self._length = self._count
            else:
                cursor = self._engine.cursor()
                try:
                    (present,) = cursor.execute(
                        f"SELECT count(*) FROM {self._table} WHERE key IN "
                        f"(SELECT unnest(?::VARCHAR[]))",
                        [sorted(self._excluded)],
                    ).fetchone() or (0,)
                finally:
                    cursor.close()
                self._length = self._count - int(present)
        return self._length

    def __iter__(self) -> Iterator[str]:
        for batch in self._batches():
            for key, _ in batch:
                yield key

    def items_batched(self) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        for batch in self._batches():
            yield [(key, self._decode(data)) for key, data in batch]

    def _batches(self) -> Iterator[list[tuple[str, str]]]:
        cursor = self._engine.cursor()
        try:
            cursor.execute(f"SELECT key, data FROM {self._table} ORDER BY key")
            while chunk := cursor.fetchmany(BATCH):
                yield [(str(k), str(d)) for k, d in chunk if k not in self._excluded]
        finally:
            cursor.close()

    def __getitem__(self, key: str) -> dict[str, Any]:
        if key in self._excluded:
            raise KeyError(key)
        with self._lock:
            for (low, high), window in self._windows.items():
                if low <= key and (high is None or key <= high):
                    data = window.get(key)
                    if data is None:
                        raise KeyError(key)
                    return self._decode(data)
        window, bounds = self._window(key)
        with self._lock:
            self._windows[bounds] = window
            while len(self._windows) > 8:
                self._windows.popitem(last=False)
        data = window.get(key)
        if data is None:
            raise KeyError(key)
        return self._decode(data)

    def _window(self, key: str) -> tuple[dict[str, str], tuple[str, str | None]]:
        """The rows from `key` on, a batch of them: apply asks for keys in order."""
        cursor = self._engine.cursor()
        try:
            rows = cursor.execute(
                f"SELECT key, data FROM {self._table} WHERE key >= ? ORDER BY key "
                f"LIMIT {_WINDOW + 1}",
                [key],
            ).fetchall()
        finally:
            cursor.close()
        if len(rows) <= _WINDOW:
            return {str(k): str(d) for k, d in rows}, (key, None)
        # The last row read starts the next window: this one ends just before it.
        last = str(rows[_WINDOW - 1][0])
        return {str(k): str(d) for k, d in rows[:_WINDOW]}, (key, last)

    def _decode(self, data: str) -> dict[str, Any]:
        values: dict[str, Any] = json.loads(data)
        if self._doubles:
            return {k: as_doubles(v, k, self._doubles) for k, v in values.items()}
        return values

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return len(self) == len(other) and all(
            k in other and other[k] == v for batch in self.items_batched() for k, v in batch
        )

    __hash__ = object.__hash__


# An export row's email, where each row is read whole as JSON (read_field_export).
_EXPORTED_EMAIL = "json_extract_string(json, '/email')"

_WINDOW = 5_000


def field_values_table(engine: Engine, rows: Iterable[tuple[str, dict[str, Any]]]) -> FieldValues:
    """(key, fields) in key order into a FieldValues."""
    table = engine.name("add_fields")
    count = 0

    def lines() -> Iterator[tuple[str, str]]:
        nonlocal count
        for key, values in rows:
            count += 1
            yield key, to_json(values)

    write_table(engine, table, lines(), ["key", "data"])
    return FieldValues(engine, table, count)


def update_rows(
    engine: Engine,
    rows: Iterable[tuple[str, str, str | None, str | None, list[list[Any]], bool]],
    make: Callable[..., Any],
    doubles: frozenset[str] = frozenset(),
) -> TableRows[Any]:
    """Field updates (key, key_kind, email, user_id, [[field, old, new]...], merge) in key
    order into a table, read back as `make(key, key_kind, email, user_id, changes, merge)`
    (plan.FieldUpdate: the engine does not import plan/)."""
    table = engine.name("field_updates")
    count = 0

    def lines() -> Iterator[tuple[str | None, ...]]:
        nonlocal count
        for key, kind, email, user_id, changes, merge in rows:
            count += 1
            yield key, kind, email, user_id, to_json(changes), "true" if merge else "false"

    write_table(
        engine,
        table,
        lines(),
        ["key", "key_kind", "email", "user_id", "changes", "merge"],
        {"merge": "BOOLEAN"},
    )
    return update_view(engine, table, count, make, doubles)


def update_view(
    engine: Engine,
    table: str,
    count: int,
    make: Callable[..., Any],
    doubles: frozenset[str] = frozenset(),
) -> TableRows[Any]:
    def convert(row: tuple[Any, ...]) -> Any:
        key, kind, email, user_id, changes, merge = row
        return make(
            key,
            kind,
            email,
            user_id,
            {name: (old, as_doubles(new, name, doubles)) for name, old, new in json.loads(changes)},
            bool(merge),
        )

    return TableRows(
        engine, table, "key, key_kind, email, user_id, changes, merge", "key", count, convert
    )


def keys_updated(engine: Engine, mapped: MappedTable, updates: str) -> TableRows[str]:
    """The members of one audience already on its list that get a field update, in key
    order: not those its list subscribes (an add's fields ride on its subscribe; a
    bulkUpdate it gets is for another list it is on, and counted there). Its values table
    has no member held back (state/field_tables.py `_without`)."""
    table = engine.name("updated_keys")
    engine.connection.execute(
        f"CREATE TABLE {table} AS SELECT key FROM {mapped.values.table} "
        f"WHERE key IN (SELECT key FROM {updates}) "
        f"AND key NOT IN (SELECT key FROM {mapped.adding})"
    )
    (count,) = engine.connection.execute(f"SELECT count(*) FROM {table}").fetchone() or (0,)
    return TableRows(engine, table, "key", "key", int(count), lambda row: str(row[0]))


def wanted_members(merged: MergedTables) -> Iterator[tuple[str, str, str | None, str | None]]:
    """(key, key_kind, email, user_id) of the members whose values are read, in key order."""
    cursor = merged.engine.cursor()
    try:
        cursor.execute(
            f"SELECT key, key_kind, email, user_id FROM {merged.view} "
            f"WHERE {merged.any_want} ORDER BY key"
        )
        while chunk := cursor.fetchmany(BATCH):
            yield from chunk
    finally:
        cursor.close()


def live_values_table(
    engine: Engine, rows: Iterable[tuple[str, Sequence[str | None]]], names: Sequence[str]
) -> str:
    """Current values read per user (key, [JSON text per name]) into table (key, l0, ...);
    users Iterable does not have are left out."""
    table = engine.name("live_fields")
    columns = ["key", *(f"l{j}" for j in range(len(names)))]
    write_table(engine, table, ((key, *cells) for key, cells in rows), columns)
    return table


def read_field_export(
    engine: Engine,
    download: Callable[[Sequence[str], Any, Callable[[int], None] | None], Any],
    merged: MergedTables,
    names: Sequence[str],
    project_type: str,
    on_lines: Callable[[int], None] | None = None,
) -> str:
    """One user export of `names` streamed to a file (`download(fields, path, on_lines)`),
    read into
    the workspace and matched to the wanted members as live.py `_read_by_export` matches
    them: by userId first, and not in email-based projects (several profiles may have
    one there); by (lower-cased) email only when no row had the member's userId, and not
    in userID-based projects; a later row wins over an earlier one.
    Table (key, l0, ...): each field's value as JSON text."""
    export = _read_export(engine, download, names, on_lines)
    table = engine.name("live_fields")
    by_email = "true" if project_type != "userId" else "false"
    by_user_id = "true" if project_type != "email" else "false"
    struct = ", ".join(f"'l{j}': l{j}" for j in range(len(names)))
    unpacked = ", ".join(f"v.l{j} AS l{j}" for j in range(len(names)))
    engine.connection.execute(
        f"""CREATE TABLE {table} AS
        WITH wm AS (SELECT key, email, user_id FROM {merged.view} WHERE {merged.any_want}),
        by_uid AS (SELECT user_id, max(key) AS key FROM wm
                   WHERE {by_user_id} AND user_id IS NOT NULL GROUP BY user_id),
        by_email AS (SELECT email, max(key) AS key FROM wm WHERE email IS NOT NULL
                     GROUP BY email),
        x AS (SELECT rowid AS n, * FROM {export}),
        matched AS (
            SELECT coalesce(u.key, e.key) AS key,
                CASE WHEN u.key IS NULL THEN 0 ELSE 1 END * 1099511627776 + x.n AS rank,
                {{{struct}}} AS v
            FROM x LEFT JOIN by_uid u ON u.user_id = x.user_id
            LEFT JOIN by_email e ON {by_email} AND u.key IS NULL AND e.email = x.email
        ), chosen AS (
            SELECT key, arg_max(v, rank) AS v FROM matched WHERE key IS NOT NULL GROUP BY key
        )
        SELECT key, {unpacked} FROM chosen"""
    )
    engine.connection.execute(f"DROP TABLE {export}")
    return table


def _read_export(
    engine: Engine,
    download: Callable[[Sequence[str], Any, Callable[[int], None] | None], Any],
    names: Sequence[str],
    on_lines: Callable[[int], None] | None,
) -> str:
    """One user export of the identifiers and `names`, downloaded to a file and read into
    a workspace table (email lower-cased, user_id, l0, ...: each field as JSON)."""
    export = engine.name("field_export")
    path = engine.directory / f"{export}.jsonl"
    columns = ", ".join(
        [
            "'email': 'VARCHAR'",
            "'userId': 'VARCHAR'",
            *(f"{quote(name)}: 'JSON'" for name in names),
        ]
    )
    cells = "".join(f", {_identifier(name)} AS l{j}" for j, name in enumerate(names))
    read = (
        f"SELECT {lower_sql('email')} AS email, userId AS user_id{cells} "
        f"FROM read_json({sql_string(path)}, "
        f"format = 'newline_delimited', columns = {{{columns}}})"
    )
    if len({n.lower() for n in ["email", "userId", *names]}) < len(names) + 2:
        # DuckDB's column names ignore case, Iterable's field names do not (`Tier` and
        # `tier` are two fields): each row is read whole and its fields picked by JSON
        # pointer, which tells them apart.
        cells = "".join(
            f", json_extract(json, {quote(_pointer(name))}) AS l{j}" for j, name in enumerate(names)
        )
        read = (
            f"SELECT {lower_sql(_EXPORTED_EMAIL)} AS email, "
            f"json_extract_string(json, '/userId') AS user_id{cells} "
            f"FROM read_json_objects({sql_string(path)}, format = 'newline_delimited')"
        )
    try:
        download(["email", "userId", *names], path, on_lines)
        with engine.ordered():
            engine.connection.execute(f"CREATE TABLE {export} AS {read}")
    finally:
        path.unlink(missing_ok=True)
    return export


def read_identifier_export(
    engine: Engine,
    download: Callable[[Sequence[str], Any, Callable[[int], None] | None], Any],
    on_lines: Callable[[int], None] | None = None,
) -> str:
    """Every profile's identifiers from one user export, as read_field_export reads
    them: a table (email, user_id), email lower-cased."""
    return _read_export(engine, download, (), on_lines)


def compared_rows(
    merged: MergedTables, live: str | None, names: Sequence[str]
) -> Iterator[list[tuple[Any, ...]]]:
    """Batches, in key order, of the members whose values are read: (key, key_kind,
    email, user_id, merge, [(field, desired JSON, subscribed with an object, read for a
    joiner alone) wanted, by name], found, [current JSON per `names`]). Comparing them is
    the caller's (same_value)."""
    wanted = [(j, n) for j, n in enumerate(merged.names) if n in names]
    desired = ", ".join(f"m.d{j}, m.want{j}, m.obj{j}, m.joins{j}" for j, _ in wanted)
    if live is not None:
        current = "".join(f", lv.l{j}" for j in range(len(names)))
        source = f"{merged.view} m LEFT JOIN {live} lv ON lv.key = m.key"
        found = "lv.key IS NOT NULL"
    else:
        current, source, found = "".join(", NULL" for _ in names), f"{merged.view} m", "false"
    cursor = merged.engine.cursor()
    try:
        cursor.execute(
            f"SELECT m.key, m.key_kind, m.email, m.user_id, m.merge, {found}, {desired}"
            f"{current} FROM {source} WHERE {merged.any_want.replace('want', 'm.want')} "
            f"ORDER BY m.key"
        )
        k = len(wanted)
        while chunk := cursor.fetchmany(BATCH):
            out = []
            for key, kind, email, user_id, merge, is_found, *cells in chunk:
                fields = [
                    (name, cells[4 * n], bool(cells[4 * n + 2]), bool(cells[4 * n + 3]))
                    for n, (_, name) in enumerate(wanted)
                    if cells[4 * n + 1]
                ]
                out.append(
                    (key, kind, email, user_id, bool(merge), fields, bool(is_found), cells[4 * k :])
                )
            yield out
    finally:
        cursor.close()


def _pointer(name: str) -> str:
    """A top-level key as a JSON pointer (RFC 6901: `~` as ~0, `/` as ~1)."""
    return "/" + name.replace("~", "~0").replace("/", "~1")


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
