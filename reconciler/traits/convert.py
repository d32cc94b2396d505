"""Source values -> the values sent to Iterable, one declared type at a time.

Each converter takes what a source gives (CSV text, YAML scalars, database values already
made JSON-friendly by the source) and returns a JSON value, or raises ConversionError with
a reason written for people. A moment goes out in the form Iterable stores it
(`YYYY-MM-DD HH:MM:SS +00:00`, UTC), cut to whole seconds; a day without a time of day as
that day (`YYYY-MM-DD`), one of Iterable's date forms too. Either compares, read back, as
the instant it names (traits/compare.py).
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.render.masking import source_value

UTC = datetime.UTC

# Iterable's own form, which datetime.fromisoformat does not read (a space before the offset),
# and BigQuery's: `bq extract` and its console write a TIMESTAMP as `2024-05-01 09:30:00
# UTC` (a fraction before the UTC when it has one), in CSV and JSON alike, with no setting
# to change it; every such value was refused as not a date.
_ITERABLE_DATE = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[ T](?P<time>\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?)"
    r"(?: ?(?P<offset>Z|[+-]\d{2}:?\d{2})| (?P<utc>UTC))?"
)
# Date-shaped text, compared as the instant it names (traits/compare.py): a bare day, or a
# day with a time to the second, a fraction and an offset, however Iterable or a source
# writes them.
DATE_SHAPE = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"(?:[ T]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?: ?(?:Z|[+-]\d{2}:?\d{2}))?)?"
)
# The shapes Iterable types as a date when they are written (its documented formats): a
# bare day, ISO 8601 (a `T`, a fraction of a second, an offset), or "yyyy-MM-dd HH:mm:ss
# ZZ", which has no fraction: Iterable refused "2020-04-13 14:04:09.000" for a date field
# as a string (block/iterable-go, parsers/mismatched_fields_parser_test.go). A time
# without seconds (2024-05-01 09:30) is text to Iterable too, which a date field refuses.
WRITTEN_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"(?:T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?: ?(?:Z|[+-]\d{2}:?\d{2}))?"
    r"| \d{2}:\d{2}:\d{2}(?: ?(?:Z|[+-]\d{2}:?\d{2}))?)?"
)
# A number as a data file writes it (a CSV cell, a spreadsheet's, a JSON number loosened):
# a sign, ASCII digits, a decimal point, an exponent. Python's int() and float() read more
# (1_000; digits of every script: a fullwidth or an Arabic-Indic 123 is 123), which a
# spreadsheet and Iterable read as text. Hex (0x1F), Infinity and NaN never match either.
NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WHOLE_TEXT = re.compile(r"[+-]?[0-9]+")
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


class ConversionError(ValueError):
    """A value cannot become the declared type; `reason` says why, for people."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def describe_value(value: Any) -> str:
    """A source value quoted in a message: personal data, so marked for masking (shown in
    full, cut short, only with --show-members)."""
    return f"'{source_value(value)}'"


def to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        # A manifest's number as its YAML text (manifest/yaml_file.py keeps it): `zip:
        # 01234` is the number 1234 to YAML, and "01234" to a mapping that asks for text.
        if isinstance(value, float) and not math.isfinite(value):
            raise ConversionError("is not a finite number")  # `.inf`: no number to write
        written = getattr(value, "yaml_text", None)
        if isinstance(written, str):
            return written
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    raise ConversionError(f"is {_kind(value)}, not text")


def to_number(value: Any) -> int | float:
    """An int when the value is whole (Iterable then types it long), else a float."""
    if isinstance(value, bool):
        raise ConversionError("is true/false, not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if not NUMBER_TEXT.fullmatch(text):
            # Infinity and NaN too: said as numbers that are not finite below.
            if text.lower().lstrip("+-") in ("inf", "infinity", "nan"):
                raise ConversionError("is not a finite number")
            raise ConversionError("is not a number")
        try:
            if _WHOLE_TEXT.fullmatch(text):
                return int(text)
            number = float(text)
        except ValueError:  # int() refuses over 4,300 digits
            raise ConversionError("is not a number") from None
    else:
        raise ConversionError(f"is {_kind(value)}, not a number")
    if not math.isfinite(number):
        raise ConversionError("is not a finite number")
    if number.is_integer() and abs(number) < 2**53:
        return int(number)
    return number


def to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    # A 1 or 0 however written: pandas makes an integer column with a missing value
    # float64, which it writes as 1.0 to Parquet and as "1.0" to CSV.
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        if NUMBER_TEXT.fullmatch(text) and float(text) in (0, 1):
            return bool(float(text))
    raise ConversionError("is not true or false (expected true/false, yes/no or 1/0)")


def parse_instant(value: Any) -> datetime.datetime:
    """A moment in UTC from a date, a datetime or date text; naive times count as UTC."""
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, datetime.date):
        moment = datetime.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        moment = _parse_date_text(value.strip())
    else:
        raise ConversionError(f"is {_kind(value)}, not a date")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        # 9999-12-31T23:00:00-05:00 is in year 10000 in UTC, which no datetime holds (nor
        # Iterable's date fields): a value not made, reported with its row, not a traceback.
        raise ConversionError("is not a date between the years 1 and 9999 in UTC") from None


