"""`members: {csv: FILE}`: a CSV file with a header row, read from a snapshot of it."""

from __future__ import annotations

import codecs
import csv
from functools import cached_property
from pathlib import Path
from typing import ClassVar

from reconciler.errors import SourceError, quoted
from reconciler.manifest.manifests import Audience
from reconciler.members.identity import (
    InvalidIdentity,
    ProjectType,
    header_repeated,
    make_member,
    repeats_header,
    skipped_identifiers,
)
from reconciler.render.masking import (
    column_hint,
    column_names,
    letters,
    other_separator,
    separator_advice,
    unmarked,
    unseen,
)
from reconciler.sources.base import (
    R,
    RelationReader,
    Source,
    SourceFile,
    readable_copy,
    source_path,
)
from reconciler.sources.missing_file import missing_file_hint
from reconciler.sources.not_text import NOT_TEXT_SAMPLE_BYTES, not_text
from reconciler.sources.result import MemberIssue, SourceResult
from reconciler.sources.snapshot import Snapshot, take_snapshot
from reconciler.utf16 import UTF16_SAMPLE_BYTES, looks_utf16
from reconciler.words import quantity

# At most this much of a file is read to glance at its header (peek_columns).
PEEK_BYTES = 64 * 1024

# The longest line either engine reads: DuckDB's default `max_line_size`, given to it
# explicitly, and the Python csv module's field limit (131,072 by default, which refused a
# 150 kB cell that DuckDB read, so a file read under one engine only). Raising the
# module-wide limit harms no other reader.
MAX_LINE_BYTES = 2_000_000
csv.field_size_limit(max(csv.field_size_limit(), MAX_LINE_BYTES))


