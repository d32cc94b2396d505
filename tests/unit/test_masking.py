"""Masking keeps at most one character of any identifier, whatever its shape (issue 15.5),
and a masked sample still tells members apart (issue 20.18)."""

from __future__ import annotations

import re

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.render.masking import (
    Masker,
    column_names,
    marking_sent,
    mask_emails,
    mask_identifier,
    message_for,
    reveal,
    shower,
    source_value,
)

IDENTIFIERS = [
    "jane.doe@example.com",
    "o@a.anything-secret",
    "jane@example.c0m",
    "owner@secret-domain.internal",
    "broken@@example.com",
    "x@y",
    "usr_00012391",
    "abcdefgh",
    "customer-77731",
    "a" * 52,
    "ab",
]


def revealed(identifier: str, masked: str) -> str:
    """What of the identifier a mask still shows: the mask without its fixed parts."""
    return re.sub(r"#\d+$", "", masked).replace("***", "").replace("@", "")


def test_at_most_one_character_of_any_identifier_survives():
    for identifier in IDENTIFIERS:
        masked = mask_identifier(identifier)
        kept = revealed(identifier, masked)
        assert len(kept) <= 1, (identifier, masked)
        assert identifier.startswith(kept), (identifier, masked)


def test_the_mask_says_nothing_about_length_or_domain():
    assert mask_identifier("usr_00012391") == mask_identifier("u" * 40) == "u***"
    assert mask_identifier("jane@example.com") == mask_identifier("jxyz@other.org") == "j***@***"
    # Short identifiers show nothing at all: one character would be most of them.
    assert mask_identifier("ab") == "***"
    assert mask_identifier("kim@example.org") == "***@***"


def test_every_email_shaped_token_in_free_text_is_masked_whatever_its_tld():
    text = "failed for o@a.anything-secret, 'jane@example.c0m' and <broken@@example.com>; also x@y"
    masked = mask_emails(text)
    for secret in ("anything-secret", "example.c0m", "example.com", "jane", "x@y"):
        assert secret not in masked, (secret, masked)
    assert masked.count("@***") == 4


def test_an_email_with_an_apostrophe_or_a_quoted_local_part_is_masked_whole():
    # An apostrophe ended the token, so "o'brien@..." kept "o'b" and a quoted local part
    # ('"jo smith"@...', which the quotes hid from the token) was printed in full.
    text = """failed for o'brien@example.com, 'd'arcy.lee@example.com' and "jo.smith"@example.com"""
    masked = mask_emails(text)
    for secret in ("o'b", "brien", "d'arcy", "arcy", "jo.smith", "example.com"):
        assert secret not in masked, (secret, masked)
    assert masked == """failed for o***@***, 'd***@***' and "***@***"""
    # Quotes and apostrophes around an address still end it.
    assert mask_emails("it's 'jane@example.com'") == "it's 'j***@***'"
    assert mask_emails('{"email":"jane@example.com"}') == '{"email":"j***@***"}'
    # As SQL quotes them (a database's error), apostrophes doubled.
    assert mask_emails("value 'o''brien@example.com'") == "value 'o***@***'"
    assert mask_emails("value ''anna''@example.com") == "value ''a***@***"


# The pattern mask_emails used before it was made linear: what it matched is the contract.
_SEPARATORS = r"\s'\"<>(),;:\[\]{}`|"
_REFERENCE = re.compile(
    rf"(?:\"[^\"\n@]*\"|[^{_SEPARATORS}]+(?:'+[^{_SEPARATORS}]+)*'*)@[^{_SEPARATORS}]*"
)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab@'\" .\n<", max_size=40))
def test_emails_are_found_in_free_text_as_the_reference_pattern_finds_them(text: str) -> None:
    assert mask_emails(text) == _REFERENCE.sub(lambda m: mask_identifier(m.group(0)), text)


def test_a_long_token_without_an_at_costs_time_in_proportion_to_its_length() -> None:
    # Found by fuzzing: the pattern tried every position of a token without '@' and ran it
    # to the token's end, so a 70,000-character name in a manifest (echoed by validate's
    # "unknown destination '...'") held validate for many minutes; this line took hours.
    # 'x' chains joined by apostrophes too, as SQL and names write them.
    long_token = "x" * 300_000 + " " + "x'" * 100_000 + " jane@example.com " + "y" * 300_000
    masked = mask_emails(long_token)
    assert "jane" not in masked and " j***@*** " in masked and len(masked) < len(long_token)


def test_a_masked_sample_tells_members_apart_and_names_one_member_one_way():
    show = shower(False)
    assert isinstance(show, Masker)
    people = [f"person{i}@example.com" for i in range(10)]
    lines = [show(p) for p in people]
    assert len(set(lines)) == 10
    assert show(people[3]) == lines[3]  # the same member keeps its number
    assert all(line.startswith("p***@***#") for line in lines)
    # The number is an ordinal of this output, not derived from the address.
    assert Masker()(people[9]) == "p***@***#1"
    assert shower(True)(people[0]) == people[0]


