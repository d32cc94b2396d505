"""traits/compare.py: when a profile's field already holds the mapped value (no update is
planned), over the forms Iterable hands values back in."""

from __future__ import annotations

from reconciler.traits.compare import normalise, same_value, text_fields


def test_numbers_compare_as_numbers_and_dates_as_instants() -> None:
    assert same_value(42, 42.0)
    assert not same_value(42, 42.5)
    assert same_value("2024-05-01", "2024-05-01 00:00:00 +00:00")
    assert same_value("2024-05-01T02:00:00+02:00", "2024-05-01T00:00:00Z")
    assert not same_value("2024-05-01", "2024-05-02 00:00:00 +00:00")
    # A true is not the number 1, though Python says so.
    assert not same_value(True, 1)
    assert same_value(None, None) and not same_value(None, "")


def test_a_fraction_of_a_second_handed_back_with_a_second_fraction_is_the_same_instant() -> None:
    assert same_value("2025-12-19T22:43:34.134105", "2025-12-19T22:43:34.134105.000Z")
    assert not same_value("2025-12-19T22:43:34.134105", "2025-12-19T22:43:35.134105.000Z")


def test_text_shaped_like_an_impossible_date_compares_as_text() -> None:
    assert normalise("2024-13-45") == ("s", "2024-13-45")
    assert not same_value("2024-13-45", "2024-13-46")


def test_a_string_field_keeps_its_text_so_another_spelling_of_the_date_differs() -> None:
    texts = text_fields({"joined": "string", "seen": "date", "prefs.since": "string"})
    assert texts == frozenset({"joined", "prefs.since"})
    wanted, held = "2024-05-01", "2024-05-01T00:00:00Z"
    assert not same_value(wanted, held, texts=texts, path="joined")
    assert same_value(wanted, held, texts=texts, path="seen")
    # Inside an object, only the string path keeps its text.
    assert not same_value({"since": wanted}, {"since": held}, texts=texts, path="prefs")
    assert same_value({"other": wanted}, {"other": held}, texts=texts, path="prefs")


def test_merged_objects_only_need_the_keys_they_name() -> None:
    live = {"a": 1, "b": {"c": 2, "d": 3}}
    assert same_value({"b": {"c": 2.0}}, live, merge_nested_objects=True)
    assert not same_value({"b": {"c": 2}}, live)
    assert not same_value({"b": {"c": 4}}, live, merge_nested_objects=True)
    assert not same_value({"e": 1}, live, merge_nested_objects=True)


def test_a_whole_number_read_back_from_a_double_field_is_the_double_it_became() -> None:
    big = 2**53 + 1  # a double holds 2**53 for it
    assert same_value(big, float(2**53))
    assert same_value({"score": [big]}, {"score": [float(2**53)]})
    # Beyond any double, no field holds it: always an update, never an OverflowError.
    assert not same_value(10**400, 1.7976931348623157e308)
