"""The safety policy on the Plan: one default, the rules an apply may override, and the
plan refusing itself (Plan.raise_if_unsafe) with every reason in one message."""

from __future__ import annotations

from typing import get_args, get_type_hints

import pytest

from reconciler.errors import UnsafePlanError
from reconciler.manifest.model import RemovalPolicySpec
from reconciler.members.identity import Member
from reconciler.plan import (
    DestinationPlan,
    ListDeletion,
    ListPlan,
    Plan,
    Summary,
    Violation,
    plan_list,
)
from reconciler.plan.model import source_guards
from reconciler.plan.policy import DEFAULT_MAX_REMOVAL_PERCENT, RULES, Rule, overridden_rules


def _list(remove: int, live: int = 10, **policy: object) -> ListPlan:
    return ListPlan(
        audience="vip",
        list_name="vip",
        list_id=1,
        create=False,
        description=None,
        add=(),
        remove=tuple(f"m{i}@example.com" for i in range(remove)),
        unchanged=live - remove,
        live_count=live,
        desired_count=live - remove,
        **policy,  # type: ignore[arg-type]
    )


def _plan(*lists: ListPlan, deletions: tuple[ListDeletion, ...] = ()) -> Plan:
    return Plan((DestinationPlan("prod", "hybrid", lists, deletions=deletions),))


def test_the_default_removal_share_is_one_value_everywhere() -> None:
    assert _list(0).max_removal_percent == DEFAULT_MAX_REMOVAL_PERCENT
    member = Member("a@example.com", "email", email="a@example.com")
    planned = plan_list(
        audience="vip",
        list_name="vip",
        description=None,
        desired={member.key: member},
        live_list_id=None,
        live_members=(),
    )
    assert planned.max_removal_percent == DEFAULT_MAX_REMOVAL_PERCENT
    # The schema's description tells editors the same number.
    description = RemovalPolicySpec.model_fields["maxRemovalPercent"].description or ""
    assert f"else {DEFAULT_MAX_REMOVAL_PERCENT:g})" in description


def test_removing_exactly_the_default_share_passes_and_more_is_blocked() -> None:
    assert _plan(_list(1)).raise_if_unsafe() == []  # 10% of 10: compared with ">"
    with pytest.raises(UnsafePlanError) as blocked:
        _plan(_list(2)).raise_if_unsafe()
    assert str(blocked.value) == (
        "the safety policy blocks this plan, nothing was changed: prod/vip: removes 2 of 10 "
        "members (20.0%), more than maxRemovalPercent 10%. Review it, then pass "
        "--allow-removals (or --allow-unsafe) to apply"
    )
    assert blocked.value.exit_code == 3


def test_overrides_unblock_only_their_rule_and_the_overridden_are_returned() -> None:
    plan = _plan(_list(5), deletions=(ListDeletion(7, "old"),))
    rules = {v.rule for v in plan.violations()}
    assert rules == {"removals", "list_deletion"}
    with pytest.raises(UnsafePlanError, match="deletes list 'old'") as blocked:
        plan.raise_if_unsafe(overridden_rules(allow_removals=True))
    assert "removes 5 of 10" not in str(blocked.value)
    both = overridden_rules(allow_removals=True, allow_list_deletion=True)
    assert {v.rule for v in plan.raise_if_unsafe(both)} == rules
    assert {v.rule for v in plan.raise_if_unsafe(overridden_rules(allow_unsafe=True))} == rules


def test_allow_unsafe_overrides_every_rule_there_is() -> None:
    assert overridden_rules(allow_unsafe=True) == RULES
    # Every rule a violation can name is one --allow-unsafe overrides.
    assert get_type_hints(Violation)["rule"] == Rule
    assert set(get_args(Rule)) == RULES
    assert {"removals", "list_deletion", "empty_source", "bounds", "additions"} <= RULES
    assert overridden_rules() == frozenset()
    assert overridden_rules(allow_list_deletion=True) == {"list_deletion"}


