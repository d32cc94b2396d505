"""traits/limits.py: Iterable's size limits on a field value, a member's request and a
project's field count."""

from __future__ import annotations

from reconciler.iterable.batching import encode
from reconciler.traits.limits import (
    FIELD_TEXT_MAX_CHARS,
    LONG_MAX,
    LONG_MIN,
    MEMBER_FIELDS_MAX_BYTES,
    beyond_long,
    field_limit_note,
    fits_request,
    over_limits,
    over_request,
)


def test_text_over_the_limit_is_found_wherever_it_stands() -> None:
    assert over_limits("x" * FIELD_TEXT_MAX_CHARS) is None
    assert over_limits(10**4000) is None
    long = "é" * (FIELD_TEXT_MAX_CHARS + 1)
    assert over_limits(long) == (
        "holds text of 32,001 characters, over the about 32,000 Iterable keeps in a field value"
    )
    nested = [1, ["short", {"deep": {"er": "y" * 40_000}}]]
    message = over_limits(nested)
    assert message is not None and "40,000 characters" in message
    # An object's keys are field names, not values.
    assert over_limits({"k" * 40_000: 1}) is None


def test_a_list_nested_thousands_deep_is_measured_without_recursion() -> None:
    value: list[object] = ["z" * 33_000]
    for _ in range(50_000):
        value = [value]
    message = over_limits(value)
    assert message is not None and "33,000" in message


def test_the_project_field_note_comes_only_past_the_soft_limit() -> None:
    new = [(f"orders.o{i}", "string") for i in range(8)] + [("tier", "string"), ("x.y", "long")]
    assert field_limit_note(new, 990) is None  # 1,000 exactly
    assert field_limit_note([], 5_000) is None  # already past, but this plan adds none
    note = field_limit_note([*new, ("orders.o8", "string")], 990)
    assert note is not None
    assert note.startswith(
        "this plan creates 11 user fields in a project that has 990: 1,001 in all"
    )
    assert "(nested fields count: orders makes 9, tier makes 1, x makes 1)" in note


def test_the_largest_values_are_left_out_until_a_member_fits_one_request() -> None:
    values = {"a": "x" * 2_500_000, "b": "y" * 1_000_000, "c": "z" * 600_000, "d": 1}
    sizes = {name: len(encode({name: v})) for name, v in values.items()}
    assert sum(sizes.values()) > MEMBER_FIELDS_MAX_BYTES
    assert sum(sizes.values()) - sizes["a"] <= MEMBER_FIELDS_MAX_BYTES
    assert over_request(values) == ["a"]
    assert over_request({"d": 1, "e": "short"}) == []
    # Equal sizes: dropped by name, so a plan is the same on every run.
    even = {"q": "x" * 2_100_000, "p": "y" * 2_100_000}
    assert over_request(even) == ["p"]


def test_fits_request_counts_room_for_every_field() -> None:
    assert fits_request(0, 0)
    assert fits_request(MEMBER_FIELDS_MAX_BYTES, 0)
    assert not fits_request(MEMBER_FIELDS_MAX_BYTES, 1)


def test_a_whole_number_beyond_64_bits_is_found_wherever_it_stands() -> None:
    for fits in (LONG_MAX, LONG_MIN, 0, True, 1e300, [1, {"a": LONG_MAX}], "9" * 40):
        assert beyond_long(fits) is None
    for beyond in (LONG_MAX + 1, LONG_MIN - 1, [1, [2**64]], {"a": {"b": -(10**30)}}):
        message = beyond_long(beyond)
        assert message is not None and "beyond the 64 bits" in message
