"""The DuckDB merge of many trait-mapped audiences (members/engine/field_tables.py) against
a plain Python statement of what it decides: the conflict candidates (field by field, in
key order, each with the values of the audiences holding it, in list order), the members
and fields whose current values are read, each wanted member's identity, taken from the
first audience holding it, and each list's subscribes' fields, less those in conflict and
those that clear (objects, read first, ride them where nothing was read)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.members.engine import field_tables as ft
from reconciler.members.engine.rows import write_table
from reconciler.members.model import Engine, EngineSettings

FIELDS = ("plan", "prefs", "score")
# Values that clear a field: a subscribe leaves them out, and its member's current value
# of that field is read to compare, as for a member already on a list.
CLEARS = ("null", '""', "[]", "{}")


def _audience(a: int) -> tuple[tuple[str, ...], list[tuple[str, list[str | None]]], set[str]]:
    """Audience `a`: its fields, its members' (key, JSON text per field), the keys added."""
    fields = FIELDS if a % 3 else FIELDS[:2]
    members = []
    for r in range(500):
        k = (a * 7919 + r * 31) % 6000
        texts: list[str | None] = []
        for f in range(len(fields)):
            if (k + f + a) % 50 == 0:
                texts.append(f'"other{a % 3}"')  # disagrees
            elif (k + f) % 17 == 0:
                texts.append(None)  # no value made
            elif (k + f) % 19 == 0:
                texts.append(CLEARS[k % len(CLEARS)])  # a clear: not subscribed
            elif (k + f) % 23 == 0:
                texts.append(f'{{"n":{k % 5}}}')  # an object: merge modes matter
            else:
                texts.append(f'"v{(k + f) % 7}"')
        members.append((f"member{k:05d}@example.com", texts))
    adding = {key for key, _ in members if (int(key[6:11]) + a) % 10 == 0}
    return fields, members, adding


def _tables(engine: Engine, count: int) -> list[ft.MappedTable]:
    mapped = []
    for a in range(count):
        fields, members, adding = _audience(a)
        rows: Iterator[ft.ValueRow] = (
            (key, "email", key.upper() if a % 2 else key, f"u{a}", pos, texts)
            for pos, (key, texts) in enumerate(members)
        )
        values = ft.values_into_table(engine, rows, fields)
        table = engine.name("adding")
        write_table(engine, table, ((key,) for key in sorted(adding)), ["key"])
        mapped.append(ft.MappedTable(f"aud{a}", values, table, a % 2 == 0))
    return mapped


def _expected(count: int) -> tuple[Any, ...]:
    """What the merge decides, member by member in Python, the pairs whose texts differ
    marked as conflicts (as the caller would find them)."""
    audiences = [_audience(a) for a in range(count)]
    by_key = [{k: (pos, texts) for pos, (k, texts) in enumerate(m)} for _, m, _ in audiences]
    keys = sorted({key for found in by_key for key in found})
    candidates = []
    for name in sorted(FIELDS):
        holders = [a for a, (fields, _, _) in enumerate(audiences) if name in fields]
        mixed = len({a % 2 == 0 for a in holders}) > 1
        for key in keys:
            held = []
            for a in holders:
                c = audiences[a][0].index(name)
                pos, texts = by_key[a].get(key, (0, [None] * 3))
                if texts[c] is not None:
                    held.append((a, pos, c, texts[c]))
            values = {text for *_, text in held}
            if len(values) > 1 or (mixed and any(t.startswith("{") for t in values)):
                candidates.append((key, name, held))
    conflicts = {(key, name) for key, name, held in candidates if len({h[3] for h in held}) > 1}
    wanted = []
    for key in keys:
        first = next(a for a, found in enumerate(by_key) if key in found)
        wants = []
        for name in sorted(FIELDS):
            held = covered = False
            for a, (fields, _, adding) in enumerate(audiences):
                texts = by_key[a].get(key, (0, [None] * 3))[1]
                text = texts[fields.index(name)] if name in fields else None
                if text is not None:
                    # An object is read first too: it rides the subscribe only where the
                    # profile holds none (plan/fields.object_on_subscribe).
                    unread = text not in CLEARS and not text.startswith("{")
                    covered |= key in adding and unread
                    held |= key not in adding or not unread
            wants.append(held and not covered and (key, name) not in conflicts)
        if any(wants):
            email = key.upper() if first % 2 else key
            wanted.append(((key, "email", email, f"u{first}"), wants))
    added = {
        a: [
            (
                key,
                [
                    (n, None if (key, n) in conflicts or t in CLEARS else t)
                    for n, t in zip(f, texts, strict=True)
                ],
            )
            for key, texts in sorted(members)
            if key in adding
        ]
        for a, (f, members, adding) in enumerate(audiences)
    }
    return candidates, wanted, added


