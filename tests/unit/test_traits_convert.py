"""Trait values: conversion per declared type, templates in the sandbox, normalisation."""

from __future__ import annotations

import datetime

import pytest

from reconciler.manifest import Location
from reconciler.manifest.yaml_file import WrittenFloat
from reconciler.render.masking import reveal
from reconciler.traits import same_value
from reconciler.traits.convert import (
    ConversionError,
    to_boolean,
    to_date,
    to_number,
    to_string,
)
from reconciler.traits.mapping import CompiledField, CompiledMapping
from reconciler.traits.template import Template, template_syntax_error

HERE = Location("traits.yaml", 7, 5)


def column(name: str, source: str, type_: str | None = None) -> CompiledField:
    return CompiledField(name, source, None, type_, HERE)


def template(name: str, text: str, type_: str | None = None) -> CompiledField:
    return CompiledField(name, None, Template(text), type_, HERE)


def mapping(*fields: CompiledField) -> CompiledMapping:
    return CompiledMapping("crm", fields, False, HERE)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("42", 42),
        (" -7 ", -7),
        ("1250.50", 1250.5),
        ("1e3", 1000),
        ("3.0", 3),
        (12, 12),
        (2.5, 2.5),
        # As spreadsheets and CRM exports write them: a sign, a bare point, a capital E.
        ("+5", 5),
        ("+1.5", 1.5),
        ("1.", 1),
        (".5", 0.5),
        ("-.25", -0.25),
        ("2.5E2", 250),
        ("\t12\n", 12),
        # Whole text stays exact past a double's 53 bits (a numeric userId, a cent count).
        ("12345678901234567891", 12345678901234567891),
        # A double past 2**53 is not known to be whole: kept as the float it is.
        (float(2**53), float(2**53)),
        (float(2**53 - 1), 2**53 - 1),
    ],
)
def test_numbers_are_whole_when_they_can_be(raw: object, expected: object) -> None:
    value = to_number(raw)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    "raw",
    ["abc", "1_000", "nan", "inf", "1,5", True, "0x1F", "0o7", "\uff11\uff12", "\u0661\u0662"],
)
def test_what_is_not_a_number_is_refused(raw: object) -> None:
    with pytest.raises(ConversionError):
        to_number(raw)


@pytest.mark.parametrize("raw", ["inf", "-Infinity", "+inf", "NaN", "-nan", float("inf")])
def test_infinity_and_nan_are_said_to_be_numbers_that_are_not_finite(raw: object) -> None:
    with pytest.raises(ConversionError) as raised:
        to_number(raw)
    assert raised.value.reason == "is not a finite number"


@pytest.mark.parametrize("written", [".inf", "-.Inf", ".nan"])
def test_infinity_written_in_a_manifest_is_no_text_to_send(written: str) -> None:
    """A manifest's `.inf` keeps its text for messages (manifest/yaml_file.py), as `01234`
    does for a field of type string; unlike `01234`, it is no number a member has, and is
    refused as before rather than sent as the text '.inf'."""
    value = WrittenFloat(float(written.replace(".", "").lower()), written)
    with pytest.raises(ConversionError) as raised:
        to_string(value)
    assert raised.value.reason == "is not a finite number"


