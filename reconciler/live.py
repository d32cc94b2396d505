"""Read LiveState from Iterable: which lists exist and who is on the ones we manage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reconciler.desired import DesiredDestination
from reconciler.errors import LiveStateError
from reconciler.iterable import IterableClient, ListInfo


@dataclass
class LiveList:
    info: ListInfo
    members: set[str]


@dataclass
class LiveDestination:
    all_lists: list[ListInfo]
    managed: dict[str, LiveList]  # by list name; only lists a manifest declares
    member_reads: int  # rate-limited getUsers calls spent


def find_list(all_lists: list[ListInfo], name: str) -> ListInfo | None:
    """The one Standard list with this exact name. Never guesses between two."""
    same_name = [x for x in all_lists if x.name == name]
    standard = [x for x in same_name if x.list_type == "Standard"]
    if len(standard) > 1:
        ids = ", ".join(str(x.id) for x in standard)
        raise LiveStateError(
            f"Iterable has {len(standard)} lists named {name!r} (ids {ids}); reconciler will "
            "not guess which one to manage: rename or delete the extras, or set listName"
        )
    if not standard and same_name:
        other = same_name[0]
        raise LiveStateError(
            f"list {name!r} (id {other.id}) is a {other.list_type} list; reconciler only "
            "manages Standard (static) lists: set a different listName"
        )
    return standard[0] if standard else None


def read_live(
    client: IterableClient,
    desired: DesiredDestination,
    on_read: Callable[[str], None] | None = None,
) -> LiveDestination:
    all_lists = client.get_lists()
    managed: dict[str, LiveList] = {}
    reads = 0
    for item in desired.lists:
        info = find_list(all_lists, item.list_name)
        if info is None:
            continue
        if on_read is not None:
            on_read(item.list_name)
        # Emails come back lowercase (Iterable stores them so) and userIds are exact:
        # compared as given.
        members = set(client.iter_list_members(info.id, item.prefer_user_id))
        reads += 1
        managed[item.list_name] = LiveList(info, members)
    return LiveDestination(all_lists, managed, reads)
