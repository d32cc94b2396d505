"""When a profile's field already holds the mapped value: equality after normalisation.

Iterable hands values back in its own forms: a date as `2024-05-01 00:00:00 +00:00` where
the source said `2024-05-01`, a whole double as 42.0 where we sent 42. Comparing the raw
values would plan the same update on every run, so both sides are normalised first: numbers
compare as numbers, date-shaped text as instants, objects key by key, lists item by item.
A missing field equals null.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from typing import Any

from reconciler.traits.convert import DATE_SHAPE, ConversionError, parse_instant

# A date written with a fraction of a second, as Iterable hands it back: the fraction sent,
# then `.000Z` (2025-12-19T22:43:34.134105 reads 2025-12-19T22:43:34.134105.000Z; seen by
# Estuary's source-iterable-native, models.py `_fix_iterable_datetime`). Read as text, a
# TIMESTAMP column's value sent without a type was updated again on every run.
_DOUBLED_FRACTION = re.compile(r"(?P<moment>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{1,9})\.\d{3}Z")


def normalise(value: Any) -> Any:
    """A hashable, comparable form of a JSON value."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int):
        return ("n", value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return ("n", int(value))
        return ("n", value)
    if isinstance(value, str):
        text = value.strip()
        doubled = _DOUBLED_FRACTION.fullmatch(text)
        if doubled is not None:
            text = f"{doubled['moment']}Z"
        if DATE_SHAPE.fullmatch(text):
            try:
                return ("d", parse_instant(text).timestamp())
            except ConversionError:
                pass  # shaped like a date but not one (2024-13-45): plain text
        return ("s", value)
    if isinstance(value, Mapping):
        return ("o", tuple(sorted((str(k), normalise(v)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        return ("l", tuple(normalise(v) for v in value))
    return ("?", repr(value))


def holds_value(value: Any) -> bool:
    """Whether a field's value is something a clear would lose: not null, empty text, an
    empty list, or an object none of whose keys holds one (`{"city": null}`: what a
    struct over a join that found nothing sends, which replaces or merges into the
    profile's object as a clear of its keys)."""
    if isinstance(value, Mapping):
        return any(holds_value(v) for v in value.values())
    return value is not None and value != "" and value != []


def loses_value(old: Any, new: Any, *, merge_nested_objects: bool = False) -> bool:
    """Whether writing `new` over `old` leaves a value `old` holds (`holds_value`) at some
    path without one: the field cleared, or a key of its object. Without mergeNestedObjects
    an object replaces the profile's, so `{"city": "Oslo"}` over `{"city": "Rome", "zip":
    "0150"}` loses the zip; with it, only the keys it names with no value are lost."""
    if not holds_value(old):
        return False
    if not holds_value(new):
        return True
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        return any(
            loses_value(value, new[key], merge_nested_objects=merge_nested_objects)
            if key in new
            else not merge_nested_objects and holds_value(value)
            for key, value in old.items()
        )
    return False


def text_fields(field_types: Mapping[str, str]) -> frozenset[str]:
    """The paths of a project's fields (getFields) that hold text: there a date-shaped
    value is the text it is, not an instant."""
    return frozenset(path for path, kind in field_types.items() if kind == "string")


def same_value(
    desired: Any,
    live: Any,
    *,
    merge_nested_objects: bool = False,
    texts: frozenset[str] = frozenset(),
    path: str = "",
) -> bool:
    """True when writing `desired` to the field at `path` would leave it as it is.

    With mergeNestedObjects an object is merged into what the profile has, so it is already
    in place when every key it names holds its value (keys it does not name stay).
    `texts` are the paths of the project's string fields (`text_fields`): a date written
    to a date field comes back in Iterable's form, but a string field keeps the text it
    was given, so `2024-05-01T00:00:00Z` there is not `2024-05-01`, and taking it for the
    same left the field as it was on every run.
    """
    if isinstance(desired, Mapping) and not holds_value(desired) and not holds_value(live):
        # An object of nulls over a field holding none: nothing to set, nothing to lose
        # (Iterable may keep the nulls or not; an update of them would come every run).
        return True
    if merge_nested_objects and isinstance(desired, Mapping) and isinstance(live, Mapping):
        return all(
            same_value(
                value,
                live.get(key),
                merge_nested_objects=True,
                texts=texts,
                path=f"{path}.{key}" if path else str(key),
            )
            for key, value in desired.items()
        )
    if isinstance(live, float) and isinstance(desired, int) and not isinstance(desired, bool):
        # Only a double field holds a float, and it gets every number as a double
        # (traits/types.py as_doubles): 2**53 + 1 is written, and read back, as 2.0**53.
        # Compared exactly, such a number would be updated again on every run.
        return _as_double(desired) == live
    if isinstance(live, Mapping | list | tuple):
        # The same inside an object or a list: as_doubles sends a double path's whole
        # numbers as doubles there too (`prefs.score`, the items of a list).
        desired = _doubled_where_live_is(desired, live)
    if texts and path.split(".", 1)[0] in _roots(texts):
        return _as_texts(desired, texts, path) == _as_texts(live, texts, path)
    return normalise(desired) == normalise(live)


@functools.lru_cache(maxsize=16)
def _roots(texts: frozenset[str]) -> frozenset[str]:
    """The top-level fields holding a string path: only their values are compared path
    by path (the others, most of a plan's values, as before)."""
    return frozenset(path.split(".", 1)[0] for path in texts)


def _as_texts(value: Any, texts: frozenset[str], path: str) -> Any:
    """`normalise`, except that text at a string field's path stays the text it is."""
    if isinstance(value, str) and path in texts:
        return ("s", value)
    if isinstance(value, Mapping):
        return (
            "o",
            tuple(sorted((str(k), _as_texts(v, texts, f"{path}.{k}")) for k, v in value.items())),
        )
    if isinstance(value, list | tuple):
        return ("l", tuple(_as_texts(v, texts, path) for v in value))
    return normalise(value)


def _doubled_where_live_is(desired: Any, live: Any) -> Any:
    """`desired` with each whole number that stands where `live` holds a float made a
    double (None, which equals no number, when it is beyond any double)."""
    if isinstance(live, float) and isinstance(desired, int) and not isinstance(desired, bool):
        return _as_double(desired)
    if isinstance(desired, Mapping) and isinstance(live, Mapping):
        return {key: _doubled_where_live_is(value, live.get(key)) for key, value in desired.items()}
    if (
        isinstance(desired, list | tuple)
        and isinstance(live, list | tuple)
        and len(desired) == len(live)
    ):
        return [_doubled_where_live_is(d, v) for d, v in zip(desired, live, strict=True)]
    return desired


def _as_double(number: int) -> float | None:
    try:
        return float(number)
    except OverflowError:  # beyond any double: no field can hold it as it is
        return None
