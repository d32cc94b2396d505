"""traits/field_names.py: notes on new user fields whose names differ only in letter case."""

from __future__ import annotations

from reconciler.traits.field_names import case_only_notes


def test_a_new_field_differing_from_a_project_field_only_in_case_is_noted() -> None:
    (note,) = case_only_notes([("FirstName", "string"), ("plan", "string")], ["firstName", "ltv"])
    assert note.startswith("user field 'FirstName', which this plan creates, differs only")
    assert "from the project's field 'firstName'" in note
    assert "if 'firstName' is meant, write that name in the trait mapping" in note


def test_two_new_fields_differing_only_in_case_are_noted_once() -> None:
    (note,) = case_only_notes([("ltv", "double"), ("LTV", "double")], [])
    assert note.startswith("user fields 'LTV' and 'ltv', which this plan creates, differ only")


def test_nested_paths_and_exact_names_are_left_out() -> None:
    # A nested key can be a source's data (an object keyed by emails): never printed.
    assert case_only_notes([("prefs.Ann@x.com", "string")], ["prefs.ann@x.com"]) == []
    assert case_only_notes([("plan", "string")], ["Plans", "plan_name"]) == []
    assert case_only_notes([], ["firstName"]) == []