def test_whole_text_too_long_for_python_is_not_a_number_not_a_crash() -> None:
    # int() refuses text over 4,300 digits with a ValueError of its own.
    with pytest.raises(ConversionError) as raised:
        to_number("9" * 5000)
    assert raised.value.reason == "is not a number"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # A day without a time of day goes out as that day: midnight UTC is the evening
        # before west of UTC, a birthday moved back by a day in a US project.
        ("2025-07-01", "2025-07-01"),
        (" 2025-07-01 ", "2025-07-01"),
        ("2025-07-01T09:30:15Z", "2025-07-01 09:30:15 +00:00"),
        # A moment at midnight is still a moment: its source wrote a time.
        ("2025-07-01T00:00:00Z", "2025-07-01 00:00:00 +00:00"),
        (datetime.datetime(2025, 7, 1), "2025-07-01 00:00:00 +00:00"),
        ("2025-07-01T11:30:15.999+02:00", "2025-07-01 09:30:15 +00:00"),
        ("2025-07-01 09:30:15 +00:00", "2025-07-01 09:30:15 +00:00"),
        ("2025-07-01 04:30:15 -0500", "2025-07-01 09:30:15 +00:00"),
        ("2025-07-01 09:30:15", "2025-07-01 09:30:15 +00:00"),  # naive: UTC
        # BigQuery's TIMESTAMP as `bq extract` and its console write it, in CSV and JSON.
        ("2025-07-01 09:30:15 UTC", "2025-07-01 09:30:15 +00:00"),
        ("2025-07-01 09:30:15.123456 UTC", "2025-07-01 09:30:15 +00:00"),
        (datetime.date(2025, 7, 1), "2025-07-01"),
        # A database's "no date" (0001-01-01, DuckDB's -infinity) keeps a 4-digit year:
        # `1-01-01 ...` is text to Iterable, which would type a new field string for good.
        (datetime.date(1, 1, 1), "0001-01-01"),
        (datetime.datetime(1, 1, 1), "0001-01-01 00:00:00 +00:00"),
        ("0999-12-31", "0999-12-31"),
        (datetime.datetime(9999, 12, 31, 23, 59, 59, 999999), "9999-12-31 23:59:59 +00:00"),
    ],
)
def test_dates_are_written_as_iterable_stores_them(raw: object, expected: str) -> None:
    assert to_date(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "2025-13-45",
        "yesterday",
        "07/01/2025",
        # Only UTC is spelt out: another zone's name or abbreviation says no offset for sure.
        "2025-07-01 09:30:15 EST",
        "2025-07-01 09:30:15UTC",
        1_700_000_000,
        # In UTC these are in the years 10000 and 0: refused as values, not a traceback.
        "9999-12-31T23:00:00-05:00",
        "0001-01-01 00:30:00 +01:00",
    ],
)
def test_what_is_not_a_date_is_refused(raw: object) -> None:
    with pytest.raises(ConversionError):
        to_date(raw)


@pytest.mark.parametrize(
    ("raw", "expected"), [("yes", True), ("FALSE", False), ("1", True), (0, False)]
)
def test_booleans(raw: object, expected: bool) -> None:
    assert to_boolean(raw) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # pandas makes an integer column with a missing value float64, and writes 1.0 to
        # Parquet and "1.0" to CSV.
        (1.0, True),
        (0.0, False),
        ("1.0", True),
        (" 0.00 ", False),
    ],
)
def test_a_one_or_zero_written_as_a_decimal_is_a_boolean(raw: object, expected: bool) -> None:
    assert to_boolean(raw) is expected


@pytest.mark.parametrize("raw", [2, 0.5, "2", "1.5", "-1", "1e0x", float("nan"), "on", ""])
def test_other_numbers_and_words_are_no_boolean(raw: object) -> None:
    with pytest.raises(ConversionError, match="is not true or false"):
        to_boolean(raw)


def test_a_bad_value_names_field_column_and_value_and_spares_the_other_fields() -> None:
    compiled = mapping(
        column("ltv", "lifetime_value", "number"),
        column("plan", "plan"),
        column("renews", "renews_on", "date"),
    )
    values, errors = compiled.values({"lifetime_value": "12,5", "plan": "pro", "renews_on": ""})
    assert values == {"plan": "pro", "renews": None}  # an empty cell is no value
    # The value is source data: in full with --show-members, masked otherwise.
    assert [reveal(e.message, True) for e in errors] == [
        "field 'ltv' (column 'lifetime_value'): '12,5' is not a number; the field is not "
        "written for this member"
    ]
    assert "'1***' is not a number" in reveal(errors[0].message, False)


def test_a_database_interval_iterable_cannot_store_is_named_by_its_database_type() -> None:
    # A query's INTERVAL was said to be 'a timedelta' (Python's name), with no word on
    # what to do.
    _, errors = mapping(column("photo", "photo")).values({"photo": datetime.timedelta(2)})
    assert [e.message.split(": ", 1)[1].split(" is ", 1)[1] for e in errors] == [
        "an interval, which Iterable cannot store; make it text or a number in the query (a "
        "cast, encode(... , 'hex'), EXTRACT(epoch FROM ...)); the field is not written for "
        "this member"
    ]


