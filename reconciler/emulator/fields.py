"""User profile fields: type inference, the project-wide type lock, and merging.

Iterable types a field from the first value it sees and then refuses values of another
type for that field in the whole project ("When updating an existing field, you cannot
change its data type", bulkUpdate in the OpenAPI). Nested objects are typed per path
(`address.city`), the way `getFields` reports them.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

FieldType = Literal["string", "long", "double", "boolean", "date", "object"]

# Iterable's documented date formats: "yyyy-MM-dd HH:mm:ss ZZ", ISO 8601 with a time, and a
# bare "yyyy-MM-dd". A string in one of these shapes creates a `date` field, which then
# refuses ordinary strings: a classic production surprise worth reproducing. A fraction of
# a second belongs to ISO 8601 (after a `T`): "2020-04-13 14:04:09.000" came in as a
# string to a date field in an answer Block's client records (block/iterable-go,
# parsers/mismatched_fields_parser_test.go).
_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"(?:T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?: ?(?:Z|[+-]\d{2}:?\d{2}))?"
    r"| \d{2}:\d{2}:\d{2}(?: ?(?:Z|[+-]\d{2}:?\d{2}))?)?"
)


class FieldTypeMismatch(Exception):
    """A value's type differs from the type the field already has."""

    def __init__(self, path: str, existing: str, sent: str):
        self.path = path
        self.existing = existing
        self.sent = sent
        super().__init__(f"field {path!r} is {existing}, got {sent}")


def looks_like_date(value: str) -> bool:
    return _DATE.fullmatch(value) is not None


def value_type(value: Any) -> FieldType | None:
    """The type Iterable would give a scalar or object; None for null (it types nothing)."""
    if value is None:
        return None
    # bool before int: in Python a bool is an int, in Iterable it is its own type.
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "date" if looks_like_date(value) else "string"
    if isinstance(value, Mapping):
        return "object"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _unify(a: FieldType, b: FieldType) -> FieldType | None:
    if a == b:
        return a
    pair = {a, b}
    # Within one value (an array), ints and floats widen to double and a date-looking string
    # among strings is just a string, as Elasticsearch's dynamic mapping does.
    if pair == {"long", "double"}:
        return "double"
    if pair == {"string", "date"}:
        return "string"
    return None


def accepts(existing: str, sent: str) -> bool:
    """Whether a field of type `existing` takes a value typed `sent`."""
    if existing == sent:
        return True
    # A double field takes a whole number (JSON has no separate int); a string field takes
    # any string, including one that happens to look like a date; a `nested` field (an
    # indexed array of objects, which only Iterable's staff make) takes objects.
    return (existing, sent) in {("double", "long"), ("string", "date"), ("nested", "object")}


def collect_types(data_fields: Mapping[str, Any]) -> dict[str, FieldType]:
    """Every path in `data_fields` with its inferred type.

    Raises FieldTypeMismatch when one value disagrees with itself (an array mixing types).
    """
    out: dict[str, FieldType] = {}
    for key, value in data_fields.items():
        _collect(value, key, out)
    return out


def _collect(value: Any, path: str, out: dict[str, FieldType]) -> None:
    if isinstance(value, list):
        # Arrays take their elements' type; an empty array types nothing.
        for item in value:
            _collect(item, path, out)
        return
    sent = value_type(value)
    if sent is None:
        return
    previous = out.get(path)
    if previous is None:
        out[path] = sent
    else:
        unified = _unify(previous, sent)
        if unified is None:
            raise FieldTypeMismatch(path, previous, sent)
        out[path] = unified
    if isinstance(value, Mapping):
        for key, child in value.items():
            _collect(child, f"{path}.{key}", out)


@dataclass
class FieldWrite:
    """What a validated dataFields update will do, before anything is changed."""

    data: dict[str, Any]
    created: dict[str, FieldType] = field(default_factory=dict)
    filtered_out: list[str] = field(default_factory=list)


def plan_write(
    field_types: Mapping[str, str], data_fields: Mapping[str, Any], *, create_new: bool
) -> FieldWrite:
    """Check `data_fields` against the project's field types without changing anything.

    With `create_new` false, paths the project does not know yet are dropped and reported
    (Iterable's `filteredOutFields`) instead of created.
    """
    sent = collect_types(data_fields)
    new: dict[str, FieldType] = {}
    for path, sent_type in sent.items():
        existing = field_types.get(path)
        if existing is None:
            new[path] = sent_type
        elif not accepts(existing, sent_type):
            raise FieldTypeMismatch(path, existing, sent_type)
    if create_new or not new:
        return FieldWrite(dict(data_fields), created=new)
    dropped = set(new)
    data = _without_paths(dict(data_fields), "", dropped)
    # Report only the outermost dropped path: "a.b" is implied when "a" itself is new.
    outermost = sorted(p for p in dropped if not _has_dropped_ancestor(p, dropped))
    return FieldWrite(data, filtered_out=outermost)


def _has_dropped_ancestor(path: str, dropped: set[str]) -> bool:
    parts = path.split(".")
    return any(".".join(parts[:i]) in dropped for i in range(1, len(parts)))


def _without_paths(obj: dict[str, Any], prefix: str, dropped: set[str]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in obj.items():
        path = f"{prefix}{key}"
        if path in dropped:
            continue
        kept[key] = _strip_value(value, path, dropped)
    return kept


def _strip_value(value: Any, path: str, dropped: set[str]) -> Any:
    if isinstance(value, Mapping):
        return _without_paths(dict(value), f"{path}.", dropped)
    if isinstance(value, list):
        return [_strip_value(item, path, dropped) for item in value]
    return value


def write(target: dict[str, Any], data: Mapping[str, Any], *, merge_nested: bool) -> None:
    """Apply `data` to a profile's fields: top-level keys overwrite, objects merge on request."""
    for key, value in data.items():
        current = target.get(key)
        if merge_nested and isinstance(value, Mapping) and isinstance(current, dict):
            target[key] = _deep_merge(current, value)
        else:
            target[key] = copy.deepcopy(value)


def _deep_merge(current: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(current)
    for key, value in update.items():
        existing = merged.get(key)
        if isinstance(value, Mapping) and isinstance(existing, dict):
            merged[key] = _deep_merge(existing, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
