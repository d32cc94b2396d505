"""The field_changes guard's counts and verdict (plan/field_changes.py), the tally both
engines keep (plan/field_clears.ClearTally), and the limits read from the manifest."""

from __future__ import annotations

import gzip
import hashlib
import json
from types import SimpleNamespace

import pytest

from reconciler.manifest.location import Location
from reconciler.plan import DestinationPlan, Plan
from reconciler.plan.field_changes import FieldChanges, field_changes
from reconciler.plan.field_clears import ClearTally, FieldClears
from reconciler.plan.file import load_plan, save_plan
from reconciler.plan.policy import overridden_rules
from reconciler.planning import _own_change_limits_at
from reconciler.traits.mapping import CompiledField


def test_a_change_replaces_a_value_with_another_and_a_clear_is_a_clear_only():
    tally = ClearTally()
    tally.count("plan", "gold", "silver", changed=True)  # changed
    tally.count("plan", 0, 1, changed=True)  # changed: 0 is a value
    tally.count("plan", "gold", None, changed=True)  # cleared, not changed
    tally.count("plan", None, "gold", changed=True)  # set where there was none: neither
    tally.count("plan", "", "gold", changed=True)  # empty before: neither
    tally.count("plan", "gold", "gold", changed=False)  # the same
    assert tally.compared == {"plan": 6}
    assert tally.changed == {"plan": 2}
    assert tally.cleared == {"plan": 1}


def test_only_fields_with_a_limit_and_a_change_are_kept():
    tally = ClearTally(
        compared={"plan": 10, "score": 10, "tier": 10}, changed={"plan": 3, "score": 10}
    )
    limits: dict[str, tuple[tuple[str, ...], float | None]] = {
        "plan": (("vip", "news"), 20.0),
        "score": (("vip",), None),  # no audience set one: daily fields change on everyone
        "tier": (("vip",), 0.0),
    }
    (changes,) = field_changes(tally, limits)
    assert changes == FieldChanges("plan", 10, 3, ("vip", "news"), 20.0)
    assert changes.percent == 30.0 and changes.blocks


@pytest.mark.parametrize(("changed", "blocks"), [(0, False), (2, False), (3, True)])
def test_the_limit_is_compared_with_more_than(changed, blocks):
    assert FieldChanges("plan", 10, changed, ("vip",), 20.0).blocks is blocks


def test_a_plan_over_the_limit_is_blocked_until_the_flag_or_unsafe_overrides_it():
    changes = FieldChanges("planTier", 20, 20, ("vip",), 50.0)
    plan = Plan((DestinationPlan("prod", "hybrid", (), field_changes=(changes,)),))
    (violation,) = plan.violations()
    assert (violation.list_name, violation.rule) == ("vip", "field_changes")
    assert violation.message.startswith(
        "guard field_changes: changes field 'planTier' from one value to another for 20 of "
        "the 20 members on or joining list 'vip' (100.0%), more than maxFieldChangePercent 50%"
    )
    with pytest.raises(Exception, match="--allow-field-changes"):
        plan.raise_if_unsafe(overridden_rules(allow_field_clears=True))
    assert plan.raise_if_unsafe(overridden_rules(allow_field_changes=True)) == [violation]
    assert plan.raise_if_unsafe(overridden_rules(allow_unsafe=True)) == [violation]


def test_a_saved_plan_keeps_its_changes_and_one_saved_before_the_guard_has_none(tmp_path):
    changes = FieldChanges("planTier", 20, 20, ("vip",), 50.0)
    plan = Plan((DestinationPlan("prod", "hybrid", (), field_changes=(changes,)),))
    path = tmp_path / "plan.gz"
    save_plan(path, plan, "digest", tmp_path, None)
    assert load_plan(path).plan.destinations[0].field_changes == (changes,)
    # An earlier build wrote no field_changes: its plan loads, judged as it was then.
    lines = gzip.decompress(path.read_bytes()).splitlines()
    header = json.loads(lines[0])
    for d in header["destinations"]:
        del d["field_changes"]
    body = b"".join(line + b"\n" for line in [json.dumps(header).encode(), *lines[1:-1]])
    trailer = json.dumps({"sha256": hashlib.sha256(body).hexdigest()}).encode() + b"\n"
    path.write_bytes(gzip.compress(body + trailer))
    loaded = load_plan(path).plan
    assert loaded.destinations[0].field_changes == ()
    assert loaded.violations() == []


def test_a_fields_own_limit_is_named_and_kept_by_a_saved_plan(tmp_path):
    """A field's own maxChangePercent counts instead of the audiences' policy: the violation
    named maxFieldChangePercent and said to raise it, which would not unblock the plan. It
    names the field's limit and where it is written, in a saved plan too; a row saved
    before it was recorded (five items) loads without it."""
    own = FieldChanges("planTier", 20, 20, ("vip",), 10.0, "traits.yaml:4:17")
    assert "more than maxChangePercent 10%, the limit field 'planTier' sets at " in own.message()
    assert "traits.yaml:4:17" in own.message()
    assert "maxFieldChangePercent" not in own.message()
    plan = Plan((DestinationPlan("prod", "hybrid", (), field_changes=(own,)),))
    path = tmp_path / "plan.gz"
    save_plan(path, plan, "digest", tmp_path, None)
    assert load_plan(path).plan.destinations[0].field_changes == (own,)

    lines = gzip.decompress(path.read_bytes()).splitlines()
    header = json.loads(lines[0])
    for d in header["destinations"]:
        d["field_changes"] = [row[:5] for row in d["field_changes"]]
    body = b"".join(line + b"\n" for line in [json.dumps(header).encode(), *lines[1:-1]])
    trailer = json.dumps({"sha256": hashlib.sha256(body).hexdigest()}).encode() + b"\n"
    path.write_bytes(gzip.compress(body + trailer))
    (loaded,) = load_plan(path).plan.destinations[0].field_changes
    assert loaded == FieldChanges("planTier", 20, 20, ("vip",), 10.0)
    assert "more than maxFieldChangePercent 10%" in loaded.message()


