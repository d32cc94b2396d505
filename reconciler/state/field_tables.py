"""plan_fields for destinations with an audience planned in DuckDB (state/fields.py picks
it): the same decisions as merge_fields, to_read and plan_field_updates (plan/fields.py),
taken over workspace tables a batch at a time, so memory is bounded by the batch and not
by the audience.

SQL joins the audiences' values (members/engine/field_tables.py) and narrows down where to
look; every comparison is traits.compare.same_value in Python, as in the Python path, so
both give the same plan. Small audiences of the same destination planned in Python join in
through a table of their values.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from reconciler.iterable import IterableClient
from reconciler.members.engine.field_tables import (
    FieldValues,
    MappedTable,
    MergedTables,
    ValuesTable,
    add_fields_rows,
    compared_rows,
    conflict_candidates,
    field_values_table,
    from_json,
    keys_table,
    keys_updated,
    live_values_table,
    mark_conflicts,
    merge_tables,
    read_field_export,
    same_person_candidates,
    to_json,
    two_kinds_conflicts,
    update_rows,
    update_view,
    values_into_table,
    wanted_members,
)
from reconciler.members.identity import Member, ProjectType
from reconciler.members.model import Engine, TableRows
from reconciler.plan import FieldRead, FieldUpdate, ListPlan
from reconciler.plan.field_clears import ClearTally
from reconciler.plan.fields import conflict_reason, two_kinds_reason
from reconciler.plan.fingerprint import ValuesDigest
from reconciler.progress import NULL_PROGRESS, Progress
from reconciler.sources import MemberIssue
from reconciler.state.alongside import Beside
from reconciler.state.desired import DesiredList
from reconciler.state.live import choose_field_read, read_field_values
from reconciler.state.users_file import ProfilesFile
from reconciler.state.windows import WholeDownload
from reconciler.traits import SentValue
from reconciler.traits import values as trait_values
from reconciler.traits.compare import holds_value, same_value, text_fields
from reconciler.words import quantity


@dataclasses.dataclass
class TableFields:
    """What plan_fields needs back: lists with add_fields, updates, the read, issues."""

    lists: list[ListPlan]
    updates: Sequence[FieldUpdate]
    read: FieldRead | None
    issues: list[tuple[str, MemberIssue]]
    live_digest: str | None
    values: list[ValuesTable]  # per mapped item, in order (for update keys and refs)
    # Disagreements between audiences beyond those in `issues` (see _settle_conflicts).
    issues_unlisted: int = 0
    # The project's field types (getFields), when they were read to compare the values.
    field_types: Mapping[str, str] | None = None
    # Values compared and cleared per field (the field_clears guard).
    tally: ClearTally = dataclasses.field(default_factory=ClearTally)


def engine_of(items: Sequence[DesiredList]) -> Engine | None:
    """The workspace of the first mapped audience planned in DuckDB, if any."""
    for item in items:
        if item.fields is not None and item.fields.table is not None:
            return item.fields.table.engine
    return None


def plan_table_fields(
    client: IterableClient,
    engine: Engine,
    project_type: ProjectType,
    items: Sequence[DesiredList],
    lists: Sequence[ListPlan],
    progress: Progress = NULL_PROGRESS,
    users_file: ProfilesFile | None = None,
    beside: Beside | None = None,
) -> TableFields:
    """`items` are the destination's mapped audiences, `lists` all its list plans;
    `users_file` as state/fields.py plan_fields takes it; `beside`, with --target, the
    audiences read beside the targets (state/alongside.py)."""
    beside = beside if beside is not None else Beside()
    by_list = {lp.list_name: lp for lp in lists}
    values = [
        _withhold(
            engine,
            _without(engine, _values_of(engine, item), held_back(by_list[item.list_name])),
            beside.withheld,
        )
        for item in items
    ]
    mapped = [
        MappedTable(
            item.audience.name,
            v,
            keys_table(engine, by_list[item.list_name].add),
            item.fields.mapping.merge_nested_objects if item.fields is not None else False,
        )
        for item, v in zip(items, values, strict=True)
    ]
    # The audiences beside the targets join the merge in a full plan's order, with their
    # values of the targeted members' fields alone: they can only agree or conflict.
    others = [
        MappedTable(
            item.audience.name,
            _beside(engine, _values_of(engine, item), values),
            NO_KEYS,
            item.fields.mapping.merge_nested_objects if item.fields is not None else False,
        )
        for item in beside.items
    ]
    every = beside.in_order(mapped, others)
    merged = merge_tables(engine, every)
    issues, unlisted = _settle_conflicts(merged)
    users, names = merged.wanted()
    live: str | None = None
    read: FieldRead | None = None
    digest: str | None = None
    updates: Sequence[FieldUpdate] = ()
    field_types: Mapping[str, str] | None = None
    tally = ClearTally()
    if users:
        task = progress.task(
            f"reading the mapped fields of {quantity(users, 'user')}", unit="users"
        )
        live, read = _read_live(
            client, engine, merged, names, users, project_type, task.advance, users_file
        )
        task.finish()
        # Read before comparing: a string field's date-shaped text is compared as text.
        field_types = client.get_fields()
        task = progress.task("comparing mapped fields", total=users, unit="users")
        updates, digest = _compare(
            engine, merged, live, names, task.advance, text_fields(field_types), tally
        )
        task.finish()
    with_fields: dict[str, ListPlan] = {}
    for m, item in zip(mapped, items, strict=True):
        assert item.fields is not None
        index = next(i for i, x in enumerate(every) if x is m)
        # After the read: an object rides a subscribe only where the profile holds none.
        with_fields[item.list_name] = dataclasses.replace(
            by_list[item.list_name],
            add_fields=field_values_table(engine, _add_fields(merged, index, live, names)),
            merge_nested_objects=item.fields.mapping.merge_nested_objects,
        )
    planned = [with_fields.get(lp.list_name, lp) for lp in lists]
    if updates:
        assert isinstance(updates, TableRows)
        mapped_of = {item.list_name: m for item, m in zip(items, mapped, strict=True)}
        planned = [
            _with_update_keys(lp, keys_updated(engine, mapped_of[lp.list_name], updates.table))
            if lp.list_name in mapped_of
            else dataclasses.replace(lp, field_update_keys=())
            for lp in planned
        ]
    return TableFields(planned, updates, read, issues, digest, values, unlisted, field_types, tally)


def _values_of(engine: Engine, item: DesiredList) -> ValuesTable:
    """An audience's values table: made when it was read, or (planned in Python) now."""
    fields = item.fields
    assert fields is not None
    if fields.table is not None:
        return fields.table
    names = fields.mapping.field_names
    members = item.members
    rows = (
        (
            key,
            members[key].key_kind,
            members[key].email,
            members[key].user_id,
            pos,
            [to_json(v[n]) if n in v else None for n in names],
        )
        for pos, (key, v) in enumerate(fields.values.items())
    )
    return values_into_table(engine, rows, names)


