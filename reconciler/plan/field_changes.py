"""The field_changes guard's counts: how many of the members whose mapped field was
compared hold a value in Iterable that the plan replaces with another.

Opt-in (maxFieldChangePercent, no limit by default): daily fields (a score, lastSeen)
change on everyone. But a mapping pointed at the wrong column, or a source whose columns
shifted (a CSV header reordered, a SQL join that duplicates rows), rewrites a field on
every member in one apply, and Iterable keeps no earlier value. Counted with the clears
(plan/field_clears.ClearTally) over the same members; a clear is not also a change, and a
value set where there was none is neither."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.plan.field_clears import (
    ClearTally,
    not_counted,
    on_lists,
    over_limit,
    percent_of,
)
from reconciler.words import quantity


@dataclass(frozen=True)
class FieldChanges:
    """One mapped field's changes in a destination's plan, and the limit they are held to."""

    field: str
    compared: int  # members whose current value of it was compared
    changed: int  # of them, those holding a value that the plan replaces with another
    lists: tuple[str, ...]  # the lists whose audiences map it (for the violation's place)
    limit: float  # maxFieldChangePercent: the smallest those audiences set
    # Where the field's own maxChangePercent is written, when the limit is that alone: it
    # counts instead of the audiences' policy, so raising their maxFieldChangePercent, as
    # the violation said, would not unblock the plan.
    own_limit_at: str | None = None
    left_out: int = 0  # joiners holding nothing in it: not counted (plans saved before: 0)

    @property
    def percent(self) -> float:
        return percent_of(self.changed, self.compared)

    @property
    def blocks(self) -> bool:
        return over_limit(self.changed, self.compared, self.limit)

    def message(self) -> str:
        if self.own_limit_at is None:
            limit = f"maxFieldChangePercent {self.limit:g}%"
            raise_it = (
                "raise maxFieldChangePercent in the audience's policy, or the field's "
                "maxChangePercent in its mapping,"
            )
        else:
            limit = (
                f"maxChangePercent {self.limit:g}%, the limit field {self.field!r} sets at "
                f"{self.own_limit_at}"
            )
            raise_it = "raise that maxChangePercent"
        return (
            f"guard field_changes: changes field {self.field!r} from one value to another "
            f"for {self.changed:,} of the {quantity(self.compared, 'member')} on or joining "
            f"{on_lists(self.lists)} ({self.percent:.1f}%{not_counted(self.left_out)}), "
            f"more than {limit}; Iterable "
            "keeps no earlier value: check the mapping and the source's columns (a mapping "
            "pointed at the wrong column, a reordered header, a join that duplicates rows), "
            f"or {raise_it} where such changes are normal"
        )

    def to_list(self) -> list[Any]:
        return [
            self.field,
            self.compared,
            self.changed,
            list(self.lists),
            self.limit,
            self.own_limit_at,
            self.left_out,
        ]


def field_changes(
    tally: ClearTally,
    limits: dict[str, tuple[tuple[str, ...], float | None]],
    own_limits_at: Mapping[str, str] | None = None,
) -> tuple[FieldChanges, ...]:
    """The changes of each field `tally` compared; `limits`: field -> (lists mapping it,
    the limit, None where no audience mapping it sets one); `own_limits_at`: the fields
    whose limit is their own maxChangePercent, and where it is written. Only fields with a
    limit and some change are kept: the rest cannot block."""
    out = []
    for name in sorted(tally.changed):
        lists, limit = limits.get(name, ((), None))
        if limit is not None:
            out.append(
                FieldChanges(
                    name,
                    tally.compared[name],
                    tally.changed[name],
                    lists,
                    limit,
                    (own_limits_at or {}).get(name),
                    tally.left_out.get(name, 0),
                )
            )
    return tuple(out)
