"""The pure half of trait mappings: which fields to read, and which users to update.

Field values are per user, not per list: one user on two lists with mappings gets the
fields of both, and two mappings that disagree about one user's field would flip it on
every apply, so that field is left alone and reported. A member being added to a list
gets that list's mapped fields on the subscribe itself; everyone else already on a list
gets a bulkUpdate with exactly the fields whose values differ after normalisation.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.members.identity import Member
from reconciler.members.issue import MemberIssue
from reconciler.plan.model import FieldUpdate
from reconciler.render.masking import source_value
from reconciler.traits.compare import same_value


@dataclass(frozen=True)
class MappedList:
    """One audience's mapped field values, as the field planner needs them."""

    audience: str
    members: Mapping[str, Member]
    values: Mapping[str, Mapping[str, Any]]  # member key -> field -> value
    merge_nested_objects: bool = False
    adding: Collection[str] = ()  # member keys being subscribed to this list by this plan


@dataclass
class MergedFields:
    """Every user's desired values across audiences, disagreements taken out."""

    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    merge: dict[str, bool] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)
    conflicts: list[tuple[str, MemberIssue]] = field(default_factory=list)  # (audience, issue)
    conflicted: set[tuple[str, str]] = field(default_factory=set)  # (member key, field)
    covered: dict[str, set[str]] = field(default_factory=dict)  # fields sent on subscribe

    def add_fields(self, mapped: MappedList) -> dict[str, dict[str, Any]]:
        """dataFields for the members this list subscribes: its values, minus conflicts."""
        out: dict[str, dict[str, Any]] = {}
        for key in mapped.adding:
            values = mapped.values.get(key)
            if values is None:
                continue
            out[key] = {f: v for f, v in values.items() if (key, f) not in self.conflicted}
        return out

    def to_read(self, lists: Sequence[MappedList]) -> dict[str, set[str]]:
        """Member key -> the fields whose current values are needed: members already on a
        list with a mapping, minus fields a subscribe in this plan sets anyway."""
        wanted: dict[str, set[str]] = {}
        for mapped in lists:
            adding = set(mapped.adding)
            for key, values in mapped.values.items():
                if key in adding:
                    continue
                names = {
                    f
                    for f in values
                    if (key, f) not in self.conflicted and f not in self.covered.get(key, ())
                }
                if names:
                    wanted.setdefault(key, set()).update(names)
        return wanted


def merge_fields(lists: Sequence[MappedList]) -> MergedFields:
    merged = MergedFields()
    first_from: dict[tuple[str, str], str] = {}  # (key, field) -> audience that set it
    for mapped in lists:
        adding = set(mapped.adding)
        for key, values in mapped.values.items():
            target = merged.values.setdefault(key, {})
            merged.members.setdefault(key, mapped.members[key])
            if mapped.merge_nested_objects:
                merged.merge[key] = True
            else:
                merged.merge.setdefault(key, False)
            for name, value in values.items():
                if (key, name) in merged.conflicted:
                    continue
                if name not in target:
                    target[name] = value
                    first_from[(key, name)] = mapped.audience
                elif not same_value(target[name], value):
                    merged.conflicted.add((key, name))
                    other = first_from[(key, name)]
                    merged.conflicts.append(
                        (
                            mapped.audience,
                            MemberIssue(
                                f"audiences {other!r} and {mapped.audience!r}",
                                f"field {name!r} gets {_shown(target[name])} from one and "
                                f"{_shown(value)} from the other; it is not written for "
                                "this member",
                                key,
                            ),
                        )
                    )
                    del target[name]
            if key in adding:
                merged.covered.setdefault(key, set()).update(values)
    for key, name in merged.conflicted:
        merged.covered.get(key, set()).discard(name)
    return merged


def plan_field_updates(
    merged: MergedFields,
    wanted: Mapping[str, Collection[str]],
    live: Mapping[str, Mapping[str, Any] | None],
) -> list[FieldUpdate]:
    """One FieldUpdate per user whose wanted fields differ from Iterable's values, holding
    only the fields that differ; users whose values all match get none."""
    updates: list[FieldUpdate] = []
    for key in sorted(wanted):
        desired = merged.values.get(key, {})
        current = live.get(key) or {}
        merge = merged.merge.get(key, False)
        changes = {
            name: (current.get(name), desired[name])
            for name in sorted(wanted[key])
            if name in desired
            and not same_value(desired[name], current.get(name), merge_nested_objects=merge)
        }
        if not changes:
            continue
        member = merged.members[key]
        updates.append(
            FieldUpdate(
                key=member.key,
                key_kind=member.key_kind,
                email=member.email,
                user_id=member.user_id,
                changes=changes,
                merge_nested_objects=merge,
            )
        )
    return updates


def _shown(value: Any) -> str:
    # Text can be personal data: marked so output masks it (numbers and booleans are shown,
    # as beside members in a plan).
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    return f'"{source_value(value)}"'
