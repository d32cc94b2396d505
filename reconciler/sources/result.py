"""What reading a source gives: the valid members, and an issue for every row that could
not be used."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.members.identity import Member, duplicate_conflict
from reconciler.members.issue import MemberIssue


@dataclass
class SourceResult:
    members: dict[str, Member] = field(default_factory=dict)
    issues: list[MemberIssue] = field(default_factory=list)
    # Identifiers the skipped rows may stand for (identity.skipped_identifiers): live
    # members reported by one of them are kept, not removed.
    skipped_ids: set[str] = field(default_factory=set)
    rows: int = 0
    duplicates: int = 0  # rows collapsed into an earlier row with the same identity key
    # Duplicates that disagree with the row they collapsed into (another email, userId or
    # column value): the first row wins, and these say which rows were dropped.
    conflicts: list[MemberIssue] = field(default_factory=list)
    conflict_keys: set[str] = field(default_factory=set)  # the identity keys of those
    # Where each member was read (key -> "file:row"), kept only when asked for: trait
    # mappings name the row of a bad value, and most audiences need no such memory.
    where: dict[str, str] | None = None
    # Where each member's first row is, to name both rows of a conflict.
    _first: dict[str, str] = field(default_factory=dict, repr=False)

    def add(self, member: Member, where: str | None = None) -> None:
        first = self.members.get(member.key)
        if first is not None:
            self.duplicates += 1
            earlier = self._first.get(member.key, "an earlier row")
            message = duplicate_conflict(first, member, earlier)
            if message is not None:
                # Both rows are named; the identifier itself is not needed to find them.
                self.conflicts.append(MemberIssue(where or f"row {self.rows}", message))
                self.conflict_keys.add(member.key)
            return
        self.members[member.key] = member
        if where is not None:
            self._first[member.key] = where
            if self.where is not None:
                self.where[member.key] = where
