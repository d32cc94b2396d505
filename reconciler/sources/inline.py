"""`members: {inline: [...]}`: members written in the manifest itself."""

from __future__ import annotations

from typing import ClassVar

from reconciler.members.identity import (
    InvalidIdentity,
    ProjectType,
    make_member,
    skipped_identifiers,
)
from reconciler.sources.base import Source
from reconciler.sources.result import MemberIssue, SourceResult


class Inline(Source):
    kind = "inline"
    field = "inline"
    scales: ClassVar[bool] = False
    columns_at_load: ClassVar[bool] = True

    def columns(self) -> tuple[str, list[str]] | None:
        members = self.spec.inline_members()
        if not members:
            # No member can lack a column a mapping reads, and none gets a field: an
            # allowEmpty audience emptied out keeps its `traits:` until members return.
            return None
        keys: dict[str, None] = {"email": None, "userId": None}
        for member in members:
            keys.update(dict.fromkeys(member.traits))
        return "the keys of its inline members", list(keys)

    def identity_columns(self) -> tuple[str, str]:
        # Inline members are mappings with email and userId keys, whatever the columns say.
        return "email", "userId"

    def estimate_rows(self) -> int:
        return len(self.spec.inline or [])

    def read(self, project_type: ProjectType) -> SourceResult:
        result = SourceResult(where={} if self.mapped else None)
        # Located once: `member_locations` walks the whole document for every entry.
        locations = self.audience.member_locations
        for index, entry in enumerate(self.spec.inline or []):
            result.rows += 1
            where = str(locations[index])
            if isinstance(entry, str):
                email, user_id = (entry, None) if "@" in entry else (None, entry)
                traits: dict[str, object] = {}
            else:
                email, user_id = entry.email, entry.userId
                traits = dict(entry.model_extra or {}) if self.mapped else {}
            try:
                result.add(make_member(project_type, email, user_id, traits), where)
            except InvalidIdentity as exc:
                result.issues.append(MemberIssue(where, exc.reason, exc.value))
                result.skipped_ids.update(skipped_identifiers(email, user_id))
        return result