def held_back(lp: ListPlan) -> frozenset[str]:
    """Desired members consent keeps off the list (state/consent.py): neither on it nor
    added to it, so its mapping neither subscribes them with fields nor updates theirs
    (another list they are on still does). And members on it under another spelling of
    their email (plan/planner.py `keep_respelled`): their profile is not found by the
    source's spelling, which Iterable may refuse, or make a second profile of. And adds
    left out as forgotten or unknown (state/unsendable.py): a bulkUpdate of their fields
    would be refused, or create the user an updateExistingUsersOnly audience may not.
    And rows whose email Iterable has changed (state/changed_emails.py): a bulkUpdate by
    the row's email would create the second profile their add was left out not to make."""
    held = (
        lp.left_themselves,
        lp.channel_unsubscribed,
        lp.respelled,
        lp.forgotten,
        lp.not_created,
        lp.email_changed,
    )
    if not any(held):
        return frozenset()
    return frozenset(key for keys in held for key in keys)


def _without(engine: Engine, values: ValuesTable, keys: frozenset[str]) -> ValuesTable:
    """An audience's values without these members (`held_back`), as a table of their own."""
    if not keys:
        return values
    table = engine.name("field_values")
    connection = engine.connection
    connection.execute(
        f"CREATE TABLE {table} AS SELECT * FROM {values.table} "
        f"WHERE key NOT IN (SELECT unnest(?::VARCHAR[]))",
        [sorted(keys)],
    )
    (count,) = connection.execute(f"SELECT count(*) FROM {table}").fetchone() or (0,)
    return ValuesTable(engine, table, values.fields, int(count))


