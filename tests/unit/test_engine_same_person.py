"""same_person_candidates (members/engine/field_tables.py) at many audiences: one join of
the long tables, not one per pair of lists, finding what the joins per pair find."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from reconciler.members.engine import field_tables as ft
from reconciler.members.engine.rows import write_table
from reconciler.members.model import Engine, EngineSettings

FIELDS = ("plan", "prefs", "score")
COUNT = 12  # audiences, beyond JOINED_MAX: the long tables


def _tables(engine: Engine) -> list[ft.MappedTable]:
    """Even audiences key people by email, odd ones by a userId given with that email
    (a hybrid project); each holds a different 360 of 600 people, some values disagree,
    some are objects, and the audiences differ in mergeNestedObjects."""
    mapped = []
    for a in range(COUNT):
        fields = FIELDS if a % 3 else FIELDS[:2]
        rows: list[ft.ValueRow] = []
        for pos, p in enumerate(p for p in range(600) if (p * 31 + a * 17) % 5 < 3):
            email = f"person{p:04d}@example.com"
            texts: list[str | None] = []
            for f in range(len(fields)):
                if (p + f + a) % 29 == 0:
                    texts.append(f'"other{a % 4}"')  # disagrees
                elif (p + f) % 17 == 0:
                    texts.append(None)  # no value made
                elif (p + f) % 23 == 0:
                    texts.append(f'{{"n":{p % 5}}}')  # an object: merge modes matter
                else:
                    texts.append(f'"v{(p + f) % 7}"')
            if a % 2:
                rows.append((f"uid{p}", "userId", email, f"uid{p}", pos, texts))
            else:
                rows.append((email, "email", email, None, pos, texts))
        values = ft.values_into_table(engine, iter(rows), fields)
        table = engine.name("adding")
        write_table(engine, table, iter([]), ["key"])
        mapped.append(ft.MappedTable(f"aud{a}", values, table, a % 4 == 0))
    return mapped


class _Counting:
    """The workspace, counting the statements run through its cursors."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.statements = engine, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    @property
    def connection(self) -> Any:
        return _CountingCursor(self, self.engine.connection)

    def cursor(self) -> Any:
        return _CountingCursor(self, self.engine.cursor())


class _CountingCursor:
    def __init__(self, counter: _Counting, cursor: Any) -> None:
        self.counter, self.cursor = counter, cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cursor, name)

    def execute(self, *args: Any) -> Any:
        self.counter.statements += 1
        self.cursor.execute(*args)
        return self


def _found(merged: ft.MergedTables) -> Iterator[tuple[Any, ...]]:
    for i, pos, email_key, j, user_key, other_pos, values in ft.same_person_candidates(merged):
        yield i, pos, email_key, j, user_key, other_pos, sorted(values)


def test_one_join_finds_what_a_join_per_pair_of_lists_finds(tmp_path):
    with Engine(EngineSettings(engine="duckdb", temp_dir=tmp_path)) as engine:
        merged = ft.merge_tables(engine, _tables(engine))
        assert merged.cells, "beyond JOINED_MAX: the long tables"
        # A pair already in conflict on a field is no candidate there.
        engine.connection.execute(
            f"INSERT INTO {merged.conflicted} VALUES ('person0115@example.com', 'plan')"
        )
        counting = _Counting(engine)
        found = list(_found(dataclasses.replace(merged, engine=counting)))  # type: ignore[arg-type]
        per_pair = sorted(_found(dataclasses.replace(merged, cells="")))
    # One statement, where a join per pair of lists ran 6 x 6 and one per list first.
    assert counting.statements == 1
    assert found == sorted(found, key=lambda c: (c[0], c[1], c[3], c[5])), "in plan order"
    assert sorted(found) == per_pair
    assert any(n == "prefs" and t.startswith("{") and t == u for c in found for n, t, u in c[6])
    assert any(t != u for c in found for _, t, u in c[6])
    assert not any(
        c[2] == "person0115@example.com" and n == "plan" for c in found for n, *_ in c[6]
    )
    assert any(c[2] == "person0115@example.com" for c in found), "its other fields are"
