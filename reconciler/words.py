"""Counts in words, as people read them: "1 list", "3 lists", "1,234 members"."""

from __future__ import annotations


def quantity(n: int, one: str, many: str | None = None) -> str:
    """`n` with thousands separators and the noun in the form the number takes: `one` for
    exactly 1, else `many` (by default `one` + "s"). Never "list(s)": a reader should not
    have to work out which the tool meant."""
    return f"{n:,} {one if n == 1 else (many if many is not None else one + 's')}"


def named(names: list[str], one: str, many: str | None = None) -> str:
    """The noun in the form the number of `names` takes, then the names:
    "audience vip", "audiences a, b"."""
    noun = one if len(names) == 1 else (many if many is not None else one + "s")
    return f"{noun} {', '.join(names)}"


# Names a message lists of what is defined: a repository of hundreds of trait mappings made
# each misspelt reference a line of thousands of characters.
MAX_NAMES_SHOWN = 20


def some_names(names: list[str]) -> str:
    """The first MAX_NAMES_SHOWN of `names` (once each, in order) and how many more."""
    unique = list(dict.fromkeys(names))
    if not unique:
        return "none are defined"
    shown = ", ".join(unique[:MAX_NAMES_SHOWN])
    more = len(unique) - MAX_NAMES_SHOWN
    return f"{shown} and {more:,} more" if more > 0 else shown
