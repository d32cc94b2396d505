"""Adds and removes that stay in DuckDB until they are sent.

They behave as the tuples the Python engine puts in a plan (len, slicing for samples,
iteration), so renderers, safety checks and saved plans need not know which engine made
a plan; apply reads them with `batches`, a cursor's worth at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, overload

from reconciler.members.engine.sql_text import sql_string
from reconciler.members.engine.workspace import Engine
from reconciler.members.identity import Member

T = TypeVar("T")

# Rows per fetch when iterating: large enough that per-call overhead vanishes.
_FETCH = 10_000


class TableRows(Sequence[T]):
    """The rows of a workspace table, in `order`, converted by `convert`."""

    def __init__(
        self,
        engine: Engine,
        table: str,
        columns: str,
        order: str,
        count: int,
        convert: Callable[[tuple[Any, ...]], T],
    ):
        self._engine = engine
        self._table = table
        self._columns = columns
        self._order = order
        self._count = count
        self._convert = convert

    def __len__(self) -> int:
        return self._count

    @property
    def table(self) -> str:
        """The workspace relation the rows are read from."""
        return self._table

    @property
    def engine(self) -> Engine:
        return self._engine

    def __repr__(self) -> str:
        return f"<{self._count} rows of {self._table}>"

    def on(self, table: str, count: int) -> TableRows[T]:
        """Rows of the same kind (columns, order, conversion) read from another table."""
        return TableRows(self._engine, table, self._columns, self._order, count, self._convert)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[T]: ...

    def __getitem__(self, index: int | slice) -> T | Sequence[T]:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._count)
            if step != 1:
                return list(self)[index]
            return self._fetch(start, max(0, stop - start))
        position = index + self._count if index < 0 else index
        if not 0 <= position < self._count:
            raise IndexError(index)
        return self._fetch(position, 1)[0]

    def __iter__(self) -> Iterator[T]:
        for batch in self.batches(_FETCH):
            yield from batch

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = object.__hash__

    def batches(self, size: int) -> Iterator[list[T]]:
        """Every row in order, `size` at a time, through a cursor of its own."""
        cursor = self._engine.cursor()
        try:
            cursor.execute(f"SELECT {self._columns} FROM {self._table} ORDER BY {self._order}")
            while rows := cursor.fetchmany(size):
                yield [self._convert(row) for row in rows]
        finally:
            cursor.close()

    def _fetch(self, offset: int, limit: int) -> list[T]:
        if limit <= 0:
            return []
        cursor = self._engine.cursor()
        try:
            rows = cursor.execute(
                f"SELECT {self._columns} FROM {self._table} ORDER BY {self._order} "
                f"LIMIT {int(limit)} OFFSET {int(offset)}"
            ).fetchall()
        finally:
            cursor.close()
        return [self._convert(row) for row in rows]


def member_rows(engine: Engine, table: str, count: int) -> TableRows[Member]:
    """Members to add: (key, key_kind, email, user_id), ordered by key as the Python
    engine orders them."""
    return TableRows(
        engine,
        table,
        "key, key_kind, email, user_id",
        "key",
        count,
        lambda row: Member(row[0], row[1], row[2], row[3]),
    )


def identifier_rows(engine: Engine, table: str, count: int) -> TableRows[str]:
    """Identifiers to remove, as Iterable reported them, in sorted order."""
    return TableRows(engine, table, "id", "id", count, lambda row: row[0])


def rows_without(rows: TableRows[T], column: str, values: Iterable[str]) -> TableRows[T]:
    """`rows` (members to add, or identifiers to remove) without those whose `column` is
    one of `values`, as a new table of the same kind: a plan step that keeps some members
    out of a list's changes (changed emails, skipped rows' members)."""
    engine = rows.engine
    dropped = engine.name("dropped")
    write_table(engine, dropped, ((v,) for v in sorted(set(values))), ("v",))
    table = engine.name("kept_rows")
    engine.connection.execute(
        f"CREATE TABLE {table} AS SELECT * FROM {rows.table} r "
        f"WHERE NOT EXISTS (SELECT 1 FROM {dropped} d WHERE d.v = r.{column})"
    )
    engine.connection.execute(f"DROP TABLE {dropped}")
    row = engine.connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    return rows.on(table, int(row[0]) if row else 0)


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`size` items at a time; from DuckDB through one cursor, not one query per batch."""
    if isinstance(items, TableRows):
        yield from items.batches(size)
        return
    for start in range(0, len(items), size):
        yield items[start : start + size]


def members_into_table(engine: Engine, members: Iterable[Member], count: int) -> TableRows[Member]:
    """Members (from a saved plan) into a workspace table, through a CSV file."""
    table = engine.name("saved_adds")
    write_table(
        engine,
        table,
        ((m.key, m.key_kind, m.email, m.user_id) for m in members),
        ("key", "key_kind", "email", "user_id"),
    )
    return member_rows(engine, table, count)


def identifiers_into_table(engine: Engine, ids: Iterable[str], count: int) -> TableRows[str]:
    table = engine.name("saved_removes")
    write_table(engine, table, ((i,) for i in ids), ("id",))
    return identifier_rows(engine, table, count)


# The longest line read back (a member's mapped values beyond it could not be sent
# anyway: Iterable takes 4 MB a request). DuckDB's CSV buffer is 16 lines' worth unless
# told, up to 1 GiB: over a file of a gigabyte (10M members' values) that is one block
# larger than the whole memory limit, so the buffer is set to two lines.
MAX_LINE = 16 * 1024 * 1024


def write_table(
    engine: Engine,
    table: str,
    rows: Iterable[Sequence[str | None]],
    columns: Sequence[str],
    types: Mapping[str, str] | None = None,
) -> None:
    """Text rows into a new workspace table through a CSV file; None is NULL."""
    path = engine.directory / f"{table}.csv"
    try:
        with path.open("w", newline="", encoding="utf-8") as handle:
            # Every value quoted, so an empty string stays apart from a missing one (NULL):
            # DuckDB reads a quoted empty value as NULL too unless told not to.
            handle.writelines(
                ",".join('"' + v.replace('"', '""') + '"' if v is not None else "" for v in row)
                + "\n"
                for row in rows
            )
        spec = ", ".join(f"'{c}': '{(types or {}).get(c, 'VARCHAR')}'" for c in columns)
        engine.connection.execute(
            f"CREATE TABLE {table} AS SELECT * FROM read_csv({sql_string(path)}, header = false, "
            f"auto_detect = false, columns = {{{spec}}}, delim = ',', quote = '\"', "
            f"escape = '\"', allow_quoted_nulls = false, max_line_size = {MAX_LINE}, "
            f"buffer_size = {2 * MAX_LINE})"
        )
    finally:
        path.unlink(missing_ok=True)
