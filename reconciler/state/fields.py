"""Plan one destination's user fields: merge what the mappings want, read what Iterable has,
check types against getFields, and keep only the differences.

Wiring, like reconcile.py: the reads go through live.py, the decisions are made by the pure
code in plan/fields.py and traits/.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.iterable import IterableClient
from reconciler.members.identity import Member
from reconciler.members.model import Engine
from reconciler.plan import FieldRead, FieldUpdate, ListPlan
from reconciler.plan.field_clears import ClearTally
from reconciler.plan.fields import MappedList, merge_fields, plan_field_updates
from reconciler.plan.fingerprint import values_digest
from reconciler.progress import NULL_PROGRESS, Progress
from reconciler.sources import MemberIssue
from reconciler.state.alongside import Beside
from reconciler.state.desired import DesiredDestination, DesiredList
from reconciler.state.field_tables import (
    TableRef,
    UpdateRef,
    engine_of,
    held_back,
    plan_table_fields,
    sent_values,
    with_doubles,
)
from reconciler.state.live import read_field_values
from reconciler.state.users_file import ProfilesFile
from reconciler.traits import SentValue, TypeConflict, check_types
from reconciler.traits.compare import text_fields
from reconciler.traits.types import as_doubles


class FieldTypeError(ReconcilerError):
    """A mapped value's type conflicts with a field's type in Iterable; found at plan time,
    so nothing is written."""


@dataclass
class FieldsPlan:
    lists: list[ListPlan]  # the list plans, with mapped fields on their subscribes
    # A tuple, or rows still in the DuckDB workspace (state/field_tables.py)
    updates: Sequence[FieldUpdate] = ()
    read: FieldRead | None = None
    issues: list[tuple[str, MemberIssue]] = field(default_factory=list)  # (audience, issue)
    live_digest: str | None = None  # of the current values read, for the stale-plan check
    # Disagreements between audiences not in `issues`, counted only (DuckDB path: bounded)
    issues_unlisted: int = 0
    # Fields this plan creates in Iterable, with the type their first value fixes (sorted)
    new_fields: tuple[tuple[str, str], ...] = ()
    # Paths getFields lists, when it was read: with new_fields, the project's field count
    project_fields: int | None = None
    # The paths themselves, for the names new fields differ from only in case
    project_field_names: frozenset[str] = frozenset()
    # Values compared and cleared per field (the field_clears guard)
    tally: ClearTally = field(default_factory=ClearTally)


def plan_fields(
    client: IterableClient,
    desired: DesiredDestination,
    lists: Sequence[ListPlan],
    progress: Progress = NULL_PROGRESS,
    users_file: ProfilesFile | None = None,
) -> FieldsPlan:
    """`lists` are the destination's list plans, in the order of `desired.lists`;
    `users_file` the export that read their members, read again for current values
    rather than asking Iterable when it has them."""
    by_list = {lp.list_name: lp for lp in lists}
    mapped_items = [item for item in desired.lists if item.fields is not None]
    if not mapped_items:
        return FieldsPlan(list(lists))
    beside = Beside.of(desired, mapped_items)
    engine = engine_of([*mapped_items, *beside.items])
    if engine is not None:
        # An audience planned in DuckDB: every mapped audience of the destination is
        # planned over workspace tables, a batch at a time.
        return _plan_table_fields(
            client, engine, desired, lists, mapped_items, progress, users_file, beside
        )
    mapped = [_mapped(item, by_list[item.list_name], beside.withheld) for item in mapped_items]
    for item, m in zip(mapped_items, mapped, strict=True):
        _forget_traits(item.members, m.adding)
    # With --target, the audiences beside the targets join the merge, in a full plan's
    # order, with their values of the targeted members' fields alone: they can only
    # agree or conflict, never add a write.
    every = beside.in_order(mapped, [_beside(item, mapped) for item in beside.items])
    merged = merge_fields(every)
    out = FieldsPlan([], issues=[*merged.conflicts, *beside.issues])
    wanted = merged.to_read(every)
    field_types: Mapping[str, str] | None = None
    held: Mapping[str, Mapping[str, Any] | None] = {}
    if wanted:
        found = merged.members.of(wanted)
        members = [found[key] for key in sorted(wanted)]
        names = sorted({name for fields in wanted.values() for name in fields})
        live = read_field_values(client, members, names, desired.project_type, users_file)
        out.read = live.read
        out.live_digest = values_digest(live.values)
        held = live.values
        # Read before comparing: a string field's date-shaped text is compared as text.
        field_types = client.get_fields()
        texts = text_fields(field_types)
        out.updates = tuple(plan_field_updates(merged, wanted, live.values, texts, out.tally))
    with_fields: dict[str, ListPlan] = {}
    for item, m in zip(mapped_items, mapped, strict=True):
        assert item.fields is not None
        # After the read: an object rides a subscribe only where the profile holds none.
        with_fields[item.list_name] = dataclasses.replace(
            by_list[item.list_name],
            add_fields=merged.add_fields(m, held),
            merge_nested_objects=item.fields.mapping.merge_nested_objects,
        )
    planned = [with_fields.get(lp.list_name, lp) for lp in lists]
    if out.updates:
        updated = {u.key for u in out.updates}
        members_of = {item.list_name: item.members for item in mapped_items}
        adding_of = {item.list_name: m.adding for item, m in zip(mapped_items, mapped, strict=True)}
        planned = [
            _with_update_keys(
                lp, members_of.get(lp.list_name, {}), updated, adding_of.get(lp.list_name, ())
            )
            for lp in planned
        ]
    sent = list(_sent_values(planned, out.updates, mapped_items))
    if sent:
        if field_types is None:
            field_types = client.get_fields()
        types = check_types(field_types, sent)
        if types.conflicts:
            raise FieldTypeError(_conflict_message(desired, types.conflicts))
        out.new_fields = tuple(sorted(types.new_fields.items()))
        out.project_fields = len(field_types)
        out.project_field_names = frozenset(field_types)
        if types.double_fields:
            planned, doubled = _as_doubles(planned, out.updates, types.double_fields)
            out.updates = tuple(doubled)
    out.lists = planned
    return out


def _plan_table_fields(
    client: IterableClient,
    engine: Engine,
    desired: DesiredDestination,
    lists: Sequence[ListPlan],
    items: list[DesiredList],
    progress: Progress,
    users_file: ProfilesFile | None = None,
    beside: Beside | None = None,
) -> FieldsPlan:
    """plan_fields over workspace tables (state/field_tables.py); the type check as below,
    over the values a batch at a time."""
    beside = beside if beside is not None else Beside()
    found = plan_table_fields(
        client, engine, desired.project_type, items, lists, progress, users_file, beside
    )
    out = FieldsPlan(
        found.lists,
        found.updates,
        found.read,
        [*found.issues, *beside.issues],
        found.live_digest,
        found.issues_unlisted,
        tally=found.tally,
    )
    sent = sent_values(out.lists, out.updates, items, found.values)
    first = next(sent, None)
    if first is not None:
        field_types = found.field_types if found.field_types is not None else client.get_fields()
        types = check_types(field_types, itertools.chain([first], sent))
        if types.conflicts:
            raise FieldTypeError(_conflict_message(desired, types.conflicts))
        out.new_fields = tuple(sorted(types.new_fields.items()))
        out.project_fields = len(field_types)
        out.project_field_names = frozenset(field_types)
        if types.double_fields:
            out.lists, out.updates = with_doubles(out.lists, out.updates, types.double_fields)
    return out


def _forget_traits(members: dict[str, Member], adding: Collection[str]) -> None:
    """Drop the source rows of members this plan does not subscribe: their mapped values
    are made, and a row is most of what a member costs in memory. Those subscribed keep
    theirs: the list plan's adds are these very members."""
    no_traits: dict[str, object] = {}  # one empty dict for them all; nothing writes to it
    for key, member in members.items():
        if member.traits and key not in adding:
            # Same keys, so the dict is only updated in place.
            members[key] = Member(
                member.key, member.key_kind, member.email, member.user_id, no_traits
            )


