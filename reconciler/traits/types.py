"""Iterable's field types, and the check that a plan never sends a value of the wrong one.

Iterable types a field from the first value it receives and then refuses values of another
type for that field in the whole project (bulkUpdate in the OpenAPI: "you cannot change its
data type"). A refused value comes back as an invalidData failure per user at apply time;
checking against `GET /api/users/getFields` at plan time stops the run before anything is
written instead. Nested objects are typed per path (`address.city`), as getFields reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from reconciler.layout import one_line
from reconciler.render.masking import quoted_path
from reconciler.traits.convert import WRITTEN_DATE

# A double field takes a whole number (JSON has no separate int); a string field takes text
# that happens to look like a date; a `nested` field, "an indexed array of objects" (Field
# Data Types, article 208183076: a project gets one from its customer success manager),
# takes objects, as an array takes its items' type.
_ACCEPTS = {("double", "long"), ("string", "date"), ("nested", "object")}
# The fields that take some value a mapping makes (text, numbers, true/false, dates,
# objects, lists of these): a field of another type, such as geo_location (a latitude
# and longitude pair), takes none, whatever the mapping's `type:`.
_WRITABLE = {"string", "long", "double", "boolean", "date", "object", "nested"}


def accepts(existing: str, sent: str) -> bool:
    """Whether a field of type `existing` takes a value Iterable types as `sent`."""
    return existing == sent or (existing, sent) in _ACCEPTS


def value_types(value: Any, path: str) -> dict[str, str]:
    """Every path `value` would write, with the type Iterable gives it; null types nothing."""
    out: dict[str, str] = {}
    _collect(value, path, out)
    return out


def _scalar_type(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):  # before int: a bool is an int in Python, not in Iterable
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "date" if WRITTEN_DATE.fullmatch(value) else "string"
    if isinstance(value, Mapping):
        return "object"
    return None


def _collect(value: Any, path: str, out: dict[str, str]) -> None:
    if isinstance(value, list | tuple):
        for item in value:  # an array takes its items' type
            _collect(item, path, out)
        return
    sent = _scalar_type(value)
    if sent is None:
        return
    previous = out.get(path)
    if previous is None or accepts(sent, previous):
        out[path] = sent
    if isinstance(value, Mapping):
        for key, child in value.items():
            _collect(child, f"{path}.{key}", out)


_WORDS = {
    "long": "number",
    "double": "number",
    "boolean": "true/false",
    "date": "date",
    "string": "text",
    "object": "object",
}


def mixed_types(value: Any) -> str | None:
    """Why Iterable would refuse `value` whole, or None: the items of one of its arrays
    (or one path inside them, `tags.n`) are of two types it will not unify (numbers and
    text, say; whole and fractional numbers are doubles, and dates among text are text).
    Iterable refuses such a user's whole update, list membership included."""
    if not isinstance(value, list | tuple | Mapping):
        return None
    seen: dict[str, str] = {}
    return _first_mix(value, "", seen)


def _first_mix(value: Any, path: str, seen: dict[str, str]) -> str | None:
    if isinstance(value, list | tuple):
        for item in value:
            found = _first_mix(item, path, seen)
            if found is not None:
                return found
        return None
    sent = _scalar_type(value)
    if sent is None:
        return None
    previous = seen.get(path)
    if previous is None or previous == sent:
        seen[path] = sent
    elif {previous, sent} == {"long", "double"}:
        seen[path] = "double"
    elif {previous, sent} == {"string", "date"}:
        seen[path] = "string"
    else:
        where = f" at {path.lstrip('.')!r}" if path else ""
        return (
            f"has items of two types{where} ({_WORDS[previous]} and {_WORDS[sent]}), "
            "which Iterable refuses"
        )
    if isinstance(value, Mapping):
        for key, child in value.items():
            found = _first_mix(child, f"{path}.{key}", seen)
            if found is not None:
                return found
    return None


@dataclass(frozen=True)
class SentValue:
    """One value a plan would send: for which field, and a reference to where it came from
    (turned into text only if it is reported, so millions of values cost no formatting)."""

    field: str
    value: Any
    ref: Any