@pytest.mark.parametrize("raw", [b"Ann", memoryview(b"Ann")])  # psycopg2's bytea
@pytest.mark.parametrize("type_", [None, "string", "number", "object"])
def test_bytes_are_refused_with_the_template_that_sends_their_text(
    raw: object, type_: str | None
) -> None:
    # A BLOB or bytea was 'a bytes' or 'a memoryview' (Python's names); then 'bytes, make
    # it text in the query', which a Parquet source has none of: a Parquet file whose text
    # was written without a string annotation (by Impala or Hive) had every value of every
    # mapped text column refused with advice no one could follow.
    _, errors = mapping(column("first", "first name", type_)).values({"first name": raw})
    assert [e.message.split(": ", 1)[1].split(" is ", 1)[1] for e in errors] == [
        "bytes (a BLOB or bytea), which Iterable cannot store; for the text they hold, map a "
        "template, {{ row['first name'].decode('utf-8') }}, or make it text in the query; "
        "the field is not written for this member"
    ]
    # The template it names sends the text.
    decoded = mapping(template("first", "{{ row['first name'].decode('utf-8') }}", type_))
    if type_ in (None, "string"):
        assert decoded.values({"first name": raw}) == ({"first": "Ann"}, [])


def test_a_key_an_inline_member_leaves_out_is_not_written_but_null_clears() -> None:
    # A bare `- a@example.com`, or a mapping without the key, says nothing about the field:
    # sending null would clear what Iterable holds (and clash with another audience's value).
    compiled = mapping(column("plan", "plan"), column("ltv", "lifetime_value", "number"))
    assert compiled.values({"email": "a@example.com"}) == ({}, [])
    assert compiled.values({"email": "a@example.com", "plan": None}) == ({"plan": None}, [])
    assert compiled.values({"plan": "pro", "lifetime_value": ""}) == (
        {"plan": "pro", "ltv": None},
        [],
    )


def test_object_and_list_from_json_text() -> None:
    compiled = mapping(column("prefs", "p", "object"), column("tags", "t", "list"))
    values, errors = compiled.values({"p": '{"email": true}', "t": '["a", "b"]'})
    assert values == {"prefs": {"email": True}, "tags": ["a", "b"]}
    assert errors == []
    _, errors = compiled.values({"p": "[1]", "t": "a,b"})
    assert [e.field for e in errors] == ["prefs", "tags"]


def test_json_text_holding_a_number_beyond_any_double_is_refused() -> None:
    # json.loads reads 1e400 as inf, which no JSON body can carry: sent on, it ended apply
    # in a traceback ("Out of range float values are not JSON compliant") after the
    # subscribes, and the plan showed it as Infinity.
    compiled = mapping(column("prefs", "p", "object"), column("tags", "t", "list"))
    values, errors = compiled.values({"p": '{"score": 1e400}', "t": "[1, -1e999]"})
    assert values == {}
    assert [reveal(e.message, True) for e in errors] == [
        "field 'prefs' (column 'p'): '{\"score\": 1e400}' holds a number beyond what Iterable "
        "can store (a double reaches about 1.8e308); the field is not written for this member",
        "field 'tags' (column 't'): '[1, -1e999]' holds a number beyond what Iterable can "
        "store (a double reaches about 1.8e308); the field is not written for this member",
    ]
    ok, errors = compiled.values({"p": '{"score": 1.7976931348623157e308}', "t": "[1e-400]"})
    assert errors == [] and ok == {"prefs": {"score": 1.7976931348623157e308}, "tags": [0.0]}


def test_a_value_whose_items_disagree_in_type_is_not_sent() -> None:
    # Iterable refuses a user's whole update (membership too) for such a value: only that
    # field is left out, as for a value that does not convert.
    compiled = mapping(column("tags", "t", "list"), column("prefs", "p", "object"))
    ok, errors = compiled.values({"t": "[1, 2.5]", "p": '{"d": ["2025-07-01", "soon"]}'})
    assert errors == [] and ok == {"tags": [1, 2.5], "prefs": {"d": ["2025-07-01", "soon"]}}
    values, errors = compiled.values({"t": '[1, "x"]', "p": '{"rows": [{"n": 1}, {"n": true}]}'})
    assert values == {}
    assert [reveal(e.message, True) for e in errors] == [
        "field 'tags' (column 't'): '[1, \"x\"]' has items of two types (number and text), "
        "which Iterable refuses; the field is not written for this member",
        "field 'prefs' (column 'p'): '{\"rows\": [{\"n\": 1}, {\"n\": true}]}' has items of "
        "two types at 'rows.n' (number and true/false), which Iterable refuses; the field is "
        "not written for this member",
    ]
    # A template's text is one string: nothing to disagree.
    assert mapping(template("t", "{{ t }}")).values({"t": '[1, "x"]'}) == ({"t": '[1, "x"]'}, [])


