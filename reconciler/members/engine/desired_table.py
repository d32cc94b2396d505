"""An audience's source read into the workspace and checked in SQL, with the same rules as
identity.make_member, so either engine gives the same members.

One pass over the source makes the `checked` table: each row's normalised identifiers and,
when it cannot be used, a small code saying why (its rowid numbers the source's rows, for
messages). CSV and Parquet files and DuckDB queries are read by DuckDB where they are; a
query at a SQLAlchemy URL streams back in chunks through a CSV file. Duplicate keys are
dealt with where it costs least (see DesiredTable).
"""

from __future__ import annotations

import array
import base64
import bisect
import csv
import functools
import json
import pickle
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from reconciler.errors import SourceChangedError, SourceError, SourceUnreachable
from reconciler.manifest import Audience
from reconciler.manifest.model import MembersSpec
from reconciler.members.engine.rows import MAX_LINE
from reconciler.members.engine.workspace import Engine, lower_sql, unquoted_reason
from reconciler.members.identity import (
    EXCEL_TEXT_PATTERN,
    EXCEL_TEXT_START,
    EXPONENT_USER_ID_PATTERN,
    FLOAT_USER_ID_PATTERN,
    HEADER_CELL_STRIP,
    MAILTO,
    MAX_USER_ID_LENGTH,
    MISSING_VALUE_MAX_LENGTH,
    MISSING_VALUE_USER_ID_PATTERN,
    MOJIBAKE_PATTERN,
    NAME_SEPARATORS,
    SPREADSHEET_ERROR_PATTERN,
    SPREADSHEET_ERROR_STARTS,
    SUMMARY_HINTS,
    SUMMARY_USER_ID_PATTERN,
    Member,
    ProjectType,
    duplicate_conflict,
    email_is_excel_text,
    email_is_mailto_link,
    email_is_mojibake,
    header_repeated,
    invalid_email,
    loose_column_name,
    missing_key,
    other_spellings,
    skipped_identifiers,
    user_id_as_a_float,
    user_id_ends_with_space,
    user_id_in_exponent_form,
    user_id_is_a_missing_value,
    user_id_is_a_spreadsheet_error,
    user_id_is_a_summary,
    user_id_is_excel_text,
    user_id_not_ascii,
    user_id_too_long,
)
from reconciler.render.masking import unmarked
from reconciler.sources import MemberIssue, source_for
from reconciler.sources.base import CsvRows, RowStream
from reconciler.sources.csv_file import (
    MAX_LINE_BYTES,
    csv_error_message,
    csv_open_error,
    not_utf8_error,
    wrong_width,
)
from reconciler.sources.duckdb_query import DuckDbRelation, identifier_cells, trait_cell
from reconciler.sources.identifier_types import refusal
from reconciler.sources.rows import Columns as RowColumns
from reconciler.sources.rows import find_columns, trait_value
from reconciler.sources.snapshot import UnreadableCsv
from reconciler.sources.time_limit import QueryTimedOut

# identity.respellable in SQL, over column {0}: not plain ASCII (more bytes than
# characters), or a punycode label.
RESPELLABLE = "strlen({0}) <> length({0}) OR contains({0}, 'xn--')"
# At most this many skipped rows are kept with their reasons; the rest are counted.
MAX_ISSUES = 1000

# identity.py's rules in RE2 terms. Python's str.strip() and `\s` take Unicode whitespace,
# RE2's `\s` only ASCII, hence the explicit class.
_SPACE = r"[\t-\r\x1c-\x1f\x85\p{Z}]"
# The same characters listed, for cheap first/last-character tests before any regex.
_SPACES = (
    "'"
    + "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000'"
)


def not_blank_sql(column: str) -> str:
    """SQL: `column` holds more than what Python's str.strip() strips (not a line of
    spaces and tabs). Text starting with a printable ASCII character does: two
    comparisons with the first bytes settle almost every row before the regex, which runs
    only for the rest (a look at every row's first character, `left()`, doubled the CPU
    of a scan of ten million identifiers; a NOT around the test lost the short cut)."""
    return (
        f"(({column} >= '!' AND {column} < chr(127)) "
        f"OR NOT regexp_full_match({column}, '{_SPACE}*'))"
    )


@functools.cache
def _unprintable() -> str:
    """RE2 class items for the characters str.isprintable() refuses, taken from this
    Python's own Unicode tables. RE2's class of "other" characters is not the same set: it
    leaves out unassigned code points (which isprintable refuses), and its tables may be of
    another Unicode version than Python's. Built once per process (a quarter of a second)."""
    flags = bytes(map(str.isprintable, map(chr, range(0x110000))))
    items = []
    for run in re.finditer(b"\x00+", flags):
        first, last = run.start(), run.end() - 1
        # Surrogates cannot be in UTF-8 text, nor in an RE2 class.
        for low, high in ((first, min(last, 0xD7FF)), (max(first, 0xE000), last)):
            if low <= high:
                items.append(rf"\x{{{low:x}}}-\x{{{high:x}}}")
    return "".join(items)


@functools.cache
def email_pattern() -> str:
    """identity.normalise_email's rule (lower-cased first) as an RE2 pattern."""
    part = rf"[^@\t-\r\x1c-\x1f\x85\p{{Z}}{_unprintable()}"
    # Neither the first nor the last character one of identity.WRAPPED_START/_END.
    first, last = r"<(\[", r">;,)\]"
    # The top-level domain as identity.refused_by_iterable takes it: two ASCII letters or
    # more, punycode (`xn--`), or a label holding a character outside ASCII.
    ends = rf"(?:{part}.]*{part}.{last}])?"
    tld = rf"(?:[a-z]{{2,}}|xn--{ends}|{part}.]*{part}.\x00-\x7f]{ends})"
    # The local part as dot-separated words, or holding a quote (then as before).
    words = rf"{part}{first}.]{part}.]*(?:\.{part}.]+)*"
    quoted = rf"(?:{part}{first}]{part}]*)?\"{part}]*"
    return rf"(?:{words}|{quoted})@(?:{part}.]+\.)+{tld}"


# identity.looks_like_email (no printability rule there: it judges what Iterable returned).
_LOOSE_PART = r"[^@\t-\r\x1c-\x1f\x85\p{Z}"
LOOKS_LIKE_EMAIL = rf"{_LOOSE_PART}]+@(?:{_LOOSE_PART}.]+\.)+{_LOOSE_PART}.]+"