@dataclass(frozen=True)
class TypeConflict:
    path: str
    existing: str | None  # None: a new field whose values disagree among themselves
    sent: str
    ref: Any
    other_ref: Any = None
    other_type: str | None = None

    def describe(self, origin: Callable[[Any], str] = str) -> str:
        if self.existing is not None and self.existing not in _WRITABLE:
            return (
                f"field {quoted_path(self.path)} is {one_line(self.existing)} in Iterable, a "
                f"type no trait mapping writes: {origin(self.ref)} would send "
                f"{_article(self.sent)} {self.sent}, and Iterable never changes a field's "
                "type; take the field out of the mapping, or map these values to a field of "
                "another name"
            )
        if self.existing is not None:
            return (
                f"field {quoted_path(self.path)} is {one_line(self.existing)} in Iterable, but "
                f"{origin(self.ref)} "
                f"would send {_article(self.sent)} {self.sent}; Iterable never changes a "
                "field's type (change the mapping's type, or the data)"
            )
        return (
            f"new field {quoted_path(self.path)} would get values of two types: "
            f"{self.other_type} from {origin(self.other_ref)} and {self.sent} from "
            f"{origin(self.ref)}; Iterable types a new field by the first value it receives "
            "and refuses the others ("
            + (
                # `type: string` cannot help here: it is the text's shape that types it.
                "text shaped like a date, 2024-05-01 or 2024-05-01 09:30:00, makes a new "
                "field a date: `type: date` if they are all dates, otherwise give the field "
                "a text value in Iterable first, or change the data)"
                if {self.sent, self.other_type} == {"string", "date"}
                else "declare a type that fits every value)"
            )
        )


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


@dataclass
class FieldTypes:
    """The outcome of the check: conflicts, and the fields that will hold doubles (whole
    numbers sent to them go out as floats, so the first one cannot make the field long)."""

    conflicts: list[TypeConflict]
    double_fields: set[str]
    # Paths the project does not have yet, with the type the plan's values give them:
    # Iterable fixes a field's type at the first value it receives, for good.
    new_fields: dict[str, str] = field(default_factory=dict)


def as_doubles(value: Any, path: str, doubles: AbstractSet[str]) -> Any:
    """`value` of field `path` with the whole numbers bound for double paths (FieldTypes.
    double_fields) as floats: in lists item by item, in objects at their own paths
    (`prefs.score`), where Iterable types a new nested field by its first value too."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value) if path in doubles else value
    if isinstance(value, list):
        return [as_doubles(item, path, doubles) for item in value]
    if isinstance(value, Mapping):
        prefix = f"{path}."
        if not any(d.startswith(prefix) for d in doubles):
            return value
        return {key: as_doubles(item, f"{prefix}{key}", doubles) for key, item in value.items()}
    return value


def check_types(existing: Mapping[str, str], sent: Iterable[SentValue]) -> FieldTypes:
    """Compare what would be sent with the project's field types (from getFields).

    Reports one conflict per field path (the first value found), so a bad column gives one
    message, not one per row.
    """
    new_types: dict[str, tuple[str, Any]] = {}  # path -> (type, ref of the first value)
    conflicts: dict[str, TypeConflict] = {}
    mixed_numbers: set[str] = set()
    for item in sent:
        for path, sent_type in value_types(item.value, item.field).items():
            if path in conflicts:
                continue
            current = existing.get(path)
            if current is not None:
                if not accepts(current, sent_type):
                    conflicts[path] = TypeConflict(path, current, sent_type, item.ref)
                continue
            first = new_types.get(path)
            if first is None:
                new_types[path] = (sent_type, item.ref)
            elif first[0] != sent_type:
                if {first[0], sent_type} == {"long", "double"}:
                    mixed_numbers.add(path)
                    new_types[path] = ("double", first[1])
                else:
                    conflicts[path] = TypeConflict(
                        path, None, sent_type, item.ref, first[1], first[0]
                    )
    doubles = {p for p, t in existing.items() if t == "double"} | mixed_numbers
    new_fields = {p: t for p, (t, _ref) in new_types.items() if p not in conflicts}
    return FieldTypes(list(conflicts.values()), doubles, new_fields)