def test_a_value_over_iterables_size_limits_is_not_sent() -> None:
    # Iterable keeps about 32k characters in a field value, nested ones included, and a
    # request body holds 4 MB: a value past either is left out, as one that does not
    # convert, and the member's other fields go ahead.
    compiled = mapping(
        column("bio", "b"), column("prefs", "p"), column("ids", "i"), template("t", "{{ b }}")
    )
    at_limit = "x" * 32_000
    ok, errors = compiled.values({"b": at_limit, "p": {"a": [at_limit]}, "i": [1, 2]})
    assert errors == [] and ok["bio"] == at_limit and ok["ids"] == [1, 2]
    many = list(range(700_000))  # a query's array column: 4.8 MB of JSON
    values, errors = compiled.values(
        {"b": at_limit + "x", "p": {"a": ["ok", "y" * 40_000]}, "i": many}
    )
    assert values == {}
    over = "over the about 32,000 Iterable keeps in a field value; the field is not written"
    assert [reveal(e.message, True) for e in errors] == [
        f"field 'bio' (column 'b'): '{'x' * 57}...' holds text of 32,001 characters, {over} "
        "for this member",
        f"field 'prefs' (column 'p'): '{{\"a\": [\"ok\", \"{'y' * 43}...' holds text of "
        f"40,000 characters, {over} for this member",
        f"field 't' (template at traits.yaml:7:5): the template gave '{'x' * 57}...', which "
        f"holds text of 32,001 characters, {over} for this member",
        "field 'ids' (column 'i'): its value (4,788,891 bytes of JSON) and the member's other "
        "fields would be over the 4,000,000 bytes an Iterable request may carry; the field is "
        "not written for this member",
    ]
    # Quoted a prefix at a time: a refused value of megabytes is not kept whole.
    assert all(len(e.message) < 300 for e in errors)


def test_values_that_fit_no_request_together_leave_out_the_largest_until_the_rest_fit() -> None:
    # Each value alone is within Iterable's limits, the 129 together are over the 4 MB a
    # request may carry: the member was refused at apply, its subscribe with it, after
    # other lists were written.
    fields = [column(f"f{i:03}", "bio") for i in range(129)]
    compiled = mapping(*fields, column("tags", "tags"))
    values, errors = compiled.values({"bio": "x" * 31_000, "tags": [1, 2]})
    # 128 of the 129, and tags
    assert len(values) == 129 and "f000" not in values and values["tags"] == [1, 2]
    assert [reveal(e.message, True) for e in errors] == [
        "field 'f000' (column 'bio'): its value (31,002 bytes of JSON) and the member's other "
        "fields would be over the 4,000,000 bytes an Iterable request may carry; the field "
        "is not written for this member"
    ]
    # The largest go first, then the first by name among equals.
    values, errors = compiled.values({"bio": "x" * 31_000, "tags": ["y" * 31_500]})
    assert [e.field for e in errors] == ["tags", "f000"]
    assert compiled.values({"bio": "x" * 30_000, "tags": [1]})[1] == []


def test_templates_render_columns_and_the_row() -> None:
    compiled = mapping(
        template("greeting", "Hi {{ first_name | title }}"),
        template("full", "{{ row['first name'] }} {{ last }}"),
        template("score", "{{ a * 2 }}", "number"),
    )
    values, errors = compiled.values(
        {"first_name": "ada", "first name": "Ada", "last": "Lovelace", "a": 21}
    )
    assert errors == []
    assert values == {"greeting": "Hi Ada", "full": "Ada Lovelace", "score": 42}


