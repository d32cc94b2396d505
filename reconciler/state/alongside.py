"""The audiences a --target plan reads beside its targets: --target limits what is written,
never weakens a check. Two audiences of one destination whose mappings set one member's
field to different values write neither (plan/fields.py merge_fields); a plan of one of
them alone would write its value, and the next full plan report the conflict too late. So
an audience left out of the targets whose trait mapping writes a field a targeted
audience of its destination writes too (known from the manifests, nothing read) has its
SOURCE read (never its Iterable list), for its values of the targeted members' fields;
nothing is planned for it. One that cannot be read leaves those fields unwritten rather
than guessed (`Alongside.error`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from reconciler.errors import ConfigError, SourceError
from reconciler.manifest import Audience, Manifests
from reconciler.members.issue import MemberIssue
from reconciler.progress import Progress
from reconciler.state.desired import Alongside, DesiredDestination, DesiredList, build_desired
from reconciler.state.shared_fields import sharing_fields
from reconciler.traits.mapping import CompiledMapping, compile_mapping
from reconciler.words import some_names

if TYPE_CHECKING:
    from reconciler.members.model import Engine


def read_alongside(
    manifests: Manifests,
    destination: str,
    targets: Collection[str],
    engine: Engine | None,
    progress: Progress,
) -> list[Alongside]:
    """The audiences beside the targets (state/shared_fields.py), each with its source read
    (or why it could not be), after one line on stderr (`progress`) saying which and why."""
    found = [
        Alongside(audience, shared, position, _compiled(manifests, audience))
        for position, audience, shared in sharing_fields(manifests, destination, targets)
    ]
    if not found:
        return found
    fields = sorted(frozenset().union(*(a.shared for a in found)))
    one = len(found) == 1
    progress.note(
        f"destination {destination!r}: --target also reads the source of "
        f"audience{'' if one else 's'} {some_names([repr(a.audience.name) for a in found])} "
        f"(not targeted), which map{'s' if one else ''} field{'' if len(fields) == 1 else 's'} "
        f"{some_names([repr(f) for f in fields])} as a target does: a field that two "
        "audiences set differently for a member is not written, as in a full plan"
    )
    for each in found:
        try:
            built = build_desired(manifests, {each.audience.name}, engine, progress)
        except (SourceError, ConfigError) as exc:
            each.error = str(exc)
            continue
        (each.item,) = built[destination].lists
    return found


T = TypeVar("T")


@dataclass(frozen=True)
class Beside:
    """What a destination's field plan takes of its audiences beside the targets: those
    read (their DesiredLists), the fields withheld because one could not be read, and the
    issues that say so."""

    items: list[DesiredList] = field(default_factory=list)
    withheld: frozenset[str] = frozenset()
    issues: list[tuple[str, MemberIssue]] = field(default_factory=list)
    # (beside or not, index) of the targeted mapped audiences and `items`, in the order
    # a full plan merges them (the manifests')
    order: list[tuple[bool, int]] = field(default_factory=list)

    @classmethod
    def of(cls, desired: DesiredDestination, targeted: Sequence[DesiredList]) -> Beside:
        """`targeted`: the destination's mapped audiences being planned."""
        found = [a for a in desired.alongside if a.item is not None and a.item.fields is not None]
        if not desired.alongside:
            return cls()
        places = [
            (desired.positions.get(i.audience.name, 0), False, n) for n, i in enumerate(targeted)
        ]
        places += [(a.position, True, n) for n, a in enumerate(found)]
        withheld: set[str] = set()
        issues = []
        for a in desired.alongside:
            if a.error is None:
                continue
            for name in sorted(a.shared):
                withheld.add(name)
                writer = next((i for i in targeted if name in _writes(i)), None)
                if writer is not None:
                    issues.append((writer.audience.name, a.unread_issue(name)))
        return cls(
            [a.item for a in found if a.item is not None],
            frozenset(withheld),
            issues,
            [(beside, n) for _, beside, n in sorted(places)],
        )

    def in_order(self, targeted: Sequence[T], beside: Sequence[T]) -> list[T]:
        """`targeted` (as given to `of`) and `beside` (as `items`) in a full plan's order."""
        if not self.order:
            return list(targeted)
        return [beside[n] if is_beside else targeted[n] for is_beside, n in self.order]


def _writes(item: DesiredList) -> tuple[str, ...]:
    """The fields a planned audience's mapping writes."""
    return item.fields.mapping.field_names if item.fields is not None else ()


def _compiled(manifests: Manifests, audience: Audience) -> CompiledMapping:
    assert audience.spec.traits is not None
    return compile_mapping(manifests.trait_mappings[audience.spec.traits])