def _with_update_keys(
    lp: ListPlan, members: Any, updated: set[str], adding: Collection[str]
) -> ListPlan:
    """Note which of the list's members already on it get a field update; they no longer
    count as unchanged (a list reads +added / -removed / ~updated / unchanged, one of them
    per desired member). Not its adds, whose user may get a bulkUpdate for another list it
    is on: the add is counted as added here and the update on that list (it counted twice
    here, so a new list said -3 unchanged), and the two send different fields (plan/fields.py
    `covered`). Nor the members consent or another spelling holds back (`held_back`)."""
    held = held_back(lp)
    keys = tuple(sorted(k for k in members if k in updated and k not in adding and k not in held))
    return dataclasses.replace(lp, field_update_keys=keys, unchanged=lp.unchanged - len(keys))


def _mapped(item: DesiredList, lp: ListPlan, withheld: frozenset[str] = frozenset()) -> MappedList:
    """`withheld`: fields not written at all (Beside.withheld)."""
    assert item.fields is not None
    values: Mapping[str, dict[str, Any]] = item.fields.values
    held = held_back(lp)
    if held:
        values = {key: v for key, v in values.items() if key not in held}
    if withheld & set(item.fields.mapping.field_names):
        values = {
            key: {f: v for f, v in fields.items() if f not in withheld}
            for key, fields in values.items()
        }
    return MappedList(
        audience=item.audience.name,
        members=item.members,
        values=values,
        merge_nested_objects=item.fields.mapping.merge_nested_objects,
        # In the adds' order (by key), so the values sent are checked in the same order
        # as the DuckDB path checks them (the first of a type conflict is the one named).
        adding=dict.fromkeys(m.key for m in lp.add),
    )