def test_a_null_column_renders_as_no_text_not_none() -> None:
    # SQL NULL or a null in Parquet/YAML: the text is empty, as for an empty CSV cell.
    compiled = mapping(template("greeting", "Hi {{ nick }}!"), template("nick", "{{ nick }}"))
    assert compiled.values({"nick": None}) == ({"greeting": "Hi !", "nick": ""}, [])
    # Tests and filters still see the null itself.
    compiled = mapping(template("greeting", "Hi {{ nick if nick is not none else 'there' }}"))
    assert compiled.values({"nick": None}) == ({"greeting": "Hi there"}, [])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # README's own example, and the other ways a template makes text of a column.
        ("Hi {{ first_name | title }}", "Hi "),
        ("{{ first_name | upper }}", ""),
        ("{{ first_name | string }}", ""),
        ("{{ first_name ~ ' ' ~ last_name }}", " Lovelace"),
        ("{{ '%s %s' | format(first_name, last_name) }}", " Lovelace"),
        ("{{ '%s %s' % (first_name, last_name) }}", " Lovelace"),
        ("{{ '{} {}'.format(first_name, last_name) }}", " Lovelace"),
        ("{{ '{:>3}|'.format(first_name) }}", "   |"),
        ("{{ [last_name, first_name] | join(', ') }}", "Lovelace, "),
        # An array column with a NULL item: a list, or a tuple (a fixed-size DuckDB ARRAY).
        ("{{ names | join(', ') }}", "Ada, "),
        ("{{ pair | join(', ') }}", ", Byron"),
        ('{{ row["first_name"] ~ "!" }}', "!"),
        ("{{ row.get('middle_name') ~ '!' }}", "!"),
        ("{{ address.city ~ '!' }}", "!"),
        ("{{ address['city'] | lower }}", ""),
        ("{{ (first_name | trim) or 'there' }}", "there"),
        # The null is still a null to tests, comparisons, default(..., true) and tojson.
        ("{{ first_name is none }} {{ first_name is not none }}", "True False"),
        ("{{ first_name == none }} {{ first_name is sameas none }}", "True True"),
        ("{{ first_name | default('there', true) }}", "there"),
        ("{{ {'a': first_name, 'b': address.city} | tojson }}", '{"a": null, "b": null}'),
        ("{{ first_name if first_name else 'there' }}", "there"),
    ],
)
def test_a_null_column_is_no_text_wherever_a_template_makes_text_of_it(
    text: str, expected: str
) -> None:
    # A nullable column of a query or Parquet file: `~`, filters and formats made the text
    # 'None' of it ('Hi None', 'NONE Lovelace'), only `{{ x }}` printing it as nothing.
    row = {
        "first_name": None,
        "last_name": "Lovelace",
        "address": {"city": None},
        "names": ["Ada", None],
        "pair": (None, "Byron"),
    }
    assert Template(text).render(row) == expected


@pytest.mark.parametrize("convert", ["int", "float"])
def test_int_and_float_filters_make_no_zero_of_a_value_that_is_no_number(convert: str) -> None:
    # jinja2's int and float give 0 for text they cannot read and for no value at all: an
    # empty cell, a NULL or 'n/a' went to Iterable as a lifetime value of 0.
    compiled = mapping(template("ltv", f"{{{{ ltv | {convert} }}}}", "number"))
    assert compiled.values({"ltv": "12"}) == ({"ltv": 12}, [])
    # No value clears the field, as the column would (`from: ltv`).
    for empty in ("", "  ", None):
        assert compiled.values({"ltv": empty}) == ({"ltv": None}, [])
    # Text that is no number fails the row, without quoting it.
    values, errors = compiled.values({"ltv": "n/a"})
    assert values == {}
    [error] = errors
    assert error.reason == (
        f"ValueError: the {convert} filter was given a value that is not a number; give it a "
        f"default to use instead ({convert}(0)) or test the value first"
    )
    assert "n/a" not in error.message
    # A default the template gives is used as jinja2 uses it.
    explicit = mapping(
        template("a", f"{{{{ ltv | {convert}(-1) }}}}", "number"),
        template("b", f"{{{{ ltv | {convert}(default=-1) }}}}", "number"),
    )
    assert explicit.values({"ltv": "n/a"}) == ({"a": -1, "b": -1}, [])
    assert explicit.values({"ltv": ""}) == ({"a": -1, "b": -1}, [])


