"""Table-shaped rows (a Parquet file, a query's result) -> members, one chunk at a time.

Parquet files and queries can be far larger than memory allows as Python tuples, so
rows arrive in chunks from a cursor (`fetchmany`, `yield_per`) and only the members
built from them are kept.
"""

from __future__ import annotations

import datetime
import decimal
import ipaddress
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.errors import SourceError, quoted
from reconciler.manifest.model import MembersSpec
from reconciler.members.identity import (
    InvalidIdentity,
    ProjectType,
    header_repeated,
    loose_column_name,
    make_member,
    repeats_column_names,
    skipped_identifiers,
)
from reconciler.render.masking import column_names, letters, visible
from reconciler.sources.identifier_types import identifier_text
from reconciler.sources.result import MemberIssue, SourceResult

# Rows per fetch: large enough that per-call overhead vanishes, small enough that a
# chunk of wide rows stays a few megabytes.
CHUNK_ROWS = 10_000


@dataclass(frozen=True)
class Columns:
    """Where the identifiers are in a row; every other column is a trait."""

    email: int | None
    user_id: int | None
    traits: tuple[tuple[str, int], ...]
    # The columns' names and the source's, to name an identifier column of a type that
    # makes no identifier (identifier_types.py).
    names: tuple[str, ...] = ()
    source: str = ""

    def identifier(self, row: Sequence[Any], role: str) -> str | None:
        """The row's email or userId (`role`) as identifier text, None where it has none."""
        index = self.email if role == "email" else self.user_id
        if index is None:
            return None
        return identifier_text(row[index], self.source, self.names[index], role)

    def loose_name(self, role: str) -> str | None:
        """The email or userId (`role`) column's name as a header row loaded as data
        spells it (identity.loose_column_name); None without that column."""
        index = self.email if role == "email" else self.user_id
        if index is None or index >= len(self.names):
            return None
        return loose_column_name(self.names[index])


def find_columns(
    names: Sequence[str], spec: MembersSpec, source: str, query: bool = False
) -> Columns:
    """Locate the email and userId columns by name; `query`: the names are a manifest's
    query's (which has no header row to lack, but may leave a column unnamed).

    An exact match wins; otherwise a case-insensitive one, because databases such as
    PostgreSQL fold unquoted names to lower case (`SELECT user_id AS userId` gives `userid`).
    """
    unnamed = (
        f"name the identifier columns in the query, `AS {spec.email}` and `AS {spec.userId}`"
        if query
        else None
    )
    for wanted in (spec.email, spec.userId):
        if list(names).count(wanted) > 1:
            raise SourceError(
                f"{source} has {list(names).count(wanted)} columns named {quoted(wanted)}: "
                "reconciler will not guess which one holds the identifiers; rename the others"
            )
    email = _column(names, spec.email)
    user_id = _column(names, spec.userId)
    # A column named in the manifest must exist: a typo would otherwise drop that
    # identifier from every row, and the members it identified would be removed.
    for option, found in (("email", email), ("userId", user_id)):
        if option in spec.model_fields_set and found is None:
            raise SourceError(
                f"{source} has no column {quoted(getattr(spec, option))} (members.{option}); "
                f"columns are: {column_names(names, unnamed)}"
                f"{_ambiguity(names, getattr(spec, option))}"
            )
    if email is None and user_id is None:
        raise SourceError(
            f"{source} has neither an {quoted(spec.email)} nor a {quoted(spec.userId)} column; "
            f"columns are: {column_names(names, unnamed)}"
            f"{_ambiguity(names, spec.email, spec.userId)}"
        )
    traits = tuple((name, i) for i, name in enumerate(names) if i not in (email, user_id))
    return Columns(email, user_id, traits, tuple(names), source)


def undeclared_user_id(names: Sequence[str], spec: MembersSpec, exact: bool = False) -> str | None:
    """A column that looks like a userId (`user_id`, `User ID`, or in a CSV, whose header
    is matched `exact`ly, `userid`) when `members.userId` is not set and no column answers
    to its default name: the members are then identified without it, and the column is
    only an extra one, which nothing would say."""
    if "userId" in spec.model_fields_set or _found(names, spec.userId, exact):
        return None
    wanted = letters(spec.userId)
    # Short names only: the name is quoted in the warning.
    return next((n for n in names if len(n) <= 64 and letters(n) == wanted), None)


def undeclared_email(names: Sequence[str], spec: MembersSpec, exact: bool = False) -> str | None:
    """A column that looks like an email column (`Email`, `E-mail Address`, as a CRM or a
    sheet heads it) when `members.email` is not set and no column answers to its default
    name, while the userId column is there: in a hybrid project the members are then
    identified by userId alone and their emails never sent, so a new profile is made
    without one, which nothing would say. (Without a userId column either, the read
    refuses the file and names the columns.)"""
    if "email" in spec.model_fields_set or _found(names, spec.email, exact):
        return None
    if not _found(names, spec.userId, exact):
        return None
    # Short names only: the name is quoted in the warning (what does not show in it,
    # spelled out: a zero-width space after `email` hid the column from a user who saw it).
    return next(
        (n for n in names if len(n) <= 64 and letters(n) in ("email", "emailaddress")),
        None,
    )


