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

Only lists with both adds and removals are looked at, and only their adds that carry a
userId are read (per-user reads by userId, or one export: live.py `emails_of_user_ids`).
A userId two of a list's adds give is no one's: those rows are added as they stand.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence

from reconciler.iterable import IterableClient
from reconciler.members.engine.rows import TableRows, identifier_rows, member_rows, write_table
from reconciler.members.identity import Member
from reconciler.plan.model import ListPlan
from reconciler.state.live import emails_of_user_ids
from reconciler.state.users_file import ProfilesFile


def keep_changed_emails(
    client: IterableClient,
    project_type: str,
    lists: Sequence[ListPlan],
    users: ProfilesFile | None = None,
) -> tuple[list[ListPlan], list[str]]:
    """The lists with such members kept and their old emails not added, and what was read
    to find them (for the plan's 'also read' line). Nothing is read outside email-based
    projects: in hybrid ones a row with a userId is the member by that userId, and in
    userID-based ones the email identifies nobody."""
    out = list(lists)
    if project_type != "email":
        return out, []
    wanted: dict[int, list[Member]] = {}
    for index, lp in enumerate(out):
        if lp.add and lp.remove:
            candidates = _adds_with_user_ids(lp.add)
            if candidates:
                wanted[index] = candidates
    if not wanted:
        return out, []
    every = sorted({m.user_id for members in wanted.values() for m in members if m.user_id})
    emails = emails_of_user_ids(client, every, users)
    for index, members in wanted.items():
        out[index] = _keep(out[index], members, emails)
    if len(every) == 1:
        said = "the email of 1 added member's userId read, to find an email changed in Iterable"
    else:
        said = (
            f"the emails of {len(every):,} added members' userIds read, to find emails "
            "changed in Iterable"
        )
    return out, [said]


def _adds_with_user_ids(add: Sequence[Member]) -> list[Member]:
    """The adds whose row gives a userId beside the email that no other add gives.

    A userId on two adds names neither: an email-based project does not hold a userId to
    one person, and sources fill it with a stand-in ('0', 'guest') on many rows, which
    would keep whoever has it on the list and add none of them."""
    if isinstance(add, TableRows):
        rows = add.engine.connection.execute(
            f"SELECT key, key_kind, email, user_id FROM {add.table} WHERE user_id IN "
            f"(SELECT user_id FROM {add.table} GROUP BY user_id HAVING count(*) = 1)"
        ).fetchall()
        return [Member(row[0], row[1], row[2], row[3]) for row in rows]
    shared = Counter(m.user_id for m in add if m.user_id is not None)
    return [m for m in add if m.user_id is not None and shared[m.user_id] == 1]


def _keep(lp: ListPlan, candidates: Sequence[Member], emails: dict[str, str]) -> ListPlan:
    """`lp` without adding the members whose userId's profile is on the list under another
    email it removes, and without removing that email."""
    moved = {
        m.key: current
        for m in candidates
        if (current := emails.get(m.user_id or "")) is not None and current != m.email
    }
    if not moved:
        return lp
    removing = _removed(lp.remove, set(moved.values()))
    not_added = {key for key, current in moved.items() if current in removing}
    if not not_added:
        return lp
    kept = {moved[key] for key in not_added}
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
    engine = add.engine
    dropped = engine.name("changed_email_keys")
    write_table(engine, dropped, ((key,) for key in sorted(keys)), ("key",))
    table = engine.name("adds")
    engine.connection.execute(
        f"CREATE TABLE {table} AS SELECT * FROM {add.table} a "
        f"WHERE NOT EXISTS (SELECT 1 FROM {dropped} d WHERE d.key = a.key)"
    )
    engine.connection.execute(f"DROP TABLE {dropped}")
    row = engine.connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    return member_rows(engine, table, int(row[0]) if row else 0)


def _without_removes(remove: Sequence[str], kept: set[str]) -> Sequence[str]:
    if not isinstance(remove, TableRows):
        return tuple(i for i in remove if i not in kept)
    engine = remove.engine
    found = engine.name("changed_email_ids")
    write_table(engine, found, ((i,) for i in sorted(kept)), ("id",))
    table = engine.name("removes")
    engine.connection.execute(
        f"CREATE TABLE {table} AS SELECT id FROM {remove.table} r "
        f"WHERE NOT EXISTS (SELECT 1 FROM {found} f WHERE f.id = r.id)"
    )
    engine.connection.execute(f"DROP TABLE {found}")
    row = engine.connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    return identifier_rows(engine, table, int(row[0]) if row else 0)
