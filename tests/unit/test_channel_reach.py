"""state/channel_reach.py's note, beside many audiences: each audience's members are
gathered once per plan, not once per list whose removals take the channel."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from reconciler.members.engine.rows import write_table
from reconciler.members.engine.workspace import Engine
from reconciler.plan import ListPlan
from reconciler.state.channel_reach import kept_elsewhere_notes


@dataclass(frozen=True)
class _Member:
    email: str | None
    user_id: str | None = None


class _Counted(dict[str, _Member]):
    """An audience's members, counting the walks over them."""

    walks = 0

    def items(self) -> Any:
        type(self).walks += 1
        return super().items()


@dataclass
class _Audience:
    """What the note reads of a DesiredList (Python's path)."""

    list_name: str
    members: _Counted
    table: None = None


def _plan(name: str, removed: list[str]) -> ListPlan:
    return ListPlan(
        audience=name,
        list_name=name,
        list_id=1,
        create=False,
        description=None,
        add=(),
        remove=tuple(removed),
        unchanged=0,
        live_count=len(removed),
        desired_count=0,
        channel_unsubscribe=True,
    )


def test_each_audience_is_walked_once_whatever_the_lists_with_removals():
    # 20 audiences: aud-i keeps p(10i+5)..p(10i+49) and removes p(10i)..p(10i+4), whom
    # the audiences before it keep; aud-0 also keeps p100, by a userId that is an email.
    n = 20
    audiences = []
    for i in range(n):
        people = {f"p{10 * i + j}@x.io": _Member(f"p{10 * i + j}@x.io") for j in range(5, 50)}
        audiences.append(_Audience(f"aud-{i}", _Counted(people)))
    audiences[0].members["u1"] = _Member(None, "p100@x.io")  # a userId that is an email
    plans = [_plan(f"aud-{i}", [f"p{10 * i + j}@x.io" for j in range(5)]) for i in range(n)]
    _Counted.walks = 0

    notes = kept_elsewhere_notes(audiences, plans)  # type: ignore[arg-type]

    assert _Counted.walks == n, _Counted.walks  # 20, where each was walked 19 times: 380
    # aud-1's removals p10..p14 are aud-0's members (p5..p49) and no other's.
    by_list = {note.split("'")[1]: note for note in notes}
    assert (
        "5 of its 5 removals are people the manifests keep on other lists ('aud-0': 5)"
        in by_list["aud-1"]
    )
    # aud-10's p100..p104: aud-6 to aud-9 keep all 5, aud-0 p100 by its userId.
    assert "('aud-6': 5, 'aud-7': 5, 'aud-8': 5, and 2 more lists)" in by_list["aud-10"]


class _CountingEngine(Engine):
    """A DuckDB workspace counting the statements that read each audience's table."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: Counter[str] = Counter()

    @property
    def connection(self) -> Any:
        return _Counting(super().connection, self.reads)


class _Counting:
    def __init__(self, connection: Any, reads: Counter[str]) -> None:
        self._connection, self._reads = connection, reads

    def execute(self, sql: str, *args: Any) -> Any:
        self._reads.update(set(re.findall(r"\baud_table_\d+\b", sql)))
        return self._connection.execute(sql, *args)


@dataclass
class _Table:
    engine: Engine
    rows_table: str


@dataclass
class _InDuckDB:
    """What the note reads of a DesiredList held in DuckDB."""

    list_name: str
    table: _Table
    members: dict[str, _Member]


def test_each_audience_in_duckdb_is_read_once_whatever_the_lists_with_removals():
    """Each list's removals were matched in a query of their own over every other
    audience's table: 150 audiences of 5,000, each removing 100 people, took 23 s."""
    n = 20
    engine = _CountingEngine()
    audiences = []
    for i in range(n):
        table = f"aud_table_{i}"
        rows = [(f"k{j}", f"p{10 * i + j}@x.io", None) for j in range(5, 50)]
        if i == 0:
            rows.append(("u1", None, "p100@x.io"))  # a userId that is an email
        write_table(engine, table, rows, ("key", "email", "user_id"))
        audiences.append(_InDuckDB(f"aud-{i}", _Table(engine, table), {}))
    plans = [_plan(f"aud-{i}", [f"p{10 * i + j}@x.io" for j in range(5)]) for i in range(n)]
    engine.reads.clear()

    try:
        notes = kept_elsewhere_notes(audiences, plans)  # type: ignore[arg-type]
    finally:
        engine.close()

    assert max(engine.reads.values()) <= 2, engine.reads  # each 19 times, one a list before
    by_list = {note.split("'")[1]: note for note in notes}
    assert (
        "5 of its 5 removals are people the manifests keep on other lists ('aud-0': 5)"
        in by_list["aud-1"]
    )
    assert "('aud-6': 5, 'aud-7': 5, 'aud-8': 5, and 2 more lists)" in by_list["aud-10"]