@dataclass
class DesiredTable:
    """Who must be on a list: `rows_table`, a view of the source's valid rows (key,
    key_kind, email, user_id), duplicates included until `deduplicated()` is asked for.

    Counting ten million distinct keys costs about a second, and the usual diff (one
    identifier in play) learns the count from its join instead (engine/diff.py), so
    the exact count is only made on demand."""

    engine: Engine = field(repr=False)
    key: str  # the key's SQL expression over the rows
    rows_table: str
    checked: str  # the table under it: [email], [user_id], problem (NULL when valid)
    valid: int  # valid rows, duplicates included
    rows: int  # source rows read
    skipped: int  # rows that could not be used
    issues: list[MemberIssue] = field(default_factory=list)  # the first MAX_ISSUES of them
    # Rows with a userId, known by email alone, with an email: only compared with 0.
    with_user_id: int = 0
    email_only: int = 0
    with_email: int = 0
    # Valid rows whose email may have another spelling (identity.respellable): not plain
    # ASCII, or with a punycode label. Only these are respelled (`spellings()`).
    respellable: int = 0
    project_type: ProjectType = "hybrid"
    identifier_columns: str = "email, user_id"  # in `checked`, NULL where the source has none
    where: Callable[[int], str] | None = field(default=None, repr=False)  # names row n (1-based)
    # Audiences with a trait mapping: the source's other columns, by name, as the Python
    # engine keeps them in Member.traits; in `rows_table` as t0, t1, ... in this order.
    traits: tuple[str, ...] = ()
    encoded_traits: bool = False  # the trait columns hold encode_trait's text
    _distinct: int | None = field(default=None, repr=False)
    _skipped_ids: str | None = field(default=None, repr=False)
    _spellings: str | None = field(default=None, repr=False)
    _deduplicated: str | None = field(default=None, repr=False)
    # Rows that disagree with the first row of their key, all of them: `conflicts()`
    # lists only the first MAX_ISSUES, and counts them all as it lists them.
    conflict_count: int = 0
    conflict_keys: int = 0  # the identity keys of those rows

    def trait_value(self, cell: Any) -> Any:
        """A trait column's cell as the Python engine's reader gives the value (CSV text
        as it is, a typed source's value converted by sources.rows.trait_value)."""
        return trait_value(decode_trait(cell) if self.encoded_traits else cell)

    @property
    def prefer_user_id(self) -> bool:
        """As DesiredList.prefer_user_id: always in userID-based projects, never in
        email-based ones, and in hybrid ones when any member's key is its userId."""
        if self.project_type != "hybrid":
            return self.project_type == "userId"
        return self.with_user_id > 0

    @property
    def count(self) -> int:
        """Members: distinct keys among the valid rows."""
        if self._distinct is None:
            connection = self.engine.connection
            # As many distinct hashes as rows proves the keys distinct, and hashes are
            # cheaper to count than strings; fewer (duplicates, or a rare collision)
            # sends the count down the exact path.
            (hashes,) = connection.execute(
                f"SELECT count(DISTINCT hash(key)) FROM {self.rows_table}"
            ).fetchone() or (0,)
            if hashes != self.valid:
                (hashes,) = connection.execute(
                    f"SELECT count(DISTINCT key) FROM {self.rows_table}"
                ).fetchone() or (0,)
            self._distinct = int(hashes)
        return self._distinct

    @property
    def duplicates(self) -> int:
        return self.valid - self.count

    def skipped_ids(self) -> str:
        """A table (column `id`) of the identifiers the rows skipped as invalid may stand
        for, made by the Python engine's own function (identity.skipped_identifiers) so
        both engines keep the same live members. Only the skipped rows leave DuckDB."""
        if self._skipped_ids is None:
            connection = self.engine.connection
            ids: set[str] = set()
            result = connection.execute(
                f"SELECT {self.identifier_columns} FROM {self.checked} "
                f"WHERE problem IS NOT NULL AND problem <> {BLANK}"
            )
            while chunk := result.fetchmany(10_000):
                for email, user_id in chunk:
                    ids.update(skipped_identifiers(email, user_id))
            table = self.engine.name("skipped_ids")
            connection.execute(
                f"CREATE TABLE {table} AS SELECT unnest(?::VARCHAR[]) AS id", [sorted(ids)]
            )
            self._skipped_ids = table
        return self._skipped_ids

    def spellings(self) -> str:
        """A table (email, alt) of the other spellings of the members' emails, made by the
        Python engine's own function (identity.other_spellings). Only the rows that are not
        plain ASCII or hold a punycode label leave DuckDB (`strlen <> length` is a byte
        count against a character count): none at all for most audiences."""
        if self._spellings is None:
            connection = self.engine.connection
            # One row per key (the first row wins) when members have two identifiers, as
            # the Python engine keeps them; with one, a key's rows share their email.
            rows = self.deduplicated() if self.with_user_id and self.with_email else self.rows_table
            result = connection.execute(
                f"SELECT DISTINCT email FROM {rows} WHERE email IS NOT NULL "
                f"AND ({RESPELLABLE.format('email')})"
            )
            pairs: list[tuple[str, str]] = []
            while chunk := result.fetchmany(10_000):
                for (email,) in chunk:
                    pairs.extend((email, alt) for alt in sorted(other_spellings(email)))
            table = self.engine.name("spellings")
            connection.execute(f"CREATE TEMP TABLE {table} (email VARCHAR, alt VARCHAR)")
            if pairs:
                connection.executemany(f"INSERT INTO {table} VALUES (?, ?)", pairs)
            self._spellings = table
        return self._spellings

    def conflicts(self) -> list[MemberIssue]:
        """Rows whose key an earlier row had and that disagree with it (the first row of a
        key wins), worded by identity.duplicate_conflict as the Python engine words them:
        the first MAX_ISSUES, in row order. One grouping of the keys: asked for only when
        there are duplicates."""
        if self.count == self.valid:
            return []
        rows = self.rows_table
        # Rows also disagree in a trait column (the Python engine compares Member.traits).
        traits = range(len(self.traits))
        # NaN equals NaN in SQL but not in Python, where the rows then disagree.
        types = dict(
            self.engine.connection.execute(
                f"SELECT column_name, column_type FROM (DESCRIBE {rows})"
            ).fetchall()
        )
        nan = {i: f" OR isnan(r.t{i})" for i in traits if types.get(f"t{i}") in ("FLOAT", "DOUBLE")}
        if self.encoded_traits:  # NaN in JSON text, maybe in a list (those are told apart)
            nan = {i: f" OR contains(r.t{i}, 'NaN')" for i in traits}
        differs = "".join(f" OR r.t{i} IS DISTINCT FROM d.t{i}{nan.get(i, '')}" for i in traits)
        cells = "".join(f", r.t{i}, d.t{i}" for i in traits)
        found = self.engine.connection.execute(
            f"WITH firsts AS (SELECT key, min(row) AS first FROM {rows} GROUP BY key "
            f"HAVING count(*) > 1) "
            f"SELECT r.row, f.first, r.key, r.key_kind, r.email, r.user_id, d.email, d.user_id"
            f"{cells}, count(DISTINCT r.key) OVER (), count(*) OVER () "
            f"FROM {rows} r JOIN firsts f ON r.key = f.key JOIN {rows} d ON d.row = f.first "
            f"WHERE r.row <> f.first AND (r.email IS DISTINCT FROM d.email "
            f"OR r.user_id IS DISTINCT FROM d.user_id{differs}) ORDER BY r.row "
            f"LIMIT {MAX_ISSUES}"
        ).fetchall()
        where = self.where or (lambda n: f"row {n}")
        issues = []
        # The count is of every disagreeing row, beyond the LIMIT too (one pass).
        self.conflict_count = int(found[0][-1]) if found else 0
        keys, told_apart = int(found[0][-2]) if found else 0, set()
        for row, first, key, kind, email, user_id, first_email, first_user_id, *rest in found:
            cells_of = rest[:-2]
            value = self.trait_value
            later = {n: value(v) for n, v in zip(self.traits, cells_of[0::2], strict=True)}
            earlier = {n: value(v) for n, v in zip(self.traits, cells_of[1::2], strict=True)}
            message = duplicate_conflict(
                Member(key, kind, first_email, first_user_id, earlier),
                Member(key, kind, email, user_id, later),
                where(int(first) + 1),
            )
            if message is not None:
                issues.append(MemberIssue(where(int(row) + 1), message))
                told_apart.add(key)
        # Rows SQL told apart that the Python wording finds equal are no conflict either
        # (and a key none of whose listed rows is one, when all were listed).
        self.conflict_count -= len(found) - len(issues)
        self.conflict_keys = len(told_apart) if len(found) < MAX_ISSUES else keys
        return issues

    def deduplicated(self) -> str:
        """A table or view of the members, one row per key: the first row of each key
        wins, as in the Python engine."""
        if self._deduplicated is None:
            if self.count == self.valid:
                self._deduplicated = self.rows_table
            else:
                table = self.engine.name("desired")
                self.engine.connection.execute(
                    f"CREATE TABLE {table} AS SELECT * FROM {self.rows_table} WHERE row IN "
                    f"(SELECT min(row) FROM {self.rows_table} GROUP BY key)"
                )
                self._deduplicated = table
        return self._deduplicated