# The keys of an audience that subscribes no one (one beside the targets).
NO_KEYS = "(SELECT NULL::VARCHAR AS key WHERE false)"


def _withhold(engine: Engine, values: ValuesTable, names: frozenset[str]) -> ValuesTable:
    """An audience's values without any of fields `names` (Beside.withheld: not written)."""
    columns = [f"NULL::VARCHAR AS f{values.fields.index(n)}" for n in names if n in values.fields]
    if not columns:
        return values
    table = engine.name("field_values")
    engine.connection.execute(
        f"CREATE TABLE {table} AS SELECT * REPLACE ({', '.join(columns)}) FROM {values.table}"
    )
    return ValuesTable(engine, table, values.fields, values.count)


def _beside(engine: Engine, theirs: ValuesTable, ours: Sequence[ValuesTable]) -> ValuesTable:
    """An audience beside the targets as the merge takes it (state/fields.py _beside): its
    values of the fields some targeted audience holds a value of for the same member,
    under the same key or the other one (plan/fields.py same_person_pairs): a member
    keyed by email here and by a userId given with that email there (`u`, one row per
    email), or keyed by a userId with an email here and by that email there (`e`)."""
    joins = []
    for k, t in enumerate(ours):
        any_held = ", ".join(f"bool_or(f{n} IS NOT NULL) AS f{n}" for n in range(len(t.fields)))
        joins += [
            f"LEFT JOIN {t.table} t{k} ON t{k}.key = c.key",
            f"LEFT JOIN {t.table} e{k} ON c.key_kind = 'userId' AND e{k}.key_kind = 'email' "
            f"AND e{k}.key = c.email",
            f"LEFT JOIN (SELECT email{', ' + any_held if any_held else ''} FROM {t.table} "
            f"WHERE key_kind = 'userId' AND email IS NOT NULL GROUP BY email) u{k} "
            f"ON c.key_kind = 'email' AND u{k}.email = c.key",
        ]
    columns = []
    for c, name in enumerate(theirs.fields):
        held = [
            f"t{k}.f{f} IS NOT NULL OR e{k}.f{f} IS NOT NULL OR coalesce(u{k}.f{f}, false)"
            for k, t in enumerate(ours)
            if name in t.fields
            for f in [t.fields.index(name)]
        ]
        columns.append(f"CASE WHEN {' OR '.join(held) or 'false'} THEN c.f{c} END AS f{c}")
    kept = " OR ".join(f"f{c} IS NOT NULL" for c in range(len(theirs.fields))) or "false"
    table = engine.name("field_values")
    connection = engine.connection
    connection.execute(
        f"CREATE TABLE {table} AS SELECT * FROM (SELECT c.key, c.key_kind, c.email, "
        f"c.user_id, c.pos{''.join(', ' + x for x in columns)} FROM {theirs.table} c "
        f"{' '.join(joins)}) "
        f"WHERE {kept}"
    )
    (count,) = connection.execute(f"SELECT count(*) FROM {table}").fetchone() or (0,)
    return ValuesTable(engine, table, theirs.fields, int(count))


