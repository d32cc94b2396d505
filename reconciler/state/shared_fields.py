"""Which audiences a --target plan reads beside its targets, from the manifests alone (no
source read): those of a targeted audience's destination, not targeted, whose trait
mapping writes a field a targeted one writes (state/alongside.py says why)."""

from __future__ import annotations

from collections.abc import Collection

from reconciler.manifest import Audience, Manifests


def mapped_fields(manifests: Manifests, audience: Audience) -> frozenset[str]:
    """The fields an audience's trait mapping writes (none without one)."""
    mapping = manifests.trait_mappings.get(audience.spec.traits or "")
    return frozenset(mapping.spec.fields) if mapping is not None else frozenset()


def sharing_fields(
    manifests: Manifests, destination: str, targets: Collection[str]
) -> list[tuple[int, Audience, frozenset[str]]]:
    """The destination's audiences not in `targets` that map a field one in them maps:
    (place among the destination's audiences, audience, the fields both map), in order."""
    audiences = manifests.audiences_of(destination)
    targeted = frozenset().union(
        *(mapped_fields(manifests, a) for a in audiences if a.name in targets)
    )
    out = []
    for position, audience in enumerate(audiences):
        if audience.name in targets:
            continue
        shared = mapped_fields(manifests, audience) & targeted
        if shared:
            out.append((position, audience, shared))
    return out


def read_with(manifests: Manifests, targets: Collection[str]) -> frozenset[str]:
    """The audiences a plan of `targets` reads the sources of: theirs, and those beside
    them (a change to one can make a field the plan writes a conflict)."""
    beside = (
        audience.name
        for destination in manifests.destinations
        for _position, audience, _shared in sharing_fields(manifests, destination, targets)
    )
    return frozenset(targets).union(beside)