def estimate_rows(audience: Audience) -> int | None:
    """The source's row count, or None when it cannot be had (the reader then reports
    why). Files are counted without parsing them; a query is counted where it runs
    (`SELECT count(*)` over it), which costs a second, cheaper run of it."""
    try:
        return source_for(audience).estimate_rows()
    except (QueryTimedOut, SourceChangedError, SourceUnreachable):
        # Reading it would run past the limit, or wait for its server, again; a changed
        # file is refused.
        raise
    except (OSError, duckdb.Error, SourceError):
        return None


def load_desired(engine: Engine, audience: Audience, project_type: ProjectType) -> DesiredTable:
    """The source read and checked in one pass (each pass over ten million rows costs
    about a second), then counted in one more."""
    checked = engine.name("checked")
    with engine.ordered():
        where, columns, rejected = _create_checked(engine, audience, project_type, checked)
    return _deduplicate(engine, checked, columns, where, project_type, rejected)


def trait_columns(names: Sequence[str], identity: Sequence[int | None]) -> list[tuple[str, int]]:
    """The columns an audience with a trait mapping keeps beside its identifiers, as the
    Python engine's CSV reader keeps them (by name: a repeated name is its last column)."""
    by_name = {name: i for i, name in enumerate(names)}
    return [(name, i) for name, i in by_name.items() if i not in identity]


# -- reading and checking ------------------------------------------------------------------


Where = Callable[[int], str]
Rejected = tuple[int, list[MemberIssue]]  # rows the reader could not read: count, first few


def _create_checked(
    engine: Engine, audience: Audience, project_type: ProjectType, checked: str
) -> tuple[Where, Columns, Rejected]:
    """Table `checked` ([email], [user_id], problem): one row per source row in source
    order, so its rowid numbers the rows. Returns how to name row n (1-based) in messages,
    which identifier columns the source has, and the rows the reader rejected outright."""
    checker = _Checker(
        engine, audience.spec.members, checked, project_type, audience.spec.traits is not None
    )
    return source_for(audience).relation(checker)


@dataclass
class _Checker:
    """Reads a source's rows into `checked`, in whichever shape the source hands them
    (sources.base.RelationReader)."""

    engine: Engine
    spec: MembersSpec
    checked: str
    project_type: ProjectType
    keep_traits: bool = False  # the audience has a trait mapping: keep the other columns

    def csv_file(self, source: CsvRows) -> tuple[Where, Columns, Rejected]:
        engine, path, snapshot = self.engine, source.path, source.snapshot
        select, columns, rejects, width = _csv_select(engine, source, self.keep_traits)
        declared_at = source.declared_at
        try:
            engine.connection.execute(
                _checked_sql(engine, self.checked, select, self.project_type, columns)
            )
        except duckdb.Error as exc:
            said = engine.no_room(exc)  # the file is fine; the room to check it is not
            if said is not None:
                raise said from None
            # DuckDB's message runs to a page of reader options: its first line says it.
            first = snapshot.shown(unmarked(str(exc)).strip().splitlines()[0])
            raise SourceError(f"{declared_at}: {path}: not valid CSV: {first}") from None
        lines = _CsvLines(snapshot.copy)
        count, issues, set_aside = _csv_rejects(engine, source, rejects, lines)
        # Under a header of one column DuckDB reads a blank line as a row (of one empty
        # cell), so only wider files have blank lines to add back when naming rows.
        namer = _csv_row_namer(path, lines, set_aside, blank_lines_skipped=width > 1)
        return namer, columns, (count, issues)

    def duckdb(self, relation: DuckDbRelation) -> tuple[Where, Columns, Rejected]:
        columns = _query_into(
            self.engine, self.spec, self.checked, self.project_type, relation, self.keep_traits
        )
        return relation.where, columns, (0, [])

    def stream(self, source: RowStream) -> tuple[Where, Columns, Rejected]:
        columns = _warehouse_into(
            self.engine, self.spec, source, self.checked, self.project_type, self.keep_traits
        )
        declared_at = source.declared_at
        return (lambda n: f"{declared_at}: query row {n}"), columns, (0, [])


