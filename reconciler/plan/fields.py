"""The pure half of trait mappings: which fields to read, and which users to update.

Field values are per user, not per list: one user on two lists with mappings gets the
fields of both, and two mappings that disagree about one user's field would flip it on
every apply, so that field is left alone and reported. A member being added to a list
gets that list's mapped fields on the subscribe itself; everyone else already on a list
gets a bulkUpdate with exactly the fields whose values differ after normalisation.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.members.identity import Member
from reconciler.members.issue import MemberIssue
from reconciler.plan.field_clears import ClearTally
from reconciler.plan.model import FieldUpdate
from reconciler.render.masking import source_value
from reconciler.traits.compare import holds_value, same_value


@dataclass(frozen=True)
class MappedList:
    """One audience's mapped field values, as the field planner needs them."""

    audience: str
    members: Mapping[str, Member]
    values: Mapping[str, Mapping[str, Any]]  # member key -> field -> value
    merge_nested_objects: bool = False
    adding: Collection[str] = ()  # member keys being subscribed to this list by this plan


class FirstMember(Mapping[str, Member]):
    """Member key -> the member as the first list giving it values has it, looked up in
    the lists themselves: a merged copy would cost a dict entry per member. Not a list
    that holds the key among its members without values (held back by consent, or
    beside a --target without the field): in a hybrid project its member may be another
    profile under the same text (an email there, a userId here), and the update was
    written to it. One key's look-up walks the lists; `of` finds many keys' members in
    one walk."""

    def __init__(self, lists: Sequence[MappedList]):
        self._lists = [(mapped.members, mapped.values) for mapped in lists]

    def __getitem__(self, key: str) -> Member:
        for members, values in self._lists:
            if key in values:
                member = members.get(key)
                if member is not None:
                    return member
        raise KeyError(key)

    def of(self, keys: Iterable[str]) -> dict[str, Member]:
        """The members of `keys` (each must be in a list), as `self[key]` gives each. Each
        list is asked for the keys not yet found, or walked when it is the smaller: at
        most one look-up per member of each list, where `self[key]` for every member of
        a destination's 1,000 audiences would ask each of them for each member."""
        left = set(keys)
        found: dict[str, Member] = {}
        for members, values in self._lists:
            if not left:
                break
            asked = left if len(left) < len(values) else values.keys()
            here = {key: members[key] for key in asked if key in left and key in values}
            found.update(here)
            left.difference_update(here)
        if left:
            raise KeyError(next(iter(left)))
        return found

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for _, values in self._lists:
            for key in values:
                if key not in seen:
                    seen.add(key)
                    yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass
