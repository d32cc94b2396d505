"""The pure planner: desired state and live state in, Plan out. No I/O."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from reconciler.identity import Member, ProjectType
from reconciler.plan.model import DestinationPlan, ListPlan
from reconciler.sources import MemberIssue


def diff_members(
    desired: Mapping[str, Member], live: Collection[str]
) -> tuple[list[Member], list[str]]:
    """Members to add and live identifiers to remove.

    getUsers reports each member by one identifier (email or userId, depending on the
    profile and preferUserId), so a desired member counts as present when any of its
    identifiers is live, and a live identifier is kept when any desired member has it.
    """
    live_set = live if isinstance(live, set | frozenset) else set(live)
    wanted: set[str] = set()
    add: list[Member] = []
    for member in desired.values():
        ids = member.identifiers
        wanted.update(ids)
        if not any(i in live_set for i in ids):
            add.append(member)
    remove = sorted(i for i in live_set if i not in wanted)
    add.sort(key=lambda m: m.key)
    return add, remove


def plan_list(
    *,
    audience: str,
    list_name: str,
    description: str | None,
    desired: Mapping[str, Member],
    live_list_id: int | None,
    live_members: Collection[str],
    update_existing_users_only: bool = False,
    campaign_id: int | None = None,
    channel_unsubscribe: bool = False,
) -> ListPlan:
    add, remove = diff_members(desired, live_members if live_list_id is not None else ())
    return ListPlan(
        audience=audience,
        list_name=list_name,
        list_id=live_list_id,
        create=live_list_id is None,
        description=description,
        add=tuple(add),
        remove=tuple(remove),
        unchanged=len(desired) - len(add),
        live_count=len(live_members) if live_list_id is not None else 0,
        desired_count=len(desired),
        update_existing_users_only=update_existing_users_only,
        campaign_id=campaign_id,
        channel_unsubscribe=channel_unsubscribe,
    )


def plan_destination(
    destination: str,
    project_type: ProjectType,
    lists: list[ListPlan],
    skipped: list[tuple[str, MemberIssue]],
) -> DestinationPlan:
    return DestinationPlan(
        destination=destination,
        project_type=project_type,
        lists=tuple(sorted(lists, key=lambda lp: lp.list_name)),
        skipped_members=tuple(skipped),
    )