def _csv_select(
    engine: Engine, source: CsvRows, keep_traits: bool
) -> tuple[str, Columns, str, int]:
    """SELECT email, user_id, blank FROM the CSV file (its snapshot), which identifier
    columns it has, the name of its rejects table and the header's number of columns."""
    declared_at, path, copy = source.declared_at, source.path, source.snapshot.copy
    # The header is read as the Python engine reads it (BOM, stripped names), and DuckDB
    # is told the dialect rather than left to guess it from a sample.
    try:
        with copy.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
        # Its lines all end alike, as DuckDB's reader needs, and its cells are the csv
        # module's (Snapshot.as_python_reads).
        lines = source.snapshot.as_python_reads
    except (OSError, UnicodeDecodeError) as exc:
        raise csv_open_error(declared_at, path, exc, copy) from None
    except UnreadableCsv as exc:
        message = csv_error_message(exc.message)
        raise SourceError(f"{declared_at}: {path}:{exc.line}: not valid CSV: {message}") from None
    except csv.Error as exc:
        raise SourceError(f"{declared_at}: cannot read {path}: {exc}") from None
    if header is None:
        raise SourceError(f"{declared_at}: {path} is empty (no header row)")
    names, email, user_id = source.header_columns(header)
    traits = tuple(trait_columns(names, (email, user_id))) if keep_traits else ()
    columns = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(names)))
    rejects = engine.name("rejects")
    reader = (
        f"read_csv({_literal(str(lines))}, header = true, auto_detect = false, "
        f"columns = {{{columns}}}, delim = ',', quote = '\"', escape = '\"', "
        f"max_line_size = {MAX_LINE_BYTES}, store_rejects = true, "
        f"rejects_table = '{rejects}', rejects_scan = '{rejects}_scan')"
    )
    # A row is blank when every cell is (the Python engine skips such rows silently);
    # the regex runs only for cells that start with a space.
    blank = " AND ".join(
        f"CASE WHEN c{i} IS NULL THEN true WHEN contains({_SPACES}, left(c{i}, 1)) "
        f"THEN regexp_full_match(c{i}, '{_SPACE}*') ELSE false END"
        for i in range(len(names))
    )
    cells = ", ".join(f"c{i}" for i in range(len(names)))
    select = f"SELECT {cells}, {_cell(email)} AS email, {_cell(user_id)} AS user_id FROM {reader}"
    # contains() first: a quick test that fails for almost every row, so the trim runs
    # for the rare cell holding the column's name.
    header_again = " AND ".join(
        f"contains(c{i}, {_literal(names[i])}) "
        f"AND trim(c{i}, {_literal(HEADER_CELL_STRIP)}) = {_literal(names[i])}"
        for i in (email, user_id)
        if i is not None
    )
    if any(i is not None and not names[i] for i in (email, user_id)):
        header_again = "false"  # as identity.repeats_header: an empty name is no header
    columns_found = Columns(
        email is not None, user_id is not None, blank, traits=traits, header_again=header_again
    )
    return select, columns_found, rejects, len(names)


def _csv_rejects(
    engine: Engine, source: CsvRows, rejects: str, lines: _CsvLines
) -> tuple[int, list[MemberIssue], list[int]]:
    """Rows DuckDB's reader set aside. A row with the wrong number of cells is skipped and
    named by the line it starts on, as the Python engine does (a blank one silently), and
    the record numbers of all of them are returned, to number the rows after them
    (DuckDB's `line` counts records: a quoted cell spanning lines is one); anything else
    (an unclosed quote, bytes that are not UTF-8, an endless line) stops the read, as it
    does in the Python engine: skipping it could drop every row after it, and plan their
    removal."""
    connection = engine.connection
    path, declared_at, snapshot = source.path, source.declared_at, source.snapshot
    try:
        fatal = connection.execute(
            f"SELECT line, error_type, error_message FROM {rejects} "
            f"WHERE error_type NOT IN ('MISSING COLUMNS', 'TOO MANY COLUMNS') "
            f"ORDER BY line LIMIT 1"
        ).fetchone()
        if fatal is not None:
            line, kind, message = fatal
            if kind == "INVALID ENCODING":
                raise not_utf8_error(declared_at, path, snapshot.copy)
            message = csv_error_message(snapshot.shown(message))
            raise SourceError(
                f"{declared_at}: {path}:{lines.line(int(line))}: not valid CSV: {message}"
            )
        # A line of spaces, commas and quoted spaces (`""`, `,` under a wider header) is a
        # blank row to the Python engine, whose cells all strip to nothing; DuckDB rejects
        # it. Not every line of quotes: `""""` is a cell holding a quote, a short row.
        # DuckDB lists a short row once per missing column and a long one once per cell
        # beyond the header, each saying how many cells it had found by then: one issue
        # per line, as the Python engine gives, with the whole row's count (the first
        # of a short row's, the last of a long row's).
        counted = (
            f"FROM (SELECT * FROM {rejects} "
            f"WHERE NOT regexp_full_match(csv_line, '{_BLANK_CELL}(?:,{_BLANK_CELL})*') "
            f"QUALIFY row_number() OVER (PARTITION BY line ORDER BY CASE WHEN error_type = "
            f"'TOO MANY COLUMNS' THEN -CAST(column_idx AS BIGINT) ELSE column_idx END) = 1)"
        )
        (count,) = connection.execute(f"SELECT count(*) {counted}").fetchone() or (0,)
        bad = connection.execute(
            f"SELECT line, error_message {counted} ORDER BY line LIMIT {MAX_ISSUES}"
        ).fetchall()
        set_aside = [
            int(line) for (line,) in connection.execute(f"SELECT line FROM {rejects}").fetchall()
        ]
    finally:
        connection.execute(f"DROP TABLE IF EXISTS {rejects}")
        connection.execute(f"DROP TABLE IF EXISTS {rejects}_scan")
    issues = [MemberIssue(f"{path}:{lines.line(int(line))}", _cells_message(m)) for line, m in bad]
    return int(count), issues, set_aside


# A cell the Python engine's csv module reads as spaces: spaces, or spaces in quotes.
_BLANK_CELL = f'(?:{_SPACE}*|"{_SPACE}*")'


def _csv_row_namer(
    path: Path, lines: _CsvLines, set_aside: list[int], blank_lines_skipped: bool = True
) -> Callable[[int], str]:
    """How to name the n-th row DuckDB read (1-based) as the Python engine and an editor
    number it: by the line it starts on. DuckDB's count leaves out blank lines and the
    rows it set aside, so those before a row are added back, and the record found is
    named by its line; both are found (one scan of the file) only when a row is named."""
    skipped: list[int] | None = None

    def name(n: int) -> str:
        nonlocal skipped
        if skipped is None:
            blank = lines.blank() if blank_lines_skipped else []
            skipped = sorted({*set_aside, *blank})
        record = n + 1  # the header is record 1
        for s in skipped:
            if s > record:
                break
            record += 1
        return f"{path}:{lines.line(record)}"

    return name


@dataclass
class _CsvLines:
    """A CSV file's records (DuckDB's and the csv module's rows, the header and blank
    ones included: a quoted cell spanning lines is one record) against the lines an editor
    shows, where messages name them. Learnt in one scan of the file, on first use: a file
    with no quote and no lone CR has one record per line, and needs no parsing."""

    path: Path
    # Records from which the line a record starts on is `record + offset`, and the offsets:
    # an entry per record after one spanning lines, so arrays of 8-byte integers (a file
    # of ten million addresses written on two lines each is 160 MB, not 700 as lists).
    _records: array.array[int] = field(default_factory=lambda: array.array("q"))
    _offsets: array.array[int] = field(default_factory=lambda: array.array("q"))
    _blank: list[int] | None = None

    def line(self, record: int) -> int:
        """The line record `record` (1-based) starts on."""
        self._scan()
        at = bisect.bisect_right(self._records, record) - 1
        return record + (self._offsets[at] if at >= 0 else 0)

    def blank(self) -> list[int]:
        """Numbers of the blank records (DuckDB skips them without a word): a blank line
        inside a quoted cell is part of that cell, and a lone CR ends a line."""
        self._scan()
        assert self._blank is not None
        return self._blank

    def _scan(self) -> None:
        if self._blank is not None:
            return
        with self.path.open("rb") as handle:
            if not any(_needs_parsing(chunk) for chunk in iter(lambda: handle.read(1 << 20), b"")):
                handle.seek(0)
                self._blank = [n for n, raw in enumerate(handle, start=1) if not raw.strip(b"\r\n")]
                return
        blank: list[int] = []
        with self.path.open(newline="", encoding="utf-8-sig", errors="replace") as text:
            reader = csv.reader(text)
            start, offset = 1, 0
            try:
                for record, row in enumerate(reader, start=1):
                    if start - record != offset:
                        offset = start - record
                        self._records.append(record)
                        self._offsets.append(offset)
                    if not row:
                        blank.append(record)
                    start = reader.line_num + 1
            except csv.Error:
                pass  # past a row that cannot be read: the read stops there and names it
        self._blank = blank