class CsvFile(Source):
    kind = "csv"
    field = "csv"
    columns_at_load: ClassVar[bool] = True
    exact_column_names: ClassVar[bool] = True  # csv_identifier_columns
    traits_at_scale: ClassVar[bool] = True

    def __init__(self, audience: Audience) -> None:
        super().__init__(audience)
        assert self.spec.csv is not None
        self.path = source_path(audience, self.spec.csv)

    @cached_property
    def snapshot(self) -> Snapshot:
        """The file as this run reads it (taken on first use, once)."""
        try:
            snapshot = take_snapshot(self.path, self.audience.name, self.declared_at)
        except OSError as exc:
            error = csv_open_error(self.declared_at, self.path, exc)
            if isinstance(exc, FileNotFoundError):
                root = self.audience.source_root
                hint = missing_file_hint(self.spec.csv or "", self.audience.base_dir, root)
                error.args = (f"{error}{hint}",)
            raise error from None
        if is_utf16(snapshot.copy):
            raise SourceError(
                f"{self.declared_at}: {self.path} is UTF-16 text, not UTF-8 (as Excel saves "
                '"Unicode Text"); save it as "CSV UTF-8 (Comma delimited)"'
            )
        other = _not_text(snapshot.copy)
        if other is not None:
            raise SourceError(f"{self.declared_at}: {self.path} is {other}")
        return snapshot

    def files(self) -> list[SourceFile]:
        assert self.spec.csv is not None
        return [SourceFile(self.field, self.spec.csv, self.path)]

    def digests(self) -> list[tuple[Path, str]]:
        return [(self.path, self.snapshot.digest)]

    def columns(self) -> tuple[str, list[str]] | None:
        copy = readable_copy(lambda: self.snapshot)
        if copy is None:
            return None
        try:
            # utf-8-sig and stripped names: as the rows are read.
            with copy.open(newline="", encoding="utf-8-sig") as handle:
                header = next(csv.reader(handle), None)
        except (OSError, UnicodeDecodeError, csv.Error):
            return None
        if header is None:
            return None
        # self.path: as every message shows the file, from the working directory
        # (spec.csv is relative to the manifest, which names another file from there).
        return f"the header of {self.path}", [name.strip() for name in header]

    def peek_columns(self) -> list[str] | None:
        if "snapshot" in vars(self):  # read already: its header is the one to judge
            found = self.columns()
            return found[1] if found else None
        try:
            with self.path.open("rb") as handle:
                start = handle.read(PEEK_BYTES)
        except OSError:
            return None  # the read reports why
        if looks_utf16(start):
            return None  # the read refuses it
        line, newline, _ = start.partition(b"\n")
        if not newline and len(start) == PEEK_BYTES:
            return None  # a header this long is left to the read
        try:
            header = next(csv.reader([line.decode("utf-8-sig").rstrip("\r")]), None)
        except (UnicodeDecodeError, csv.Error):
            return None
        return [name.strip() for name in header] if header else None

    def estimate_rows(self) -> int:
        # Lines end in \n, or in \r alone as Excel for Mac's "CSV (Macintosh)" saves them:
        # counting \n only gave such a file of any size 0 rows, so it never reached DuckDB.
        newlines = returns = 0
        with self.snapshot.copy.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                newlines += chunk.count(b"\n")
                returns += chunk.count(b"\r")
        return max(max(newlines, returns) - 1, 0)  # the header

    def relation(self, reader: RelationReader[R]) -> R:
        return reader.csv_file(self)

    def header_columns(self, header: list[str]) -> tuple[list[str], int | None, int | None]:
        return csv_identifier_columns(self.audience, self.path, header)

    def read(self, project_type: ProjectType) -> SourceResult:
        path, declared_at = self.path, self.declared_at
        result = SourceResult(where={} if self.mapped else None)
        keep_traits = self.mapped  # Source.mapped: other columns matter to a mapping only
        # The line the next row starts on, as an editor numbers the file's lines: a quoted
        # cell spanning lines makes a row's number differ from its line's.
        start = 1
        try:
            copy = self.snapshot.copy
            # utf-8-sig: spreadsheets save CSV with a byte-order mark
            with copy.open(newline="", encoding="utf-8-sig") as handle:
                # strict: a quote left open is an error, not a cell that swallows every row
                # after it (which would plan their removal).
                reader = csv.reader(handle, strict=True)
                header = next(reader, None)
                if header is None:
                    raise SourceError(f"{declared_at}: {path} is empty (no header row)")
                start = reader.line_num + 1
                names, email_col, user_id_col = self.header_columns(header)
                columns = {name: i for i, name in enumerate(names)}
                trait_cols = [
                    (name, i) for name, i in columns.items() if i not in (email_col, user_id_col)
                ]
                for row in reader:
                    line, start = start, reader.line_num + 1
                    if not any(cell.strip() for cell in row):
                        continue
                    result.rows += 1
                    where = f"{path}:{line}"
                    if len(row) > len(header) and not any(row[len(header) :]):
                        # Empty cells after the last column (`a@x.com,u1,`, as some exports
                        # end every line) are dropped, as DuckDB's reader drops them.
                        row = row[: len(header)]
                    if len(row) != len(header):
                        result.issues.append(MemberIssue(where, wrong_width(len(row), len(header))))
                        continue
                    email = row[email_col] if email_col is not None else None
                    user_id = row[user_id_col] if user_id_col is not None else None
                    traits: dict[str, object] = (
                        {name: row[i] for name, i in trait_cols} if keep_traits else {}
                    )
                    try:
                        if repeats_header(
                            (names[email_col], email) if email_col is not None else None,
                            (names[user_id_col], user_id) if user_id_col is not None else None,
                        ):
                            raise header_repeated()
                        result.add(make_member(project_type, email, user_id, traits), where)
                    except InvalidIdentity as exc:
                        result.issues.append(MemberIssue(where, exc.reason, exc.value))
                        result.skipped_ids.update(skipped_identifiers(email, user_id))
        except (OSError, UnicodeDecodeError) as exc:
            raise csv_open_error(declared_at, path, exc, self.snapshot.copy) from None
        except csv.Error as exc:
            # The line the row that could not be read starts on (as DuckDB's read names
            # it): where an unclosed quote opened, not the end of the file it ran to; in
            # DuckDB's words, which say why ("unexpected end of data" does not).
            message = csv_error_message(str(exc))
            raise SourceError(f"{declared_at}: {path}:{start}: not valid CSV: {message}") from None
        return result


