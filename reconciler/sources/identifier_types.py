"""Typed identifier columns (a Parquet file's, a query's) as the text Iterable matches.

Iterable's userIds and emails are text, matched exactly: a warehouse's NUMERIC 123 must
be `123`, not `123.0000000000`, and a pandas float64 id 1 (float because of NULLs) `1`,
not `1.0` (and 10**16 not `1e+16`); those matched nobody and silently made a second
profile of every member. So a number is written as its integer text, and one that is not
a whole number (or is floating point past 2**53, where a double no longer holds every
whole number, so its digits may already be wrong) fails the audience, naming the column.
A column of another type (boolean, date or time, interval, list, struct, JSON, inet)
holds nothing an app uses as an identifier: `true` would make every row one member, a
timestamp's text depends on who prints it. It is refused at the source's line, naming the
column and its type. Bytes (a BLOB, a bytea, a Parquet file written without string
annotations) are their UTF-8 text.

DuckDB sources are converted in SQL (`identifier_sql`), other queries' values in Python
(`identifier_text`); both engines use the same function for each, so they agree."""

from __future__ import annotations

import datetime
import decimal
import math
import re
import uuid
from typing import Any

from reconciler.errors import SourceError

# Floating point holds every whole number up to 2**53 (a double's 53-bit significand).
_EXACT_FLOAT = 2**53

# Raised inside DuckDB by `error()`, told from DuckDB's own errors by this mark.
_MARK = "reconciler: identifier column: "

# DuckDB types whose cast to VARCHAR is the identifier's text.
_AS_TEXT = re.compile(
    r'VARCHAR|UUID|"NULL"|ENUM\(.*\)|U?(?:TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)|VARINT|BIGNUM'
)
_WHOLE_DECIMAL = re.compile(r"DECIMAL\(\d+,0\)")
_DECIMAL = re.compile(r"DECIMAL\(\d+,\d+\)")
_FLOATING = ("FLOAT", "DOUBLE")

_ADVICE = "make it text or an integer (in a query: CAST(... AS TEXT) or AS BIGINT)"


def refused_column(source: str, name: str, role: str, kind: str) -> str:
    """Why an identifier column of type `kind` is refused, naming the source and column."""
    return (
        f"{source}: column {name!r} (the {role}) is {kind}, which is no identifier Iterable "
        f"could match: {_ADVICE}"
    )


def _not_whole(source: str, name: str, role: str, kind: str, floating: bool) -> str:
    past = (
        " (or one past 2^53, where floating point no longer holds every whole number)"
        if floating
        else ""
    )
    return (
        f"{source}: column {name!r} (the {role}) is {kind} and holds a value that is not a "
        f"whole number{past}: a whole number is written as its integer text (1.0 as 1), and "
        f"any other would match no user in Iterable; {_ADVICE}"
    )


def identifier_sql(cell: str, type_name: str, source: str, name: str, role: str) -> str:
    """DuckDB SQL giving column `cell` (of DuckDB type `type_name`) as identifier text;
    SourceError for a type no identifier has. A number that is not whole fails the query
    with a message `refusal` recognises."""
    if _AS_TEXT.fullmatch(type_name) or _WHOLE_DECIMAL.fullmatch(type_name):
        return f"CAST({cell} AS VARCHAR)"
    if type_name == "BLOB":
        bad = _literal(
            _MARK + refused_column(source, name, role, "BLOB holding bytes that are not UTF-8")
        )
        return (
            f"CASE WHEN {cell} IS NOT NULL AND try(decode({cell})) IS NULL "
            f"THEN error({bad}) ELSE decode({cell}) END"
        )
    if _DECIMAL.fullmatch(type_name) or type_name in _FLOATING:
        bad = _literal(_MARK + _not_whole(source, name, role, type_name, type_name in _FLOATING))
        whole = f"{cell} = trunc({cell})"
        if type_name in _FLOATING:
            whole = f"isfinite({cell}) AND {whole} AND abs({cell}) <= {_EXACT_FLOAT}"
        return (
            f"CASE WHEN {cell} IS NULL THEN NULL WHEN {whole} "
            f"THEN CAST(CAST({cell} AS HUGEINT) AS VARCHAR) ELSE error({bad}) END"
        )
    raise SourceError(refused_column(source, name, role, type_name))


def refusal(message: str) -> str | None:
    """The message of an identifier `identifier_sql` refused inside DuckDB, or None."""
    _, found, rest = message.partition(_MARK)
    return rest.split("\n")[0] if found else None


def identifier_text(value: Any, source: str, name: str, role: str) -> str | None:
    """A driver's value of an identifier column as identifier text (None: no value)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):  # before int: a bool is an int to Python
        raise SourceError(refused_column(source, name, role, "boolean"))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return str(int(value))
        raise SourceError(_not_whole(source, name, role, "numeric (decimal)", False))
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) <= _EXACT_FLOAT:
            return str(int(value))
        raise SourceError(_not_whole(source, name, role, "floating point", True))
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise SourceError(
                refused_column(source, name, role, "bytes that are not UTF-8")
            ) from None
    raise SourceError(refused_column(source, name, role, _kind(value)))


def _kind(value: Any) -> str:
    if isinstance(value, datetime.datetime):
        return "a timestamp"
    if isinstance(value, datetime.date):
        return "a date"
    if isinstance(value, datetime.time):
        return "a time"
    if isinstance(value, datetime.timedelta):
        return "an interval"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "JSON or a composite"
    return f"of type {type(value).__name__}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
