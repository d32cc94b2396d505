"""The stale-plan check names what actually changed since a plan was made."""

from __future__ import annotations

from reconciler.members.model import digest_members
from reconciler.plan.fingerprint import FIELDS_KEY, first_difference, list_fingerprint


def prints(members: list[str], values_digest: str) -> dict:
    return {
        "prod": {
            "churn": list_fingerprint(7, digest_members(members)),
            FIELDS_KEY: {"digest": values_digest},
        }
    }


def test_a_membership_change_on_a_mapped_audience_is_named_as_such() -> None:
    # The field values are read for the list's members, so both entries change.
    saved = prints(["a", "b"], "v1")
    current = prints(["a", "b", "c"], "v2")
    assert first_difference(saved, current) == "list 'churn' changed (2 -> 3 members)"


def test_only_field_values_changed() -> None:
    saved, current = prints(["a", "b"], "v1"), prints(["a", "b"], "v2")
    assert first_difference(saved, current) == (
        "the current values of mapped user fields changed in Iterable"
    )


def test_same_size_other_members() -> None:
    saved, current = prints(["a", "b"], "v1"), prints(["a", "c"], "v1")
    assert first_difference(saved, current) == "the members of list 'churn' changed (still 2)"


def test_nothing_changed() -> None:
    assert first_difference(prints(["a"], "v"), prints(["a"], "v")) is None


def test_a_plan_from_an_older_reconciler_is_stale_with_a_reason() -> None:
    # Before one fingerprint, the Python engine saved a SHA-256 of the sorted identifiers:
    # it cannot be compared, so such a plan is made again rather than applied.
    current = prints(["a", "b"], "v")
    saved = {"prod": {**current["prod"], "churn": {**current["prod"]["churn"], "digest": "ab12"}}}
    message = first_difference(saved, current)
    assert message is not None and "digested by a different version" in message
    assert "sha256 then" in message


def test_the_values_digest_is_that_of_the_whole_canonical_text_at_any_size() -> None:
    # Plans saved before the digest was made a member at a time must stay fresh, so it
    # is the same digest, across its batch boundaries too.
    import datetime
    import hashlib
    import json

    from reconciler.plan import fingerprint

    for n in (0, 1, 2, fingerprint._DIGEST_BATCH, fingerprint._DIGEST_BATCH + 1, 25_000):
        values = {
            f"user{i}\u00e9@example.com": None
            if i % 7 == 0
            else {"ltv": i * 1.5, "plan": 'p"ro', "at": [datetime.date(2025, 1, 1), {"b": 1}]}
            for i in range(n)
        }
        whole = json.dumps(values, sort_keys=True, default=str, separators=(",", ":"))
        assert fingerprint.values_digest(values) == hashlib.sha256(whole.encode()).hexdigest()


def test_list_sizes_in_the_reason_have_thousands_separators() -> None:
    many = [f"m{i}" for i in range(1200)]
    saved, current = prints(many, "v"), prints([*many, "new"], "v")
    assert first_difference(saved, current) == "list 'churn' changed (1,200 -> 1,201 members)"
    assert first_difference(prints(many, "v"), prints([*many[1:], "new"], "v")) == (
        "the members of list 'churn' changed (still 1,200)"
    )


def test_with_several_destinations_the_one_that_changed_is_named() -> None:
    # US and EU projects often hold lists of one name: "list 'churn' changed" alone does
    # not say which project to look at.
    def two(eu_members: list[str], eu_values: str) -> dict:
        return {**prints(["a", "b"], "v"), "eu": prints(eu_members, eu_values)["prod"]}

    assert first_difference(two(["a"], "v"), two(["a", "b"], "v")) == (
        "list 'churn' in destination 'eu' changed (1 -> 2 members)"
    )
    assert first_difference(two(["a"], "v"), two(["b"], "v")) == (
        "the members of list 'churn' in destination 'eu' changed (still 1)"
    )
    assert first_difference(two(["a"], "v"), two(["a"], "w")) == (
        "the current values of mapped user fields changed in Iterable (destination 'eu')"
    )
