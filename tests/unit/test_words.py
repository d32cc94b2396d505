"""Counts in words (reconciler/words.py): the singular for one, the plural else, never
"list(s)", and thousands separated as everywhere else in the tool."""

from __future__ import annotations

from reconciler.words import named, quantity


def test_one_is_singular_and_every_other_count_plural() -> None:
    assert quantity(1, "list") == "1 list"
    assert [quantity(n, "list") for n in (0, 2, 1_234)] == ["0 lists", "2 lists", "1,234 lists"]
    assert quantity(1, "user field update") == "1 user field update"
    assert quantity(1_000_000, "user field update") == "1,000,000 user field updates"


def test_an_irregular_plural_is_given() -> None:
    assert quantity(1, "retry", "retries") == "1 retry"
    assert quantity(3, "retry", "retries") == "3 retries"


def test_names_take_the_noun_their_count_does() -> None:
    assert named(["vip"], "audience") == "audience vip"
    assert named(["a", "b"], "audience") == "audiences a, b"
