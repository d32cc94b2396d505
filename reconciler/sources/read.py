"""Read an audience's members from its declared source."""

from __future__ import annotations

import codecs
import csv
from pathlib import Path

from reconciler.errors import SourceError, display_path
from reconciler.manifest import Audience
from reconciler.members.identity import (
    InvalidIdentity,
    ProjectType,
    make_member,
    skipped_identifiers,
)
from reconciler.render.masking import column_names
from reconciler.sources import MemberIssue, SourceResult


def read_members(audience: Audience, project_type: ProjectType) -> SourceResult:
    members = audience.spec.members
    if members.inline is not None:
        return _read_inline(audience, project_type)
    if members.csv is not None:
        return _read_csv(audience, project_type)
    # Imported here: DuckDB and SQLAlchemy load only for audiences that use them.
    if members.parquet is not None:
        from reconciler.sources.parquet import read_parquet

        return read_parquet(audience, project_type)
    if members.sql is not None:
        from reconciler.sources.sql import read_sql

        return read_sql(audience, project_type)
    raise SourceError(f"{audience.location}: audience {audience.name!r} declares no members")


def source_path(audience: Audience, relative: str) -> Path:
    """Paths in a manifest are relative to the manifest file's directory. The path is
    given relative to the working directory when it is under it, as every message that
    names the file (or one of its rows) shows it: messages end up in pull-request
    comments, where a runner's absolute path is noise."""
    path = Path(relative)
    return Path(display_path(path if path.is_absolute() else audience.base_dir / path))


def _result(audience: Audience) -> SourceResult:
    # Rows are remembered only for audiences with a trait mapping, which may need to name one.
    return SourceResult(where={} if audience.spec.traits is not None else None)


def _read_inline(audience: Audience, project_type: ProjectType) -> SourceResult:
    result = _result(audience)
    # Located once: `member_locations` walks the whole document for every entry.
    locations = audience.member_locations
    for index, entry in enumerate(audience.spec.members.inline or []):
        result.rows += 1
        where = str(locations[index])
        if isinstance(entry, str):
            email, user_id = (entry, None) if "@" in entry else (None, entry)
            traits: dict[str, object] = {}
        else:
            email, user_id = entry.email, entry.userId
            traits = dict(entry.model_extra or {})
        try:
            result.add(make_member(project_type, email, user_id, traits), where)
        except InvalidIdentity as exc:
            result.issues.append(MemberIssue(where, exc.reason, exc.value))
            result.skipped_ids.update(skipped_identifiers(email, user_id))
    return result


def csv_identifier_columns(
    audience: Audience, path: Path, header: list[str]
) -> tuple[list[str], int | None, int | None]:
    """A CSV header's column names (stripped) and where the email and userId columns are,
    for either engine. Refuses a header reconciler would have to guess about."""
    spec = audience.spec.members
    declared_at = audience.field_location("members", "csv")
    names = [name.strip() for name in header]
    for wanted in (spec.email, spec.userId):
        if names.count(wanted) > 1:
            raise SourceError(
                f"{declared_at}: {path} has {names.count(wanted)} columns named {wanted!r}: "
                "reconciler will not guess which one holds the identifiers; rename the others"
            )
    # A column named in the manifest must exist: a typo would otherwise drop that
    # identifier from every row, and the members it identified would be removed.
    for option in ("email", "userId"):
        named = getattr(spec, option)
        if option in spec.model_fields_set and named not in names:
            raise SourceError(
                f"{audience.field_location('members', option)}: column {named!r} is not in "
                f"the header of {path}; columns are: {column_names(names)}"
            )
    email = names.index(spec.email) if spec.email in names else None
    user_id = names.index(spec.userId) if spec.userId in names else None
    if email is None and user_id is None:
        raise SourceError(
            f"{declared_at}: {path} has neither an {spec.email!r} nor a {spec.userId!r} "
            f"column; columns are: {column_names(names)}"
        )
    return names, email, user_id


def _read_csv(audience: Audience, project_type: ProjectType) -> SourceResult:
    spec = audience.spec.members
    assert spec.csv is not None
    path = source_path(audience, spec.csv)
    declared_at = audience.field_location("members", "csv")
    result = _result(audience)
    reader = None
    try:
        # utf-8-sig: spreadsheets save CSV with a byte-order mark
        with path.open(newline="", encoding="utf-8-sig") as handle:
            # strict: a quote left open is an error, not a cell that swallows every row
            # after it (which would plan their removal).
            reader = csv.reader(handle, strict=True)
            header = next(reader, None)
            if header is None:
                raise SourceError(f"{declared_at}: {path} is empty (no header row)")
            names, email_col, user_id_col = csv_identifier_columns(audience, path, header)
            columns = {name: i for i, name in enumerate(names)}
            trait_cols = [
                (name, i) for name, i in columns.items() if i not in (email_col, user_id_col)
            ]
            # Row 1 is the header, so data rows start at 2, as a spreadsheet numbers them.
            for row_number, row in enumerate(reader, start=2):
                if not any(cell.strip() for cell in row):
                    continue
                result.rows += 1
                where = f"{path}:{row_number}"
                if len(row) != len(header):
                    result.issues.append(
                        MemberIssue(where, f"row has {len(row)} cells, header has {len(header)}")
                    )
                    continue
                email = row[email_col] if email_col is not None else None
                user_id = row[user_id_col] if user_id_col is not None else None
                traits: dict[str, object] = {name: row[i] for name, i in trait_cols}
                try:
                    result.add(make_member(project_type, email, user_id, traits), where)
                except InvalidIdentity as exc:
                    result.issues.append(MemberIssue(where, exc.reason, exc.value))
                    result.skipped_ids.update(skipped_identifiers(email, user_id))
    except (OSError, UnicodeDecodeError) as exc:
        raise csv_open_error(declared_at, path, exc) from None
    except csv.Error as exc:
        # The reader counts physical lines, so this is the line a text editor shows.
        line = reader.line_num if reader is not None else 0
        raise SourceError(f"{declared_at}: {path}:{line}: not valid CSV: {exc}") from None
    return result


def csv_open_error(
    declared_at: object, path: Path, exc: OSError | UnicodeDecodeError
) -> SourceError:
    """A CSV source that cannot be opened or is not UTF-8, worded alike by both engines."""
    if isinstance(exc, FileNotFoundError):
        return SourceError(f"{declared_at}: CSV file not found: {path}")
    if isinstance(exc, UnicodeDecodeError):
        return not_utf8_error(declared_at, path)
    return SourceError(f"{declared_at}: cannot read {path}: {exc.strerror}")


def not_utf8_error(declared_at: object, path: Path) -> SourceError:
    """A CSV that is not UTF-8, named by the line and column of its first bad byte (a
    decoder's offset counts from the start of the chunk it was given, not of the file)."""
    where = utf8_error_position(path)
    if where is None:
        return SourceError(f"{declared_at}: {path} is not UTF-8 text; save it as UTF-8")
    line, column, byte = where
    return SourceError(
        f"{declared_at}: {path}:{line}:{column}: not UTF-8 text (byte 0x{byte:02x}); "
        "save it as UTF-8"
    )


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