def test_column_names_that_look_like_member_data_are_masked_unless_shown():
    assert column_names(["email", "first_name", "plan tier"]) == "email, first_name, plan tier"
    row = ["jane.doe@example.com", "usr_00012391", "Jane"]
    message = f"columns are: {column_names(row)}"
    masked = mask_emails(message)
    for value in row:
        assert value not in masked
    assert masked.startswith("columns are: j***, u***, J***") and "header row" in masked
    assert reveal(message, True).startswith("columns are: jane.doe@example.com, usr_00012391")
    # Only a CSV whose first line is blank has no column names.
    assert column_names([]) == "(none: the first line, where the header row goes, is blank)"


def test_a_query_s_column_names_ask_for_names_not_for_a_header_row():
    # A query has no header row: names it left to the database are said to be so, a
    # value one of them quotes (or a PIVOT made a name) stays masked, its own names plain.
    hint = "name them"
    assert column_names(["email", "user_id"], hint) == "email, user_id"
    listed = mask_emails(column_names(["?column?", "user_id", "'ann@example.com'"], hint))
    assert listed.startswith("?column?, user_id, '*** (a column the query leaves unnamed")
    assert listed.endswith(": name them)") and "header row" not in listed
    assert "ann@example.com" not in listed
    assert column_names([], hint) == "(none: the query selects no columns)"


def test_source_data_quoted_in_a_message_follows_the_output_s_choice():
    message = f"field 'tier': '{source_value('Jane Doe')}' is not a number"
    assert reveal(message, False) == "field 'tier': 'J***' is not a number"
    assert reveal(message, True) == "field 'tier': 'Jane Doe' is not a number"
    # A terminal escape in a cell is shown escaped, and a long value cut short.
    assert reveal(source_value("\x1b[31mred"), True) == "\\x1b[31mred"
    assert len(reveal(source_value("x" * 500), True)) == 60
    assert message_for(message, shower(False)) == mask_emails(message)
    assert message_for(message, shower(True)) == reveal(message, True)


def test_values_a_database_error_quotes_are_masked():
    errors = [
        "Conversion Error: CSV Error on Line: 2\nOriginal Line: jane.doe@example.com,usr_00012391"
        '\nError when converting column "uid". Could not convert string "usr_00012391" to INT',
        "Conversion Error: Could not convert string 'usr_00012391' to INT32",
        'invalid input syntax for type integer: "usr_00012391"',
    ]
    for text in errors:
        masked = mask_emails(text)
        assert "usr_0" not in masked and "jane" not in masked, masked
        assert "u***" in masked or "j***" in masked


def test_a_csv_line_duckdb_quotes_is_masked_to_its_reason_whatever_its_line_ends(tmp_path):
    """With \r\n line ends DuckDB quotes the line from the next line of its text, and a
    quoted cell's line end spreads it over several: all of it is masked, up to the reason."""

    path = tmp_path / "people.csv"
    read = (
        f"SELECT * FROM read_csv('{path}', header = false, auto_detect = false, "
        "columns = {'a': 'VARCHAR', 'b': 'VARCHAR'})"
    )
    for body in (b"u-1,x\r\nusr_00012391,x,y\r\n", b'u-1,x\n"usr_00012391\nZedekiah",x,y\n'):
        path.write_bytes(body)
        with pytest.raises(duckdb.Error) as caught:
            duckdb.connect().execute(read).fetchall()
        assert "usr_00012391" in str(caught.value)  # DuckDB does quote it
        masked = mask_emails(str(caught.value))
        assert "usr_0" not in masked and "Zedekiah" not in masked, masked
        assert "CSV Error on Line: 2" in masked
        assert "Expected Number of Columns: 2 Found: 3" in masked


def test_a_csv_line_duckdb_quotes_is_masked_up_to_each_reason_and_the_reason_kept(tmp_path):
    """The reason after the quoted line says what to fix (an encoding, a column count):
    masked with the line, it was lost."""
    path = tmp_path / "people.csv"
    path.write_bytes(b"u-1,x\nusr_00012391\xff,x\n")  # not UTF-8
    with pytest.raises(duckdb.Error) as caught:
        duckdb.connect().execute(
            f"SELECT * FROM read_csv('{path}', header = false, auto_detect = false, "
            "columns = {'a': 'VARCHAR', 'b': 'VARCHAR'})"
        ).fetchall()
    masked = mask_emails(str(caught.value))
    assert "usr_0" not in masked, masked
    assert "\nInvalid unicode (byte sequence mismatch) detected" in masked, masked


def test_a_csv_line_quoted_last_is_masked_to_the_end_of_the_text():
    # As DuckDB's message is cut short (a log line's length), with no reason after it.
    masked = mask_emails("CSV Error on Line: 2\nOriginal Line: usr_00012391,Zedekiah")
    assert "usr_0" not in masked and "Zedekiah" not in masked, masked


# A member's values as a database quotes them: a userId, a name, a date that is not one.
PRIVATE = (
    "usr_00012391",
    "Zedekiah Secretname",
    "SECRETDATE",
    "2025-13-45",
    "99999999999",
    "1e400",
)


def _errors(execute, cases) -> list[str]:
    """What the database says about each (query, value): the value is bound as a
    parameter, so only the database's own message can quote it."""
    messages = []
    for query, value in cases:
        try:
            execute(query, value)
        except Exception as exc:  # each driver's own error class
            messages.append(str(exc))
        else:
            raise AssertionError(f"{query} with {value!r} did not fail")
    return messages