class MergedFields:
    """Every user's desired values across audiences, disagreements taken out.

    Memory grows with the audience, so nothing per member is kept twice: `values` shares
    the first list's dict for a member until a second list changes it, `merge` holds only
    the members whose values merge nested objects, and `members` looks members up in the
    lists."""

    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    merge: dict[str, bool] = field(default_factory=dict)  # only True entries; absent = False
    members: FirstMember = field(default_factory=lambda: FirstMember([]))
    conflicts: list[tuple[str, MemberIssue]] = field(default_factory=list)  # (audience, issue)
    conflicted: set[tuple[str, str]] = field(default_factory=set)  # (member key, field)
    covered: dict[str, set[str]] = field(default_factory=dict)  # fields sent on subscribe
    # Member key -> the fields a list subscribing it maps to an object (read first)
    objects: dict[str, set[str]] = field(default_factory=dict)
    # Member key -> the fields read only because lists subscribing it map them to a clear
    # or an object (set by `to_read`): no list it is already on maps them
    joining: dict[str, frozenset[str]] = field(default_factory=dict)

    def add_fields(
        self, mapped: MappedList, live: Mapping[str, Mapping[str, Any] | None] | None = None
    ) -> dict[str, dict[str, Any]]:
        """dataFields for the members this list subscribes: its values, minus conflicts,
        minus clears (`sent_on_subscribe`), and minus objects over one the member's profile
        holds (`live`, the values read: `object_on_subscribe`)."""
        out: dict[str, dict[str, Any]] = {}
        for key in mapped.adding:
            values = mapped.values.get(key)
            if values is None:
                continue
            held = (live or {}).get(key) or {}
            out[key] = {
                f: v
                for f, v in values.items()
                if (key, f) not in self.conflicted
                and (sent_on_subscribe(v) or object_on_subscribe(v, held.get(f)))
            }
        return out

    def to_read(self, lists: Sequence[MappedList]) -> dict[str, frozenset[str]]:
        """Member key -> the fields whose current values are needed: members already on a
        list with a mapping, minus fields a subscribe in this plan sets anyway, and the
        members a list subscribes for the fields it would clear or give an object
        (`sent_on_subscribe`).
        Members mostly want the same fields, so equal sets are one shared frozenset.
        Sets `joining`: of those fields, the ones only a subscribing list wanted read."""
        wanted: dict[str, frozenset[str]] = {}
        shared: dict[frozenset[str], frozenset[str]] = {}
        joiners = {key for mapped in lists for key in mapped.adding}
        on_list: dict[str, frozenset[str]] = {}  # of joiners: fields a list they are on maps
        for mapped in lists:
            adding = set(mapped.adding)
            for key, values in mapped.values.items():
                fields: Iterable[str] = values
                if key in adding:
                    fields = (f for f, v in values.items() if not sent_on_subscribe(v))
                names = frozenset(
                    f
                    for f in fields
                    if (key, f) not in self.conflicted and f not in self.covered.get(key, ())
                )
                if not names:
                    continue
                if key in adding:
                    joined = self.joining.get(key, frozenset()) | names
                    self.joining[key] = shared.setdefault(joined, joined)
                elif key in joiners:
                    on_list[key] = on_list.get(key, frozenset()) | names
                before = wanted.get(key)
                if before is not None:
                    names = names | before
                wanted[key] = shared.setdefault(names, names)
        for key in self.joining.keys() & on_list.keys():
            joined = self.joining[key] - on_list[key]
            self.joining[key] = shared.setdefault(joined, joined)
        return wanted


def sent_on_subscribe(value: Any) -> bool:
    """Whether a subscribe carries this mapped value unread. Not an object: one replaces
    the profile's whole object (without mergeNestedObjects: another team's keys beside
    the mapped ones are wiped) or merges its nulls into it, so the plan reads the member's
    field first (`object_on_subscribe`). Not a clear (null, empty text, an
    empty list or object: traits.compare.holds_value): a subscribe's user may already exist
    in Iterable, holding a value set by another team or an earlier run, and a null sent
    unread would erase it unseen, shown as a mere add and outside the field_clears guard.
    The plan reads that member's field instead (`to_read`), as for a member already on
    the list: where it holds a value the clear is an update, shown and counted by the
    guard; where it holds none nothing is sent. (The JSON texts of these clears are
    members/engine/field_tables.CLEAR_TEXTS, which the DuckDB engine goes by.)"""
    if isinstance(value, Mapping):
        return False
    return value is not None and value != "" and value != []


def object_on_subscribe(value: Any, held: Any) -> bool:
    """Whether a subscribe carries an object after its member's field was read (`held`,
    None when the profile or the field is not there): only where the profile holds no
    value in that field, nothing being there to lose. Where it holds one, the object is a
    field update instead (plan_field_updates), shown in the plan as the object it replaces
    (`~ ***@***#1: address {...} -> {...}`) and counted by the field guards: a key it
    loses is a clear (traits.compare.loses_value). An object holding no value (`{}`, or
    nulls alone) is a clear, never sent on a subscribe. Both engines go by this."""
    return isinstance(value, Mapping) and holds_value(value) and not holds_value(held)


