"""When a profile's field already holds the mapped value: equality after normalisation.

Iterable hands values back in its own forms: a date as `2024-05-01 00:00:00 +00:00` where
the source said `2024-05-01`, a whole double as 42.0 where we sent 42. Comparing the raw
values would plan the same update on every run, so both sides are normalised first: numbers
compare as numbers, date-shaped text as instants, objects key by key, lists item by item.
A missing field equals null.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from reconciler.traits.convert import DATE_SHAPE, ConversionError, parse_instant


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
        if DATE_SHAPE.fullmatch(value.strip()):
            try:
                return ("d", parse_instant(value).timestamp())
            except ConversionError:
                pass  # shaped like a date but not one (2024-13-45): plain text
        return ("s", value)
    if isinstance(value, Mapping):
        return ("o", tuple(sorted((str(k), normalise(v)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        return ("l", tuple(normalise(v) for v in value))
    return ("?", repr(value))


def same_value(desired: Any, live: Any, *, merge_nested_objects: bool = False) -> bool:
    """True when writing `desired` would leave the field as it is.

    With mergeNestedObjects an object is merged into what the profile has, so it is already
    in place when every key it names holds its value (keys it does not name stay).
    """
    if merge_nested_objects and isinstance(desired, Mapping) and isinstance(live, Mapping):
        return all(
            same_value(value, live.get(key), merge_nested_objects=True)
            for key, value in desired.items()
        )
    if isinstance(live, float) and isinstance(desired, int) and not isinstance(desired, bool):
        # Only a double field holds a float, and it gets every number as a double
        # (traits/types.py as_doubles): 2**53 + 1 is written, and read back, as 2.0**53.
        # Compared exactly, such a number would be updated again on every run.
        return _as_double(desired) == live
    return normalise(desired) == normalise(live)


def _as_double(number: int) -> float | None:
    try:
        return float(number)
    except OverflowError:  # beyond any double: no field can hold it as it is
        return None