def _assert_masked(messages: list[str]) -> None:
    for text in messages:
        quoted = [value for value in PRIVATE if value[:4] in text]
        assert quoted, text  # the database does quote the value
        masked = mask_emails(text)
        assert not [value for value in PRIVATE if value[:4] in masked], masked
        assert "***" in masked, masked


def test_every_value_a_duckdb_error_quotes_is_masked(tmp_path):

    csv = tmp_path / "m.csv"
    # Quoted cells: the CSV line's quotes must not end the masking of the line.
    csv.write_text('email,uid,n\n"zed@example.com","usr_00012391","Zedekiah Secretname"\n')
    # An export's lines, read as the DuckDB engine reads them, with a value of another type.
    read_json = []
    for n, lists in enumerate(('[1, "usr_00012391"]', '"Zedekiah Secretname"')):
        lines = tmp_path / f"export{n}.jsonl"
        lines.write_text(f'{{"email": "zed@example.com", "userId": "u1", "lists": {lists}}}\n')
        columns = "{'email': 'VARCHAR', 'userId': 'VARCHAR', 'lists': 'BIGINT[]'}"
        query = (
            f"SELECT * FROM read_json('{lines}', format = 'newline_delimited', columns = {columns})"
        )
        read_json.append((query, []))
    cases = [
        (f"SELECT * FROM read_csv('{csv}', types={{'n': 'INTEGER'}})", []),
        *read_json,
        ("SELECT strptime(?, '%Y-%m-%d')", ["SECRETDATE"]),
        ("SELECT CAST(? AS DATE)", ["SECRETDATE"]),
        ("SELECT CAST(? AS TIMESTAMP)", ["SECRETDATE"]),
        ("SELECT CAST(? AS DECIMAL(4, 1))", ["Zedekiah Secretname"]),
        ("SELECT CAST(? AS BIGINT[])", ["Zedekiah Secretname"]),
        ("SELECT json(?)", ["Zedekiah Secretname"]),
        ("SELECT CAST(? AS INTEGER)", ["usr_00012391"]),
    ]
    with duckdb.connect() as connection:
        _assert_masked(
            _errors(lambda query, value: connection.execute(query, value).fetchall(), cases)
        )


def test_every_number_a_duckdb_error_quotes_is_masked():
    """A number DuckDB could not cast or compute with is quoted bare (`with value N`, `Could
    not cast value N`, `Overflow in addition of INT64 (N + M)`) or in double quotes
    (`Casting value "N"`): in a userID-based project a numeric userId is a member's
    identity, and each was printed in full."""
    user_id = 98765432109
    cases = [
        ("SELECT CAST(?::BIGINT AS INTEGER)", [user_id]),
        ("SELECT CAST(?::BIGINT AS UBIGINT)", [-user_id]),
        ("SELECT CAST(?::DOUBLE AS INTEGER)", [user_id + 0.5]),
        ("SELECT CAST(?::HUGEINT AS BIGINT)", [user_id * 10**10]),
        ("SELECT CAST(?::BIGINT AS DECIMAL(5, 0))", [user_id]),
        ("SELECT CAST(?::DECIMAL(18, 1) AS DECIMAL(4, 1))", [user_id + 0.5]),
        # A DECIMAL cast to an integer type too small (a warehouse's NUMBER(38, 0) id).
        ("SELECT CAST(?::DECIMAL(18, 0) AS INTEGER)", [user_id]),
        ("SELECT CAST(?::DECIMAL(18, 1) AS INTEGER)", [user_id + 0.5]),
        ("SELECT CAST(?::DECIMAL(18, 2) AS UTINYINT)", [user_id]),
        ("SELECT ?::BIGINT + 9223372036854775000", [user_id]),
        ("SELECT ?::BIGINT - 9223372036854775000", [-user_id]),
        ("SELECT ?::BIGINT * 1000000000", [user_id]),
        # Both operands a member's: each is masked.
        ("SELECT ?::BIGINT * ?::BIGINT", [user_id, user_id]),
        # A length built from it.
        ("SELECT repeat('x', ?::BIGINT)", [user_id]),
    ]
    with duckdb.connect() as connection:
        messages = _errors(lambda query, value: connection.execute(query, value).fetchall(), cases)
    for text in messages:
        assert "98765" in text, text  # DuckDB does quote it
        masked = mask_emails(text)
        assert "98765" not in masked and "***" in masked, masked