def _beside(item: DesiredList, mapped: Sequence[MappedList]) -> MappedList:
    """An audience beside the targets (state/alongside.py) as the merge takes it: its
    values of the fields a targeted audience holds a value of for the same member, and
    nothing it subscribes. The same member under the other key too (plan/fields.py
    same_person_pairs: keyed by email here, by a userId given with that email there, or
    the other way round), or the targeted plan wrote one value where a full plan writes
    neither."""
    assert item.fields is not None
    held: dict[str, set[str]] = {}
    # The fields held for a person by email: of members keyed by it, and of members keyed
    # by a userId given with it.
    by_email_key: dict[str, set[str]] = {}
    by_user_email: dict[str, set[str]] = {}
    for m in mapped:
        for key, values in m.values.items():
            held.setdefault(key, set()).update(values)
            member = m.members.get(key)
            if member is None:
                continue
            if member.key_kind == "email":
                by_email_key.setdefault(key, set()).update(values)
            elif member.key_kind == "userId" and member.email:
                by_user_email.setdefault(member.email, set()).update(values)
    kept: dict[str, dict[str, Any]] = {}
    for key, values in item.fields.values.items():
        ours = set(held.get(key, ()))
        member = item.members.get(key)
        if member is not None and member.key_kind == "email":
            ours |= by_user_email.get(key, set())
        elif member is not None and member.key_kind == "userId" and member.email:
            ours |= by_email_key.get(member.email, set())
        if ours:
            theirs = {f: v for f, v in values.items() if f in ours}
            if theirs:
                kept[key] = theirs
    return MappedList(
        audience=item.audience.name,
        members=item.members,
        values=kept,
        merge_nested_objects=item.fields.mapping.merge_nested_objects,
    )


@dataclass(frozen=True)
class _Ref:
    """Where a sent value comes from, resolved to text only when a conflict is reported."""

    item: DesiredList
    key: str
    field: str


@dataclass(frozen=True)
class _UpdateRef:
    """An updated value's origin: the first audience that made a value of that field for
    that member, looked up only when a conflict is reported (a walk over every audience
    for each updated value grew with the audiences times the values)."""

    items: Sequence[DesiredList]
    key: str
    field: str

    @property
    def item(self) -> DesiredList:
        return next(
            item
            for item in self.items
            if item.fields is not None and self.field in item.fields.values.get(self.key, {})
        )


def _sent_values(
    lists: Sequence[ListPlan], updates: Sequence[FieldUpdate], items: Sequence[DesiredList]
) -> Any:
    by_name = {item.list_name: item for item in items}
    for lp in lists:
        item = by_name.get(lp.list_name)
        if item is None:
            continue
        for key, values in lp.add_fields.items():
            for name, value in values.items():
                yield SentValue(name, value, _Ref(item, key, name))
    for update in updates:
        for name, (_old, new) in update.changes.items():
            yield SentValue(name, new, _UpdateRef(items, update.key, name))


def _describe_ref(ref: Any) -> str:
    assert isinstance(ref, _Ref | _UpdateRef | TableRef | UpdateRef)
    fields = ref.item.fields
    assert fields is not None
    declared = next(f.location for f in fields.mapping.fields if f.name == ref.field)
    return (
        f"trait mapping {fields.mapping.name!r} (field at {declared}) for audience "
        f"{ref.item.audience.name!r} ({fields.describe_member(ref.key)})"
    )


def _conflict_message(desired: DesiredDestination, conflicts: Sequence[TypeConflict]) -> str:
    lines = [
        f"destination {desired.destination.name!r}: the plan would send values Iterable "
        "refuses, so it stops here and nothing is written:"
    ]
    for conflict in conflicts:
        text = conflict.describe(_describe_ref)
        lines.append(f"  - {text}")
    return "\n".join(lines)


def _as_doubles(
    lists: Sequence[ListPlan], updates: Sequence[FieldUpdate], doubles: set[str]
) -> tuple[list[ListPlan], list[FieldUpdate]]:
    """Whole numbers bound for double fields go out as floats, so a new field's first value
    cannot type it long and get the fractional ones refused."""

    def fix(values: dict[str, Any]) -> dict[str, Any]:
        return {k: as_doubles(v, k, doubles) for k, v in values.items()}

    new_lists = [
        dataclasses.replace(lp, add_fields={k: fix(v) for k, v in lp.add_fields.items()})
        if lp.add_fields
        else lp
        for lp in lists
    ]
    new_updates = [
        dataclasses.replace(
            u,
            changes={k: (old, as_doubles(new, k, doubles)) for k, (old, new) in u.changes.items()},
        )
        for u in updates
    ]
    return new_lists, new_updates
