"""The pure planner: desired state and live state in, Plan out. No I/O."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol

from reconciler.members.identity import Member, ProjectType, other_spellings
from reconciler.members.issue import MemberIssue
from reconciler.plan.model import DestinationPlan, ListDeletion, ListPlan
from reconciler.plan.ownership import is_managed
from reconciler.plan.policy import DEFAULT_MAX_REMOVAL_PERCENT


class LiveListInfo(Protocol):
    """What the planner needs to know of a live list (the client's ListInfo has it): a
    protocol, so planning depends on no HTTP code."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str | None: ...
    @property
    def list_type(self) -> str: ...


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


def keep_skipped(remove: Sequence[str], skipped_ids: Collection[str]) -> tuple[list[str], int]:
    """Removals less the live members that rows skipped as invalid stand for, and how many
    were kept: a row that cannot be sent is no evidence that its member left."""
    if not skipped_ids:
        return list(remove), 0
    kept = [i for i in remove if i not in skipped_ids]
    return kept, len(remove) - len(kept)


def keep_respelled(
    desired: Mapping[str, Member],
    live: Collection[str],
    add: Sequence[Member],
    remove: Sequence[str],
) -> tuple[list[Member], list[str], int, tuple[str, ...]]:
    """Adds and removals less those that only respell one address (identity.py
    `other_spellings`: `anna@bücher.de` and `anna@xn--bcher-kva.de`, `é` composed or not),
    and how many live members were kept. Iterable may hold either spelling as that one
    person: removing the live one for a spelling difference loses the member (and, where
    the other spelling is refused, her place on the list on every run), and adding the
    other may make a second profile of her, outside her unsubscribes. So a live member
    with another spelling of a desired email stays, and that email counts as present.
    Also returns the keys of the members so counted: Iterable has their profile under the
    other spelling, so their mapped fields are left alone (state/field_tables.held_back)."""
    spellings: dict[str, frozenset[str]] = {}
    for member in desired.values():
        if member.email is not None:
            others = other_spellings(member.email)
            if others:
                spellings[member.email] = others
    if not spellings:
        return list(add), list(remove), 0, ()
    live_set = live if isinstance(live, set | frozenset) else set(live)
    kept_add: list[Member] = []
    present: list[str] = []
    for m in add:
        if m.email is not None and spellings.get(m.email, frozenset()) & live_set:
            present.append(m.key)
        else:
            kept_add.append(m)
    every = frozenset().union(*spellings.values())
    kept_remove = [i for i in remove if i not in every]
    return kept_add, kept_remove, len(remove) - len(kept_remove), tuple(sorted(present))


def plan_list(
    *,
    audience: str,
    list_name: str,
    description: str | None,
    desired: Mapping[str, Member],
    live_list_id: int | None,
    live_members: Collection[str],
    skipped_ids: Collection[str] = (),
    **options: Any,
) -> ListPlan:
    live = live_members if live_list_id is not None else ()
    add, remove = diff_members(desired, live)
    remove, kept = keep_skipped(remove, skipped_ids)
    add, remove, respelled, present = keep_respelled(desired, live, add, remove)
    return list_plan(
        audience=audience,
        list_name=list_name,
        description=description,
        live_list_id=live_list_id,
        add=tuple(add),
        remove=tuple(remove),
        desired_count=len(desired),
        live_count=len(live_members) if live_list_id is not None else 0,
        kept_for_skipped=kept,
        kept_respelled=respelled,
        respelled=present,
        **options,
    )


def list_plan(
    *,
    audience: str,
    list_name: str,
    description: str | None,
    live_list_id: int | None,
    add: Sequence[Member],
    remove: Sequence[str],
    desired_count: int,
    live_count: int,
    update_existing_users_only: bool = False,
    campaign_id: int | None = None,
    channel_unsubscribe: bool = False,
    read_prefer_user_id: bool | None = None,
    max_removal_percent: float = DEFAULT_MAX_REMOVAL_PERCENT,
    max_removals: int | None = None,
    allow_empty: bool = False,
    min_members: int | None = None,
    max_members: int | None = None,
    max_addition_percent: float | None = None,
    max_additions: int | None = None,
    removals: str = "allowed",
    kept_for_skipped: int = 0,
    kept_respelled: int = 0,
    respelled: Sequence[str] = (),
    resubscribe_allowed: bool = False,
    active_campaign_adds: Literal["block", "warn"] = "warn",
) -> ListPlan:
    """A ListPlan from adds and removes however they were computed (here, or in DuckDB)."""
    held_back = 0
    if removals == "never":
        # An add-only audience: what the source lacks stays on the list, and is counted.
        held_back, remove = len(remove), ()
    return ListPlan(
        audience=audience,
        list_name=list_name,
        list_id=live_list_id,
        create=live_list_id is None,
        description=description,
        add=add,
        remove=remove,
        unchanged=desired_count - len(add),
        live_count=live_count if live_list_id is not None else 0,
        desired_count=desired_count,
        update_existing_users_only=update_existing_users_only,
        campaign_id=campaign_id,
        channel_unsubscribe=channel_unsubscribe,
        read_prefer_user_id=read_prefer_user_id,
        max_removal_percent=max_removal_percent,
        max_removals=max_removals,
        allow_empty=allow_empty,
        min_members=min_members,
        max_members=max_members,
        max_addition_percent=max_addition_percent,
        max_additions=max_additions,
        held_back_removals=held_back,
        kept_for_skipped=kept_for_skipped,
        kept_respelled=kept_respelled,
        respelled=tuple(respelled),
        resubscribe_allowed=resubscribe_allowed,
        active_campaign_adds=active_campaign_adds,
    )


def plan_deletions(
    live_lists: Iterable[LiveListInfo], declared_names: Collection[str]
) -> list[ListDeletion]:
    """Lists to delete under `prune: true`: Standard lists carrying reconciler's ownership
    marker that no manifest declares. Unmarked lists are never candidates."""
    return sorted(
        (
            ListDeletion(info.id, info.name)
            for info in live_lists
            if info.list_type == "Standard"
            and is_managed(info.description)
            and info.name not in declared_names
        ),
        key=lambda d: (d.list_name, d.list_id),
    )


def plan_destination(
    destination: str,
    project_type: ProjectType,
    lists: list[ListPlan],
    skipped: list[tuple[str, MemberIssue]],
    deletions: list[ListDeletion] | None = None,
    allow_list_deletion: bool = False,
    skipped_unlisted: int = 0,
    **details: Any,
) -> DestinationPlan:
    """A destination's plan from its lists' plans; `details` are what the plan reports
    beside them (field updates, reads made, notes, campaigns: DestinationPlan's fields)."""
    return DestinationPlan(
        destination=destination,
        project_type=project_type,
        lists=tuple(sorted(lists, key=lambda lp: lp.list_name)),
        skipped_members=tuple(skipped),
        skipped_unlisted=skipped_unlisted,
        deletions=tuple(deletions or ()),
        allow_list_deletion=allow_list_deletion,
        **details,
    )