def merge_fields(lists: Sequence[MappedList]) -> MergedFields:
    merged = MergedFields(members=FirstMember(lists))
    first_from: dict[tuple[str, str], int] = {}  # (key, field) -> index of the list setting it
    copied: set[str] = set()  # members whose merged values are their own dict, not a list's
    # Which list set a field is asked for its mapping's mode and for a conflict's wording.
    # Where every mapping has one mode, only a conflict asks, and a walk of the lists finds
    # it; where modes mix, every field two lists give asks, so each member's first list is
    # kept as it is met (a walk for each would be quadratic in the audiences).
    mixed = len({mapped.merge_nested_objects for mapped in lists}) > 1
    started: dict[str, int] = {}  # member key -> its first list, where modes mix
    by_email, user_first = user_keys(lists)
    two_kinds = _two_kinds_conflicts(lists, merged, user_first)
    for index, mapped in enumerate(lists):
        adding = set(mapped.adding)
        for key, values in mapped.values.items():
            if mapped.merge_nested_objects:
                merged.merge[key] = True
            if key in adding:
                merged.covered.setdefault(key, set()).update(
                    name for name, value in values.items() if sent_on_subscribe(value)
                )
                objects = {name for name, value in values.items() if _object(value)}
                if objects:
                    merged.objects.setdefault(key, set()).update(objects)
            target = merged.values.get(key)
            if target is None:
                # The first list with this member: its values, shared. Which list set each
                # field is only asked when another list disagrees, so it is worked out then.
                merged.values[key] = values  # type: ignore[assignment]
                if mixed:
                    started[key] = index
                continue
            if key not in copied:
                target = merged.values[key] = dict(target)
                copied.add(key)
            for name, value in values.items():
                if (key, name) in merged.conflicted:
                    continue
                if name not in target:
                    target[name] = value
                    first_from[(key, name)] = index
                    continue
                modes_differ = mixed and (
                    lists[_setter(lists, first_from, started, key, name)].merge_nested_objects
                    != mapped.merge_nested_objects
                )
                reason = conflict_reason(name, target[name], value, modes_differ)
                if reason is not None:
                    merged.conflicted.add((key, name))
                    other = lists[_setter(lists, first_from, started, key, name)].audience
                    merged.conflicts.append(
                        (
                            mapped.audience,
                            MemberIssue(
                                f"audiences {other!r} and {mapped.audience!r}", reason, key
                            ),
                        )
                    )
                    del target[name]
    for key, name in two_kinds:
        _hold_back(merged, copied, key, name)
    _settle_across_keys(lists, merged, copied, by_email)
    for key, name in merged.conflicted:
        merged.covered.get(key, set()).discard(name)
        merged.objects.get(key, set()).discard(name)
    return merged


def user_keys(
    lists: Sequence[MappedList],
) -> tuple[dict[str, list[tuple[int, str]]], dict[str, int]]:
    """One walk of the lists' members keyed by a userId: (email -> [(list, key)...] of
    those given with an email, for `same_person_pairs`; key -> the first list holding it,
    of those whose email is not the key's text, for `two_kinds_keys`)."""
    by_email: dict[str, list[tuple[int, str]]] = {}
    user_first: dict[str, int] = {}
    for j, mapped in enumerate(lists):
        for key in mapped.values:
            member = mapped.members.get(key)
            if member is None or member.key_kind != "userId":
                continue
            if member.email:
                by_email.setdefault(member.email, []).append((j, key))
            if member.email != key:
                user_first.setdefault(key, j)
    return by_email, user_first


def same_person_pairs(
    lists: Sequence[MappedList], by_email: Mapping[str, list[tuple[int, str]]] | None = None
) -> list[tuple[int, str, int, str]]:
    """(i, email key, j, userId key): a member list i keys by its email (its source gave
    no userId) that list j keys by a userId given with that email, in a hybrid project.
    One profile (Iterable's emails are unique in a project), under two keys: their values
    are settled as one member's, or both subscribes wrote the field, and the field
    flipped on every apply between the two. In list i's order, then by j (both engines).
    `by_email`: as `user_keys` finds it, when it was."""
    if by_email is None:
        by_email, _ = user_keys(lists)
    if not by_email:
        return []
    out: list[tuple[int, str, int, str]] = []
    for i, mapped in enumerate(lists):
        for key in mapped.values:
            member = mapped.members.get(key)
            if member is None or member.key_kind != "email":
                continue
            out.extend((i, key, j, other) for j, other in by_email.get(key, ()) if j != i)
    return out


