"""Environment variables named in another case (reconciler.env_names): what a "not set"
message adds when Windows would have found the variable, names only, never values."""

from __future__ import annotations

from reconciler.env_names import case_hint, same_but_for_case


def test_a_variable_set_in_another_case_is_found_and_the_one_named_is_not() -> None:
    env = {"ITERABLE_API_KEY": "k1", "Iterable_Api_Key": "k2", "OTHER": "x"}

    assert same_but_for_case("iterable_api_key", env) == ["ITERABLE_API_KEY", "Iterable_Api_Key"]
    # The name as set is no other spelling of itself.
    assert same_but_for_case("ITERABLE_API_KEY", env) == ["Iterable_Api_Key"]
    assert same_but_for_case("MISSING", env) == []


def test_the_hint_names_the_variables_set_and_never_their_values() -> None:
    one = case_hint("iterable_api_key", {"ITERABLE_API_KEY": "secret-value-1"})
    two = case_hint("key", {"KEY": "secret-value-1", "Key": "secret-value-2"})

    assert one.startswith(" (ITERABLE_API_KEY is set: outside Windows")
    assert "KEY and Key are set" in two
    assert "secret-value" not in one + two
    assert case_hint("key", {"OTHER": "x"}) == ""
