"""An audience's members -> the field values its trait mapping gives each of them.

A value that cannot be made (a bad number, a template that fails) becomes a MemberIssue
located at the member's source row, reported like an invalid member; that member's other
fields and its list membership go ahead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import SourceError
from reconciler.manifest import Audience
from reconciler.members.identity import Member
from reconciler.render.masking import column_names
from reconciler.sources import MemberIssue, source_for
from reconciler.traits.mapping import CompiledMapping, FieldBudgetError


@dataclass
class DesiredFields:
    """Per member key, the mapped fields and their values (fields that failed are absent)."""

    mapping: CompiledMapping
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    issues: list[MemberIssue] = field(default_factory=list)
    where: Mapping[str, str] | None = None  # member key -> source row, when the source has rows

    def describe_member(self, key: str) -> str:
        """Where a member's values come from, for messages (never the identifier itself)."""
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
            # Named by its row, never by the member's identifier.
            at = where.get(key) if where is not None else None
            row = f"the row at {at}" if at is not None else f"a member of {audience.name!r}"
            raise SourceError(
                f"{over.field.location}: trait mapping {mapping.name!r}, field "
                f"{over.field.name!r}: {over.reason}, for {row}; the run stops, since every "
                "row would pay it"
            ) from None
        out.values[key] = values
        for error in errors:
            at = where.get(key) if where is not None else None
            if at is not None:
                out.issues.append(MemberIssue(at, error.message))
            else:
                # Sources that keep no row numbers: name the member instead (masked in output).
                out.issues.append(MemberIssue(f"{source_at}: member", error.message, key))
    return out


def _check_columns(audience: Audience, mapping: CompiledMapping, row: Mapping[str, Any]) -> None:
    """Every row of a table-shaped source has the same columns: check them once, up front.
    (Sources whose columns are known at load time were checked then.)"""
    for field_name, wanted in mapping.columns().items():
        missing = sorted(c for c in wanted if c not in row)
        if missing:
            raise SourceError(
                f"{audience.field_location('traits')}: trait mapping {mapping.name!r} field "
                f"{field_name!r} reads {', '.join(map(repr, missing))}, which audience "
                f"{audience.name!r}'s source does not have; columns are: "
                f"{column_names(list(row))}"
            )