def conflict_group(audience: str, issue: MemberIssue) -> tuple[str, str, str]:
    """What the plan lists a capped number of disagreements per: the audience named last,
    the pair of audiences (`where`) and the field (the message up to " gets ", as
    planning._value_issues groups them)."""
    return audience, issue.where, issue.message.split(" gets ", 1)[0]


def _settle_conflicts(merged: MergedTables) -> tuple[list[tuple[str, MemberIssue]], int]:
    """merge_fields' conflicts: of the pairs whose text differs, those whose values differ
    (same_value) as the audiences are taken in order; worded and ordered as there.

    Bounded: the candidates stream in batches, every conflict goes to the workspace table
    (merged.conflicted, which keeps its field from being sent), and only the first
    MAX_FIELD_ISSUES per group (conflict_group) in plan order are kept as issues, the
    rest counted; the plan lists no more than those (planning._value_issues)."""
    cap = trait_values.MAX_FIELD_ISSUES
    # Per group, a heap of the kept issues, the last in plan order on top (keys negated).
    kept: dict[tuple[str, str, str], list[tuple[tuple[int, ...], MemberIssue]]] = {}
    groups: dict[tuple[int, int, str], tuple[str, tuple[str, str, str]]] = {}
    found = 0
    audiences = [m.audience for m in merged.lists]

    def group_of(first: int, index: int, name: str) -> tuple[str, tuple[str, str, str]]:
        if (first, index, name) not in groups:
            other, this = audiences[first], audiences[index]
            where = f"audiences {other!r} and {this!r}"
            # The message starts "field {name!r} gets ...": its group needs only the name.
            probe = MemberIssue(where, f"field {name!r} gets ", "")
            groups[first, index, name] = (where, conflict_group(this, probe))
        return groups[first, index, name]

    def keep(order: tuple[int, ...], group: tuple[str, str, str], issue: MemberIssue) -> None:
        heap = kept.setdefault(group, [])
        if len(heap) < cap:
            heapq.heappush(heap, (order, issue))
        elif order > heap[0][0]:  # (negated) earlier in plan order than the last kept
            heapq.heapreplace(heap, (order, issue))

    # plan/fields._two_kinds_conflicts: before any other, as merge_fields finds them.
    two_kinds: set[str] = set()
    for batch in two_kinds_conflicts(merged):
        for key, first, later, pos, names in batch:
            two_kinds.add(key)
            for name in names:
                found += 1
                where, group = group_of(first, later, name)
                order = (1, -first, -pos, -merged.names.index(name))
                keep(order, group, MemberIssue(where, two_kinds_reason(name), key))

    def pairs() -> Iterator[tuple[str, str]]:
        nonlocal found
        for batch in conflict_candidates(merged):
            for key, name, held in batch:
                if key in two_kinds:
                    continue
                first_index, _, _, first_text = held[0]
                target = from_json(first_text)
                first_merges = merged.lists[first_index].merge_nested_objects
                for index, pos, number, text in held[1:]:
                    value = target if text == first_text else from_json(text)
                    modes_differ = merged.lists[index].merge_nested_objects != first_merges
                    reason = conflict_reason(name, target, value, modes_differ)
                    if reason is None:
                        continue
                    found += 1
                    yield key, name
                    where, group = group_of(first_index, index, name)
                    heap = kept.setdefault(group, [])
                    order = (-index, -pos, -number)
                    if len(heap) >= cap and (not heap or order <= heap[0][0]):
                        break  # later in plan order than every one kept: counted only
                    issue = MemberIssue(where, reason, key)
                    if len(heap) < cap:
                        heapq.heappush(heap, (order, issue))
                    else:
                        heapq.heapreplace(heap, (order, issue))
                    break

    def across_keys() -> Iterator[tuple[str, str]]:
        """plan/fields._settle_across_keys: one person keyed by email in one list and by
        a userId with that email in another; after every other conflict (its order
        starts past every list's index, as merge_fields appends them last)."""
        nonlocal found
        marked: set[tuple[str, str]] = set()
        width = len(merged.lists)
        for i, pos, email_key, j, user_key, other_pos, values in same_person_candidates(merged):
            (first, _), (later, later_key) = sorted([(i, email_key), (j, user_key)])
            modes_differ = merged.lists[i].merge_nested_objects != (
                merged.lists[j].merge_nested_objects
            )
            for name, mine, theirs in sorted(values):
                if (email_key, name) in marked or (user_key, name) in marked:
                    continue
                held, value = (mine, theirs) if first == i else (theirs, mine)
                reason = conflict_reason(name, from_json(held), from_json(value), modes_differ)
                if reason is None:
                    continue
                found += 1
                marked.update({(email_key, name), (user_key, name)})
                yield email_key, name
                yield user_key, name
                where, group = group_of(first, later, name)
                order = (-(width + i), -pos, -j, -other_pos, -merged.names.index(name))
                keep(order, group, MemberIssue(where, reason, later_key))

    mark_conflicts(merged, pairs(), across_keys)
    listed = sorted(
        (
            (tuple(-n for n in order), group[0], issue)
            for group, heap in kept.items()
            for order, issue in heap
        ),
        key=lambda entry: entry[0],
    )
    return [(audience, issue) for _, audience, issue in listed], found - len(listed)


