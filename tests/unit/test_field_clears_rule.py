"""The field_clears guard's counts and verdict (plan/field_clears.py), and the tally the
Python engine's comparison keeps (plan/fields.py plan_field_updates)."""

from __future__ import annotations

import pytest

from reconciler.members.identity import Member
from reconciler.plan import DestinationPlan, Plan
from reconciler.plan.field_clears import ClearTally, FieldClears, field_clears
from reconciler.plan.fields import FirstMember, MappedList, MergedFields, plan_field_updates
from reconciler.plan.policy import overridden_rules
from reconciler.traits.compare import holds_value


@pytest.mark.parametrize(
    ("value", "holds"),
    [(None, False), ("", False), ([], False), ({}, False), (0, True), (False, True), ("x", True)],
)
def test_what_holds_a_value(value, holds):
    # 0 and false are values a clear loses; an empty text, list or object is none.
    assert holds_value(value) is holds


def test_a_clear_is_a_value_lost_not_a_change_nor_a_field_already_empty():
    tally = ClearTally()
    tally.count("plan", "gold", None, changed=True)  # cleared
    tally.count("plan", "gold", "", changed=True)  # cleared: empty text
    tally.count("plan", "gold", "silver", changed=True)  # changed, not cleared
    tally.count("plan", None, None, changed=False)  # nothing to lose
    tally.count("plan", "", None, changed=True)  # empty before: nothing lost
    assert tally.compared == {"plan": 5}
    assert tally.cleared == {"plan": 2}


def test_only_fields_with_a_clear_are_kept_with_their_lists_and_limit():
    tally = ClearTally(compared={"plan": 10, "score": 10}, cleared={"plan": 2})
    (clears,) = field_clears(tally, {"plan": (("vip", "news"), 5.0)})
    assert clears == FieldClears("plan", 10, 2, ("vip", "news"), 5.0)
    assert clears.percent == 20.0 and clears.blocks


@pytest.mark.parametrize(("cleared", "blocks"), [(0, False), (1, False), (2, True)])
def test_the_limit_is_compared_with_more_than(cleared, blocks):
    assert FieldClears("plan", 10, cleared, ("vip",), 10.0).blocks is blocks


def _plan(clears: FieldClears) -> Plan:
    return Plan((DestinationPlan("prod", "hybrid", (), field_clears=(clears,)),))


def test_a_plan_over_the_limit_is_blocked_until_the_flag_or_unsafe_overrides_it():
    plan = _plan(FieldClears("planTier", 20, 20, ("vip",), 10.0))
    (violation,) = plan.violations()
    assert (violation.list_name, violation.rule) == ("vip", "field_clears")
    assert violation.message.startswith(
        "guard field_clears: clears field 'planTier', which holds a value, for 20 of the "
        "20 members on or joining list 'vip' (100.0%), more than maxFieldClearPercent 10%"
    )
    with pytest.raises(Exception, match="--allow-field-clears"):
        plan.raise_if_unsafe(overridden_rules(allow_removals=True))
    assert plan.raise_if_unsafe(overridden_rules(allow_field_clears=True)) == [violation]
    assert plan.raise_if_unsafe(overridden_rules(allow_unsafe=True)) == [violation]


def test_the_python_engine_counts_every_value_it_compares():
    members = {k: Member(k, "email", k, None) for k in ("a@x.io", "b@x.io", "c@x.io")}
    values = {"a@x.io": {"plan": None}, "b@x.io": {"plan": "gold"}, "c@x.io": {"plan": None}}
    # The list gives each its values, as merge_fields has it (FirstMember looks a member up
    # in a list that gives it values).
    merged = MergedFields(values=values, members=FirstMember([MappedList("a", members, values)]))
    live = {"a@x.io": {"plan": "gold"}, "b@x.io": {"plan": "gold"}, "c@x.io": None}
    tally = ClearTally()
    updates = plan_field_updates(merged, {k: {"plan"} for k in members}, live, tally=tally)
    assert [u.key for u in updates] == ["a@x.io"]
    assert (tally.compared, tally.cleared) == ({"plan": 3}, {"plan": 1})


@pytest.mark.parametrize(
    ("value", "holds"),
    [
        ({"city": None, "zip": ""}, False),  # a struct over a join that found nothing
        ({"home": {"city": None}, "tags": []}, False),
        ({"city": None, "zip": "0150"}, True),
        ({"home": {"city": 0}}, True),
    ],
)
def test_an_object_holds_a_value_only_where_one_of_its_keys_does(value, holds):
    assert holds_value(value) is holds


def test_an_object_that_loses_a_key_holding_a_value_is_a_clear_of_its_field():
    old = {"city": "Rome", "zip": "00184"}
    tally = ClearTally()
    tally.count("address", old, {"city": None, "zip": None}, changed=True)  # all nulls
    tally.count("address", old, {"city": "Oslo"}, changed=True)  # replaced: zip lost
    tally.count("address", old, {"city": "Oslo", "zip": "0150"}, changed=True)  # changed
    tally.count("address", old, {"city": "Oslo"}, changed=True, merge=True)
    tally.count("address", old, {"zip": None}, changed=True, merge=True)
    tally.count("address", {"city": "Rome", "zip": None}, {"city": "Rome"}, changed=True)
    assert tally.compared == {"address": 6}
    assert tally.cleared == {"address": 3}
    assert tally.changed == {"address": 3}


def test_an_object_of_nulls_over_a_field_holding_none_is_no_update():
    # Planned as an update on every run where Iterable does not keep the nulls.
    members = {k: Member(k, "email", k, None) for k in ("a@x.io", "b@x.io", "c@x.io")}
    values = {k: {"address": {"city": None, "zip": None}} for k in members}
    merged = MergedFields(values=values, members=FirstMember([MappedList("a", members, values)]))
    live = {"a@x.io": None, "b@x.io": {}, "c@x.io": {"address": {"city": "Rome"}}}
    tally = ClearTally()
    updates = plan_field_updates(merged, {k: {"address"} for k in members}, live, tally=tally)
    assert [u.key for u in updates] == ["c@x.io"]
    assert tally.cleared == {"address": 1}