def _needs_parsing(chunk: bytes) -> bool:
    # A CR at the end of a chunk may be a lone one: parsed, to be exact.
    return b'"' in chunk or re.search(rb"\r(?!\n)", chunk) is not None


def _cells_message(message: str) -> str:
    """DuckDB's "Expected Number of Columns: 2 Found: 1" as the Python engine words it."""
    found = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", message)
    if found is None:
        return f"not read: {message}"
    return wrong_width(int(found.group(2)), int(found.group(1)))


def _cell(index: int | None) -> str:
    return f"c{index}" if index is not None else "NULL::VARCHAR"


def _query_into(
    engine: Engine,
    spec: MembersSpec,
    checked: str,
    project_type: ProjectType,
    relation: DuckDbRelation,
    keep_traits: bool = False,
) -> Columns:
    """A DuckDB query's rows (a Parquet file's, a manifest's query's) into `checked`.

    The query runs in a locked-down connection of its own (sources.duckdb_query), never
    in the workspace, which holds other lists' members and reads files for reconciler:
    its identifier columns (and, for a trait mapping, its other columns) are written to a
    Parquet file in a directory made for it, which the workspace then reads. A database
    file is opened read-only, so the query names its tables as it would in that database.

    Trait columns keep their types, so that the values fetched back a batch at a time
    are the Python values the Python engine fetches from the query itself (see
    `_through_parquet` for the few types Parquet cannot carry)."""
    query = relation.select()
    transfer = engine.directory / engine.name("query")
    transfer.mkdir(mode=0o700)
    rows = transfer / "rows.parquet"
    try:
        with relation.connection(
            writable=transfer, memory_bytes=engine.settings.duckdb_memory_bytes
        ) as source:
            try:
                described = source.execute(f"DESCRIBE {query}").fetchall()
                names = [row[0] for row in described]
                if relation.described is not None:
                    relation.described(names)
                columns = find_columns(
                    names, spec, f"{relation.declared_at}: {relation.subject}", relation.show_query
                )
                identity = (columns.email, columns.user_id)
                traits = trait_columns(names, identity) if keep_traits else []
                # Columns are taken by position (a query may repeat a name, or use any).
                cells = ", ".join(f"c{i}" for i in range(len(names)))
                sent = "".join(
                    f", {_through_parquet(f'c{i}', described[i][1])[0]} AS c{i}" for _, i in traits
                )
                # Identifiers as text by their type, as the Python engine makes them.
                identity_cells = identifier_cells(columns, [row[1] for row in described])
                email, user_id = (
                    identity_cells[i] if i is not None else "NULL::VARCHAR"
                    for i in (columns.email, columns.user_id)
                )
                select = (
                    f"SELECT {email} AS email, {user_id} AS user_id{sent} "
                    f"FROM ({query}\n) AS q({cells})"  # the newline ends a trailing `-- comment`
                )
                source.execute(f"COPY ({select}) TO {_literal(str(rows))} (FORMAT parquet)")
            except duckdb.Error as exc:
                refused = refusal(str(exc))
                if refused is not None:
                    raise SourceError(refused) from None
                raise relation.error(exc) from None
        found = Columns(
            columns.email is not None,
            columns.user_id is not None,
            traits=tuple(traits),
            null_cells=True,
            header_again=_names_as_values(columns),
        )
        received = "".join(
            f", {_through_parquet(f'c{i}', described[i][1])[1]} AS c{i}" for _, i in traits
        )
        engine.connection.execute(
            _checked_sql(
                engine,
                checked,
                f"SELECT email, user_id{received} FROM read_parquet({_literal(str(rows))})",
                project_type,
                found,
            )
        )
    finally:
        shutil.rmtree(transfer, ignore_errors=True)
    return found


# Types DuckDB's Parquet writer does not give back as they were (measured on DuckDB 2.0:
# HUGEINT and UHUGEINT come back as DOUBLE, TIME WITH TIME ZONE shifted to UTC, UNION as
# a STRUCT, a fixed-size ARRAY (INTEGER[3], fetched as a tuple) as a list). A column of
# one of these, or of a nested type holding one, crosses as text and is cast back to its
# type, which gives the same value.
_NOT_THROUGH_PARQUET = re.compile(r"\b(?:U?HUGEINT|TIME WITH TIME ZONE|UNION)\b|\[\d+\]")


def _names_as_values(columns: RowColumns) -> str:
    """The SQL that tells a typed source's row holding a header row loaded as data
    (identity.repeats_column_names) from the identifier cells `e` and `u` of
    _checked_sql: each spells its column's name but for case and NAME_SEPARATORS."""
    tests = []
    for cell, index in (("e", columns.email), ("u", columns.user_id)):
        if index is None:
            continue
        loose = loose_column_name(columns.names[index])
        if loose is None:
            return "false"  # as identity.spells_column_name: such a name is matched by none
        trimmed = f"trim({cell}, {_literal(HEADER_CELL_STRIP)})"
        # The tests before the rewrite are quick and fail for almost every row: an email
        # has an `@`, which no such name has; the name's letters must appear in order.
        tests.append(
            f"(NOT contains({cell}, '@') AND {cell} ILIKE '%{'%'.join(loose)}%' "
            f"AND regexp_full_match({trimmed}, '[ -~]+') AND lower(regexp_replace("
            f"{trimmed}, '[{NAME_SEPARATORS}]', '', 'g')) = '{loose}')"
        )
    return " AND ".join(tests) or "false"


def _through_parquet(cell: str, type_name: str) -> tuple[str, str]:
    """How a trait column of this type is written to the transfer file and read back."""
    if type_name == "FLOAT":  # written as the double the Python engine reads
        return trait_cell(cell, type_name), cell
    if _NOT_THROUGH_PARQUET.search(type_name) is None:
        return cell, cell
    return f"CAST({cell} AS VARCHAR)", f"CAST({cell} AS {type_name})"