def wrong_width(cells: int, columns: int) -> str:
    """Why a row with too many or too few cells is skipped, worded alike by both engines
    ("1 cell", not "1 cells")."""
    return f"row has {quantity(cells, 'cell')}, header has {columns:,}"


# A quoted cell that does not end as CSV's quoting needs, said alike by both engines and
# for both ways of it (DuckDB's reader tells them apart no more than "Value with
# unterminated quote found.", which said neither what is wrong nor what to change).
BAD_QUOTE = (
    'a quoted cell does not end where it should: a cell that starts with a quote (") must '
    "end with one, followed by a comma or the line's end; write a quote inside it as two "
    '(""), or remove the stray quote'
)
_BAD_QUOTE_REASONS = (
    "unexpected end of data",  # the csv module: a quote opened and never closed
    "',' expected after '\"'",  # the csv module: text after a closing quote
    "Value with unterminated quote",  # DuckDB's reader: either
)


def csv_error_message(message: str) -> str:
    """The reason a row cannot be read, as either engine says it (without the masking's
    marks a cell may hold: unmarked)."""
    message = unmarked(message)
    if message.startswith(_BAD_QUOTE_REASONS):
        return BAD_QUOTE
    return message


def csv_identifier_columns(
    audience: Audience, path: Path, header: list[str]
) -> tuple[list[str], int | None, int | None]:
    """A CSV header's column names (stripped) and where the email and userId columns are,
    for either engine. Refuses a header reconciler would have to guess about."""
    spec = audience.spec.members
    declared_at = audience.field_location("members", "csv")
    names = [name.strip() for name in header]
    identifiers = (spec.email, spec.userId)
    for wanted in identifiers:
        if names.count(wanted) > 1:
            raise SourceError(
                f"{declared_at}: {path} has {names.count(wanted)} columns named {quoted(wanted)}: "
                "reconciler will not guess which one holds the identifiers; rename the others"
            )
    # A column named in the manifest must exist: a typo would otherwise drop that
    # identifier from every row, and the members it identified would be removed.
    for option in ("email", "userId"):
        named = getattr(spec, option)
        if option in spec.model_fields_set and named not in names:
            raise SourceError(
                f"{audience.field_location('members', option)}: column {quoted(named)} is not in "
                f"the header of {path}{column_hint(named, names, identifiers)}; columns are: "
                f"{column_names(names, reads=identifiers)}"
            )
    email = names.index(spec.email) if spec.email in names else None
    user_id = names.index(spec.userId) if spec.userId in names else None
    if email is None and user_id is None:
        raise SourceError(
            f"{declared_at}: {path} has neither an {quoted(spec.email)} nor a "
            f"{quoted(spec.userId)} column; {_header_hint(names, identifiers)}"
        )
    return names, email, user_id


def _header_hint(names: list[str], identifiers: tuple[str, str]) -> str:
    """The columns, and what to do when the cause is plain: another delimiter (the header
    reads as one column, which would otherwise pass for a missing header row), or the
    columns spelled otherwise (`Email`, `user_id`)."""
    called = other_separator(names)
    if called is not None:
        return separator_advice(called)
    listed = f"columns are: {column_names(names, reads=identifiers)}"
    found = [
        f"{option}: {name}"
        for option in ("email", "userId")
        # A name holding what does not show is to be fixed, not named (column_names).
        for name in names
        if not unseen([name])
        and (
            letters(name) == option.lower()
            or (option == "email" and letters(name) == "emailaddress")
        )
    ]
    if found:
        return f"{listed}; name the identifier columns under members: " + ", ".join(found)
    return listed


