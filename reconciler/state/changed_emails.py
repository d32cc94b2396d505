"""Email-based projects: a member whose email was changed in Iterable, the source still
giving the old one beside the profile's userId.

Such a project identifies users by email, so the plan sees the old email as a member to
add and the profile's new email, on the list, as one to remove. Applied, that took the
person off the list and made a second profile at the old address (subscribe creates
unknown emails there), outside every unsubscribe the first one holds: campaigns reach an
address she left, or one she opted out of under her current profile. Which email is right
only the source's owner knows, so the side that loses no one is taken: when a row's
userId is the userId of a profile on the list under another email that the plan would
remove, that profile stays and the row's email is not added (nor are its mapped fields
written), counted and said, until the row or the profile is corrected.

Only lists with both adds and removals are looked at, and the read follows the smaller
side: where the adds that carry a userId are fewer, their userIds' emails are read
(per-user reads by userId, or one export: live.py `emails_of_user_ids`); where the
removals are fewer, the removed profiles' userIds are read by email first, and only the
adds whose userId one of them has are followed further, found in DuckDB where the adds
are: a first plan of ten million rows with userIds against a list with five members to
remove read ten million userIds and held every add in Python. The rule is the same
either way (`_moved`): a removed profile is the one a userId finds only if it has that
userId. A userId two of an audience's rows give is no one's: its adds are added as they
stand; and so is a row whose own email's profile has its userId too (several profiles
have it: Iterable finds the first by it, maybe a leaver's, who is then no changed email of
the row's).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from reconciler.iterable import IterableClient
from reconciler.members.engine.rows import TableRows, rows_without
from reconciler.members.identity import Member
from reconciler.plan.model import ListPlan
from reconciler.state.live import emails_of_user_ids, user_ids_of_emails
from reconciler.state.users_file import ProfilesFile
from reconciler.words import quantity

if TYPE_CHECKING:
    from reconciler.state.desired import DesiredList

# A list that may hold changed emails: its index in the plan's lists, and its audience.
_Looked = tuple[int, "DesiredList"]


def keep_changed_emails(
    client: IterableClient,
    project_type: str,
    lists: Sequence[ListPlan],
    desired: Sequence[DesiredList],
    users: ProfilesFile | None = None,
) -> tuple[list[ListPlan], list[str]]:
    """The lists with such members kept and their old emails not added, and what was read
    to find them (for the plan's 'also read' line); `desired`: the audiences they plan.
    Nothing is read outside email-based projects: in hybrid ones a row with a userId is
    the member by that userId, and in userID-based ones the email identifies nobody."""
    out = list(lists)
    looked = _looked_at(out, desired) if project_type == "email" else []
    if not looked:
        return out, []
    among, said = _removed_user_ids(client, out, looked, users)
    wanted = _candidates(out, looked, among)
    if not wanted:
        return out, said
    emails_of, read = _emails_of_added_user_ids(client, wanted, users)
    said.append(read)
    moved = {index: _moved(out[index], members, emails_of) for index, members in wanted.items()}
    rows = {m.key: m for index, members in wanted.items() for m in members if m.key in moved[index]}
    if not rows:
        return out, said
    own, read = _own_user_ids(client, rows, users)
    said.append(read)
    for index, pairs in moved.items():
        out[index] = _keep(out[index], _not_shared(pairs, rows, own))
    return out, said


def _looked_at(lists: Sequence[ListPlan], desired: Sequence[DesiredList]) -> list[_Looked]:
    """The lists (by index) with both adds and removals, beside the audience each plans:
    only there can an add be a removed member's changed email."""
    items = {item.list_name: item for item in desired}
    return [
        (index, item)
        for index, lp in enumerate(lists)
        if lp.add and lp.remove and (item := items.get(lp.list_name)) is not None
    ]


def _removed_user_ids(
    client: IterableClient,
    lists: Sequence[ListPlan],
    looked: Sequence[_Looked],
    users: ProfilesFile | None,
) -> tuple[set[str] | None, list[str]]:
    """The userIds of the removed profiles, read by email when the removals are fewer than
    the adds that carry a userId (the read follows the smaller side), and what was read;
    None when the adds are the smaller side (their userIds are followed whole)."""
    removed = sum(len(lists[index].remove) for index, _item in looked)
    if removed >= sum(_count_with_user_ids(lists[index].add) for index, _item in looked):
        return None, []
    emails = sorted({email for index, _item in looked for email in lists[index].remove})
    among = set(user_ids_of_emails(client, emails, users).values())
    return among, [
        f"the userId{'' if len(emails) == 1 else 's'} of "
        f"{quantity(len(emails), 'removed member')} read, to find emails changed in Iterable"
    ]


def _candidates(
    lists: Sequence[ListPlan], looked: Sequence[_Looked], among: set[str] | None
) -> dict[int, list[Member]]:
    """By list index, the adds whose userId is to be followed (one of `among`, given)."""
    if among is not None and not among:
        return {}  # no removed profile has a userId: no add can be one of them
    wanted: dict[int, list[Member]] = {}
    for index, item in looked:
        candidates = _adds_with_user_ids(lists[index].add, item, among)
        if candidates:
            wanted[index] = candidates
    return wanted


def _emails_of_added_user_ids(
    client: IterableClient, wanted: dict[int, list[Member]], users: ProfilesFile | None
) -> tuple[dict[str, str], str]:
    """The email of the profile Iterable finds by each candidate's userId, and what was read."""
    every = sorted({m.user_id for members in wanted.values() for m in members if m.user_id})
    emails_of = emails_of_user_ids(client, every, users)
    if len(every) == 1:
        return emails_of, (
            "the email of 1 added member's userId read, to find an email changed in Iterable"
        )
    return emails_of, (
        f"the emails of {len(every):,} added members' userIds read, to find emails "
        "changed in Iterable"
    )


def _own_user_ids(
    client: IterableClient, rows: dict[str, Member], users: ProfilesFile | None
) -> tuple[dict[str, str], str]:
    """The userId of each of these adds' own email's profile, and what was read.

    A row whose own email's profile has its userId too is that profile: the userId is on
    several profiles (an email-based project allows it), and the one Iterable finds by it,
    a leaver's, is no email the row's person changed from. Read for the few rows the rule
    would not add."""
    own = user_ids_of_emails(client, sorted({m.email for m in rows.values() if m.email}), users)
    if len(rows) == 1:
        return own, "the userId of 1 added member's own profile read, to tell a userId several have"
    return own, (
        f"the userIds of {len(rows):,} added members' own profiles read, to tell a "
        "userId several have"
    )


def _not_shared(
    pairs: dict[str, str], rows: dict[str, Member], own: dict[str, str]
) -> dict[str, str]:
    """`pairs` (add's key: removed email) without the adds whose own profile has their
    userId (see _own_user_ids)."""
    return {
        key: current
        for key, current in pairs.items()
        if own.get(rows[key].email or "") != rows[key].user_id
    }


def _count_with_user_ids(add: Sequence[Member]) -> int:
    if isinstance(add, TableRows):
        row = add.engine.connection.execute(
            f"SELECT count(*) FROM {add.table} WHERE user_id IS NOT NULL"
        ).fetchone()
        return int(row[0]) if row else 0
    return sum(1 for m in add if m.user_id is not None)


def _adds_with_user_ids(
    add: Sequence[Member], item: DesiredList, among: set[str] | None
) -> list[Member]:
    """The adds whose row gives a userId beside the email that no other row of the
    audience gives (and, `among` given, that is one of these: the removed profiles').

    A userId on two rows names neither: an email-based project does not hold a userId to
    one person (Iterable's byUserId answers one of the profiles that have it), and sources
    fill it with a stand-in ('0', 'guest') on many rows, which kept whoever Iterable found
    by it on the list and added none of them."""
    if isinstance(add, TableRows):
        query = f"SELECT key, key_kind, email, user_id FROM {add.table} WHERE user_id IS NOT NULL"
        params: list[object] = []
        if among is not None:
            # Filtered in DuckDB: the adds may be millions, the removed profiles a few.
            query += " AND user_id IN (SELECT unnest(?::VARCHAR[]))"
            params.append(sorted(among))
        rows = add.engine.connection.execute(query, params).fetchall()
        found = [Member(row[0], row[1], row[2], row[3]) for row in rows]
    else:
        found = [m for m in add if m.user_id is not None and (among is None or m.user_id in among)]
    if not found:
        return found
    if item.table is not None:
        sole = {
            row[0]
            for row in item.table.engine.connection.execute(
                f"SELECT user_id FROM {item.table.rows_table} WHERE user_id IN "
                "(SELECT unnest(?::VARCHAR[])) GROUP BY user_id HAVING count(DISTINCT key) = 1",
                [sorted({m.user_id for m in found if m.user_id is not None})],
            ).fetchall()
        }
    else:
        given = Counter(m.user_id for m in item.members.values() if m.user_id is not None)
        sole = {user_id for user_id, rows in given.items() if rows == 1}
    return [m for m in found if m.user_id in sole]


def _moved(lp: ListPlan, candidates: Sequence[Member], emails: dict[str, str]) -> dict[str, str]:
    """The adds (by key) whose userId's profile, as Iterable finds it by the userId, is
    on the list under another email it removes; and that email."""
    found = {
        m.key: current
        for m in candidates
        if (current := emails.get(m.user_id or "")) is not None and current != m.email
    }
    if not found:
        return {}
    removing = _removed(lp.remove, set(found.values()))
    return {key: current for key, current in found.items() if current in removing}


def _keep(lp: ListPlan, moved: dict[str, str]) -> ListPlan:
    """`lp` without adding these members (by key) and without removing their emails."""
    if not moved:
        return lp
    not_added = set(moved)
    kept = set(moved.values())
    return dataclasses.replace(
        lp,
        add=_without_adds(lp.add, not_added),
        remove=_without_removes(lp.remove, kept),
        unchanged=lp.unchanged + len(not_added),
        kept_email_changed=lp.kept_email_changed + len(kept),
        email_changed=tuple(sorted({*lp.email_changed, *not_added})),
    )


def _removed(remove: Sequence[str], emails: set[str]) -> set[str]:
    """Which of `emails` the list's removals hold."""
    if not isinstance(remove, TableRows):
        return emails & set(remove)
    rows = remove.engine.connection.execute(
        f"SELECT id FROM {remove.table} WHERE id IN (SELECT unnest(?::VARCHAR[]))",
        [sorted(emails)],
    ).fetchall()
    return {row[0] for row in rows}


def _without_adds(add: Sequence[Member], keys: set[str]) -> Sequence[Member]:
    if not isinstance(add, TableRows):
        return tuple(m for m in add if m.key not in keys)
    return rows_without(add, "key", keys)


def _without_removes(remove: Sequence[str], kept: set[str]) -> Sequence[str]:
    if not isinstance(remove, TableRows):
        return tuple(i for i in remove if i not in kept)
    return rows_without(remove, "id", kept)