def test_the_int_filter_keeps_its_base() -> None:
    compiled = mapping(template("n", "{{ n | int(base=16) }}", "number"))
    assert compiled.values({"n": "ff"}) == ({"n": 255}, [])
    assert compiled.values({"n": "zz"})[0] == {}


def test_a_null_in_arithmetic_is_the_same_row_error_as_before() -> None:
    compiled = mapping(template("score", "{{ points + 1 }}", "number"))
    values, errors = compiled.values({"points": None})
    assert values == {}
    assert [e.reason for e in errors] == [
        "cannot apply + to an empty value (None) and a whole number"
    ]


def test_bytes_in_a_template_are_refused_as_text_and_decoded_on_request() -> None:
    # A BLOB or bytea, or a Parquet file's text written without a string annotation (as
    # Impala and Hive write it): printed, Python's text of it went to Iterable, 'Hi b'Ann''
    # (a psycopg2 bytea: 'Hi <memory at 0x7f...>').
    compiled = mapping(
        template("greeting", "Hi {{ first | title }}"),
        template("raw", "{{ row['first name'] }}"),
        template("decoded", "Hi {{ first.decode('utf-8') }}"),
        template("has_photo", "{{ 'yes' if photo else 'no' }} {{ photo | length }}"),
    )
    row = {"first": b"ann", "first name": memoryview(b"Ann"), "photo": b"\x89PNG"}
    values, errors = compiled.values(row)
    assert values == {"decoded": "Hi ann", "has_photo": "yes 4"}
    assert [e.message for e in errors] == [
        "field 'greeting' (template at traits.yaml:7:5): column 'first' is bytes (a BLOB or "
        "bytea), which have no text of their own: write {{ first.decode('utf-8') }} for the "
        "text they hold, or make it text in the query; the field is not written for this member",
        "field 'raw' (template at traits.yaml:7:5): column 'first name' is bytes (a BLOB or "
        "bytea), which have no text of their own: write {{ row['first name'].decode('utf-8') }} "
        "for the text they hold, or make it text in the query; the field is not written for "
        "this member",
    ]


def test_a_typed_template_that_gives_no_text_clears_the_field_as_an_empty_cell_does() -> None:
    # A template of a NULL gives no text, which no number, date or true/false is: every
    # run reported it and exited 1, and no template could clear such a field, where
    # `from:` the same column sends null.
    compiled = mapping(
        template("score", "{{ s }}", "number"),
        template("renews", "{{ d }}\n", "date"),  # a YAML block scalar ends in a newline
        template("vip", "{% if v %}{{ v }}{% endif %}", "boolean"),
        template("prefs", " {{ p }} ", "object"),
        template("tags", "{{ t }}", "list"),
        template("note", "{{ s }}", "string"),  # text: an empty one is text too
        template("nick", "{{ s }}"),
    )
    row = {"s": None, "d": "", "v": None, "p": None, "t": ""}
    assert compiled.values(row) == (
        {
            "score": None,
            "renews": None,
            "vip": None,
            "prefs": None,
            "tags": None,
            "note": "",
            "nick": "",
        },
        [],
    )
    values, errors = compiled.values({**row, "s": "x"})
    assert [e.field for e in errors] == ["score"] and values["note"] == "x"


def test_an_undefined_variable_is_an_error_naming_the_template() -> None:
    compiled = mapping(template("greeting", "Hi {{ frist_name }}"))
    values, errors = compiled.values({"first_name": "Ada"})
    assert values == {}
    assert [e.message for e in errors] == [
        "field 'greeting' (template at traits.yaml:7:5): undefined variable: 'frist_name' is "
        "undefined; the field is not written for this member"
    ]


def test_the_sandbox_keeps_templates_away_from_python_internals() -> None:
    compiled = mapping(template("x", "{{ row.__class__.__mro__[1].__subclasses__() }}"))
    values, errors = compiled.values({"a": 1})
    assert values == {}
    assert [e.field for e in errors] == ["x"]
    assert errors[0].reason.startswith("refused by the template sandbox: access to attribute")


def test_template_syntax_errors_are_found_without_rendering() -> None:
    assert template_syntax_error("Hi {{ name }}") is None
    problem = template_syntax_error("Hi {{ name ")
    assert problem is not None and problem.startswith("template syntax error: ")


