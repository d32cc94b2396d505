"""json_shape.py and plan/file_shape.py: a saved plan's values are checked for type and
shape, and a wrong one is refused naming its place, never quoting it (it may be a member)."""

from __future__ import annotations

import math

import pytest

from reconciler.json_shape import (
    Fields,
    ShapeError,
    count,
    list_of,
    mapping,
    one_of,
    optional,
    percent,
    row,
    text,
)
from reconciler.plan.file_shape import field_update_line, fingerprint, issue, member_line


def _refusal(check, value: object, where: str = "x") -> str:
    with pytest.raises(ShapeError) as caught:
        check(value, where)
    return str(caught.value)


def test_scalars_refuse_the_lookalikes_json_allows() -> None:
    assert count(0, "n") == 0
    assert _refusal(count, True, "n") == "n should be a non-negative integer"
    assert _refusal(count, -1) == "x should be a non-negative integer"
    assert _refusal(count, 1.0) == "x should be a non-negative integer"
    assert percent(10, "p") == 10.0 and isinstance(percent(10, "p"), float)
    for bad in (math.inf, math.nan, -0.5, False, "10"):
        assert _refusal(percent, bad) == "x should be a non-negative number"
    assert _refusal(one_of("email", "userId"), "phone") == "x should be one of 'email', 'userId'"
    assert optional(text)(None, "t") is None


def test_nested_places_are_named_down_to_the_item() -> None:
    check = mapping(list_of(row(("name", text), ("size", count))))
    value = {"prod": [["a", 1], ["b", "2"]]}
    assert (
        _refusal(check, value, "lists") == "lists['prod'][1].size should be a non-negative integer"
    )
    assert _refusal(check, {"prod": [["a"]]}, "lists") == (
        "lists['prod'][0] should be a list of 2 (name, size)"
    )
    assert check({"prod": [["a", 1]]}, "lists") == {"prod": (("a", 1),)}


def test_fields_tell_a_missing_field_from_an_old_plan_without_it() -> None:
    fields = Fields({"version": 3, "inner": {"k": "v"}}, "plan")
    assert fields.get("version", count) == 3
    assert fields.get("added_later", count, None) is None
    assert _refusal(lambda v, w: Fields(v, w).get("gone", text), {}, "plan") == (
        "plan.gone is missing"
    )
    assert fields.object("inner").get("k", text) == "v"
    assert _refusal(lambda v, w: Fields(v, w).object("version"), {"version": 3}, "plan") == (
        "plan.version should be an object"
    )


def test_a_fingerprint_entry_holds_only_its_three_keys() -> None:
    good = {"prod": {"L": {"list_id": None, "size": 4, "digest": "ab"}}}
    assert fingerprint(good, "fp") == good
    extra = {"prod": {"L": {"list_id": 1, "size": 4, "digest": "ab", "who": "x"}}}
    assert _refusal(fingerprint, extra, "fp") == (
        "fp['prod']['L'] should hold only list_id, size and digest"
    )
    bad = {"prod": {"L": {"size": True}}}
    assert (
        _refusal(fingerprint, bad, "fp") == "fp['prod']['L'].size should be a non-negative integer"
    )


def test_a_member_line_keys_by_the_identifier_its_kind_names() -> None:
    line = ["u-1", "userId", "ann@x.io", "u-1", {"plan": "pro"}]
    assert member_line(line, "add[0]") == ("u-1", "userId", "ann@x.io", "u-1", {"plan": "pro"})
    wrong = ["ann@x.io", "userId", "ann@x.io", "u-1", {}]
    message = _refusal(member_line, wrong, "add[0]")
    assert message == "add[0].key should be the member's userId"
    # Never the member's identity in a message.
    assert "ann@x.io" not in message
    no_email = ["ann@x.io", "email", None, "u-1", {}]
    assert _refusal(member_line, no_email, "add[1]") == "add[1].key should be the member's email"


def test_issue_and_field_update_lines() -> None:
    assert issue(["a", "row 3", "invalid email", None], "i") == (
        "a",
        "row 3",
        "invalid email",
        None,
    )
    change = ["k", "email", "k", None, [["tier", None, "gold"]], "no"]
    assert _refusal(field_update_line, change, "u[0]") == (
        "u[0].merge_nested_objects should be true or false"
    )
    change[-1] = False
    assert field_update_line(change, "u[0]")[4] == (("tier", None, "gold"),)