@pytest.mark.parametrize("count", [ft.JOINED_MAX, 30])
def test_audiences_merge_as_each_member_is_merged_alone(tmp_path, count):
    """Both ways of merging: a join of a few audiences' tables, long tables beyond (the
    join ran out of memory at 30 audiences)."""
    with Engine(EngineSettings(engine="duckdb", temp_dir=tmp_path)) as engine:
        merged = ft.merge_tables(engine, _tables(engine, count))
        candidates = [c for batch in ft.conflict_candidates(merged) for c in batch]
        ft.mark_conflicts(
            merged, [(k, n) for k, n, held in candidates if len({h[3] for h in held}) > 1]
        )
        users, names = merged.wanted()
        members = list(ft.wanted_members(merged))
        rows = [r for batch in ft.compared_rows(merged, None, list(names)) for r in batch]
        added = {
            a: [row for batch in ft.add_fields_rows(merged, a) for row in batch]
            for a in range(count)
        }
    expected_candidates, expected_wanted, expected_added = _expected(count)
    assert candidates == expected_candidates
    assert any(len({t for *_, t in held}) > 1 for _, _, held in candidates)
    assert any(name == "prefs" for _, name, _ in candidates)
    assert merged.conflicts > 0
    # Each list's subscribes carry its values, less the fields in conflict and the clears
    # (None).
    assert added == expected_added
    clears = {
        (key, n)
        for a in range(count)
        for key, texts in _audience(a)[1]
        if key in _audience(a)[2]
        for n, t in zip(_audience(a)[0], texts, strict=True)
        if t in CLEARS
    }
    assert clears, "the audiences subscribe some members with a clear"
    assert any(t is None for rows in added.values() for _, cells in rows for _, t in cells)
    assert users == len(expected_wanted) > 0
    assert members == [member for member, _ in expected_wanted]
    assert names == [
        n for j, n in enumerate(sorted(FIELDS)) if any(w[j] for _, w in expected_wanted)
    ]
    assert [(r[0], [f for f, *_ in r[5]]) for r in rows] == [
        (m[0], [n for n, w in zip(sorted(FIELDS), wants, strict=True) if w])
        for m, wants in expected_wanted
    ]
    # A field some list subscribes the member with an object (not `{}`) is marked, so the
    # comparison leaves it to the subscribe where the profile holds none.
    conflicted = {(k, n) for k, n, held in expected_candidates if len({h[3] for h in held}) > 1}
    objects = {
        (key, n)
        for a in range(count)
        for key, texts in _audience(a)[1]
        if key in _audience(a)[2]
        for n, t in zip(_audience(a)[0], texts, strict=True)
        if t is not None and t.startswith("{") and t != "{}" and (key, n) not in conflicted
    }
    marked = {(r[0], f) for r in rows for f, _, obj, _ in r[5] if obj}
    assert marked == objects
    assert marked, "some members are subscribed with an object"
    # A field read for a joiner alone (no audience whose list already holds the member
    # made it a value) is marked: where the profile holds nothing it is not compared.
    on_list = {
        (key, n)
        for a in range(count)
        for key, texts in _audience(a)[1]
        if key not in _audience(a)[2]
        for n, t in zip(_audience(a)[0], texts, strict=True)
        if t is not None
    }
    joiners = {(r[0], f) for r in rows for f, *_, joins in r[5] if joins}
    assert joiners == {(r[0], f) for r in rows for f, *_ in r[5]} - on_list
    assert joiners, "some fields are read for joiners alone"
