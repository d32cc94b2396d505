"""Iterable's size limits on one field value, checked before anything is sent.

"The character limit for field values is approximately 32k characters, regardless of data
type" (Iterable's support article 208183076, Field Data Types; 217744303 says the same of
user profile fields). What Iterable does with a longer one is not published, so a longer
text is not sent at all: reported with its source row as a value that cannot be made, the
member's other fields and list membership go ahead. The limit is read as 32,000 characters,
the side of "approximately" that never sends a value Iterable may cut or drop. Each text is
checked where it stands (a field's value, an item of a list, a value inside an object):
every one of those is a field value to Iterable.

A member's values must fit one request (a body holds at most 4 MB: bulkUpdate in the
OpenAPI): its subscribe or bulkUpdate entry is sent whole, and one over the limit was
refused at apply (its membership with it, after other lists were written), be it a list
of a million numbers from a query's array column or 129 texts of 31,000 characters. The
largest values are left out until the rest fit.

A project has "a soft limit of 1,000 unique user profile fields (across all its users,
with a field's uniqueness determined by its name and position on the user profile)"
(bulkUpdate in the OpenAPI): an object keyed per member (`orders: {"order-123": ...}`)
makes a field of every key. A soft limit can be raised for a project, and what Iterable
does past it is not published, so a plan past it says so rather than refusing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.iterable.batching import encode
from reconciler.iterable.settings import REQUEST_MAX_BYTES

FIELD_TEXT_MAX_CHARS = 32_000
# Iterable types a whole number `long` (its fields are Elasticsearch's: a long is 64 bits;
# GET /api/users/getFields names no wider type). A whole number past it has no exact place
# there: a long field cannot take it, and a new field would hold it rounded, if at all,
# which nobody is told. Such a value is not sent (a text field keeps every digit).
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
PROJECT_FIELDS_SOFT_LIMIT = 1_000
# What a member's entry holds besides its fields (email up to 254 characters, a userId up
# to 52, the flags) and the request's own keys, with room to spare.
_ENTRY_ROOM = 4_096
MEMBER_FIELDS_MAX_BYTES = REQUEST_MAX_BYTES - _ENTRY_ROOM
# A field's bytes besides its text: a 200-character name escaped, quotes, colon, comma,
# or a number (a 4,096-bit integer is 1,234 digits).
_FIELD_ROOM = 6 * 200 + 1_300


def over_limits(value: Any) -> str | None:
    """Why Iterable cannot take `value` for a field, or None."""
    if isinstance(value, str):
        return _text_over(len(value))
    if not isinstance(value, list | tuple | Mapping):
        return None  # numbers, booleans, null: short whatever they hold
    return _text_over(_longest_text(value))


def beyond_long(value: Any) -> str | None:
    """Why Iterable cannot take `value` exactly, or None: it holds a whole number (itself,
    an item of a list, a value inside an object) outside 64 bits."""
    pending = [value]
    while pending:  # no recursion, as _longest_text
        item = pending.pop()
        if isinstance(item, int) and not isinstance(item, bool):
            if not LONG_MIN <= item <= LONG_MAX:
                return (
                    "holds a whole number beyond the "
                    f"64 bits Iterable stores one in (at most {LONG_MAX:,}), which it would "
                    "refuse or round (type: string sends its digits as text; a decimal "
                    "point, 1.5e23, sends a double)"
                )
        elif isinstance(item, list | tuple):
            pending.extend(item)
        elif isinstance(item, Mapping):
            pending.extend(item.values())
    return None


def _text_over(length: int) -> str | None:
    if length <= FIELD_TEXT_MAX_CHARS:
        return None
    return (
        f"holds text of {length:,} characters, over the about {FIELD_TEXT_MAX_CHARS:,} "
        "Iterable keeps in a field value"
    )


def _longest_text(value: Any) -> int:
    """The length of the longest text anywhere in `value` (object keys are field names,
    checked as such)."""
    longest = 0
    pending = [value]
    while pending:  # no recursion: a list nested thousands deep must not overflow the stack
        item = pending.pop()
        if isinstance(item, str):
            longest = max(longest, len(item))
        elif isinstance(item, list | tuple):
            pending.extend(item)
        elif isinstance(item, Mapping):
            pending.extend(item.values())
    return longest


def field_limit_note(new_fields: Sequence[tuple[str, str]], project_fields: int) -> str | None:
    """A plan note when the fields a plan creates take the project past Iterable's soft
    limit, naming the top-level fields that make most of them; `project_fields` counts
    every path getFields lists (Iterable's own fields too: whether they count is not
    published, and counting them warns the sooner)."""
    total = project_fields + len(new_fields)
    if not new_fields or total <= PROJECT_FIELDS_SOFT_LIMIT:
        return None
    per_root = Counter(path.split(".", 1)[0] for path, _kind in new_fields)
    biggest = ", ".join(f"{root} makes {count:,}" for root, count in per_root.most_common(3))
    return (
        f"this plan creates {len(new_fields):,} user fields in a project that has "
        f"{project_fields:,}: {total:,} in all, past Iterable's soft limit of "
        f"{PROJECT_FIELDS_SOFT_LIMIT:,} per project (nested fields count: {biggest}); what "
        "Iterable does past it is not published, so ask Iterable about the project's limit "
        "before applying"
    )


def fits_request(bound: int, fields: int) -> bool:
    """Whether a member's values surely fit one request, from `bound` (at least the bytes
    of its text, lists and objects: 6 per character of text, an escape such as \\u0001 being
    6) and its number of fields, each taking at most _FIELD_ROOM besides (its name, a
    number)."""
    return bound + fields * _FIELD_ROOM <= MEMBER_FIELDS_MAX_BYTES


def over_request(values: Mapping[str, Any]) -> list[str]:
    """The fields to leave out, largest first, so that the rest of one member's values fit
    one request (MEMBER_FIELDS_MAX_BYTES)."""
    sizes = {name: len(encode({name: value})) for name, value in values.items()}
    total = sum(sizes.values())
    dropped = []
    for name in sorted(sizes, key=lambda n: (-sizes[n], n)):
        if total <= MEMBER_FIELDS_MAX_BYTES:
            break
        dropped.append(name)
        total -= sizes[name]
    return dropped
