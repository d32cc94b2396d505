"""Iterable's size limits on one field value, checked before anything is sent.

"The character limit for field values is approximately 32k characters, regardless of data
type" (Iterable's support article 208183076, Field Data Types; 217744303 says the same of
user profile fields). What Iterable does with a longer one is not published, so a longer
text is not sent at all: reported with its source row as a value that cannot be made, the
member's other fields and list membership go ahead. The limit is read as 32,000 characters,
the side of "approximately" that never sends a value Iterable may cut or drop. Each text is
checked where it stands (a field's value, an item of a list, a value inside an object):
every one of those is a field value to Iterable.

A value whose JSON alone is over the 4 MB a request body may hold (bulkUpdate in the
OpenAPI) can never be sent either, however it is batched (a list of a million numbers
from a query's array column).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.iterable.batching import encode

FIELD_TEXT_MAX_CHARS = 32_000
REQUEST_MAX_BYTES = 4_000_000


def over_limits(value: Any) -> str | None:
    """Why Iterable cannot take `value` for a field, or None."""
    if isinstance(value, str):
        return _text_over(len(value))
    if not isinstance(value, list | tuple | Mapping):
        return None  # numbers, booleans, null: short whatever they hold
    longest = _longest_text(value)
    if longest > FIELD_TEXT_MAX_CHARS:
        return _text_over(longest)
    size = len(encode(value))
    if size > REQUEST_MAX_BYTES:
        return (
            f"is {size:,} bytes of JSON, over the {REQUEST_MAX_BYTES:,} an Iterable request "
            "may carry"
        )
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