def test_problems_in_words() -> None:
    assert Summary().describe_problems() == ""
    assert Summary(
        members_skipped=1, field_values_skipped=2, lists_unread=3
    ).describe_problems() == (
        "1 member could not be used and 2 field values could not be sent and 3 audiences "
        "were left out (list not read with confidence)"
    )


def test_guard_messages_write_counts_with_thousands_separators() -> None:
    # Counts people read have separators (README): "removes 3000 of 20000" did not.
    removing = _list(3000, live=20000, max_removals=1000)
    assert [v.message for v in _plan(removing).violations()] == [
        "removes 3,000 of 20,000 members (15.0%), more than maxRemovalPercent 10%",
        "removes 3,000 members, more than maxRemovals 1,000",
    ]
    adding = ListPlan(
        audience="vip",
        list_name="vip",
        list_id=1,
        create=False,
        description=None,
        add=tuple(
            Member(f"n{i}@example.com", "email", email=f"n{i}@example.com") for i in range(3000)
        ),
        remove=(),
        unchanged=20000,
        live_count=20000,
        desired_count=23000,
        max_addition_percent=10,
        max_additions=2500,
        max_members=21000,
    )
    assert [v.message for v in _plan(adding).violations()] == [
        "guard maxMembers: audience 'vip' would leave the list with 23,000 members, more "
        "than maxMembers 21,000",
        "guard maxAdditionPercent: audience 'vip' adds 3,000 to 20,000 members (15.0%), "
        "more than maxAdditionPercent 10%",
        "guard maxAdditions: audience 'vip' adds 3,000 members, more than maxAdditions 2,500",
    ]


def _adding(add: int, live: int = 10, **policy: object) -> ListPlan:
    return ListPlan(
        audience="vip",
        list_name="vip",
        list_id=1,
        create=False,
        description=None,
        add=tuple(
            Member(f"n{i}@example.com", "email", email=f"n{i}@example.com") for i in range(add)
        ),
        remove=(),
        unchanged=live,
        live_count=live,
        desired_count=live + add,
        **policy,  # type: ignore[arg-type]
    )


def test_every_bound_passes_at_exactly_its_value_and_blocks_one_beyond() -> None:
    # README: limits compare with ">" (or "<" for minMembers): reaching one is allowed.
    at = {"max_members": 12, "max_additions": 2, "max_addition_percent": 20.0}
    assert _plan(_adding(2, **at)).violations() == []
    assert (
        _plan(_list(2, max_removals=2, max_removal_percent=20.0, min_members=8)).violations() == []
    )
    beyond = _plan(_adding(3, **at)).violations()
    assert [v.message.split(":")[0] for v in beyond] == [
        "guard maxMembers",
        "guard maxAdditionPercent",
        "guard maxAdditions",
    ]
    below = _plan(_list(3, max_removals=2, max_removal_percent=30.0, min_members=8)).violations()
    assert [v.rule for v in below] == ["bounds", "removals"]
    # A bound is no removal limit: --allow-removals does not let the list drain past it.
    with pytest.raises(UnsafePlanError, match="guard minMembers"):
        _plan(_list(3, min_members=8, max_removal_percent=30.0)).raise_if_unsafe(
            overridden_rules(allow_removals=True, allow_list_deletion=True)
        )


def test_guards_count_members_in_words_for_one_and_many() -> None:
    """A guard on a one-member list said "all 1 members would be removed" and "would leave
    the list with 1 members"; the plan counts "1 member" everywhere else."""
    (one,) = source_guards(_list(1, live=1))
    assert "yields no members, so its 1 member would be removed;" in one[1]
    (many,) = source_guards(_list(1_200, live=1_200))
    assert "yields no members, so all 1,200 members would be removed;" in many[1]
    (low,) = source_guards(_list(1, live=2, min_members=5))
    assert "would leave the list with 1 member, fewer than minMembers 5" in low[1]
    (lower,) = source_guards(_list(1, live=3, min_members=5))
    assert "would leave the list with 2 members, fewer than minMembers 5" in lower[1]