def test_every_argument_a_duckdb_function_quotes_back_is_masked():
    """A query can build a function's argument from a member's values, and DuckDB quotes
    the argument it could not use: a regular expression, a date part, a time zone, a
    format string, a JSON path, JSON text cast to a STRUCT or a list. Each printed the
    userId whole into the plan's CI log."""
    cases = [
        ("SELECT regexp_matches('a', ? || '(')", ["usr_00012391"]),
        ("SELECT regexp_matches('a', ? || ')')", ["usr_00012391"]),
        ("SELECT regexp_replace('a', '(?P<' || ? || ')', 'b')", ["usr_00012391"]),
        ("SELECT regexp_extract('a', '[' || ?)", ["usr_00012391"]),
        ("SELECT date_trunc(?, now())", ["usr_00012391"]),
        ("SELECT date_diff(?, now(), now())", ["usr_00012391"]),
        ("SELECT timezone(?, now())", ["usr_00012391"]),
        ("SELECT now() AT TIME ZONE ?", ["usr_00012391"]),
        ("SELECT format('{' || ? || '}', 1)", ["usr_00012391"]),
        ("SELECT strftime(now(), ? || '%Q')", ["usr_00012391"]),
        ("SELECT strptime('x', ? || '%Q')", ["usr_00012391"]),
        ("SELECT json_extract('{}', '$' || ? || '[')", ["usr_00012391"]),
        ("SELECT to_json(?)::STRUCT(a INTEGER)", ["usr_00012391"]),
        ("SELECT to_json(?)::INTEGER[]", ["usr_00012391"]),
    ]
    with duckdb.connect() as connection:
        messages = _errors(lambda query, value: connection.execute(query, value).fetchall(), cases)
    for text in messages:
        assert "usr_0" in text, text  # DuckDB does quote it
        masked = mask_emails(text)
        assert "usr_0" not in masked and "***" in masked, masked
        assert reveal(text, True) == text


def test_every_value_duckdb_decodes_or_reads_as_json_is_masked():
    """base64 a query decodes and JSON it reads as a number, a decimal or a STRUCT
    (from_json_strict, json_transform_strict, a JSON cast) are quoted back whole by
    DuckDB ('Could not decode string "..." as base64', 'Failed to cast value to
    numerical: "..."', 'Object {...} has unknown key "..."'): each printed a member's
    value, or a numeric userId bare, into validate's and plan's CI log."""
    cases = [
        ("SELECT from_base64(?)", ["SECRETVALUE"]),
        ("SELECT from_base64(?)", ["SECRETVALU=E"]),
        ("SELECT from_base64(?)", ["SECRETVALU!="]),
        ("SELECT json_transform_strict(to_json(?), '\"INTEGER\"')", ["SECRETVALUE"]),
        ("SELECT json_transform_strict(to_json(?), '\"DECIMAL(4, 2)\"')", ["SECRETVALUE"]),
        ("SELECT json_transform_strict(to_json(?::BIGINT), '\"INTEGER\"')", [98765432109876]),
        ("SELECT to_json(?)::INTEGER", ["SECRETVALUE"]),
        ("SELECT to_json({'a': ?})::STRUCT(a INTEGER)", ["SECRETVALUE"]),
        ('SELECT json_transform_strict(?, \'{"a": "INTEGER"}\')', ['{"b": "SECRETVALUE"}']),
        ("SELECT ?::JSON::STRUCT(a INTEGER)", ['{"a": 1, "SECRETKEY": 2}']),
        ("SELECT ?::JSON::UNION(a INTEGER, b VARCHAR)", ['{"SECRETKEY": 1}']),
        # A bad \x escape in text cast to a BLOB: the text, and the escape.
        ("SELECT ?::BLOB", ["\\xZSECRETVALUE"]),
        ("SELECT ('\\x' || ? || 'ZZ')::BLOB", ["SECRETVALUE"]),
        # A value holding a quote went on after it: "'a***'SECRETVALUE' to INT32".
        ("SELECT ?::INTEGER", ["a'SECRETVALUE"]),
        ("SELECT ?::VARCHAR[]", ["['SECRETVALUE"]),
        ("SELECT ?::DATE", ['x", SECRETVALUE']),
        # regexp_extract_all's words for RE2's reason, path_join's paths, a list's size.
        # A pattern that is no constant, as one built from a column is.
        ("SELECT regexp_extract_all('a', v) FROM (SELECT unnest([?]) AS v)", ["SECRETVALUE("]),
        ("SELECT regexp_extract_all('a', v) FROM (SELECT unnest([?]) AS v)", ["['SECRETVALUE"]),
        ("SELECT path_join('a', ?)", ["\\xSECRETVALUE"]),
        ("SELECT path_join(?, '\\xb')", ["SECRETVALUE"]),
        ("SELECT list_resize([1], ?::UBIGINT)", [98765432109876543]),
        ("SELECT chr(?::INTEGER)", [98765432]),
        ("SELECT make_date(?::BIGINT, 1, 1)", [98765432]),
        ("SELECT make_time(?::BIGINT, 1, 1)", [-98765432]),
        ("SELECT to_centuries(?::INTEGER)", [98765432]),
        ("SELECT to_seconds(?::DOUBLE)", [98765432109876]),
        # JSON, times and lists: a quote in the value, no quotes, a JSON list.
        ("SELECT ?::TIME", ['"SECRETVALUE"']),
        ("SELECT ?::JSON[]", ['{"a": "SECRETVALUE"}']),
        ("SELECT ?::JSON::INTEGER[]", ['{"a": "SECRETVALUE"}']),
        ("SELECT ?::JSON::INTEGER[]", ["98765432109876543"]),
        ("SELECT ?::JSON::INTEGER[2]", ['["SECRETVALUE"]']),
        ('SELECT json_transform_strict(?, \'{"a": "INTEGER"}\')', ['{"a": 1, "a": "SECRET"}']),
    ]
    with duckdb.connect() as connection:
        messages = _errors(lambda query, value: connection.execute(query, value).fetchall(), cases)
    for text in messages:
        assert "SECRET" in text or "98765" in text, text  # DuckDB does quote it
        masked = mask_emails(text)
        assert "SECRET" not in masked and "98765" not in masked and "***" in masked, masked
        assert reveal(text, True) == text