def missing_key_column(
    names: Sequence[str], spec: MembersSpec, project_type: ProjectType, exact: bool = False
) -> str | None:
    """The identifier a project of this type keys users by ("userId" in userID-based
    projects, "email" in email-based ones) when the columns have none under its name
    (`exact`: as a CSV header is matched) and the manifest does not name one: every row is
    then skipped for lacking it (a column named in the manifest and missing is an error
    of its own, at read). None too when neither identifier has a column: the read refuses
    such a file, so no row is skipped (its error says which columns there are)."""
    if project_type == "hybrid":
        return None
    key = "userId" if project_type == "userId" else "email"
    other = "email" if key == "userId" else "userId"
    if key in spec.model_fields_set or _found(names, getattr(spec, key), exact):
        return None
    if other not in spec.model_fields_set and not _found(names, getattr(spec, other), exact):
        return None
    return key


def hiding_column(names: Sequence[str], wanted: str, exact: bool = False) -> str | None:
    """The column a source would read as `wanted` but for a character in its name that
    does not show (`email` and a zero-width space; in a Parquet file or a query, whose
    names are matched case aside, `Email` and one too), where none is read as it."""
    return next((n for n in names if visible(n) != n and _found([visible(n)], wanted, exact)), None)


def _found(names: Sequence[str], wanted: str, exact: bool) -> bool:
    """Whether a source reads a column of `names` as `wanted`: a CSV's by its exact name
    (csv_identifier_columns), other sources' case aside too (_column)."""
    return wanted in names if exact else _column(names, wanted) is not None


def _ambiguity(names: Sequence[str], *wanted: str) -> str:
    """Why a column spelled as wanted but for case was not taken: there are several (a
    query's `AS userid` and `AS USERID`), and reconciler does not guess between them."""
    for name in wanted:
        folded = [n for n in names if n.casefold() == name.casefold()]
        if len(folded) > 1:
            return (
                f" ({column_names(folded)} differ from {quoted(name)} only in case, and "
                "reconciler will not guess which one holds the identifiers; name one exactly)"
            )
    return ""


def _column(names: Sequence[str], wanted: str) -> int | None:
    if wanted in names:
        return names.index(wanted)
    folded = [i for i, name in enumerate(names) if name.casefold() == wanted.casefold()]
    return folded[0] if len(folded) == 1 else None


def members_from_rows(
    chunks: Iterable[Sequence[Sequence[Any]]],
    columns: Columns,
    project_type: ProjectType,
    where: Callable[[int], str],
    mapped: bool = False,
) -> SourceResult:
    """Build members from chunks of rows; `where(n)` names row n (1-based) in issues. With
    `mapped` (the audience has a trait mapping: Source.mapped) each member keeps its other
    columns, and its row is kept (SourceResult.where), to name the row of a value the
    mapping cannot make."""
    result = SourceResult(where={} if mapped else None)
    # A header row loaded as data (identity.repeats_column_names), by each column present.
    email_name, user_id_name = columns.loose_name("email"), columns.loose_name("userId")
    for chunk in chunks:
        for row in chunk:
            result.rows += 1
            email = columns.identifier(row, "email")
            user_id = columns.identifier(row, "userId")
            traits = {name: trait_value(row[i]) for name, i in columns.traits} if mapped else {}
            try:
                if repeats_column_names(
                    (email_name, email) if columns.email is not None else None,
                    (user_id_name, user_id) if columns.user_id is not None else None,
                ):
                    raise header_repeated()
                result.add(make_member(project_type, email, user_id, traits), where(result.rows))
            except InvalidIdentity as exc:
                result.issues.append(MemberIssue(where(result.rows), exc.reason, exc.value))
                result.skipped_ids.update(skipped_identifiers(email, user_id))
    return result


# Values a driver gives as objects of their own that are plain text to anyone else: a
# UUID, PostgreSQL's inet and cidr.
_TEXT_LIKE = (
    uuid.UUID,
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Interface,
    ipaddress.IPv6Interface,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
)


def trait_value(value: Any) -> Any:
    """A database value as JSON can carry it to Iterable (dates as ISO 8601 text)."""
    if isinstance(value, decimal.Decimal):
        return _number(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, _TEXT_LIKE):
        return str(value)
    if isinstance(value, list | tuple | dict):
        return _inner(value)
    return value


def _number(value: decimal.Decimal) -> int | float:
    if value.is_finite() and value == value.to_integral_value():
        return int(value)
    return float(value)


def _inner(value: Any) -> Any:
    """Decimals and text-like objects inside a list or an object (a PostgreSQL numeric[]
    or inet[], a DuckDB DECIMAL list) made numbers and text, as they are at the top: else
    no mapping could send a list of numerics, `type: list` included. Dates inside are left
    to the mapping, which sends them in Iterable's date form."""
    if isinstance(value, decimal.Decimal):
        return _number(value)
    if isinstance(value, _TEXT_LIKE):
        return str(value)
    if isinstance(value, list):
        return [_inner(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_inner(item) for item in value)
    if isinstance(value, dict):
        return {key: _inner(item) for key, item in value.items()}
    return value
