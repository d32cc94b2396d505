"""Removals with `channelUnsubscribe` of people the manifests keep on other lists.

Such a removal unsubscribes the person from the list's whole channel (Iterable's API does
not say which channel a list belongs to, so every other list of the destination counts,
as the consent guard counts any email channel). One whom another audience keeps, already
on its list or joining it, stays on that list and gets none of its messages on the
channel, and no later plan shows it: the list is as the manifests say. The plan names
them by count, per list, in a note. Members another list holds back (who left it, or its
channel, or whom Iterable does not know) are not on it, and do not count.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from reconciler.members.engine.rows import TableRows, write_table
from reconciler.members.engine.workspace import Engine
from reconciler.plan import ListPlan
from reconciler.state.desired import DesiredList
from reconciler.state.field_tables import held_back

# Lists a note names by count; the others are counted together.
NAMED = 3


def kept_elsewhere_notes(items: Sequence[DesiredList], lists: Sequence[ListPlan]) -> list[str]:
    """A note per list whose removals take the channel from people other audiences keep."""
    plans = {lp.list_name: lp for lp in lists}
    notes = []
    for lp in lists:
        if not (lp.channel_unsubscribe and lp.remove):
            continue
        removed: Collection[str] = lp.remove if isinstance(lp.remove, TableRows) else set(lp.remove)
        found = {}
        for item in items:
            if item.list_name == lp.list_name:
                continue
            plan = plans.get(item.list_name)
            held = held_back(plan) if plan is not None else frozenset()
            ids = _kept(removed, item, held)
            if ids:
                found[item.list_name] = ids
        if found:
            notes.append(_note(lp, found))
    return notes


def _note(lp: ListPlan, found: Mapping[str, set[str]]) -> str:
    people = len(set().union(*found.values()))
    ranked = sorted(found.items(), key=lambda item: (-len(item[1]), item[0]))
    named = ", ".join(f"{name!r}: {len(ids):,}" for name, ids in ranked[:NAMED])
    more = len(ranked) - NAMED
    if more > 0:
        named += f", and {more:,} more list{'s' if more != 1 else ''}"
    removals = f"{len(lp.remove):,} removal{'s' if len(lp.remove) != 1 else ''}"
    who = "are people" if people != 1 else "is a person"
    return (
        f"channelUnsubscribe on {lp.list_name!r}: {people:,} of its {removals} {who} the "
        f"manifests keep on other lists ({named}); they stay on those lists, but lose the "
        "channel with this removal, so its messages no longer reach them there"
    )


def _kept(removed: Collection[str], item: DesiredList, held: frozenset[str]) -> set[str]:
    """The removed identifiers that are an email or userId of a member the audience keeps
    (not one of `held`, the keys its list plan holds back)."""
    if item.table is None and not isinstance(removed, TableRows):
        members = [m for key, m in item.members.items() if key not in held]
        ids = {m.email for m in members if m.email is not None}
        ids |= {m.user_id for m in members if m.user_id is not None}
        return ids & set(removed)
    if item.table is not None:
        engine = item.table.engine
    else:
        assert isinstance(removed, TableRows)
        engine = removed.engine
    made: list[str] = []
    try:
        gone = _removed_table(engine, removed, made)
        keeping = _members_table(engine, item, held, made)
        rows = engine.connection.execute(
            f"SELECT DISTINCT r.id FROM {gone} r WHERE "
            f"r.id IN (SELECT email FROM {keeping} WHERE email IS NOT NULL) "
            f"OR r.id IN (SELECT user_id FROM {keeping} WHERE user_id IS NOT NULL)"
        ).fetchall()
    finally:
        for table in made:
            engine.connection.execute(f"DROP TABLE {table}")
    return {identifier for (identifier,) in rows}


def _removed_table(engine: Engine, removed: Collection[str], made: list[str]) -> str:
    """The removed identifiers as a table (id): their own where they live in DuckDB."""
    if isinstance(removed, TableRows):
        return removed.table
    table = engine.name("removed")
    write_table(engine, table, ((i,) for i in sorted(removed)), ("id",))
    made.append(table)
    return table


def _members_table(engine: Engine, item: DesiredList, held: frozenset[str], made: list[str]) -> str:
    """The audience's members but `held`, as a relation (key, email, user_id)."""
    if item.table is None:
        table = engine.name("kept")
        rows = ((k, m.email, m.user_id) for k, m in item.members.items() if k not in held)
        write_table(engine, table, rows, ("key", "email", "user_id"))
        made.append(table)
        return table
    if not held:
        return item.table.rows_table
    out = engine.name("held")
    write_table(engine, out, ((k,) for k in sorted(held)), ("key",))
    made.append(out)
    return (
        f"(SELECT key, email, user_id FROM {item.table.rows_table} "
        f"WHERE key NOT IN (SELECT key FROM {out}))"
    )