def _warehouse_into(
    engine: Engine,
    spec: MembersSpec,
    source: RowStream,
    checked: str,
    project_type: ProjectType,
    keep_traits: bool = False,
) -> Columns:
    """A query at a SQLAlchemy URL: rows stream back in chunks into a CSV file, which
    DuckDB then reads (far quicker than inserting rows one by one). For a trait mapping,
    the other columns go too, each value encoded so that it decodes to the very Python
    value the driver gave (`encode_trait`)."""
    path = engine.directory / f"{checked}.csv"
    present: list[Columns] = []
    try:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)

            def write(names: Sequence[str], chunks: Iterable[Sequence[Sequence[Any]]]) -> None:
                found = find_columns(
                    list(names), spec, f"{source.declared_at}: the query", query=True
                )
                identity = (found.email, found.user_id)
                traits = tuple(trait_columns(names, identity)) if keep_traits else ()
                present.append(
                    Columns(
                        found.email is not None,
                        found.user_id is not None,
                        traits=traits,
                        null_cells=True,
                        encoded=True,
                        header_again=_names_as_values(found),
                    )
                )
                cells = [i for _, i in traits]
                for chunk in chunks:
                    try:
                        writer.writerows(
                            (
                                found.identifier(row, "email"),
                                found.identifier(row, "userId"),
                                *(encode_trait(trait_value(row[i])) for i in cells),
                            )
                            for row in chunk
                        )
                    except NotEncodable as exc:
                        raise SourceError(
                            f"{source.declared_at}: the query gives a value of type {exc.kind}, "
                            "which reconciler cannot keep in DuckDB for the trait mapping; set "
                            "RECONCILER_ENGINE=python to plan this audience in Python"
                        ) from None

            source.stream(write)
        columns = present[0]
        names = ["email", "user_id", *(f"c{i}" for _, i in columns.traits)]
        types = ", ".join(f"'{name}': 'VARCHAR'" for name in names)
        # reconciler's own file, read back as the workspace's others are (rows.py): under
        # DuckDB's default of 2 MB a line, a long mapped text (a notes or JSON column)
        # failed the plan, though Iterable's limits then decide what is sent.
        select = (
            f"SELECT {', '.join(names)} FROM read_csv({_literal(str(path))}, "
            f"header = false, auto_detect = false, columns = {{{types}}}, "
            f"delim = ',', quote = '\"', escape = '\"', max_line_size = {MAX_LINE}, "
            f"buffer_size = {2 * MAX_LINE})"
        )
        try:
            engine.connection.execute(_checked_sql(engine, checked, select, project_type, columns))
        except duckdb.Error as exc:
            said = engine.no_room(exc)  # the rows are fine; the room to keep them is not
            if said is not None:
                raise said from None
            # DuckDB's text quotes the row (a member and its values) and the workspace's
            # file: only its reason is said, and its line is the query's row.
            reason = unquoted_reason(exc).replace("CSV Error on Line: ", "query row ")
            raise SourceError(
                f"{source.declared_at}: the query's rows could not be kept in DuckDB "
                f"({reason}); set RECONCILER_ENGINE=python to plan this audience in Python"
            ) from None
    finally:
        path.unlink(missing_ok=True)
    return present[0]


# A warehouse's trait values as text that gives them back exactly: JSON for values it
# carries as they are (text, numbers, true/false, null, and lists and objects of those;
# the commonest by far), a pickle for the rest (tuples, Decimals in a list, dates in an
# object, UUIDs, bytes, intervals, driver types). Every cell starts with its tag, so a
# value from the warehouse can never pass for a pickle: only what reconciler pickled
# itself, in its own private workspace, is unpickled.
_JSON, _PICKLE, _MEMORYVIEW = "j", "p", "m"


class NotEncodable(Exception):
    def __init__(self, kind: str):
        self.kind = kind
        super().__init__(kind)


def encode_trait(value: Any) -> str:
    if _json_exact(value):
        return _JSON + json.dumps(value)
    if isinstance(value, memoryview):  # a driver's bytea (psycopg2): not picklable
        return _MEMORYVIEW + base64.b64encode(value.tobytes()).decode("ascii")
    try:
        return _PICKLE + base64.b64encode(pickle.dumps(value, protocol=5)).decode("ascii")
    except Exception:  # whatever pickling a driver's object raises
        raise NotEncodable(type(value).__name__) from None


def decode_trait(text: str) -> Any:
    tag, body = text[:1], text[1:]
    if tag == _JSON:
        return json.loads(body)
    if tag == _MEMORYVIEW:
        return memoryview(base64.b64decode(body))
    assert tag == _PICKLE, "a trait cell reconciler did not encode"
    return pickle.loads(base64.b64decode(body))  # only what encode_trait wrote


def _json_exact(value: Any) -> bool:
    """Whether json.loads(json.dumps(value)) gives back the same types and values."""
    kind = type(value)
    if value is None or kind in (str, int, float, bool):
        return True
    if kind is list:
        return all(_json_exact(v) for v in value)
    if kind is dict:
        return all(type(k) is str and _json_exact(v) for k, v in value.items())
    return False


# Why a row was skipped, stored as a small code (a column of messages would cost
# ten million strings); 0 is a blank row, skipped silently as the Python engine skips it.
BLANK, INVALID_EMAIL, LONG_USER_ID, NON_ASCII_USER_ID, SPACE_USER_ID, MISSING = range(6)
EXPONENT_USER_ID, MAILTO_EMAIL, HEADER_AGAIN, SUMMARY_USER_ID, FLOAT_USER_ID = 6, 7, 8, 9, 10
MISSING_VALUE_USER_ID, SPREADSHEET_ERROR_USER_ID, MOJIBAKE_EMAIL = 11, 12, 13
EXCEL_TEXT_USER_ID, EXCEL_TEXT_EMAIL = 14, 15


@dataclass(frozen=True)
class Columns:
    """Which identifier columns the source has (a missing one is not stored at all), and
    the SQL that tells a blank row (a CSV's; other sources have none)."""

    email: bool
    user_id: bool
    blank: str = "false"
    # The SQL that tells a CSV row repeating the header (identity.repeats_header).
    header_again: str = "false"
    # Trait columns kept (name, cell index): as t0, t1, ... beside the identifiers. An
    # empty CSV cell is "" as Python's csv module reads it (DuckDB reads it as NULL); a
    # NULL in a typed source (`null_cells`) is None, as its Python reader gives it.
    traits: tuple[tuple[str, int], ...] = ()
    null_cells: bool = False
    # A warehouse's trait cells hold encode_trait's text (DesiredTable.trait_value).
    encoded: bool = False

    def select(self) -> str:
        email = "email" if self.email else "NULL::VARCHAR AS email"
        user_id = "user_id" if self.user_id else "NULL::VARCHAR AS user_id"
        return f"{email}, {user_id}" + "".join(f", t{i}" for i in range(len(self.traits)))


