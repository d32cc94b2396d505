"""An audience's members -> the field values its trait mapping gives each of them.

A value that cannot be made (a bad number, a template that fails) becomes a MemberIssue
located at the member's source row, reported like an invalid member; that member's other
fields and its list membership go ahead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconciler.errors import SourceError
from reconciler.manifest import Audience
from reconciler.members.identity import Member
from reconciler.render.masking import column_names
from reconciler.sources import MemberIssue, source_for
from reconciler.traits.mapping import CompiledMapping, FieldBudgetError

# At most this many values not made are listed per audience and field, with where and
# why; the rest are counted (as skipped rows are: members/engine/desired_table.py).
MAX_FIELD_ISSUES = 1000

if TYPE_CHECKING:
    from reconciler.members.engine.field_tables import ValueRow, ValuesTable
    from reconciler.members.model import DesiredTable, Engine


@dataclass
class DesiredFields:
    """Per member key, the mapped fields and their values (fields that failed are absent)."""

    mapping: CompiledMapping
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    issues: list[MemberIssue] = field(default_factory=list)
    where: Mapping[str, str] | None = None  # member key -> source row, when the source has rows
    # Audiences planned in DuckDB: the values are in this workspace table instead of
    # `values`, and `locate` names a member's source row.
    table: ValuesTable | None = None
    locate: Callable[[str], str | None] | None = None
    # Values not made beyond those listed: `issues` keeps the first MAX_FIELD_ISSUES of
    # each field (a mistyped `type:` fails every row of an audience of millions).
    unlisted: int = 0
    _per_field: dict[str, int] = field(default_factory=dict, repr=False)

    def add_issue(self, field_name: str, issue: MemberIssue) -> None:
        """Lists the issue while its field has fewer than MAX_FIELD_ISSUES, else counts it."""
        listed = self._per_field.get(field_name, 0)
        if listed < MAX_FIELD_ISSUES:
            self._per_field[field_name] = listed + 1
            self.issues.append(issue)
        else:
            self.unlisted += 1

    def describe_member(self, key: str) -> str:
        """Where a member's values come from, for messages (never the identifier itself)."""
        if self.locate is not None:
            at = self.locate(key)
        else:
            at = self.where.get(key) if self.where is not None else None
        return at if at is not None else "one of its members"


def identity_columns(audience: Audience) -> tuple[str, str]:
    """The column names under which a row carries the member's email and userId."""
    return source_for(audience).identity_columns()


def member_row(member: Member, columns: tuple[str, str]) -> dict[str, Any]:
    """A member as its source row: its traits plus the identity columns."""
    email_column, user_id_column = columns
    return {**member.traits, email_column: member.email, user_id_column: member.user_id}


def desired_fields(
    audience: Audience,
    mapping: CompiledMapping,
    members: Mapping[str, Member],
    where: Mapping[str, str] | None,
) -> DesiredFields:
    out = DesiredFields(mapping, where=where)
    if not members:
        return out
    columns = identity_columns(audience)
    if not source_for(audience).columns_at_load:
        _check_columns(audience, mapping, member_row(next(iter(members.values())), columns))
    source_at = str(audience.location)
    for key, member in members.items():
        try:
            values, errors = mapping.values(member_row(member, columns))
        except FieldBudgetError as over:
            at = where.get(key) if where is not None else None
            raise _budget_error(audience, mapping, over, at) from None
        out.values[key] = values
        for error in errors:
            at = where.get(key) if where is not None else None
            if at is not None:
                out.add_issue(error.field, MemberIssue(at, error.message))
            else:
                # Sources that keep no row numbers: name the member instead (masked in output).
                issue = MemberIssue(f"{source_at}: member", error.message, key)
                out.add_issue(error.field, issue)
    return out


def _check_columns(audience: Audience, mapping: CompiledMapping, row: Mapping[str, Any]) -> None:
    """Every row of a table-shaped source has the same columns: check them once, up front.
    (Sources whose columns are known at load time were checked then.)"""
    for field_name, wanted in mapping.columns().items():
        missing = sorted(c for c in wanted if c not in row)
        if missing:
            raise SourceError(
                f"{audience.field_location('traits')}: trait mapping {mapping.name!r} field "
                f"{field_name!r} reads {', '.join(map(repr, missing))}, which the source "
                f"of audience {audience.name!r} does not have{_folded(audience, missing, row)}"
                f"; columns are: {column_names(list(row), _unnamed(audience, missing))}"
            )
        # A query's two columns of one name (`SELECT u.plan, s.plan`, two tables' `*`):
        # the row keeps one of them by name, which would be sent without a word.
        names = source_for(audience).columns_read or []
        for column in sorted(c for c in wanted if names.count(c) > 1):
            raise SourceError(
                f"{audience.field_location('traits')}: trait mapping {mapping.name!r} field "
                f"{field_name!r} reads {column!r}, which the source of audience "
                f"{audience.name!r} names {names.count(column)} times: reconciler will not "
                f"guess which one holds the values; name them apart in the query (`AS ...`)"
            )


