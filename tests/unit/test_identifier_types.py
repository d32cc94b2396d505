"""sources/identifier_types.py: a typed identifier column's values as the text Iterable
matches, in Python (identifier_text) and in DuckDB SQL (identifier_sql), which must agree."""

from __future__ import annotations

import datetime
import decimal
import uuid

import duckdb
import pytest

from reconciler.errors import SourceError
from reconciler.sources.identifier_types import identifier_sql, identifier_text, refusal

WHERE = ("users.parquet", "id", "userId")


def _text(value: object) -> str | None:
    return identifier_text(value, *WHERE)


def test_whole_numbers_of_any_type_are_their_integer_text() -> None:
    assert _text(123) == "123"
    assert _text(decimal.Decimal("123.000")) == "123"
    assert _text(1.0) == "1"
    assert _text(1e15) == "1000000000000000"  # not 1e+15
    assert _text(float(2**53)) == str(2**53)
    assert _text(b"u-1") == "u-1"
    assert _text(None) is None and _text("007") == "007"
    ident = uuid.UUID(int=5)
    assert _text(ident) == str(ident)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (1.5, "is floating point and holds a value that is not a whole number"),
        (float(2**53 + 2), "one past 2^53"),
        (1e16, "one past 2^53"),
        (float("nan"), "is floating point"),
        (decimal.Decimal("2.5"), "is numeric (decimal) and holds"),
        (True, "is boolean, which is no identifier"),
        (b"\xff\xfe", "is bytes that are not UTF-8"),
        (datetime.date(2024, 5, 1), "is a date,"),
        (datetime.datetime(2024, 5, 1), "is a timestamp,"),
        ([1, 2], "is an array,"),
    ],
)
def test_values_no_identifier_has_are_refused_naming_source_and_column(
    value: object, words: str
) -> None:
    with pytest.raises(SourceError) as caught:
        _text(value)
    message = str(caught.value)
    assert message.startswith("users.parquet: column 'id' (the userId) ")
    assert words in message


def _sql(type_name: str, values: list[object]) -> list[str | None]:
    cell = identifier_sql("v", type_name, *WHERE)
    rows = ", ".join(f"(CAST({'NULL' if v is None else repr(v)} AS {type_name}))" for v in values)
    with duckdb.connect() as con:
        found = con.execute(f"SELECT {cell} FROM (VALUES {rows}) AS t(v)").fetchall()
    return [r[0] for r in found]


def test_duckdb_writes_the_same_text_as_python() -> None:
    assert _sql("DOUBLE", [1.0, 1e15, None]) == ["1", "1000000000000000", None]
    assert _sql("DECIMAL(18,3)", ["42.000"]) == ["42"]
    assert _sql("BIGINT", [7]) == ["7"]
    assert _sql("DECIMAL(10,0)", [9]) == [_text(decimal.Decimal(9))]


def test_duckdb_fails_a_fraction_with_the_words_python_gives() -> None:
    with pytest.raises(duckdb.Error) as caught:
        _sql("DOUBLE", [1.0, 2.5])
    found = refusal(str(caught.value))
    with pytest.raises(SourceError) as python:
        _text(2.5)
    # The same words, naming the column's type as DuckDB knows it.
    assert found == str(python.value).replace("is floating point", "is DOUBLE", 1)
    assert refusal("Conversion Error: something else") is None


def test_a_type_no_identifier_has_is_refused_before_any_query() -> None:
    with pytest.raises(SourceError, match=r"column 'id' \(the userId\) is DATE"):
        identifier_sql("v", "DATE", *WHERE)