@pytest.mark.parametrize(
    "value",
    ["SECRETONE\nSECRETTWO", '{\n  "a": "SECRETONE",\n  "b": "SECRETTWO"\n}', "\nSECRETONE"],
    ids=["two-lines", "json-over-lines", "blank-first-line"],
)
def test_a_value_written_over_lines_is_masked_whole(value):
    """A cell of a note or an address, or JSON written over lines, holds line ends, and
    DuckDB quotes it as it is: every pattern ended a value at its line's end, so none
    matched, and validate printed the value whole ("Could not convert string
    'SECRETONE\nSECRETTWO' to INT32")."""
    cases = [
        (query, [value])
        for query in (
            "SELECT ?::INTEGER",
            "SELECT ?::DECIMAL(4, 2)",
            "SELECT ?::DATE",
            "SELECT ?::TIME",
            "SELECT ?::TIMESTAMP",
            "SELECT ?::UUID",
            "SELECT ?::VARCHAR[]",
            "SELECT ?::JSON::DOUBLE",
            "SELECT from_base64(?)",
            "SELECT strptime(?, '%Y-%m-%d')",
            "SELECT date_part(?, DATE '2020-01-01')",
            "SELECT timezone(?, TIMESTAMPTZ '2020-01-01 00:00:00+00')",
        )
    ]
    with duckdb.connect() as connection:
        messages = _errors(lambda query, value: connection.execute(query, value).fetchall(), cases)
    for text in messages:
        assert "SECRETONE" in text, text  # DuckDB does quote it
        masked = mask_emails(text)
        assert "SECRET" not in masked and "***" in masked, masked
        assert reveal(text, True) == text


def test_the_character_duckdb_could_not_read_as_hex_or_bits_is_masked():
    """unhex, unbin and a cast to BIT name the character they could not read ('Invalid
    input for hex digit: S', "... bit conversion: 'S'"): a character of a member's value,
    where the masking rule shows none of a value under four characters."""
    cases = [
        ("SELECT unhex(?)", ["SECRETVALUE"]),
        ("SELECT unbin(?)", ["SECRETVALUE"]),
        ("SELECT ?::BIT", ["SECRETVALUE"]),
        ("SELECT bitstring(?, 16)", ["SECRETVALUE"]),
    ]
    with duckdb.connect() as connection:
        messages = _errors(lambda query, value: connection.execute(query, value).fetchall(), cases)
    for text in messages:
        assert text.rstrip("'").endswith("S"), text  # DuckDB names the character
        masked = mask_emails(text)
        assert masked.rstrip("'").endswith("***") and "S" not in masked.rsplit(":", 1)[1]
        assert "digit" in masked or "bit conversion" in masked  # what failed is still said


def test_a_value_over_lines_is_read_no_further_than_duckdb_s_next_words_for_one():
    """A value over lines was read from its quote to the end of the text when no quote
    and words ended it: a text of thousands such beginnings (an error() a query raises
    can say anything) was read to its end from each, 20 s for 140 kB. Each is now read
    to the next beginning at most: one not ended there is left to the pattern of lines."""
    text = "Could not convert string 'a\nCould not convert string 'SECRET\nX' to INT32"
    assert (
        mask_emails(text) == "Could not convert string 'a\nCould not convert string 'S***' to INT32"
    )
    text = "Unknown TimeZone 'a\nUnknown TimeZone 'SECRET\nX'!"
    assert mask_emails(text) == "Unknown TimeZone 'a\nUnknown TimeZone 'S***'!"


def test_a_cast_on_one_line_is_read_no_further_than_the_last_quote_that_can_end_it(
    monkeypatch,
):
    """One line of thousands of "Could not convert string '" with no quote ending a value
    (an error() a query raises can say anything) was read from each beginning to the
    line's end: 112 kB took 10 s. The pattern now reads each line only as far as its last
    quote that DuckDB's words (or the line's end) follow, where every value it begins ends."""
    from reconciler.render import masking

    read: list[str] = []

    class Reading:
        def __init__(self, pattern: re.Pattern[str]) -> None:
            self.pattern = pattern

        def sub(self, repl, text):
            read.append(text)
            return self.pattern.sub(repl, text)

    for on_a_line in masking._CASTS_ON_A_LINE:
        monkeypatch.setattr(on_a_line, "pattern", Reading(on_a_line.pattern))
    closed = "Could not convert string 'SECRET, 'a' to INT32"
    unended = " Could not convert string 'x" * 3
    text = f'{closed}{unended}\nCould not convert string "x{unended}'

    assert mask_emails(text) == f"Could not convert string 'S***' to INT32{unended}\n" + (
        f'Could not convert string "x{unended}'
    )
    assert read == ["Could not convert string 'S***'"]  # the second line: no quote ends one