def _checked_sql(
    engine: Engine, table: str, select: str, project_type: ProjectType, columns: Columns
) -> str:
    """identity.make_member in SQL. Blank cells count as absent; an email is stripped
    and lower-cased (kept as written when invalid, to be shown so); a userId is taken as
    given (it is case- and space-sensitive). Blank rows stay (problem 0) so that rowids
    keep numbering the source's rows; valid rows have no problem (NULL).

    Most rows are plainly valid: an email that matches the pattern once lower-cased has no
    spaces to strip, and a userId of printable ASCII not ending in a space is not blank.
    Those rows take the fast path; only the others pay for stripping, the blank-row test
    and the search for the reason (measured: a third of the checking time at 10M)."""
    space = _SPACE
    user_id_ok = "(u <> '' AND " + " AND ".join(f"NOT {test}" for test, _ in user_id_rules("u"))
    user_id_ok += ")"
    pattern = email_pattern()
    email_ok = (
        f"(regexp_full_match(le, '{pattern}') AND NOT {_mailto('le')} AND NOT {_mojibake('le')})"
    )
    fast = {
        "email": f"({email_ok} AND (u IS NULL OR {user_id_ok}))",
        "userId": f"({user_id_ok} AND (e IS NULL OR {email_ok}))",
        "hybrid": f"(CASE WHEN e IS NULL THEN {user_id_ok} "
        f"ELSE {email_ok} AND (u IS NULL OR {user_id_ok}) END)",
    }[project_type]
    stripped = (
        f"CASE WHEN contains({_SPACES}, left(e, 1)) OR contains({_SPACES}, right(e, 1)) "
        f"THEN nullif(regexp_replace(e, '^{space}+|{space}+$', '', 'g'), '') ELSE e END"
    )
    user_id = (
        f"CASE WHEN u = '' THEN NULL WHEN contains({_SPACES}, left(u, 1)) "
        f"AND regexp_full_match(u, '{space}*') THEN NULL ELSE u END"
    )
    # In a userID-based project an email that is no address is left out, the member kept
    # (identity._email_of); elsewhere it skips the row.
    invalid_email = (
        f"slow_email IS NOT NULL AND (NOT regexp_full_match(slow_email, '{pattern}') "
        f"OR {_mailto('slow_email')} OR {_mojibake('slow_email')})"
    )
    valid_email = (
        f"CASE WHEN NOT ({invalid_email}) THEN slow_email END"
        if project_type == "userId"
        else "slow_email"
    )
    invalid_email_rule = (
        ""
        if project_type == "userId"
        else f"WHEN slow_email IS NOT NULL AND {_excel_text('slow_email')} THEN {EXCEL_TEXT_EMAIL} "
        f"WHEN slow_email IS NOT NULL AND {_mailto('slow_email')} THEN {MAILTO_EMAIL} "
        f"WHEN slow_email IS NOT NULL AND NOT regexp_full_match(slow_email, '{pattern}') "
        f"THEN {INVALID_EMAIL} "
        f"WHEN {invalid_email} THEN {MOJIBAKE_EMAIL}"
    )
    user_id_problems = " ".join(
        f"WHEN slow_user_id IS NOT NULL AND {test} THEN {code}"
        for test, code in user_id_rules("slow_user_id")
    )
    kept = []
    if columns.email:
        kept.append(
            # A skipped row keeps its email as written (stripped): shown when it is the
            # problem, and loosened for skipped_ids as the Python engine loosens the cell.
            "CASE WHEN fast THEN le WHEN problem IS NOT NULL THEN slow_email_raw "
            f"ELSE {valid_email} END AS email"
        )
    if columns.user_id:
        kept.append("CASE WHEN fast THEN u ELSE slow_user_id END AS user_id")
    empty = "c{}" if columns.null_cells else "coalesce(c{}, '')"
    kept.extend(f"{empty.format(cell)} AS t{i}" for i, (_, cell) in enumerate(columns.traits))
    return f"""
        CREATE TABLE {table} AS
        WITH cells AS (
            SELECT *, email AS e, user_id AS u, {lower_sql("email")} AS le FROM ({select})
        ), judged AS (
            SELECT *, {fast} IS TRUE
                -- CASE, not NOT (...) IS TRUE: that form evaluated every part of the
                -- test for every row, a second a million rows
                AND CASE WHEN {columns.header_again} THEN false ELSE true END AS fast
            FROM cells
        ), slow AS (
            SELECT *,
                CASE WHEN fast THEN NULL ELSE {stripped} END AS slow_email_raw,
                CASE WHEN fast THEN NULL ELSE {user_id} END AS slow_user_id,
                CASE WHEN fast THEN false ELSE {columns.blank} END AS blank
            FROM judged
        ), reasons AS (
            SELECT *, {lower_sql("slow_email_raw")} AS slow_email FROM slow
        ), problems AS (
            SELECT *,
                CASE WHEN fast THEN NULL ELSE CAST(CASE
                    WHEN blank THEN {BLANK}
                    WHEN {columns.header_again} THEN {HEADER_AGAIN}
                    {invalid_email_rule}
                    {user_id_problems}
                    {_missing_rule(project_type)}
                END AS UTINYINT) END AS problem
            FROM reasons
        )
        SELECT {", ".join([*kept, "problem"])} FROM problems
        """


def user_id_rules(column: str) -> list[tuple[str, int]]:
    """identity.validate_user_id's refusals of a userId that is not blank, in SQL and in
    its order: each test of `column`, and the code of the problem it finds."""
    return [
        (f"length({column}) > {MAX_USER_ID_LENGTH}", LONG_USER_ID),
        (f"NOT regexp_full_match({column}, '[ -~]*')", NON_ASCII_USER_ID),
        (f"suffix({column}, ' ')", SPACE_USER_ID),
        (_exponent(column), EXPONENT_USER_ID),
        (_float(column), FLOAT_USER_ID),
        (_missing_value(column), MISSING_VALUE_USER_ID),
        (_spreadsheet_error(column), SPREADSHEET_ERROR_USER_ID),
        (_excel_text(column), EXCEL_TEXT_USER_ID),
        (_summary(column), SUMMARY_USER_ID),
    ]


def _issue(
    code: int, email: str | None, user_id: str | None, project_type: ProjectType
) -> tuple[str, str | None]:
    """The message and the offending value of a skipped row, in identity.py's words."""
    if code == INVALID_EMAIL:
        problem = invalid_email(email)
    elif code == HEADER_AGAIN:
        problem = header_repeated()
    elif code == MAILTO_EMAIL:
        problem = email_is_mailto_link(email)
    elif code == MOJIBAKE_EMAIL:
        problem = email_is_mojibake(email)
    elif code == EXCEL_TEXT_EMAIL:
        problem = email_is_excel_text(email)
    elif code == LONG_USER_ID:
        problem = user_id_too_long(user_id or "")
    elif code == NON_ASCII_USER_ID:
        problem = user_id_not_ascii(user_id)
    elif code == SPACE_USER_ID:
        problem = user_id_ends_with_space(user_id)
    elif code == EXPONENT_USER_ID:
        problem = user_id_in_exponent_form(user_id)
    elif code == FLOAT_USER_ID:
        problem = user_id_as_a_float(user_id)
    elif code == MISSING_VALUE_USER_ID:
        problem = user_id_is_a_missing_value(user_id)
    elif code == SPREADSHEET_ERROR_USER_ID:
        problem = user_id_is_a_spreadsheet_error(user_id)
    elif code == EXCEL_TEXT_USER_ID:
        problem = user_id_is_excel_text(user_id)
    elif code == SUMMARY_USER_ID:
        problem = user_id_is_a_summary(user_id)
    else:
        problem = missing_key(project_type)
    return problem.reason, problem.value


def _mailto(column: str) -> str:
    """identity's email that is a mailto: link (lower-cased already), in SQL."""
    return f"starts_with({column}, '{MAILTO}')"


