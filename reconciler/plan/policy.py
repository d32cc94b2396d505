"""The safety policy's defaults and the rules it is made of. The plan judges itself
against them (DestinationPlan.violations, Plan.raise_if_unsafe); an apply can be told to
override some rules for one run.

Imports nothing, so every layer (manifest defaults, planner, renderers) can name it."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any, Literal, get_args

# Block a plan that removes more than this share of a list's current members, unless the
# destination's or the audience's policy sets maxRemovalPercent (compared with ">").
DEFAULT_MAX_REMOVAL_PERCENT = 10.0
# Block a plan that clears a mapped field holding a value on more than this share of the
# members whose value of it was compared, unless maxFieldClearPercent says otherwise
# (plan/field_clears.py).
DEFAULT_MAX_FIELD_CLEAR_PERCENT = 10.0

Rule = Literal[
    "removals",
    "list_deletion",
    "active_campaign_adds",
    "empty_source",
    "bounds",
    "additions",
    "field_clears",
    "field_changes",
    "unfamiliar_project",
]
RULES: frozenset[str] = frozenset(get_args(Rule))


# The rules with a flag of their own (overridden_rules), in the order a message names them.
RULE_FLAGS: dict[str, str] = {
    "removals": "--allow-removals",
    "list_deletion": "--allow-list-deletion",
    "field_clears": "--allow-field-clears",
    "field_changes": "--allow-field-changes",
    # Names the destination: one whose key now reaches a project unknown to it is
    # confirmed one by one (state/unfamiliar_project.py).
    "unfamiliar_project": "--allow-new-project",
}


def override_flags(violations: Iterable[Any]) -> str:
    """The flags that apply a plan despite `violations` (those blocking it, with their
    `rule` and `destination`): their own when each has one, else --allow-unsafe alone.
    Offering --allow-removals for a source guard sent users round again: it overrides no
    guard."""
    violations = list(violations)
    blocking = {v.rule for v in violations}
    if blocking <= RULE_FLAGS.keys():
        named = sorted({v.destination for v in violations if v.rule == "unfamiliar_project"})
        flags: list[str] = []
        for rule, flag in RULE_FLAGS.items():
            if rule == "unfamiliar_project":
                flags.extend(f"{flag} {name}" for name in named)
            elif rule in blocking:
                flags.append(flag)
        return f"{' and '.join(flags)} (or --allow-unsafe)"
    return "--allow-unsafe"


def overrides(allowed: Collection[str], rule: str, destination: str) -> bool:
    """Whether `allowed` (overridden_rules) overrides `rule` in `destination`: the rule,
    or, for unfamiliar_project, the rule for that destination (--allow-new-project NAME)."""
    return rule in allowed or f"{rule}:{destination}" in allowed


def overridden_rules(
    *,
    allow_unsafe: bool = False,
    allow_removals: bool = False,
    allow_list_deletion: bool = False,
    allow_field_clears: bool = False,
    allow_field_changes: bool = False,
    allow_new_project: Iterable[str] = (),
) -> frozenset[str]:
    """The rules an apply was told to override. Only removals, list deletion, field
    clears and field changes have a flag of their own, and a destination's unfamiliar
    project one naming the destination ("unfamiliar_project:NAME"); the source guards
    (allowEmpty, bounds, additions, active campaigns) are said in the manifest, and
    --allow-unsafe overrides every rule for one run."""
    if allow_unsafe:
        return RULES
    flags = {
        "removals": allow_removals,
        "list_deletion": allow_list_deletion,
        "field_clears": allow_field_clears,
        "field_changes": allow_field_changes,
    }
    named = {f"unfamiliar_project:{name}" for name in allow_new_project}
    return frozenset(rule for rule, allowed in flags.items() if allowed) | named
