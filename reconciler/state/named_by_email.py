"""Lists whose plan looks like a projectType userId declared for an email-based project.

Such a project's getUsers names every member by email, so a plan of userIds matches none
of them: it removes the whole list and adds the same people by userId, and the removal
guard blocked it with no word of why. The plan's own adds and removes are the evidence,
so nothing more is read: every live member removed, each named by an email, and every
add a userId that is none. Only said (a note, and the guard's message); never corrected,
since an app may well use emails as userIds in a userID-based project.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.members.engine.rows import TableRows
from reconciler.members.identity import Member, ProjectType
from reconciler.plan import ListPlan
from reconciler.plan.model import where_project_type


def named_by_email(project_type: ProjectType, lists: Sequence[ListPlan]) -> tuple[str, ...]:
    """The names of the lists whose plan looks so (see the module's docstring)."""
    if project_type != "userId":
        return ()
    return tuple(
        lp.list_name
        for lp in lists
        if lp.list_id is not None
        and lp.add
        and lp.remove
        and len(lp.remove) == lp.live_count  # no live member matched a row
        and _all_emails(lp.remove)
        and not _any_email(lp.add)
    )


def named_by_email_notes(destination: str, names: Sequence[str], at: str | None) -> list[str]:
    """The plan's note on each such list (the guard's message says it shorter)."""
    return [
        f"list {name!r}: Iterable names every member of it by an email, and this plan "
        "removes them all and adds userIds that are none: the project looks email-based "
        f"though destination {destination!r} declares projectType userId; "
        f"{where_project_type(at)} (the plan is left as the manifests make it)"
        for name in names
    ]


def _all_emails(remove: Sequence[str]) -> bool:
    """Whether every removed identifier holds an `@` (as state/live.py tells a getUsers
    line that is no email); in DuckDB when the removals live there (millions)."""
    if isinstance(remove, TableRows):
        found = remove.engine.connection.execute(
            f"SELECT 1 FROM {remove.table} WHERE NOT contains(id, '@') LIMIT 1"
        ).fetchone()
        return found is None
    return all("@" in identifier for identifier in remove)


def _any_email(add: Sequence[Member]) -> bool:
    """Whether an added member's key (its userId) holds an `@`."""
    if isinstance(add, TableRows):
        found = add.engine.connection.execute(
            f"SELECT 1 FROM {add.table} WHERE contains(key, '@') LIMIT 1"
        ).fetchone()
        return found is not None
    return any("@" in member.key for member in add)
