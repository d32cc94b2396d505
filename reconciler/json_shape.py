"""Checks of the type and shape of values read from JSON files reconciler wrote itself: a
saved plan (plan/file.py) and the sandbox's state (emulator/store.py).

A plan file's checksum has no key: whoever edits one can compute it again. So every value
the loader reads is checked for its type and shape (ints are ints and not bools, lists
hold what they should, strings are strings, enums are among their values, counts are not
negative), and a file of the right outline with a wrong value is refused naming the field,
before anything is sent, rather than failing later in the stale check's comparison or in a
renderer as an internal error.

A check is a function of the value and where it is ("destinations[0].lists[1].add_rows")
that returns the value, or raises ShapeError naming the place. Messages never quote the
value: both files hold member identifiers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")
Check = Callable[[Any, str], T]


class ShapeError(ValueError):
    """A value of the wrong type or shape; the message says where."""


def text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ShapeError(f"{where} should be a string")
    return value


def count(value: Any, where: str) -> int:
    """A non-negative integer (a count, a list or campaign id); True is not 1 here."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ShapeError(f"{where} should be a non-negative integer")
    return value


def flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ShapeError(f"{where} should be true or false")
    return value


def percent(value: Any, where: str) -> float:
    """A finite non-negative number: JSON writes 10.0 and 10 alike to some writers."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        raise ShapeError(f"{where} should be a non-negative number")
    return float(value)


def json_object(value: Any, where: str) -> dict[str, Any]:
    """An object whose values are anything JSON holds (a member's field values)."""
    if not isinstance(value, dict):
        raise ShapeError(f"{where} should be an object")
    return value


def anything(value: Any, where: str) -> Any:
    """Any JSON value (a field's old or new value)."""
    return value


def one_of(*values: str) -> Check[str]:
    def check(value: Any, where: str) -> str:
        if not isinstance(value, str) or value not in values:
            raise ShapeError(f"{where} should be one of {', '.join(map(repr, values))}")
        return value

    return check


def optional(inner: Check[T]) -> Check[T | None]:
    def check(value: Any, where: str) -> T | None:
        return None if value is None else inner(value, where)

    return check


def list_of(inner: Check[T]) -> Check[tuple[T, ...]]:
    def check(value: Any, where: str) -> tuple[T, ...]:
        if not isinstance(value, list):
            raise ShapeError(f"{where} should be a list")
        return tuple(inner(item, f"{where}[{index}]") for index, item in enumerate(value))

    return check


def row(*parts: tuple[str, Check[Any]]) -> Check[tuple[Any, ...]]:
    """A list of fixed length whose items are named parts, each of its own shape."""
    names = ", ".join(name for name, _ in parts)

    def check(value: Any, where: str) -> tuple[Any, ...]:
        if not isinstance(value, list) or len(value) != len(parts):
            raise ShapeError(f"{where} should be a list of {len(parts)} ({names})")
        return tuple(
            part(item, f"{where}.{name}") for (name, part), item in zip(parts, value, strict=True)
        )

    return check


def mapping(inner: Check[T]) -> Check[dict[str, T]]:
    """An object of string keys (JSON's only kind) whose values are each of one shape."""

    def check(value: Any, where: str) -> dict[str, T]:
        found = json_object(value, where)
        return {key: inner(item, f"{where}[{key!r}]") for key, item in found.items()}

    return check


_REQUIRED: Any = object()


class Fields:
    """One JSON object of a plan file, read a field at a time, each value checked."""

    def __init__(self, value: Any, where: str):
        self._data: Mapping[str, Any] = json_object(value, where or "the content")
        self._where = where

    def get(self, key: str, check: Check[T], default: Any = _REQUIRED) -> T:
        """The value of `key`, checked; `default` (not checked) when absent, which plans
        saved before the field was recorded are; a missing field without one is damage."""
        where = f"{self._where}.{key}" if self._where else key
        if key not in self._data:
            if default is _REQUIRED:
                raise ShapeError(f"{where} is missing")
            return default
        return check(self._data[key], where)

    def object(self, key: str) -> Fields:
        return Fields(self.get(key, json_object), f"{self._where}.{key}" if self._where else key)

    def objects(self, key: str) -> list[Fields]:
        where = f"{self._where}.{key}" if self._where else key
        items = self.get(key, list_of(json_object))
        return [Fields(item, f"{where}[{index}]") for index, item in enumerate(items)]