def _audience(policy: float | None, *fields: CompiledField) -> SimpleNamespace:
    """What _own_change_limits_at reads of a DesiredList: its policy, mapped fields and
    list name."""
    return SimpleNamespace(
        audience=SimpleNamespace(spec=SimpleNamespace(policy=_policy(policy))),
        fields=SimpleNamespace(mapping=SimpleNamespace(fields=fields)),
        list_name="vip",
    )


def _policy(limit: float | None) -> SimpleNamespace:
    return SimpleNamespace(maxFieldChangePercent=limit)


def _field(name: str, own: float | None, line: int) -> CompiledField:
    return CompiledField(name, name, None, None, Location("traits.yaml", line, 5), own)


def test_the_fields_own_limit_is_named_only_where_no_policy_is_as_small():
    own = _field("planTier", 10.0, 4)
    plain = _field("planTier", None, 9)
    dest = SimpleNamespace(policy=_policy(None))

    def at(*lists: SimpleNamespace) -> dict[str, str]:
        return _own_change_limits_at(SimpleNamespace(lists=list(lists), alongside=[]), dest)

    assert at(_audience(5.0, own)) == {"planTier": "traits.yaml:4:5"}  # counts instead
    assert at(_audience(None, own), _audience(20.0, plain)) == {"planTier": "traits.yaml:4:5"}
    # Another audience's policy is as small, or smaller: raising the field's would not do.
    assert at(_audience(None, own), _audience(10.0, plain)) == {}
    assert at(_audience(None, own), _audience(5.0, plain)) == {}
    assert at(_audience(None, plain)) == {}


def test_an_object_merged_in_changes_the_field_only_where_it_replaces_a_held_value():
    tally = ClearTally()
    held = {"sms": True, "n": 1, "empty": "", "deep": {"a": 1}}
    for new in (
        {"email": True},  # a key beside the profile's
        {"sms": True, "email": True},  # the same value and a new key
        {"empty": "x", "none": 2},  # where the profile holds nothing
        {"deep": {"b": 2}},  # a key beside a nested object's
    ):
        tally.count("prefs", held, new, changed=True, merge=True)
    assert tally.changed == {} and tally.cleared == {}
    for new in ({"sms": False}, {"deep": {"a": 2}}, {"n": None}):
        tally.count("prefs", held, new, changed=True, merge=True)
    # Replaced without merging: the profile's other keys are lost.
    tally.count("prefs", held, {"email": True}, changed=True)
    # A key that held a value left without one (n: None merged; the keys a replacement
    # drops) is a clear of the field, counted only as a clear (loses_value).
    assert tally.changed == {"prefs": 2}
    assert tally.cleared == {"prefs": 2}
    assert tally.compared == {"prefs": 8}


def test_joiners_left_out_of_a_guards_count_are_said_and_kept_by_a_saved_plan(tmp_path):
    """A new mapped audience over existing users: 3 of the 3 members on or joining read as
    if only 3 joined where 1,003 do; the 1,000 holding nothing are said. A saved plan keeps
    them; rows saved before they were counted (five items for clears, six for changes)
    load with none, and say what they said then."""
    clears = FieldClears("planTier", 3, 3, ("trial",), 10.0, 1000)
    changes = FieldChanges("score", 3, 3, ("trial",), 50.0, None, 1000)
    for guard in (clears, changes):
        assert (
            "of the 3 members on or joining list 'trial' (100.0%; 1,000 more joining hold "
            "nothing in it and are not counted), more than max"
        ) in guard.message()
    plan = Plan(
        (DestinationPlan("prod", "hybrid", (), field_clears=(clears,), field_changes=(changes,)),)
    )
    path = tmp_path / "plan.gz"
    save_plan(path, plan, "digest", tmp_path, None)
    loaded = load_plan(path).plan.destinations[0]
    assert (loaded.field_clears, loaded.field_changes) == ((clears,), (changes,))

    lines = gzip.decompress(path.read_bytes()).splitlines()
    header = json.loads(lines[0])
    for d in header["destinations"]:
        d["field_clears"] = [row[:5] for row in d["field_clears"]]
        d["field_changes"] = [row[:6] for row in d["field_changes"]]
    body = b"".join(line + b"\n" for line in [json.dumps(header).encode(), *lines[1:-1]])
    trailer = json.dumps({"sha256": hashlib.sha256(body).hexdigest()}).encode() + b"\n"
    path.write_bytes(gzip.compress(body + trailer))
    older = load_plan(path).plan.destinations[0]
    assert older.field_clears == (FieldClears("planTier", 3, 3, ("trial",), 10.0),)
    assert older.field_changes == (FieldChanges("score", 3, 3, ("trial",), 50.0),)
    assert "(100.0%), more than maxFieldClearPercent 10%" in older.field_clears[0].message()
