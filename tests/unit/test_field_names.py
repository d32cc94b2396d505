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


def test_a_new_field_differing_from_phone_number_only_in_case_is_noted() -> None:
    # Iterable sends SMS to phoneNumber whether or not a project has the field yet: a
    # mapping's PhoneNumber (a CRM's column name) made a field of its own that no SMS
    # reaches, and said nothing where the project had no phoneNumber to compare it with.
    (note,) = case_only_notes([("PhoneNumber", "string"), ("plan", "string")], ["firstName"])
    assert note == (
        "user field 'PhoneNumber', which this plan creates, differs only in letter case from "
        "'phoneNumber', the field Iterable sends SMS to: Iterable's field names are "
        "case-sensitive, so it would be a field of its own that no SMS reaches; if "
        "'phoneNumber' is meant, write that name in the trait mapping"
    )
    # Where the project has phoneNumber, the note names it as any other field's.
    (note,) = case_only_notes([("PHONENUMBER", "string")], ["phoneNumber"])
    assert "from the project's field 'phoneNumber'" in note
    assert case_only_notes([("phoneNumber", "string")], []) == []
