"""The field_clears guard's counts: how many of the members whose mapped field was compared
hold a value in Iterable that the plan would clear.

Iterable keeps no history of a field's values, so a source whose column arrived empty (a
broken export, a join that nulls it, a mapping pointed at the wrong column) would clear
that field on every member in one apply, with nothing to restore it from. Membership has
removal limits; this is the same limit for fields, judged per field over the members
whose current value the plan read: those already on a mapped list, and those it subscribes
with a clear, which a subscribe does not send (plan/fields.sent_on_subscribe): their value
is read and the clear planned as an update, so a joining member's value is counted too.
A joiner holding nothing there loses nothing and gets no write: not counted, or new users
joining with empty cells would dilute the clears of those already on the list."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.plan.policy import DEFAULT_MAX_FIELD_CLEAR_PERCENT
from reconciler.traits.compare import holds_value, loses_value, same_value
from reconciler.words import quantity


def merge_replaces(
    desired: Mapping[str, Any], live: Mapping[str, Any], texts: frozenset[str], path: str
) -> bool:
    """Whether merging the object `desired` into the profile's `live` (mergeNestedObjects,
    as same_value compares it) replaces a value the profile holds: a key both name whose
    value there is another. A key the profile lacks, or holds nothing in, is only added:
    rolling out a new nested key to every member loses nothing, and was counted a change
    of the field on each of them."""
    for key, value in desired.items():
        held = live.get(key)
        if not holds_value(held):
            continue
        at = f"{path}.{key}"
        if isinstance(value, Mapping) and isinstance(held, Mapping):
            if merge_replaces(value, held, texts, at):
                return True
        elif not same_value(value, held, merge_nested_objects=True, texts=texts, path=at):
            return True
    return False


@dataclass
class ClearTally:
    """Per field, while values are compared: members compared, those of them holding a
    value that the plan's new value clears, and those holding a value that it replaces
    with another (the field_changes guard, plan/field_changes.py). A clear is counted as a
    clear only, and a value set where there was none is neither: nothing is lost. An
    object that loses a key holding a value (`loses_value`: replaced by one without it, or
    given a null for it) is a clear of its field: Iterable keeps no earlier value of it."""

    compared: dict[str, int] = field(default_factory=dict)
    cleared: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    # Joiners holding nothing in the field: compared, not counted (the guards' messages
    # say how many, or 3 of 3 reads as if only 3 joined where 1,003 do).
    left_out: dict[str, int] = field(default_factory=dict)

    def leave_out(self, name: str) -> None:
        self.left_out[name] = self.left_out.get(name, 0) + 1

    def count(
        self,
        name: str,
        old: Any,
        new: Any,
        changed: bool,
        merge: bool = False,
        texts: frozenset[str] = frozenset(),
    ) -> None:
        """`merge`: the object `new` is merged into `old` (mergeNestedObjects), where only
        a key whose held value it replaces changes anything (`merge_replaces`); `texts`
        as same_value takes them. A key that held a value left without one clears the
        field (`loses_value`)."""
        self.compared[name] = self.compared.get(name, 0) + 1
        if not changed or not holds_value(old):
            return
        if loses_value(old, new, merge_nested_objects=merge):
            self.cleared[name] = self.cleared.get(name, 0) + 1
        elif (
            merge
            and isinstance(old, Mapping)
            and isinstance(new, Mapping)
            and not merge_replaces(new, old, texts, name)
        ):
            return  # keys added beside the profile's: nothing is lost
        else:
            self.changed[name] = self.changed.get(name, 0) + 1


@dataclass(frozen=True)
class FieldClears:
    """One mapped field's clears in a destination's plan, and the limit they are held to."""

    field: str
    compared: int  # members whose current value of it was compared
    cleared: int  # of them, those holding a value that the plan clears
    lists: tuple[str, ...]  # the lists whose audiences map it (for the violation's place)
    limit: float  # maxFieldClearPercent: the smallest of those audiences'
    left_out: int = 0  # joiners holding nothing in it: not counted (plans saved before: 0)

    @property
    def percent(self) -> float:
        return percent_of(self.cleared, self.compared)

    @property
    def blocks(self) -> bool:
        return over_limit(self.cleared, self.compared, self.limit)

    def message(self) -> str:
        return (
            f"guard field_clears: clears field {self.field!r}, which holds a value, for "
            f"{self.cleared:,} of the {quantity(self.compared, 'member')} on or joining "
            f"{on_lists(self.lists)} ({self.percent:.1f}%{not_counted(self.left_out)}), "
            "more than maxFieldClearPercent "
            f"{self.limit:g}%; Iterable keeps no earlier value: check the source's column "
            "(an export that emptied it, a join that nulls it), or raise "
            "maxFieldClearPercent in the audience's policy where such clears are normal"
        )

    def to_list(self) -> list[Any]:
        return [
            self.field,
            self.compared,
            self.cleared,
            list(self.lists),
            self.limit,
            self.left_out,
        ]


def percent_of(count: int, compared: int) -> float:
    return 100.0 * count / compared if compared else 0.0


def over_limit(count: int, compared: int, limit: float) -> bool:
    """The rule of both field guards (clears, changes): some, and more than `limit`
    percent of the members compared (`>`, as maxRemovalPercent is compared)."""
    return count > 0 and percent_of(count, compared) > limit


def not_counted(left_out: int) -> str:
    """What a guard's count leaves out: joiners holding nothing in the field."""
    if not left_out:
        return ""
    if left_out == 1:
        return "; 1 more joining holds nothing in it and is not counted"
    return f"; {left_out:,} more joining hold nothing in it and are not counted"


def on_lists(names: tuple[str, ...]) -> str:
    if len(names) == 1:
        return f"list {names[0]!r}"
    return "lists " + ", ".join(repr(n) for n in names) if names else "its lists"


def field_clears(
    tally: ClearTally, limits: dict[str, tuple[tuple[str, ...], float]]
) -> tuple[FieldClears, ...]:
    """The clears of each field `tally` compared; `limits`: field -> (lists mapping it,
    the limit). Only fields with some clear are kept: the rest cannot block."""
    out = []
    for name in sorted(tally.cleared):
        lists, limit = limits.get(name, ((), DEFAULT_MAX_FIELD_CLEAR_PERCENT))
        out.append(
            FieldClears(
                name,
                tally.compared[name],
                tally.cleared[name],
                lists,
                limit,
                tally.left_out.get(name, 0),
            )
        )
    return tuple(out)
