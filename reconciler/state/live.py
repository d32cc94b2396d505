"""Read LiveState from Iterable: which lists exist, who is on the ones we manage, and the
current values of the fields trait mappings own."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from reconciler.errors import LiveStateError
from reconciler.iterable import ClientSettings, IterableClient, ListInfo
from reconciler.members.identity import Member, ProjectType, looks_like_email
from reconciler.plan import FieldRead
from reconciler.progress import NULL_PROGRESS, Progress, Task
from reconciler.state.desired import DesiredDestination, DesiredList
from reconciler.state.routes import choose_member_read

if TYPE_CHECKING:
    from reconciler.members.model import Engine, LiveTable, Prefetch


@dataclass
class LiveList:
    info: ListInfo
    members: set[str]
    # Lists of audiences planned in DuckDB: members in the workspace, not in `members`.
    table: LiveTable | None = None


@dataclass
class LiveDestination:
    all_lists: list[ListInfo]
    managed: dict[str, LiveList]  # by list name; only lists a manifest declares
    member_reads: int  # rate-limited calls spent reading members
    member_read: str = "getUsers"  # or "export"
    table_reads: int = 0  # lists whose members went to disk and were diffed in DuckDB
    # Lists whose member read could not be trusted (list name -> why): not in `managed`,
    # and their audiences are left out of the plan.
    unproven: dict[str, str] = field(default_factory=dict)
    size_reads: int = 0  # lists/{id}/size calls spent checking doubtful reads

    def describe_reads(self) -> str | None:
        if not self.managed:
            return None
        lists = f"{len(self.managed)} list{'s' if len(self.managed) != 1 else ''}"
        if self.member_read == "export":
            text = f"members of {lists} read with 1 user export (1 rate-limited call)"
        else:
            text = f"members of {lists} read with {_calls(self.member_reads)}"
        if self.table_reads:
            large = f"{self.table_reads} large list{'s' if self.table_reads != 1 else ''}"
            text += f"; {large} diffed in DuckDB"
        if self.size_reads:
            text += f"; {self.size_reads} empty read{'s' if self.size_reads != 1 else ''} "
            text += "checked against the list's size"
        return text


def _calls(n: int) -> str:
    return f"{n} getUsers call{'s' if n != 1 else ''}"


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


def _resolve_user_ids(client: IterableClient, item: DesiredList, members: set[str]) -> set[str]:
    """In hybrid projects getUsers with preferUserId reports a profile by its userId as soon
    as it has one, even when the audience knows that member only by email (the app set the
    userId later). Left alone, the plan would re-add the email and remove the userId, and
    every apply would unsubscribe a member who should stay. So look up the userIds no
    desired member has (per-user reads, 100/s; in steady state only the real leavers) and
    count a profile whose email is a desired email-only member under that email."""
    email_only = {m.email for m in item.members.values() if m.user_id is None and m.email}
    if not email_only:
        return members
    wanted = {i for m in item.members.values() for i in m.identifiers}
    resolved = set(members)
    for identifier in members:
        if identifier in wanted or looks_like_email(identifier):
            continue
        email = (client.get_user(user_id=identifier) or {}).get("email")
        if isinstance(email, str) and email.lower() in email_only:
            resolved.discard(identifier)
            resolved.add(email.lower())
    return resolved


def read_live(
    client: IterableClient,
    desired: DesiredDestination,
    on_read: Callable[[str], None] | None = None,
    *,
    engine: Engine | None = None,
    progress: Progress = NULL_PROGRESS,
    prefetch: Prefetch | None = None,
) -> LiveDestination:
    all_lists = client.get_lists()
    found = [
        (item, info)
        for item in desired.lists
        if (info := find_list(all_lists, item.list_name)) is not None
    ]
    # Audiences planned in DuckDB read their members to disk, never into Python sets.
    in_tables = [(item, info) for item, info in found if item.table is not None]
    in_python = [(item, info) for item, info in found if item.table is None]
    managed: dict[str, LiveList] = {}
    if choose_member_read(len(found), client.settings) == "export" and found:
        if on_read is not None:
            on_read(f"{len(found)} lists (one user export)")
        task = progress.task(f"reading members of {len(found)} lists (one user export)")
        if in_tables:
            assert engine is not None
            managed = _read_tables_by_export(client, engine, desired, in_tables, in_python, task)
        else:
            managed = _read_members_by_export(client, desired.project_type, in_python)
            task.advance(sum(len(x.members) for x in managed.values()))
        task.finish()
        live = LiveDestination(all_lists, managed, 1, "export", len(in_tables))
        return _prove_reads(client, live)
    for item, info in in_tables:
        assert engine is not None and item.table is not None
        if on_read is not None:
            on_read(item.list_name)
        managed[item.list_name] = _read_list_table(
            client, engine, desired, item, info, progress, prefetch
        )
    for item, info in in_python:
        if on_read is not None:
            on_read(item.list_name)
        task = progress.task(f"reading list {item.list_name!r}")
        # Emails come back lowercase (Iterable stores them so) and userIds are exact:
        # compared as given.
        members = set(client.iter_list_members(info.id, item.prefer_user_id))
        task.advance(len(members))
        task.finish()
        if desired.project_type == "hybrid" and item.prefer_user_id:
            members = _resolve_user_ids(client, item, members)
        managed[item.list_name] = LiveList(info, members)
    live = LiveDestination(all_lists, managed, len(found), "getUsers", len(in_tables))
    return _prove_reads(client, live)


def _prove_reads(client: IterableClient, live: LiveDestination) -> LiveDestination:
    """An empty answer is not an empty list (issue 16, point 8): a 200 with no body, or one
    cut off where a line ends, reads as a list with fewer members or none, and the plan
    would then add everyone again, or (worse) find nothing of what is due for removal and
    report success. So a read that found no members is checked against the size Iterable
    reports for the list (`lists/{id}/size`, from the same 5-a-minute budget, hence only
    for empty reads); when Iterable counts members there, the read is not the list, and
    the list is moved to `unproven` rather than planned from it."""
    for name, live_list in list(live.managed.items()):
        table = live_list.table
        count = table.count if table is not None else len(live_list.members)
        if count:
            continue
        size = client.list_size(live_list.info.id)
        live.size_reads += 1
        if size > 0:
            del live.managed[name]
            live.unproven[name] = (
                f"list {name!r} (id {live_list.info.id}): Iterable's member read answered no "
                f"members, yet Iterable counts {size:,} on the list. The read is not trusted: "
                "this audience is left out of the plan (nothing is added or removed); run "
                "plan again"
            )
    return live


def _read_list_table(
    client: IterableClient,
    engine: Engine,
    desired: DesiredDestination,
    item: DesiredList,
    info: ListInfo,
    progress: Progress,
    prefetch: Prefetch | None,
) -> LiveList:
    from reconciler.members.model import (
        describe_live,
        load_live_file,
        needs_user_id_resolution,
        read_live_table,
        resolve_user_ids,
    )

    assert item.table is not None
    fetched = prefetch.take(item.list_name, info.id, item.prefer_user_id) if prefetch else None
    if fetched is not None:
        table = engine.name("live")
        load_live_file(engine, fetched, table, f"getUsers for list {info.id}")
    else:
        task = progress.task(f"reading list {item.list_name!r}")
        table = read_live_table(engine, client, info.id, item.prefer_user_id, task.advance)
        task.finish()
    if needs_user_id_resolution(desired.project_type, item.table):
        table = resolve_user_ids(engine, client, item.table, table)
    return LiveList(info, set(), describe_live(engine, table))


def _read_tables_by_export(
    client: IterableClient,
    engine: Engine,
    desired: DesiredDestination,
    in_tables: list[tuple[DesiredList, ListInfo]],
    in_python: list[tuple[DesiredList, ListInfo]],
    task: Task,
) -> dict[str, LiveList]:
    """One export streamed to disk and read by DuckDB, for lists of both engines."""
    from reconciler.members.model import (
        describe_live,
        export_rows,
        live_from_export,
        read_export_table,
    )

    membership = _membership(desired.project_type)
    ids = [info.id for _item, info in in_tables + in_python]
    export = read_export_table(engine, client, membership, ids, task.advance)
    managed: dict[str, LiveList] = {}
    for item, info in in_tables:
        assert item.table is not None
        table = live_from_export(engine, export, info.id, item.table, desired.project_type)
        managed[item.list_name] = LiveList(info, set(), describe_live(engine, table))
    rows = export_rows(engine, export, membership, [info.id for _item, info in in_python])
    managed |= _read_members_by_export(client, desired.project_type, in_python, rows)
    return managed


def _membership(project_type: ProjectType) -> str:
    return "emailListIds" if project_type == "email" else "userListIds"


def _read_members_by_export(
    client: IterableClient,
    project_type: ProjectType,
    found: list[tuple[DesiredList, ListInfo]],
    rows: list[dict[str, Any]] | None = None,
) -> dict[str, LiveList]:
    """Every managed list's members from one export of the project's users (`rows`, when
    it was already read). The export gives both identifiers of each user, so a member is
    reported by the identifier its audience knows it by (no per-user lookups needed in
    hybrid projects)."""
    membership = _membership(project_type)
    ids = {info.id for _item, info in found}

    def on_a_managed_list(row: dict[str, Any]) -> bool:
        lists = row.get(membership)
        return isinstance(lists, list) and any(i in ids for i in lists)

    if rows is None:
        rows = list(client.export_users(["email", "userId", membership], keep=on_a_managed_list))
    # Each row is visited once per list it is on, not once per managed list: 15 lists of
    # 204,000 members in all took minutes when every list walked every row.
    on_list: dict[int, list[dict[str, Any]]] = {list_id: [] for list_id in ids}
    for row in rows:
        lists = row.get(membership)
        for list_id in lists if isinstance(lists, list) else ():
            if list_id in on_list:
                on_list[list_id].append(row)
    managed: dict[str, LiveList] = {}
    for item, info in found:
        wanted = {i for m in item.members.values() for i in m.identifiers}
        # Once per list: the property walks every desired member.
        prefer_user_id = item.prefer_user_id
        members = {
            identifier
            for row in on_list[info.id]
            if (identifier := _export_identifier(row, wanted, prefer_user_id, project_type))
        }
        managed[item.list_name] = LiveList(info, members)
    return managed


def _export_identifier(
    row: dict[str, Any], wanted: set[str], prefer_user_id: bool, project_type: ProjectType
) -> str | None:
    email: str | None = row.get("email") if isinstance(row.get("email"), str) else None
    user_id: str | None = row.get("userId") if isinstance(row.get("userId"), str) else None
    email = email.lower() if email else None
    if email is not None and email in wanted:
        return email
    if user_id is not None and user_id in wanted:
        return user_id
    # Not a desired member: name it as getUsers would, which is how it will be removed.
    if project_type == "userId" or (project_type == "hybrid" and prefer_user_id and user_id):
        return user_id or email
    if project_type == "email":
        return email
    return email or user_id


# -- current values of mapped fields ---------------------------------------------------------


@dataclass
class LiveFields:
    """Current values of mapped fields, per member key; None for a user Iterable does not
    have (yet: reads lag writes)."""

    values: dict[str, dict[str, Any] | None]
    read: FieldRead


ReadMethod = Literal["export", "user_reads"]


def choose_field_read(users: int, settings: ClientSettings) -> ReadMethod:
    """Read by "export" or by "user_reads": whichever costs less time under Iterable's
    rate limits.

    An export is one call from a budget of 4 a minute (15 s of that budget); per-user
    reads are one call each at 100 a second. So per-user reads win up to 1,500 users with
    the default limits, and one export wins beyond, however large the project.
    """
    user_seconds = users / settings.user_reads_per_second if settings.user_reads_per_second else 0
    export_seconds = 60 / settings.exports_per_minute if settings.exports_per_minute else 0
    if not user_seconds and not export_seconds:  # both unpaced: fewer requests wins
        return "user_reads" if users <= 1 else "export"
    # A tie goes to per-user reads: they fetch only the users asked about.
    return "user_reads" if user_seconds <= export_seconds else "export"


def read_field_values(
    client: IterableClient,
    members: Sequence[Member],
    fields: Sequence[str],
    project_type: ProjectType,
) -> LiveFields:
    """Read `fields` of these members' profiles with one export or per-user reads."""
    method = choose_field_read(len(members), client.settings)
    if method == "export":
        values = _read_by_export(client, members, fields, project_type)
        requests = 1
    else:
        values, requests = _read_by_user(client, members, fields, project_type)
    read = FieldRead(method, len(members), requests, tuple(fields))
    return LiveFields(values, read)