def _mojibake(column: str) -> str:
    """identity's email that is UTF-8 misread as Windows-1252 (`ã©` for `é`), in SQL:
    the regex only for an email outside ASCII (more bytes than characters)."""
    return (
        f"CASE WHEN strlen({column}) <> length({column}) "
        f"THEN regexp_matches({column}, '{MOJIBAKE_PATTERN}') ELSE false END"
    )


def _summary(column: str) -> str:
    """identity's userId that reads as a report's summary row (`Total: 3,421`, `(3 rows)`),
    in SQL: the regex only for a userId holding one of its SUMMARY_HINTS, as identity tests
    it."""
    pattern = SUMMARY_USER_ID_PATTERN
    hints = " OR ".join(f"contains({column}, '{hint}')" for hint in SUMMARY_HINTS)
    return f"CASE WHEN {hints} THEN regexp_full_match({column}, '{pattern}') ELSE false END"


def _exponent(column: str) -> str:
    """identity's userId in a spreadsheet's exponent form (`1.23E+11`), in SQL; the
    regex runs only for the rare userId holding a `+` (CASE: an AND under NOT ran it for
    every row)."""
    pattern = EXPONENT_USER_ID_PATTERN
    return (
        f"CASE WHEN contains({column}, '+') THEN regexp_full_match({column}, '{pattern}') "
        "ELSE false END"
    )


def _missing_value(column: str) -> str:
    """identity's userId that is an export's missing value (`\\N`, `NULL`, `NaN`), in SQL:
    the regex only for a userId as short as one, as identity tests it."""
    pattern = MISSING_VALUE_USER_ID_PATTERN.replace("'", "''")
    return (
        f"CASE WHEN length({column}) <= {MISSING_VALUE_MAX_LENGTH} "
        f"THEN regexp_full_match({column}, '{pattern}') ELSE false END"
    )


def _spreadsheet_error(column: str) -> str:
    """identity's userId that is a spreadsheet's error value (`#N/A`), in SQL: the regex
    only for a userId starting as one does, as identity tests it."""
    starts = " OR ".join(f"starts_with({column}, '{start}')" for start in SPREADSHEET_ERROR_STARTS)
    return (
        f"CASE WHEN {starts} THEN regexp_full_match({column}, '{SPREADSHEET_ERROR_PATTERN}') "
        "ELSE false END"
    )


def _excel_text(column: str) -> str:
    """identity's identifier that is Excel's `="00123"`, in SQL: the regex only for one
    starting so, as identity tests it."""
    return (
        f"CASE WHEN starts_with({column}, '{EXCEL_TEXT_START}') "
        f"THEN regexp_full_match({column}, '{EXCEL_TEXT_PATTERN}') ELSE false END"
    )


def _float(column: str) -> str:
    """identity's userId written as a float (`12345.0`), in SQL; the regex only for a
    userId holding a `.`, as identity tests it."""
    pattern = FLOAT_USER_ID_PATTERN
    return (
        f"CASE WHEN contains({column}, '.') THEN regexp_full_match({column}, '{pattern}') "
        "ELSE false END"
    )


def _missing_rule(project_type: ProjectType) -> str:
    missing = {
        "email": "slow_email IS NULL",
        "userId": "slow_user_id IS NULL",
        "hybrid": "slow_email IS NULL AND slow_user_id IS NULL",
    }[project_type]
    return f"WHEN {missing} THEN {MISSING}"


# -- deduplicating -------------------------------------------------------------------------


def _deduplicate(
    engine: Engine,
    checked: str,
    columns: Columns,
    where: Where,
    project_type: ProjectType,
    rejected: Rejected,
) -> DesiredTable:
    connection = engine.connection
    rejected_count, rejected_issues = rejected
    key = {"email": "email", "userId": "user_id", "hybrid": "coalesce(user_id, email)"}[
        project_type
    ]
    kind = {
        "email": "'email'",
        "userId": "'userId'",
        "hybrid": "CASE WHEN user_id IS NULL THEN 'email' ELSE 'userId' END",
    }[project_type]
    identifiers = f"SELECT {columns.select()}, problem, rowid AS row FROM {checked}"
    issues = []
    for row, code, email, user_id in connection.execute(
        f"SELECT row, problem, email, user_id FROM ({identifiers}) "
        f"WHERE problem <> {BLANK} ORDER BY row LIMIT {MAX_ISSUES}"
    ).fetchall():
        message, value = _issue(int(code), email, user_id, project_type)
        issues.append(MemberIssue(where(int(row) + 1), message, value))
    # One scan for every count (each is a pass over ten million rows).
    valid_row = "problem IS NULL"
    rows, problems, valid, with_user_id, email_only, with_email, respellable = connection.execute(
        f"SELECT count(*) FILTER (problem IS DISTINCT FROM {BLANK}), "
        f"count(*) FILTER (problem <> {BLANK}), count(*) FILTER ({valid_row}), "
        f"count(user_id) FILTER ({valid_row}), "
        f"count(*) FILTER ({valid_row} AND user_id IS NULL AND email IS NOT NULL), "
        f"count(email) FILTER ({valid_row}), "
        f"count(email) FILTER ({valid_row} AND ({RESPELLABLE.format('email')})) "
        f"FROM ({identifiers})"
    ).fetchone() or (0, 0, 0, 0, 0, 0, 0)
    table = engine.name("desired_rows")
    traits = "".join(f", t{i}" for i in range(len(columns.traits)))
    connection.execute(
        f"CREATE VIEW {table} AS SELECT {key} AS key, {kind} AS key_kind, email, user_id, row"
        f"{traits} FROM ({identifiers}) WHERE problem IS NULL"
    )
    return DesiredTable(
        engine=engine,
        key=key,
        rows_table=table,
        checked=checked,
        valid=int(valid),
        rows=int(rows) + rejected_count,
        skipped=int(problems) + rejected_count,
        issues=_in_row_order(rejected_issues, issues)[:MAX_ISSUES],
        with_user_id=int(with_user_id),
        email_only=int(email_only),
        with_email=int(with_email),
        respellable=int(respellable),
        project_type=project_type,
        identifier_columns=Columns(columns.email, columns.user_id).select(),
        where=where,
        traits=tuple(name for name, _ in columns.traits),
        encoded_traits=columns.encoded,
    )


def _in_row_order(rejected: list[MemberIssue], issues: list[MemberIssue]) -> list[MemberIssue]:
    """Rows set aside by the reader among the others, by line, as the Python engine lists
    them (both name CSV rows FILE:LINE)."""
    if not rejected:
        return issues

    def line(issue: MemberIssue) -> int:
        number = issue.where.rsplit(":", 1)[-1]
        return int(number) if number.isdigit() else 0

    return sorted(rejected + issues, key=line)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def known_skipped(desired: DesiredTable) -> str:
    """The identifiers rows skipped as invalid stand for (a table, column `id`), or an
    empty relation when no row was skipped (the table is then not built)."""
    return desired.skipped_ids() if desired.skipped else "(SELECT NULL::VARCHAR AS id LIMIT 0)"
