"""A saved plan's large member sets, read into the DuckDB workspace (plan/file.py's
MemberTables): apply then streams them a batch at a time, as it does a plan made here."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from reconciler.members.engine.field_tables import FieldValues, field_values_table, update_rows
from reconciler.members.engine.rows import TableRows, identifiers_into_table, members_into_table
from reconciler.members.engine.workspace import Engine
from reconciler.members.identity import Member


class SavedPlanTables:
    """Sets of the engine's threshold or more go into its workspace; the engine is made from
    the environment (RECONCILER_ENGINE...) the first time a plan file is read, unless given."""

    def __init__(self, engine: Engine | None = None):
        self._engine = engine

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine.from_env()
        return self._engine

    def holds(self, count: int) -> bool:
        return count >= max(self.engine.settings.threshold, 1)

    def members(self, rows: Iterable[Member], count: int) -> TableRows[Member]:
        with self._room():
            return members_into_table(self.engine, rows, count)

    def identifiers(self, ids: Iterable[str], count: int) -> TableRows[str]:
        with self._room():
            return identifiers_into_table(self.engine, ids, count)

    def field_values(self, rows: Iterable[tuple[str, dict[str, Any]]], count: int) -> FieldValues:
        with self._room():
            return field_values_table(self.engine, rows)

    def field_updates(
        self, rows: Iterable[tuple[Any, ...]], count: int, make: Callable[..., Any]
    ) -> TableRows[Any]:
        with self._room():
            return update_rows(
                self.engine,
                (
                    (key, kind, email, user_id, changes, bool(merge))
                    for key, kind, email, user_id, changes, merge in rows
                ),
                make,
            )

    @contextmanager
    def _room(self) -> Iterator[None]:
        """A full temporary directory while the sets are written to the workspace is said
        as such: the plan reader takes any OSError for a damaged file, so the user would
        make the plan again and meet the same full disk."""
        try:
            yield
        except Exception as exc:
            said = self.engine.no_room(exc)  # reconciler's files or DuckDB's spill files
            if said is None:
                raise
            raise said from None
