"""A Plan is data: what would change, per destination and list, with the full member sets
that apply needs and the counts and samples that people read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.identity import Member, ProjectType
from reconciler.sources import MemberIssue

SAMPLE_SIZE = 10


@dataclass(frozen=True)
class ListPlan:
    """Changes to one Iterable list, in the order apply makes them."""

    audience: str
    list_name: str
    list_id: int | None  # None until the list is created
    create: bool
    description: str | None
    add: tuple[Member, ...]
    remove: tuple[str, ...]  # identifiers as Iterable reported them
    unchanged: int
    live_count: int
    desired_count: int
    update_existing_users_only: bool = False
    campaign_id: int | None = None
    channel_unsubscribe: bool = False

    @property
    def has_changes(self) -> bool:
        return self.create or bool(self.add) or bool(self.remove)

    def changes(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.create:
            out.append({"type": "create_list", "list_name": self.list_name})
        if self.add:
            out.append(
                {
                    "type": "add_members",
                    "count": len(self.add),
                    "sample": [m.key for m in self.add[:SAMPLE_SIZE]],
                }
            )
        if self.remove:
            out.append(
                {
                    "type": "remove_members",
                    "count": len(self.remove),
                    "sample": list(self.remove[:SAMPLE_SIZE]),
                    "channel_unsubscribe": self.channel_unsubscribe,
                }
            )
        return out


@dataclass(frozen=True)
class DestinationPlan:
    destination: str
    project_type: ProjectType
    lists: tuple[ListPlan, ...]
    skipped_members: tuple[tuple[str, MemberIssue], ...] = ()  # (audience, issue)

    @property
    def has_changes(self) -> bool:
        return any(lp.has_changes for lp in self.lists)


@dataclass(frozen=True)
class Summary:
    lists_to_create: int = 0
    lists_to_delete: int = 0
    members_to_add: int = 0
    members_to_remove: int = 0
    users_to_update: int = 0
    members_skipped: int = 0

    @property
    def changes(self) -> int:
        return (
            self.lists_to_create
            + self.lists_to_delete
            + self.members_to_add
            + self.members_to_remove
            + self.users_to_update
        )


@dataclass(frozen=True)
class Plan:
    destinations: tuple[DestinationPlan, ...] = field(default_factory=tuple)

    @property
    def has_changes(self) -> bool:
        return any(d.has_changes for d in self.destinations)

    @property
    def summary(self) -> Summary:
        lists = [lp for d in self.destinations for lp in d.lists]
        return Summary(
            lists_to_create=sum(lp.create for lp in lists),
            members_to_add=sum(len(lp.add) for lp in lists),
            members_to_remove=sum(len(lp.remove) for lp in lists),
            members_skipped=sum(len(d.skipped_members) for d in self.destinations),
        )

    def to_dict(self) -> dict[str, Any]:
        s = self.summary
        return {
            "format_version": 1,
            "has_changes": self.has_changes,
            "summary": {
                "lists_to_create": s.lists_to_create,
                "lists_to_delete": s.lists_to_delete,
                "members_to_add": s.members_to_add,
                "members_to_remove": s.members_to_remove,
                "users_to_update": s.users_to_update,
                "members_skipped": s.members_skipped,
            },
            "destinations": [
                {
                    "name": d.destination,
                    "project_type": d.project_type,
                    "lists": [
                        {
                            "audience": lp.audience,
                            "list_name": lp.list_name,
                            "list_id": lp.list_id,
                            "live_members": lp.live_count,
                            "desired_members": lp.desired_count,
                            "unchanged_members": lp.unchanged,
                            "changes": lp.changes(),
                        }
                        for lp in d.lists
                    ],
                    "skipped_members": [
                        {"audience": audience, "where": issue.where, "reason": issue.message}
                        for audience, issue in d.skipped_members
                    ],
                }
                for d in self.destinations
            ],
        }


ChangeType = Literal["create_list", "add_members", "remove_members"]