def _settle_across_keys(
    lists: Sequence[MappedList],
    merged: MergedFields,
    copied: set[str],
    by_email: Mapping[str, list[tuple[int, str]]],
) -> None:
    """merge_fields' conflicts between one person's two keys (same_person_pairs): a field
    both give values that conflict_reason tells apart is written for neither key."""
    pairs = same_person_pairs(lists, by_email)
    for i, email_key, j, user_key in pairs:
        # Worded as merge_fields words them: the list first in order, then the other.
        (first, first_key), (later, later_key) = sorted([(i, email_key), (j, user_key)])
        held, value = lists[first].values[first_key], lists[later].values[later_key]
        for name in sorted(held.keys() & value.keys()):
            if (email_key, name) in merged.conflicted or (user_key, name) in merged.conflicted:
                continue
            modes_differ = lists[i].merge_nested_objects != lists[j].merge_nested_objects
            reason = conflict_reason(name, held[name], value[name], modes_differ)
            if reason is None:
                continue
            for key in (email_key, user_key):
                _hold_back(merged, copied, key, name)
            where = f"audiences {lists[first].audience!r} and {lists[later].audience!r}"
            merged.conflicts.append((lists[later].audience, MemberIssue(where, reason, later_key)))
    _hold_back_other_keys(lists, merged, copied, pairs)


def two_kinds_reason(name: str) -> str:
    """Why a field of a member whose key is an email in one list and the same text as a
    userId in another is not written (both engines)."""
    return (
        f"field {name!r} gets a value for this text as an email in one and as a userId "
        "(with another email, or none) in the other: two profiles in Iterable, which the "
        "plan cannot tell apart by the text; it is not written for either"
    )


def two_kinds_keys(
    lists: Sequence[MappedList], user_first: Mapping[str, int]
) -> dict[str, tuple[int, int]]:
    """Keys one list holds as an email and another as a userId whose email is not that
    text (`user_first`, from `user_keys`), in a hybrid project: key -> (the first list
    holding it as either kind, the first holding it as the other kind), in the first
    list's order. The planner groups members by key text, so its value of a field would
    be read from one of the two profiles and written to whichever the first list names.
    Only the members of `user_first`'s keys are looked up."""
    if not user_first:
        return {}
    first: dict[str, tuple[int, int, str]] = {}  # key -> (list, position, kind) first held
    found: dict[str, tuple[int, int]] = {}
    for i, mapped in enumerate(lists):
        for pos, key in enumerate(mapped.values):
            if key not in user_first:
                continue
            member = mapped.members.get(key)
            if member is None:
                continue
            kind = member.key_kind
            if kind == "userId" and member.email == key:
                # The profile of that userId and that email: one person with either kind.
                continue
            held = first.get(key)
            if held is None:
                first[key] = (i, pos, kind)
            elif held[2] != kind and key not in found:
                found[key] = (held[0], i)
    return {key: found[key] for key in sorted(found, key=lambda k: first[k][:2])}


def _two_kinds_conflicts(
    lists: Sequence[MappedList], merged: MergedFields, user_first: Mapping[str, int]
) -> list[tuple[str, str]]:
    """Every field a list gives a value of for a key two kinds share (`two_kinds_keys`):
    in conflict before any other (merge_fields then skips it), reported once per field,
    and returned (key, field) to be taken out of the merged values."""
    found = []
    for key, (first, later) in two_kinds_keys(lists, user_first).items():
        names = sorted({n for mapped in lists for n in mapped.values.get(key, ())})
        where = f"audiences {lists[first].audience!r} and {lists[later].audience!r}"
        for name in names:
            merged.conflicted.add((key, name))
            found.append((key, name))
            merged.conflicts.append(
                (lists[later].audience, MemberIssue(where, two_kinds_reason(name), key))
            )
    return found


def _hold_back(merged: MergedFields, copied: set[str], key: str, name: str) -> None:
    """Field `name` is written for member `key` by no list (a conflict)."""
    merged.conflicted.add((key, name))
    if key not in copied:
        merged.values[key] = dict(merged.values[key])
        copied.add(key)
    merged.values[key].pop(name, None)


def _hold_back_other_keys(
    lists: Sequence[MappedList],
    merged: MergedFields,
    copied: set[str],
    pairs: Sequence[tuple[int, str, int, str]],
) -> None:
    """A field held back for one of a person's two keys (a conflict under it alone: two
    lists keying her by email disagree) is held back for the other too, where its list
    gives it a value: else that list's subscribe wrote it, the value the plan says is
    written for neither. Until none is left (a key held back may hold back another)."""
    changed = True
    while changed:
        changed = False
        for i, email_key, j, user_key in pairs:
            shared = lists[i].values[email_key].keys() & lists[j].values[user_key].keys()
            for name in shared:
                held = (email_key, name) in merged.conflicted
                if held == ((user_key, name) in merged.conflicted):
                    continue
                _hold_back(merged, copied, user_key if held else email_key, name)
                changed = True