def test_what_a_query_s_error_call_raises_is_masked_unless_the_query_wrote_it(tmp_path):
    """error(user_id) raised 'Invalid Input Error: usr_00012391', the whole of DuckDB's
    message, and a pull request's query could so print any member; a message the query
    wrote itself stays readable."""
    from reconciler.sources.duckdb_query import query_error

    def said(query: str) -> str:
        with duckdb.connect() as connection, pytest.raises(duckdb.Error) as caught:
            connection.execute(query).fetchall()
        error = query_error(caught.value, "m.yaml:7:10", "the query", tmp_path, True, query=query)
        return str(error)

    # The member comes from a file, as a query's data does, not from the query's text.
    (tmp_path / "m.csv").write_text("user_id\nusr_00012391\n")
    data = f"SELECT * FROM read_csv('{tmp_path / 'm.csv'}')"
    built = said(f"SELECT error('bad: ' || user_id) FROM ({data})")
    assert "usr_0" not in mask_emails(built) and "***" in mask_emails(built), built
    assert reveal(built, True).endswith("Invalid Input Error: bad: usr_00012391")
    whole = said(f"SELECT error(user_id) FROM ({data})")
    assert mask_emails(whole) == "m.yaml:7:10: cannot read the query: Invalid Input Error: u***"
    written = said("SELECT error('no members today')")
    assert mask_emails(written).endswith("Invalid Input Error: no members today")
    # A member's value over lines (a quoted CSV cell): its second line was printed.
    (tmp_path / "m.csv").write_text('user_id\n"usr_00012391\nusr_00012392"\n')
    lines = said(f"SELECT error(user_id) FROM ({data})")
    assert mask_emails(lines) == "m.yaml:7:10: cannot read the query: Invalid Input Error: u***"
    written = said("SELECT error('no members' || chr(10) || 'today')")
    assert mask_emails(written).endswith("Invalid Input Error: no members\ntoday")
    # A member's value that is also a name the query writes is still the member's.
    (tmp_path / "m.csv").write_text("tier\npremium\n")
    named = said(f"SELECT error(tier) FROM ({data}) AS premium")
    assert reveal(named, True).endswith("Invalid Input Error: premium"), named
    assert mask_emails(named).endswith("Invalid Input Error: p***"), mask_emails(named)


def test_every_value_a_postgresql_error_quotes_is_masked(postgres_url):
    import psycopg

    cases = [
        ("SELECT %s::integer", ["usr_00012391"]),
        ("SELECT %s::timestamptz", ["SECRETDATE"]),
        ("SELECT %s::date", ["2025-13-45"]),
        ("SELECT to_date(%s, 'YYYY-MM-DD')", ["SECRETDATE"]),
        ("SELECT %s::json", ["Zedekiah Secretname"]),
        ("SELECT %s::jsonb", ['{"name": "Zedekiah Secretname"']),
        ("SELECT %s::integer", ["99999999999"]),
        ("SELECT %s::float8", ["1e400"]),
    ]
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        _assert_masked(_errors(connection.execute, cases))


def test_a_number_postgresql_makes_a_date_or_a_character_of_is_masked(postgres_url):
    """make_date, make_time, make_timestamp and chr say the number they could not use
    bare ('date field value out of range: 98765432109-13-01'): in a userID-based project
    a numeric userId is a member's identity, and it was printed whole."""
    import psycopg

    user_id = "98765432"
    cases = [
        ("SELECT make_date(%s::int, 13, 1)", [user_id]),
        ("SELECT make_time(%s::int, 0, 0)", [user_id]),
        ("SELECT make_timestamp(%s::int, 1, 1, 0, 0, 0)", [user_id]),
        ("SELECT chr(%s::int)", [user_id]),
    ]
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        messages = _errors(connection.execute, cases)
    for text in messages:
        assert "98765" in text, text  # PostgreSQL does quote it
        masked = mask_emails(text)
        assert "98765" not in masked and "9***" in masked, masked
        assert reveal(text, True) == text


def test_a_value_python_s_conversions_quote_is_masked():
    """An internal error (a bug converting a member's value) quotes the value in its
    message, shown on one line or in the --debug traceback."""
    import datetime

    name = "Zedekiah O'Secretname"  # a quote in it: Python's repr then uses "..."
    conversions = [
        lambda: int(name),
        lambda: float(name),
        lambda: datetime.date.fromisoformat(name),
        lambda: datetime.datetime.strptime(name, "%Y-%m-%d"),
    ]
    for convert in conversions:
        try:
            convert()
        except ValueError as exc:
            text = f"internal error: ValueError: {exc}\nThis is a bug in reconciler"
        else:
            raise AssertionError("converted")
        assert "Secretname" in text  # Python does quote it
        masked = mask_emails(text)
        assert "Secretname" not in masked and "Zedekiah" not in masked, masked
        assert "Z***" in masked and masked.endswith("\nThis is a bug in reconciler")


def test_values_a_failed_request_quotes_are_marked_whole():
    sent = [{"email": "ann@example.com", "userId": "usr_7", "dataFields": {"tier": "lists"}}]
    text = 'POST /api/lists/subscribe: HTTP 400: planned {"userId":"usr_7","tier":"lists"}'
    marked = marking_sent(text, sent)
    assert reveal(marked, False) == (
        'POST /api/lists/subscribe: HTTP 400: planned {"userId":"u***","tier":"l***"}'
    )
    assert reveal(marked, True) == text
    assert marking_sent("nothing quoted", sent) == "nothing quoted"
    # A path quoted back holds the identifier URL-encoded.
    path = "GET /api/users/ann%40example.com: HTTP 400"
    assert reveal(marking_sent(path, ["ann@example.com"]), False) == "GET /api/users/a***: HTTP 400"