def _parse_date_text(text: str) -> datetime.datetime:
    match = _ITERABLE_DATE.fullmatch(text)
    if match is not None:
        offset = "Z" if match["utc"] else match["offset"] or ""
        if offset and offset != "Z" and ":" not in offset:
            offset = f"{offset[:3]}:{offset[3:]}"
        text = f"{match['date']}T{match['time']}{offset}"
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ConversionError(
            "is not a date (expected YYYY-MM-DD, or a date and time such as "
            "2024-05-01T09:30:00Z or 2024-05-01 09:30:00 +00:00)"
        ) from None


def to_date(value: Any) -> str:
    day = _calendar_day(value)
    if day is not None:
        # A birthday or renewal day (a DATE column, `2025-07-01` in a cell, a YAML date)
        # names a day, not a moment. Sent as midnight UTC it became a moment that falls
        # on the day before in any time zone west of UTC, such as a US project's. Segment's
        # Iterable destination sent days that way too until a customer's report, and now
        # sends them as they are (segmentio/action-destinations#2305). Compared as
        # instants, a profile holding the midnight-UTC form is not rewritten.
        return day.isoformat()
    moment = parse_instant(value).replace(microsecond=0, tzinfo=None)
    # Not strftime: its %Y gives the year 1 as `1`, not `0001` (glibc), and Iterable types
    # `1-01-01 00:00:00 +00:00` as text, fixing a new field as a string for good (a
    # database's 0001-01-01 or -infinity is a common "no date"). isoformat pads to 4 digits.
    return f"{moment.isoformat(sep=' ')} +00:00"


def _calendar_day(value: Any) -> datetime.date | None:
    """The day `value` names when it names no time of day, else None."""
    if isinstance(value, datetime.datetime):
        return None  # a moment, even at midnight: its source said a time
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def to_object(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return _json_safe(dict(value))
    if isinstance(value, str):
        parsed = _json_text(value, 'a JSON object such as {"tier": "gold"}')
        if isinstance(parsed, dict):
            return parsed
    raise ConversionError('is not an object (expected a JSON object such as {"tier": "gold"})')


def to_list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return _json_safe(list(value))
    if isinstance(value, str):
        parsed = _json_text(value, 'a JSON array such as ["a", "b"]')
        if isinstance(parsed, list):
            return parsed
    raise ConversionError('is not a list (expected a JSON array such as ["a", "b"])')


def as_given(value: Any) -> Any:
    """No declared type: the value as the source gives it, made JSON-safe (dates as text)."""
    return _json_safe(value)


def _json_text(text: str, expected: str) -> Any:
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except _BeyondDouble:
        raise ConversionError(
            "holds a number beyond what Iterable can store (a double reaches about 1.8e308)"
        ) from None
    except (ValueError, RecursionError):
        raise ConversionError(f"is not valid JSON (expected {expected})") from None


def _no_constant(name: str) -> Any:
    raise ValueError(name)


class _BeyondDouble(Exception):
    """A JSON number such as 1e400, which json.loads reads as infinity."""


def _finite_float(text: str) -> float:
    # Infinity cannot be sent (no JSON body carries it: apply stopped in a traceback) nor
    # stored; a number that small (1e-400) reads as 0.0, as a double does anywhere.
    number = float(text)
    if not math.isfinite(number):
        raise _BeyondDouble(text)
    return number


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, datetime.datetime | datetime.date):
        return to_date(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConversionError("is not a finite number")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    # A database's bytes or interval: the query can make text or a number of it, which
    # one it means (hex or UTF-8 text, seconds or days) only its author knows.
    raise ConversionError(
        f"is {_kind(value)}, which Iterable cannot store; make it text or a number in the "
        "query (a cast, encode(... , 'hex'), EXTRACT(epoch FROM ...))"
    )


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, datetime.date):
        return "a date"
    # Python's names for a BLOB or bytea (bytes, memoryview) and an INTERVAL (timedelta)
    # mean nothing to the manifest's author.
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes (a BLOB or bytea)"
    if isinstance(value, datetime.timedelta):
        return "an interval"
    return f"a {type(value).__name__}"


CONVERTERS: dict[str | None, Callable[[Any], Any]] = {
    None: as_given,
    "string": to_string,
    "number": to_number,
    "boolean": to_boolean,
    "date": to_date,
    "object": to_object,
    "list": to_list,
}