def _object(value: Any) -> bool:
    """An object a subscribe may carry once read (`object_on_subscribe`): not `{}`, a
    clear. Its JSON text starts with `{` (the DuckDB engine's test)."""
    return isinstance(value, Mapping) and bool(value)


def _setter(
    lists: Sequence[MappedList],
    first_from: Mapping[tuple[str, str], int],
    started: Mapping[str, int],
    key: str,
    name: str,
) -> int:
    """The index of the list that set a member's merged field (merge_fields): the one it
    came from (`first_from`), else the one its values started from (`started` when kept)."""
    setter = first_from.get((key, name), started.get(key))
    if setter is None:
        setter = next(i for i, mapped in enumerate(lists) if key in mapped.values)
    return setter


def conflict_reason(name: str, first: Any, value: Any, modes_differ: bool) -> str | None:
    """Why two audiences' values for one member's field cannot both be written, or None
    when they can. Shared by both engines (state/field_tables.py), so they agree.

    Equal objects still conflict when one mapping merges nested objects and the other
    replaces them: a subscribe sends each list's own mode, so the outcome would hang on
    the order of requests (the replacing one, last or not, wipes the keys the profile has
    beside them) while an update of a member already on both lists merges; and either
    outcome then compares as done. Scalars and lists are written alike in both modes."""
    if not same_value(first, value):
        return (
            f"field {name!r} gets {shown_value(first)} from one and {shown_value(value)} "
            "from the other; it is not written for this member"
        )
    if modes_differ and isinstance(first, Mapping) and isinstance(value, Mapping):
        return (
            f"field {name!r} gets {shown_value(value)} from both, merged into the profile's "
            "object by one (mergeNestedObjects) and replacing it by the other; it is not "
            "written for this member"
        )
    return None


def plan_field_updates(
    merged: MergedFields,
    wanted: Mapping[str, Collection[str]],
    live: Mapping[str, Mapping[str, Any] | None],
    texts: frozenset[str] = frozenset(),
    tally: ClearTally | None = None,
) -> list[FieldUpdate]:
    """One FieldUpdate per user whose wanted fields differ from Iterable's values, holding
    only the fields that differ; users whose values all match get none. `texts`: the
    project's string fields (traits.compare.text_fields); `tally` counts, per field, the
    values compared and those cleared (the field_clears guard). An object a subscribe
    carries (`object_on_subscribe`: the profile holds no value there) is no update."""
    changed_fields: list[tuple[str, dict[str, tuple[Any, Any]], bool]] = []
    tally = tally if tally is not None else ClearTally()
    for key in sorted(wanted):
        desired = merged.values.get(key, {})
        current = live.get(key) or {}
        merge = merged.merge.get(key, False)
        changes = {}
        objects = merged.objects.get(key, ())
        for name in sorted(wanted[key]):
            if name not in desired:
                continue
            old, new = current.get(name), desired[name]
            # A joiner holding nothing here loses nothing: not counted by the guards, or
            # 1,000 new users would dilute 100 members' clears to under the limit. Its value
            # is still compared: `[]` where the profile has no field is written.
            counted = holds_value(old) or name not in merged.joining.get(key, ())
            if not counted:
                tally.leave_out(name)
            if name in objects and not holds_value(old):
                if counted:
                    tally.count(name, old, new, changed=False)  # on the subscribe
                continue
            changed = not same_value(new, old, merge_nested_objects=merge, texts=texts, path=name)
            if counted:
                tally.count(name, old, new, changed, merge, texts)
            if changed:
                changes[name] = (old, new)
        if changes:
            changed_fields.append((key, changes, merge))
    members = merged.members.of(key for key, _, _ in changed_fields)
    return [
        FieldUpdate(
            key=members[key].key,
            key_kind=members[key].key_kind,
            email=members[key].email,
            user_id=members[key].user_id,
            changes=changes,
            merge_nested_objects=merge,
        )
        for key, changes, merge in changed_fields
    ]


def shown_value(value: Any) -> str:
    """A value in a conflict's message."""
    # Text can be personal data: marked so output masks it (numbers and booleans are shown,
    # as beside members in a plan).
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    return f'"{source_value(value)}"'