# What a query's author mistypes in its own text, by each family of DuckDB's messages the
# masking covers (casts, numbers, function arguments, decoding, JSON), as a template of
# where the value goes: `{v}` is the query's literal, or a column of a file the query reads
# (None: DuckDB takes only a constant there); then the part of the value DuckDB quotes.
_WRITTEN_CASES = [
    ("CAST({v} AS INTEGER)", "SECRETVALUE", "SECRETVALUE"),
    ("CAST({v} AS DATE)", "SECRETDATE", "SECRETDATE"),
    ("CAST({v} AS TIMESTAMP)", "SECRETDATE", "SECRETDATE"),
    ("CAST({v} AS DECIMAL(4, 1))", "SECRET VALUE", "SECRET VALUE"),
    ("CAST({v} AS BIGINT[])", "SECRETVALUE", "SECRETVALUE"),
    ("CAST({v} AS UUID)", "SECRET-VALUE", "SECRET-VALUE"),
    ("strptime({v}, '%Y-%m-%d')", "2025-13-45", "2025-13-45"),
    ("date_part({v}, DATE '2025-01-01')", "SECRETDAYY", "SECRETDAYY"),
    ("date_trunc({v}, DATE '2025-01-01')", "SECRETMONTHH", "SECRETMONTHH"),
    ("timezone({v}, TIMESTAMPTZ '2025-01-01 00:00:00+00')", "Europe/SECRET", "Europe/SECRET"),
    ("regexp_matches('a', {v})", "SECRET(abc", "SECRET(abc"),
    ("regexp_matches('a', {v})", "SECRET)abc", "SECRET)abc"),
    ("regexp_extract_all('a', {v})", "SECRET(abc", "SECRET(abc"),
    ("regexp_matches('a', {v})", "SECRET[abc", ": [abc"),  # from where it failed
    ("json({v})", "SECRET VALUE", "SECRET VALUE"),
    ("from_base64({v})", "SECRETVALUE", "SECRETVALUE"),
    ("CAST(to_json({v}) AS STRUCT(a INTEGER))", "SECRETVALUE", "SECRETVALUE"),
    ("CAST({v} AS BLOB)", "SECRET\\xZZ", "SECRET\\xZZ"),
    ("CAST(CAST({v} AS BIGINT) AS INTEGER)", "98765432109", "98765432109"),
    ("CAST(CAST({v} AS BIGINT) AS DECIMAL(5, 0))", "98765432109", "98765432109"),
    ("CAST(CAST({v} AS DECIMAL(18, 0)) AS INTEGER)", "98765432109", "98765432109"),
    # Only a constant: a format, a JSON path.
    ("strptime('2025-01-01', {v})", "SECRET%Q", "SECRET%Q"),
    ("strftime(DATE '2025-01-01', {v})", "SECRET%", "SECRET%"),
    ("format({v}, 1)", "{SECRETNAME}", "SECRETNAME"),
    ("json_extract('{{}}', {v})", "$SECRET[", "SECRET["),
]


@pytest.mark.parametrize(("template", "value", "quoted"), _WRITTEN_CASES)
def test_a_value_the_query_wrote_is_readable_and_a_member_s_masked(
    tmp_path, template, value, quoted
):
    """`date_part('dayy', ...)`, `timezone('Europe/Lodnon', ...)`, a regular expression's
    typo: the query's own literal was masked as if a member's value ('extract specifier
    "d***"'), and its author could not see the mistake in CI. What the query's text
    writes as a constant is now shown; the same value read from a file is masked, also
    when it is a name the query writes (a column named as the value)."""
    from reconciler.sources.duckdb_query import query_error

    def said(query: str) -> tuple[str, str]:
        with duckdb.connect() as connection, pytest.raises(duckdb.Error) as caught:
            connection.execute(query).fetchall()
        error = query_error(caught.value, "m.yaml:7:10", "the query", tmp_path, True, query=query)
        said = str(error).split("\n\nLINE ")[0]  # not the excerpt of the query
        return reveal(said, True), mask_emails(said)

    literal = "'" + value.replace("'", "''") + "'"
    raw, written = said(f"SELECT {template.format(v=literal)}")
    assert quoted in raw and quoted in written, written  # DuckDB quotes it, shown as it is
    if value.isdigit():  # as the query writes a number, too
        assert quoted in said(f"SELECT {template.format(v=value)}")[1]
    if template.startswith(("strptime('", "strftime(", "format(", "json_extract(")):
        return
    # The member's value comes from a file, in a column named as the value.
    csv = tmp_path / "m.csv"
    csv.write_text('"v"\n"' + value.replace('"', '""') + '"\n')
    for column in ("v", '"' + value.replace('"', '""') + '"'):
        query = (
            f"SELECT {template.format(v='c')} "
            f"FROM (SELECT v AS {column}, v AS c FROM read_csv('{csv}', all_varchar = true))"
        )
        raw, data = said(query)
        assert quoted in raw, raw  # DuckDB quotes it
        assert quoted not in data and "***" in data, data


