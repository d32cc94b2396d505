"""The shape of a saved plan file's values (plan/file.py): the rows and entries it holds,
made of reconciler/json_shape.py's checks, which load_plan applies as it reads."""

from __future__ import annotations

from typing import Any

from reconciler.json_shape import (
    Check,
    Fields,
    ShapeError,
    anything,
    count,
    flag,
    json_object,
    list_of,
    mapping,
    one_of,
    optional,
    percent,
    row,
    text,
)

__all__ = [
    "Check",
    "Fields",
    "ShapeError",
    "campaign",
    "count",
    "field_update_line",
    "field_values_line",
    "fingerprint",
    "flag",
    "issue",
    "json_object",
    "list_of",
    "mapping",
    "member_line",
    "one_of",
    "optional",
    "percent",
    "row",
    "text",
]

# The fingerprint of the live state (plan/fingerprint.py): destination -> list -> entry.
_FINGERPRINT_KEYS = {"list_id", "size", "digest"}


def _fingerprint_entry(value: Any, where: str) -> dict[str, Any]:
    entry = Fields(value, where)
    if not set(value) <= _FINGERPRINT_KEYS:
        raise ShapeError(f"{where} should hold only list_id, size and digest")
    entry.get("list_id", optional(count), None)
    entry.get("size", count, None)
    entry.get("digest", text, None)
    return dict(value)


fingerprint = mapping(mapping(_fingerprint_entry))

# A skipped row, field issue or duplicate conflict: (audience, where, message, value).
issue = row(("audience", text), ("where", text), ("message", text), ("value", optional(text)))

campaign = row(
    ("list_name", text),
    ("campaign_id", count),
    ("campaign_name", text),
    ("type", text),
    ("state", text),
    ("role", one_of("send", "suppression")),
)

key_kind = one_of("email", "userId")

# The lines after the header (plan/file.py save_plan writes them).
_member_row = row(
    ("key", text),
    ("key_kind", key_kind),
    ("email", optional(text)),
    ("user_id", optional(text)),
    ("traits", json_object),
)


def member_line(value: Any, where: str) -> tuple[Any, ...]:
    """A member to add, whose key is the identifier its key_kind names (make_member picks
    it so): a row whose key is another value, or names an identifier it lacks, is not one
    a plan could hold, whatever its types."""
    checked = _member_row(value, where)
    key, kind, email, user_id, _ = checked
    if key != (email if kind == "email" else user_id):
        raise ShapeError(f"{where}.key should be the member's {kind}")
    return checked


field_values_line = row(("key", text), ("fields", json_object))
field_update_line = row(
    ("key", text),
    ("key_kind", key_kind),
    ("email", optional(text)),
    ("user_id", optional(text)),
    ("changes", list_of(row(("field", text), ("old", anything), ("new", anything)))),
    ("merge_nested_objects", flag),
)