def _read_by_export(
    client: IterableClient,
    members: Sequence[Member],
    fields: Sequence[str],
    project_type: ProjectType,
) -> dict[str, dict[str, Any] | None]:
    # Match rows by what identifies users in the project: in userID-based projects an email
    # is a plain attribute that several profiles may share.
    by_user_id = {m.user_id: m.key for m in members if m.user_id is not None}
    by_email = (
        {m.email: m.key for m in members if m.email is not None} if project_type != "userId" else {}
    )

    def keep(row: dict[str, Any]) -> bool:
        return row.get("userId") in by_user_id or _lower(row.get("email")) in by_email

    values: dict[str, dict[str, Any] | None] = {m.key: None for m in members}
    matched_by_user_id: set[str] = set()
    for row in client.export_users(["email", "userId", *fields], keep=keep):
        key = by_user_id.get(row.get("userId"))  # type: ignore[arg-type]
        if key is not None:
            matched_by_user_id.add(key)
        else:
            key = by_email.get(_lower(row.get("email")))
            # A profile found by userId is the member's; an email match only fills a gap.
            if key is None or key in matched_by_user_id:
                continue
        values[key] = {name: row.get(name) for name in fields}
    return values


def _read_by_user(
    client: IterableClient,
    members: Sequence[Member],
    fields: Sequence[str],
    project_type: ProjectType,
) -> tuple[dict[str, dict[str, Any] | None], int]:
    requests = 0
    lock = threading.Lock()

    def read(member: Member) -> dict[str, Any] | None:
        nonlocal requests
        attempts: list[dict[str, str]] = []
        if project_type != "email" and member.user_id is not None:
            attempts.append({"user_id": member.user_id})
        if project_type != "userId" and member.email is not None:
            # In hybrid projects a profile may have only the email the member was added by.
            attempts.append({"email": member.email})
        for identifier in attempts:
            with lock:
                requests += 1
            found = client.get_user(**identifier)
            if found is not None:
                return {name: found.get(name) for name in fields}
        return None

    with ThreadPoolExecutor(max_workers=client.settings.concurrency) as pool:
        found = list(pool.map(read, members))
    return {m.key: v for m, v in zip(members, found, strict=True)}, requests


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value
