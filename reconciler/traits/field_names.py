"""Plan notes on the names of the user fields a plan creates.

"All field names are case-sensitive and space-sensitive" (Iterable's Field Data Types
article): a mapping's `FirstName` beside a project's `firstName` is a second field, made
for good by the first value, and what reads `firstName` (a campaign, a segment) never sees
it. Said in the plan, not refused: two such fields can be meant.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence

# Where Iterable sends a member's SMS, whether or not the project has the field yet (its SMS
# overview): a `PhoneNumber` is noted even where there is no phoneNumber to compare it with.
PHONE_FIELD = "phoneNumber"


def case_only_notes(
    new_fields: Sequence[tuple[str, str]], project_fields: Collection[str]
) -> list[str]:
    """A note for each top-level field this plan creates whose name differs only in letter
    case from one the project has, or from another it creates. Nested paths are left out:
    their keys can be a source's data (an object keyed by emails), and a mapping names only
    top-level fields."""
    created: dict[str, list[str]] = defaultdict(list)
    for path, _kind in new_fields:
        if "." not in path:
            created[path.casefold()].append(path)
    if not created:
        return []
    existing: dict[str, list[str]] = defaultdict(list)
    for name in project_fields:
        if "." not in name and name.casefold() in created:
            existing[name.casefold()].append(name)
    notes = []
    for folded, names in sorted(created.items()):
        names = sorted(names)
        others = sorted(existing.get(folded, ()))
        if others:
            theirs = " and ".join(repr(name) for name in others)
            for name in names:
                notes.append(
                    f"user field {name!r}, which this plan creates, differs only in letter case "
                    f"from the project's field {theirs}: Iterable's field names are "
                    "case-sensitive, so it would be a field of its own, which what reads "
                    f"{others[0]!r} does not see; if {others[0]!r} is meant, write that name "
                    "in the trait mapping"
                )
        elif folded == PHONE_FIELD.casefold() and names != [PHONE_FIELD]:
            notes.extend(_phone_note(name) for name in names if name != PHONE_FIELD)
        elif len(names) > 1:
            notes.append(
                f"user fields {' and '.join(repr(name) for name in names)}, which this plan "
                "creates, differ only in letter case: Iterable's field names are "
                "case-sensitive, so they would be fields of their own; if one field is meant, "
                "write one name in the trait mappings"
            )
    return notes


def _phone_note(name: str) -> str:
    return (
        f"user field {name!r}, which this plan creates, differs only in letter case from "
        f"{PHONE_FIELD!r}, the field Iterable sends SMS to: Iterable's field names are "
        "case-sensitive, so it would be a field of its own that no SMS reaches; if "
        f"{PHONE_FIELD!r} is meant, write that name in the trait mapping"
    )