def _folded(audience: Audience, missing: list[str], row: Mapping[str, Any]) -> str:
    """Why a query's column is there in another case: PostgreSQL folds an unquoted name
    to lower case (`AS firstName` gives `firstname`), Snowflake to upper case, and a
    mapping's names are matched exactly, as Iterable's fields are named."""
    if audience.spec.members.sql is None:
        return ""
    for column in missing:
        # The name found differs from the mapping's own text only in case: no member data.
        found = [name for name in row if name.casefold() == column.casefold()]
        if len(found) == 1:
            return (
                f" (the query gives {found[0]!r}: the database changed the case of an unquoted "
                f'name; quote it in the query, `AS "{column}"`, or read {found[0]!r})'
            )
    return ""


def _unnamed(audience: Audience, missing: list[str]) -> str | None:
    """For a query's columns (column_names): how to name the ones the mapping reads."""
    if audience.spec.members.sql is None:
        return None
    return "name the columns the mapping reads in the query: " + ", ".join(
        f"`AS {column}`" for column in missing
    )


def desired_fields_table(
    engine: Engine,
    audience: Audience,
    mapping: CompiledMapping,
    table: DesiredTable,
    on_rows: Callable[[int], None] | None = None,
) -> DesiredFields:
    """desired_fields for an audience read into DuckDB: its members' rows are read back a
    batch at a time (the first row of each key, as the Python engine keeps it), the values
    made here as there, and written to a workspace table (engine/field_tables.py)."""
    from reconciler.members.engine.field_tables import BATCH, to_json, values_into_table

    where = table.where
    out = DesiredFields(mapping)
    email_column, user_id_column = identity_columns(audience)
    traits = table.traits
    cells = "".join(f", t{i}" for i in range(len(traits)))
    names = mapping.field_names
    value = table.trait_value
    first = True

    def rows() -> Iterator[ValueRow]:
        nonlocal first
        cursor = engine.cursor()
        try:
            cursor.execute(
                f"SELECT key, key_kind, email, user_id, row{cells} FROM "
                f"{table.deduplicated()} ORDER BY row"
            )
            while chunk := cursor.fetchmany(BATCH):
                if on_rows is not None:
                    on_rows(len(chunk))
                for key, kind, email, user_id, row, *cell_values in chunk:
                    source_row = {
                        # As the Python engine's reader gives them (DesiredTable.trait_value).
                        **{n: value(v) for n, v in zip(traits, cell_values, strict=True)},
                        email_column: email,
                        user_id_column: user_id,
                    }
                    if first and not source_for(audience).columns_at_load:
                        _check_columns(audience, mapping, source_row)
                    first = False
                    at = where(int(row) + 1) if where is not None else None
                    try:
                        values, errors = mapping.values(source_row)
                    except FieldBudgetError as over:
                        raise _budget_error(audience, mapping, over, at) from None
                    for error in errors:
                        if at is not None:
                            out.add_issue(error.field, MemberIssue(at, error.message))
                        else:
                            issue = MemberIssue(f"{audience.location}: member", error.message, key)
                            out.add_issue(error.field, issue)
                    yield (
                        key,
                        kind,
                        email,
                        user_id,
                        int(row),
                        [to_json(values[n]) if n in values else None for n in names],
                    )
        finally:
            cursor.close()

    values_table = values_into_table(engine, rows(), names)
    out.table = values_table

    def name_row(key: str) -> str | None:
        position = values_table.position(key)
        if position is None or where is None:
            return None
        return where(position + 1)

    out.locate = name_row
    return out


def _budget_error(
    audience: Audience, mapping: CompiledMapping, over: FieldBudgetError, at: str | None
) -> SourceError:
    # Named by its row, never by the member's identifier.
    row = f"the row at {at}" if at is not None else f"a member of {audience.name!r}"
    return SourceError(
        f"{over.field.location}: trait mapping {mapping.name!r}, field "
        f"{over.field.name!r}: {over.reason}, for {row}; the run stops, since every "
        "row would pay it"
    )