@pytest.mark.parametrize(
    ("desired", "live"),
    [
        (42, 42.0),
        ("2025-07-01 00:00:00 +00:00", "2025-07-01T00:00:00Z"),
        ("2025-07-01", "2025-07-01 00:00:00 +00:00"),
        (None, None),
        ({"a": 1, "b": [1.0, "x"]}, {"b": [1, "x"], "a": 1.0}),
        (2**53 + 1, 2.0**53),  # a double field holds the nearest double
        # ... and so does a double path inside an object or a list (traits.types.as_doubles)
        ({"c": 12345678901234567890123, "n": 2}, {"c": 1.2345678901234568e22, "n": 2}),
        ([2**53 + 1, 3], [2.0**53, 3.0]),
        ({"rows": [{"v": 2**53 + 1}]}, {"rows": [{"v": 2.0**53}]}),
        # Beyond the years a datetime holds in UTC: compared as the text it is.
        ("9999-12-31T23:00:00-05:00", "9999-12-31T23:00:00-05:00"),
        # Iterable hands a date written to the microsecond back with a second fraction
        # (estuary/connectors, source-iterable-native/models.py `_fix_iterable_datetime`).
        ("2025-12-19T22:43:34.134105", "2025-12-19T22:43:34.134105.000Z"),
        ("2025-12-19T22:43:34.134105Z", "2025-12-19T22:43:34.134105.000Z"),
        ({"at": ["2025-12-19T22:43:34.5"]}, {"at": ["2025-12-19T22:43:34.5.000Z"]}),
    ],
)
def test_equal_after_normalisation(desired: object, live: object) -> None:
    assert same_value(desired, live)


@pytest.mark.parametrize(
    ("desired", "live"),
    [
        (42, "42"),
        (True, 1),
        ("pro", "Pro"),
        (None, ""),
        ("2025-07-01", "2025-07-02"),
        (1.5, 1),
        (2**53 + 4, 2.0**53),
        (10**400, 1e308),
        (2**53 + 1, 2**53),  # a long field holds it exactly
        ({"c": 2**53 + 1}, {"c": 2**53}),
        ({"c": 2**53 + 4}, {"c": 2.0**53}),
        ([2**53 + 1], [2.0**53, 1.0]),
        ({"c": 10**400}, {"c": 1e308}),
        (True, 1.0),
        ("2025-12-19T22:43:34.134105", "2025-12-19T22:43:34.134106.000Z"),
        ("2025-12-19T22:43:34.134105", "2025-12-19T22:43:34.000.134105Z"),
    ],
)
def test_different_after_normalisation(desired: object, live: object) -> None:
    assert not same_value(desired, live)


def test_merged_objects_only_need_the_keys_they_name() -> None:
    live = {"email": True, "sms": False}
    assert same_value({"email": True}, live, merge_nested_objects=True)
    assert not same_value({"email": True}, live)
    assert not same_value({"email": False}, live, merge_nested_objects=True)


def test_a_comma_list_for_a_list_field_is_told_how_to_split_it() -> None:
    # A CRM's tags column holds `vip, beta`: refused as no JSON, with nothing on how to
    # send it as the list it is.
    compiled = mapping(column("tags", "tags", "list"), column("other", "a b", "list"))
    assert "row['a b'].split(',')" in compiled.values({"a b": "vip"})[1][0].reason
    assert "split" not in compiled.values({"a b": "[vip, beta]"})[1][0].reason
    values, [error] = compiled.values({"tags": "vip, beta"})
    assert values == {}
    assert reveal(error.reason, True) == (
        '\'vip, beta\' is not valid JSON (expected a JSON array such as ["a", "b"]); for text '
        "separated by commas, write a template: {{ tags.split(',') | map('trim') | list | "
        "tojson }}"
    )


def test_a_template_printing_a_list_without_tojson_is_told_to_use_it() -> None:
    # Python's text of a list (['vip', 'beta']) is no JSON.
    compiled = mapping(template("tags", "{{ tags.split(',') }}", "list"))
    values, [error] = compiled.values({"tags": "vip,beta"})
    assert values == {}
    assert reveal(error.reason, True).endswith(
        'is not valid JSON (expected a JSON array such as ["a", "b"]); a template writes '
        "a list as JSON with | tojson"
    )
