"""Email-based projects: the profiles that rows skipped for lacking an email name by userId.

Such a project identifies users by email, so a source row with a userId and no email is
skipped. Iterable still has profiles known only by a userId there: a subscribe with
`preferUserId: true` (as Segment's Iterable Lists destination sends every member, so one
it knows by userId alone) creates the profile with a placeholder email, and getUsers and
the user export report the member by that email, which no row has. Rows skipped as
invalid never cause removals (plan/planner.py `keep_skipped`), so the emails of the
profiles whose userIds such rows give are looked up (per-user reads by userId, or one
export: live.py `emails_of_user_ids`) and those members are kept, and counted, as any
skipped row's are. Only lists with removals and such rows are looked at, and only their
rows' userIds are read: in steady state, the anonymous members themselves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence

from reconciler.iterable import IterableClient
from reconciler.members.engine.rows import TableRows, rows_without
from reconciler.members.identity import InvalidIdentity, looks_like_email, validate_user_id
from reconciler.plan.model import ListPlan
from reconciler.state.desired import DesiredDestination, DesiredList
from reconciler.state.live import emails_of_user_ids
from reconciler.state.users_file import ProfilesFile


def keep_user_id_rows(
    client: IterableClient,
    desired: DesiredDestination,
    lists: Sequence[ListPlan],
    users: ProfilesFile | None = None,
) -> tuple[list[ListPlan], list[str]]:
    """The lists with those members kept, and what was read to find them (for the plan's
    'also read' line). Nothing is read outside email-based projects: there a row with a
    userId alone is sent, or, skipped for its userId, kept by it (getUsers reports such a
    profile by its userId)."""
    out = list(lists)
    if desired.project_type != "email":
        return out, []
    items = {item.list_name: item for item in desired.lists}
    wanted: dict[int, list[str]] = {}
    for index, lp in enumerate(out):
        item = items.get(lp.list_name)
        if item is not None and lp.remove:
            user_ids = _skipped_user_ids(item)
            if user_ids:
                wanted[index] = user_ids
    if not wanted:
        return out, []
    every = sorted({u for user_ids in wanted.values() for u in user_ids})
    emails = emails_of_user_ids(client, every, users)
    for index, user_ids in wanted.items():
        kept = {emails[u] for u in user_ids if u in emails}
        if kept:
            out[index] = _without(out[index], kept)
    if len(every) == 1:
        said = "the email of 1 skipped row's userId read, to keep its member"
    else:
        said = f"the emails of {len(every):,} skipped rows' userIds read, to keep their members"
    return out, [said]


def _skipped_user_ids(item: DesiredList) -> list[str]:
    """The identifiers of the audience's skipped rows that may be userIds (not shaped as
    an email: a skipped row's email is kept as it is, plan/planner.py `keep_skipped`)."""
    if item.table is not None:
        if not item.table.skipped:
            return []
        rows = item.table.engine.connection.execute(
            f"SELECT id FROM {item.table.skipped_ids()}"
        ).fetchall()
        ids: Collection[str] = [identifier for (identifier,) in rows]
    else:
        ids = item.skipped_ids
    return sorted(i for i in ids if not looks_like_email(i) and _may_be_user_id(i))


def _may_be_user_id(identifier: str) -> bool:
    """Whether Iterable could have a profile with this userId: a row's invalid email
    (`n/a`) or a userId it refuses names nobody, and is not worth a read Iterable may
    answer with an error."""
    try:
        validate_user_id(identifier)
    except InvalidIdentity:
        return False
    return True


def _without(lp: ListPlan, kept: set[str]) -> ListPlan:
    """`lp` without removing `kept` (emails as Iterable reports them), counted as kept for
    skipped rows."""
    remove = lp.remove
    smaller: Sequence[str]
    if isinstance(remove, TableRows):
        smaller = rows_without(remove, "id", kept)
    else:
        smaller = tuple(i for i in remove if i not in kept)
    dropped = len(remove) - len(smaller)
    if not dropped:
        return lp
    return dataclasses.replace(lp, remove=smaller, kept_for_skipped=lp.kept_for_skipped + dropped)