def test_a_short_part_of_the_query_s_constant_is_not_taken_for_the_query_s(tmp_path):
    """A value an error quotes is shown when a constant of the query holds it: a part of
    one under four characters is too likely a member's by chance ('300' of a date), and
    stays masked, as does a character unhex quotes of the query's own literal."""
    from reconciler.sources.duckdb_query import query_error

    csv = tmp_path / "m.csv"
    csv.write_text("c\n300\n")
    cases = [
        f"SELECT CAST(CAST(c AS BIGINT) AS UTINYINT) FROM read_csv('{csv}', all_varchar = true) "
        "WHERE c <> '2300-01-01'",
        "SELECT unhex('SECRETVALUE')",
    ]
    for query, quoted in zip(cases, ("value 300 ", "digit: S"), strict=True):
        with duckdb.connect() as connection, pytest.raises(duckdb.Error) as caught:
            connection.execute(query).fetchall()
        error = query_error(caught.value, "m.yaml:7:10", "the query", tmp_path, False, query=query)
        assert quoted in reveal(str(error), True), str(error)  # DuckDB quotes it
        assert quoted not in mask_emails(str(error)) and "***" in mask_emails(str(error))


def test_a_member_s_value_that_a_constant_of_the_query_holds_is_shown_as_readme_says(
    tmp_path,
):
    """The rule is on the text, not where it came from (README says so): a userId read
    from a file that a constant of the query holds, whole or as a part of four characters
    or more, is shown, being the manifest's own text; one the constants do not hold is not."""
    from reconciler.sources.duckdb_query import query_error

    csv = tmp_path / "m.csv"
    for uid, shown in (("usr_00012391", True), ("usr_00012392", False)):
        csv.write_text(f"uid\n{uid}\n")
        query = (
            f"SELECT CAST(uid AS INTEGER) FROM read_csv('{csv}') WHERE uid <> 'usr_00012391-test'"
        )
        with duckdb.connect() as connection, pytest.raises(duckdb.Error) as caught:
            connection.execute(query).fetchall()
        error = query_error(caught.value, "m.yaml:7:10", "the query", tmp_path, False, query=query)
        assert (f"'{uid}'" in mask_emails(str(error))) is shown, str(error)


def test_an_error_without_its_query_masks_every_value(tmp_path):
    """query_error's query is optional: without it (or with a query of no tokens) nothing
    is the query's, and the value is masked, not an internal error."""
    from reconciler.sources.duckdb_query import query_error

    with duckdb.connect() as connection, pytest.raises(duckdb.Error) as caught:
        connection.execute("SELECT date_part('SECRETDAYY', DATE '2025-01-01')").fetchall()
    for query in ("", "   "):
        error = query_error(caught.value, "m.yaml:7:10", "the query", tmp_path, False, query=query)
        assert mask_emails(str(error)).endswith('extract specifier "S***" not recognized')


def test_a_value_the_query_builds_over_lines_of_its_constants_is_readable(tmp_path):
    """A value a query builds of its constants and line ends, `chr(10) || '...'`, is the
    query's line by line (a blank line is nobody's): it printed masked ("Could not
    convert string '\\n***' to INT32"), and an error() message with a blank line too."""
    from reconciler.sources.duckdb_query import query_error

    def said(query: str) -> str:
        with duckdb.connect() as connection, pytest.raises(duckdb.Error) as caught:
            connection.execute(query).fetchall()
        error = query_error(caught.value, "m.yaml:7:10", "the query", tmp_path, False, query=query)
        return mask_emails(str(error))

    cast = said("SELECT CAST(chr(10) || 'SECRETVALUE' || chr(10) AS INTEGER)")
    assert cast.endswith("Could not convert string '\nSECRETVALUE\n' to INT32"), cast
    raised = said("SELECT error('no members' || chr(10) || chr(10) || 'today')")
    assert raised.endswith("Invalid Input Error: no members\n\ntoday"), raised
    # One line of a member's (from a file) masks the value whole.
    (tmp_path / "m.csv").write_text("c\nusr_00012391\n")
    data = f"(SELECT c FROM read_csv('{tmp_path / 'm.csv'}', all_varchar = true))"
    member = said(f"SELECT CAST('SECRETVALUE' || chr(10) || c AS INTEGER) FROM {data}")
    assert "usr_0" not in member and "SECRET" not in member and "***" in member, member


def test_a_value_holding_the_masks_own_marks_is_masked_all_the_same(tmp_path):
    """The query's own words are shown between two private-use marks (marking_written); a
    CSV cell holding those marks around a member's id passed it off as the query's, and
    validate printed it whole ("Could not convert string 'usr_99999' to INT32")."""
    from reconciler.sources.duckdb_query import query_error

    members = tmp_path / "t.csv"
    members.write_text("id\n\ue002usr_99999\ue003\n", encoding="utf-8")
    query = f"SELECT CAST(id AS INTEGER) FROM read_csv('{members}', all_varchar = true)"
    with duckdb.connect() as connection, pytest.raises(duckdb.Error) as caught:
        connection.execute(query).fetchall()
    assert "usr_99999" in str(caught.value)  # DuckDB quotes the cell, marks and all
    error = query_error(caught.value, "m.yaml:7:10", "the query", tmp_path, True, query=query)
    shown = mask_emails(str(error))
    assert "99999" not in shown and "***" in shown, shown
    assert "\ue002" not in shown and "\ue003" not in shown