def is_utf16(path: Path) -> bool:
    """Whether the file at `path` starts as UTF-16 text does (looks_utf16)."""
    try:
        with path.open("rb") as handle:
            return looks_utf16(handle.read(UTF16_SAMPLE_BYTES))
    except OSError:
        return False


def _not_text(path: Path) -> str | None:
    """not_text for the file at `path` (compressed, a workbook, Parquet)."""
    try:
        with path.open("rb") as handle:
            return not_text(handle.read(NOT_TEXT_SAMPLE_BYTES))
    except OSError:
        return None


def csv_open_error(
    declared_at: object, path: Path, exc: OSError | UnicodeDecodeError, copy: Path | None = None
) -> SourceError:
    """A CSV source that cannot be opened or is not UTF-8, worded alike by both engines
    (`copy`: the snapshot that was read, when there is one)."""
    if isinstance(exc, FileNotFoundError):
        return SourceError(f"{declared_at}: CSV file not found: {path}")
    if isinstance(exc, UnicodeDecodeError):
        return not_utf8_error(declared_at, path, copy)
    return SourceError(f"{declared_at}: cannot read {path}: {exc.strerror}")


def not_utf8_error(declared_at: object, path: Path, copy: Path | None = None) -> SourceError:
    """A CSV that is not UTF-8, named by the line and column of its first bad byte (a
    decoder's offset counts from the start of the chunk it was given, not of the file).
    `copy` is what was read (the snapshot), when there is one."""
    where = utf8_error_position(copy or path)
    if where is None:
        return SourceError(f"{declared_at}: {path} is not UTF-8 text; save it as UTF-8")
    line, column, byte = where
    if byte < 0x80:  # the file ends inside a character: no other encoding is told
        return SourceError(
            f"{declared_at}: {path}:{line}:{column}: not UTF-8 text (byte 0x{byte:02x}); "
            "save it as UTF-8"
        )
    # A byte outside ASCII that is no UTF-8 is, almost always, a letter in the code page
    # Excel's plain "CSV (Comma delimited)" writes on Windows, which on a German or French
    # machine also separates by semicolons: both are said at once, not one run at a time.
    called = other_separator([_first_line(copy or path)])
    commas = f", with commas (it is separated by {called})" if called else ""
    return SourceError(
        f"{declared_at}: {path}:{line}:{column}: not UTF-8 text (byte 0x{byte:02x}): it reads "
        'as Windows-1252 or Latin-1, as Excel saves "CSV (Comma delimited)"; save it as '
        f'"CSV UTF-8 (Comma delimited)"{commas}'
    )


def _first_line(path: Path) -> str:
    """The file's first line as Latin-1 text (any byte reads), to judge its separator."""
    try:
        with path.open("rb") as handle:
            start = handle.read(PEEK_BYTES)
    except OSError:
        return ""
    return start.split(b"\n", 1)[0].split(b"\r", 1)[0].decode("latin-1")


def utf8_error_position(path: Path, chunk: int = 1 << 20) -> tuple[int, int, int] | None:
    """Line and column (1-based, in characters) of the first byte of `path` that is not
    UTF-8, and that byte; read in chunks, so a large file is not held in memory."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line, column = 1, 1
    try:
        with path.open("rb") as handle:
            while block := handle.read(chunk):
                try:
                    text = decoder.decode(block)
                except UnicodeDecodeError as exc:
                    # exc.object is the decoder's pending bytes and this block; everything
                    # before exc.start in it is whole characters not counted yet.
                    line, column = _advance(line, column, exc.object[: exc.start].decode())
                    return line, column, exc.object[exc.start]
                line, column = _advance(line, column, text)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return line, column, 0  # the file ends inside a character
    except OSError:
        return None
    return None


def _advance(line: int, column: int, text: str) -> tuple[int, int]:
    newlines = text.count("\n")
    if newlines:
        return line + newlines, len(text) - text.rfind("\n")
    return line, column + len(text)