def _add_fields(
    merged: MergedTables, index: int, live: str | None, names: Sequence[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    for batch in add_fields_rows(merged, index, live, names):
        for key, cells in batch:
            yield key, {name: from_json(text) for name, text in cells if text is not None}


def _read_live(
    client: IterableClient,
    engine: Engine,
    merged: MergedTables,
    names: list[str],
    users: int,
    project_type: ProjectType,
    on_users: Callable[[int], None],
    users_file: ProfilesFile | None = None,
) -> tuple[str, FieldRead]:
    """Current values of `names` for the wanted members, the cheaper way (as
    live.read_field_values chooses): one user export streamed into the workspace, or a
    few per-user reads; or from `users_file`, the export that read the members, when it
    has them and that is cheaper (no request)."""
    chosen = choose_field_read(users, client.settings)
    if users_file is not None and users_file.serves(names, users, client.settings, chosen):
        table = read_field_export(
            engine, users_file.download, merged, names, project_type, on_users
        )
        return table, users_file.field_read(users, names)
    if chosen == "export":
        download = WholeDownload(client, project_type)
        table = read_field_export(engine, download, merged, names, project_type, on_users)
        windows, whole = download.windows, download.whole
        read = FieldRead("export", users, int(whole) + windows, tuple(names), windows, whole)
        return table, read
    members = [
        Member(key, "userId" if kind == "userId" else "email", email, user_id)
        for key, kind, email, user_id in wanted_members(merged)
    ]
    live = read_field_values(client, members, names, project_type)
    on_users(len(members))
    rows = (
        (key, [to_json(found.get(n)) for n in names])
        for key, found in live.values.items()
        if found is not None
    )
    return live_values_table(engine, rows, names), live.read


def _compare(
    engine: Engine,
    merged: MergedTables,
    live: str,
    names: list[str],
    on_users: Callable[[int], None],
    texts: frozenset[str] = frozenset(),
    tally: ClearTally | None = None,
) -> tuple[TableRows[FieldUpdate], str]:
    """plan_field_updates over batches: the fields whose values differ, per member in key
    order, into a table; and the digest of the current values read (values_digest).
    `tally` counts the values compared and cleared per field, as there."""
    tally = tally if tally is not None else ClearTally()
    digest = ValuesDigest()
    column = {name: j for j, name in enumerate(names)}

    def updates() -> Iterator[tuple[str, str, str | None, str | None, list[list[Any]], bool]]:
        for batch in compared_rows(merged, live, names):
            on_users(len(batch))
            for key, kind, email, user_id, merge, fields, found, cells in batch:
                current = (
                    {
                        n: from_json(c) if c is not None else None
                        for n, c in zip(names, cells, strict=True)
                    }
                    if found
                    else None
                )
                digest.add(key, current)
                changes = []
                for name, text, subscribed_object, joiner in fields:
                    old = current.get(name) if current is not None else None
                    # A joiner holding nothing loses nothing: not counted by the guards
                    # (plan/fields.plan_field_updates says why), but still compared.
                    counted = not joiner or holds_value(old)
                    if not counted:
                        tally.leave_out(name)
                    if found and cells[column[name]] == text:
                        if counted:
                            tally.count(name, None, None, changed=False)
                        continue  # the same JSON text is the same value
                    new = from_json(text)
                    if subscribed_object and not holds_value(old):
                        # On the subscribe (plan/fields.object_on_subscribe).
                        if counted:
                            tally.count(name, old, new, changed=False)
                        continue
                    changed = not same_value(
                        new, old, merge_nested_objects=merge, texts=texts, path=name
                    )
                    if counted:
                        tally.count(name, old, new, changed, merge, texts)
                    if changed:
                        changes.append([name, old, new])
                if changes:
                    yield key, kind, email, user_id, changes, merge

    rows = update_rows(engine, updates(), FieldUpdate)
    return rows, digest.hexdigest()


def _with_update_keys(lp: ListPlan, keys: TableRows[str]) -> ListPlan:
    """As state/fields.py's: `keys` are the members already on the list (neither its adds
    nor those held back) that get a field update."""
    return dataclasses.replace(lp, field_update_keys=keys, unchanged=lp.unchanged - len(keys))


def sent_values(
    lists: Sequence[ListPlan],
    updates: Sequence[FieldUpdate],
    items: Sequence[DesiredList],
    values: Sequence[ValuesTable],
) -> Iterator[SentValue]:
    """Every value the plan would send, for check_types, a batch at a time."""
    names = {item.list_name for item in items}
    for lp in lists:
        if lp.list_name not in names:
            continue
        item = next(i for i in items if i.list_name == lp.list_name)
        add_fields = lp.add_fields
        if isinstance(add_fields, FieldValues):
            for batch in add_fields.items_batched():
                for key, fields in batch:
                    for name, value in fields.items():
                        yield SentValue(name, value, TableRef(item, key, name))
        else:
            for key, fields in add_fields.items():
                for name, value in fields.items():
                    yield SentValue(name, value, TableRef(item, key, name))
    for update in updates:
        for name, (_old, new) in update.changes.items():
            yield SentValue(name, new, UpdateRef(items, values, update.key, name))


@dataclasses.dataclass(frozen=True)
class TableRef:
    item: DesiredList
    key: str
    field: str


@dataclasses.dataclass(frozen=True)
class UpdateRef:
    """An updated value's origin, looked up only when a conflict is reported: the first
    audience that made a value of that field for that member."""

    items: Sequence[DesiredList]
    values: Sequence[ValuesTable]
    key: str
    field: str

    @property
    def item(self) -> DesiredList:
        return next(
            item
            for item, v in zip(self.items, self.values, strict=True)
            if v.has(self.key, self.field)
        )


def with_doubles(
    lists: Sequence[ListPlan], updates: Sequence[FieldUpdate], doubles: set[str]
) -> tuple[list[ListPlan], Sequence[FieldUpdate]]:
    """_as_doubles for views: whole numbers bound for double fields are read as floats."""
    new_lists = [
        dataclasses.replace(lp, add_fields=lp.add_fields.with_doubles(doubles))
        if isinstance(lp.add_fields, FieldValues)
        else lp
        for lp in lists
    ]
    if isinstance(updates, TableRows):
        updates = update_view(
            updates.engine, updates.table, len(updates), FieldUpdate, frozenset(doubles)
        )
    return new_lists, updates
