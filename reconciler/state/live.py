"""Read LiveState from Iterable: which lists exist, who is on the ones we manage, and the
current values of the fields trait mappings own."""

from __future__ import annotations

import functools
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from reconciler.errors import AuthError, IterableError, LiveStateError, RetryExhaustedError
from reconciler.iterable import CHANNELS_FIELD, ClientSettings, IterableClient, ListInfo
from reconciler.members.identity import Member, ProjectType, looks_like_email, other_spellings
from reconciler.plan import FieldRead
from reconciler.plan.ownership import marks_audience
from reconciler.progress import NULL_PROGRESS, Heartbeat, Progress, Task, duration, heartbeat
from reconciler.render.masking import mask_emails
from reconciler.state.desired import DesiredDestination, DesiredList
from reconciler.state.routes import (
    MemberRoute,
    choose_route,
    expected_size_checks,
    get_users_if_cut_off,
    size_empty_lists,
    with_sized,
)
from reconciler.state.users_file import ProfilesFile, UsersFile, UsersShare, export_rows
from reconciler.state.windows import (
    WindowedRead,
    clock_behind_note,
    cut_off_whole,
    export_users_whole,
    read_export_windows,
)
from reconciler.threads import ReadGroup, reading_pool
from reconciler.uptime import uptime
from reconciler.words import quantity

if TYPE_CHECKING:
    from reconciler.manifest import Destination
    from reconciler.members.model import Engine, ExportDownload, LiveTable, Prefetch


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
    # Of `unproven`, the lists not read at all: no one list in Iterable is certainly the
    # audience's (several of its name, its listId renamed or gone).
    unmatched: frozenset[str] = frozenset()
    route: MemberRoute | None = None  # why this read, and what the other would have cost
    seconds: float = 0.0  # the member read's wall time
    calls: dict[str, int] = field(default_factory=dict)  # requests per endpoint, retries too
    windows: int = 0  # date windows read, for the user export read in windows
    windows_clock: str = ""  # whose clock planned them, when not this machine's (windows.py)
    # Every profile with a channel unsubscribe, when the member read was an export that
    # asked for them (a job, or an export started before the sources were read), for the
    # consent guard, which then need not read them again; None when they were not read.
    channel_unsubscribed: list[dict[str, Any]] | None = None
    channels_from: str = ""  # which read that was, for the consent guard's statement
    # Every profile of the project as the export that read the members wrote them (with
    # the mapped fields): the plan's later reads of the same profiles take it, and remove
    # it once planned. None when the members were not read by an early export.
    users_file: UsersFile | None = None

    def describe_reads(self) -> str | None:
        lists_read = len(self.managed) + len(self.unproven) - len(self.unmatched)
        if not lists_read:
            return None
        lists = f"{lists_read:,} list{'s' if lists_read != 1 else ''}"
        if self.member_read == "export":
            text = f"members of {lists} read with 1 user export (1 rate-limited call)"
        elif self.member_read == "asyncExport":
            text = f"members of {lists} read with 1 asynchronous export job"
        elif self.member_read == "windowedExport":
            windows = f"{self.windows:,} date window{'s' if self.windows != 1 else ''}"
            text = f"members of {lists} read with the user export in {windows}"
            if self.windows_clock:
                text += f" (planned by {self.windows_clock})"
        else:
            text = f"members of {lists} read with {_calls(self.member_reads)}"
            if self.member_reads > 1:
                text += " in parallel"
        spent = ", ".join(f"{n:,} {endpoint}" for endpoint, n in sorted(self.calls.items()))
        if spent:
            text += f" in {duration(self.seconds)} ({spent})"
        if self.route is not None and self.route.reason:
            text += f"; {self.route.reason}"
        if self.table_reads:
            large = f"{self.table_reads:,} large list{'s' if self.table_reads != 1 else ''}"
            text += f"; {large} diffed in DuckDB"
        if self.size_reads:
            text += f"; {self.size_reads:,} empty read{'s' if self.size_reads != 1 else ''} "
            text += "checked against the list's size"
        # Counted among the lists read (their reads were made), but not planned from: said
        # here, or the line reads as if every list had been read.
        unread = len(self.unproven) - len(self.unmatched)
        if unread:
            whose = "its audience is" if unread == 1 else "their audiences are"
            text += f"; {unread:,} of them not read with confidence: {whose} left out"
        return text


# The file of an export job started before the sources were read, waited for; its lines
# told to the callable given.
Downloaded = Callable[[Callable[[int], None] | None], Path]


def _calls(n: int) -> str:
    return f"{n:,} getUsers call{'s' if n != 1 else ''}"


def expected_size(item: DesiredList) -> int:
    """What an audience's list is expected to hold: its valid source rows, duplicates
    included, counted alike by both engines. DuckDB knows the distinct members only once
    the diff has run, after the read; counting them in Python alone made the same
    manifests choose, and say in the plan, another read by engine (`one user export of 64
    members` against 66)."""
    if item.table is not None:
        return item.table.valid
    return len(item.members) + item.duplicates


def find_list(all_lists: list[ListInfo], name: str, audience: str | None = None) -> ListInfo | None:
    """The one Standard list with this exact name. Never guesses between two; when two or
    more are there, says which were made by reconciler for `audience` (two applies at
    once, from machines that share no lock), and which first, so a person can tell them
    apart in Iterable's web app."""
    same_name = [x for x in all_lists if x.name == name]
    standard = [x for x in same_name if x.list_type == "Standard"]
    if len(standard) > 1:
        ids = ", ".join(str(x.id) for x in standard)
        raise LiveStateError(
            f"Iterable has {len(standard)} lists named {name!r} (ids {ids}"
            f"{_made_for(standard, audience)}); reconciler will not guess which one to "
            "manage: keep the one your campaigns and journeys use and rename or delete "
            "the others in Iterable, or set listName"
        )
    if not standard and same_name:
        other = same_name[0]
        raise LiveStateError(
            f"list {name!r} (id {other.id}) is a {other.list_type} list; reconciler only "
            "manages Standard (static) lists: set a different listName"
        )
    return standard[0] if standard else None


def _made_for(lists: Sequence[ListInfo], audience: str | None) -> str:
    """Which of `lists` (one name) carry reconciler's marker for `audience`, and the first
    made of them, for the refusal above; empty when none does."""
    made = [x for x in lists if audience is not None and marks_audience(x.description, audience)]
    if not made:
        return ""
    ids = ", ".join(str(x.id) for x in made)
    text = f"; made by reconciler for audience {audience!r}: {ids}"
    if len(made) > 1:
        first = min(made, key=lambda x: (x.created_at is None, x.created_at or 0, x.id))
        text += f", {first.id} first"
    return text


def _find_lists(
    all_lists: list[ListInfo], items: Sequence[DesiredList]
) -> tuple[list[tuple[DesiredList, ListInfo]], dict[str, str]]:
    """Each audience's list that exists, and why the lists no one Standard list answers
    for are left out. A second list of one name is usually made by hand in Iterable's
    web app, and concerns that audience alone: the project's other audiences are still
    read, planned and applied (failing the destination would stop every list's sync until
    someone found and deleted the extra)."""
    found: list[tuple[DesiredList, ListInfo]] = []
    ambiguous: dict[str, str] = {}
    # Each audience looks among the lists of its name only: a walk of every list for each
    # audience was 8M name comparisons for 2,000 audiences beside 4,000 lists.
    by_name: dict[str, list[ListInfo]] = {}
    by_id: dict[int, ListInfo] = {}
    for listed in all_lists:
        by_name.setdefault(listed.name, []).append(listed)
        by_id[listed.id] = listed
    for item in items:
        try:
            same_name = by_name.get(item.list_name, [])
            list_id = item.audience.spec.listId
            if list_id is not None:
                _check_list_id(item, by_id.get(list_id), same_name)
                # The listId's list, of the audience's name: another of that name (made by
                # hand in Iterable's web app) is no question of which list is meant.
                same_name = [by_id[list_id]]
            info = find_list(same_name, item.list_name, item.audience.name)
        except LiveStateError as exc:
            ambiguous[item.list_name] = (
                f"{exc}. This audience is left out of the plan (nothing is created, added or "
                "removed)"
            )
            continue
        if info is not None:
            found.append((item, info))
    return found, ambiguous


def _check_list_id(item: DesiredList, info: ListInfo | None, same_name: list[ListInfo]) -> None:
    """Refuse an audience whose `listId` is not the list of its name in Iterable: renamed
    in Iterable's web app, or gone. Planned by name, either would create a new list and
    add to it who had left the old one themselves, leaving the old list and its history
    behind; so the audience is left out, with what to do, until a person says which list
    is meant."""
    list_id, audience, name = item.audience.spec.listId, item.audience.name, item.list_name
    if info is not None and info.name == name:
        return
    where = item.audience.field_location("listId")
    standard = [x for x in same_name if x.list_type == "Standard"]
    other = standard[0].id if len(standard) == 1 else None
    if info is not None:
        beside = f", and list {other} has that name now" if other is not None else ""
        # Which side changed is not known: the list's name in Iterable's web app, or the
        # manifest's listName. Either way the list of that id is the audience's.
        instead = (
            f"; to manage list {other} instead, set listId: {other}"
            if other is not None
            else f", or rename the list to {name!r} in Iterable; for a new list, remove listId"
        )
        raise LiveStateError(
            f"{where}: listId {list_id} is named {info.name!r} in Iterable, not {name!r}"
            f"{beside} (renamed in Iterable's web app, or the audience's listName changed), "
            f"and no new list is made in its place. To keep managing list {list_id}, set "
            f"listName: {info.name!r} on audience {audience!r}{instead}"
        )
    named = (
        f"; list {name!r} in Iterable is list {other}: if that is the audience's list, set "
        f"listId: {other}"
        if other is not None
        else ""
    )
    raise LiveStateError(
        f"{where}: listId {list_id} is no list in Iterable (deleted there, or an id of another "
        f"project?){named}. A new list in its place would take back who had left it "
        f"themselves: verify that the list is gone, then remove listId from audience "
        f"{audience!r} to create one"
    )


def _candidates(item: DesiredList, members: set[str]) -> list[str]:
    """_resolve_user_ids' first half: the identifiers on the list whose emails are to be
    looked up (none when the audience knows no member by email alone). Every list's are
    looked up at once (_read_by_get_users)."""
    if not _known_by_email(item):
        return []
    wanted = {i for m in item.members.values() for i in m.identifiers}
    return [i for i in members if i not in wanted and not looks_like_email(i)]


def _resolve_user_ids(item: DesiredList, members: set[str], emails: Mapping[str, str]) -> set[str]:
    """In hybrid projects getUsers with preferUserId reports a profile by its userId as soon
    as it has one, even when the audience knows that member only by email (the app set the
    userId later). Left alone, the plan would re-add the email and remove the userId, and
    every apply would unsubscribe a member who should stay. So look up the userIds no
    desired member has (per-user reads, 100/s; in steady state only the real leavers) and
    count a profile whose email is a desired email-only member under that email (or the
    email of a row skipped as invalid: `keep_skipped` then keeps it). In userID-based
    projects every member is reported by userId, and a row with an email alone is skipped:
    its email names the profile it stands for in the same way.
    `emails`: those found for the list's _candidates (and perhaps for other lists' too:
    only this list's candidates are looked at, not a member it wants by that userId)."""
    email_only = _known_by_email(item)
    if not email_only:
        return members
    resolved = set(members)
    for identifier in _candidates(item, members):
        email = emails.get(identifier)
        if email is not None and email in email_only:
            resolved.discard(identifier)
            resolved.add(email)
    return resolved


def emails_of_user_ids(
    client: IterableClient, user_ids: Sequence[str], users: ProfilesFile | None = None
) -> dict[str, str]:
    """The (lowercased) email of each of these userIds' profiles that has one, read as
    mapped fields are: per-user reads in parallel, or one export when that costs less
    (`users`: the export that read the members, or the project's export shared by the
    plan's destinations naming it).
    The candidates are every userId on a list that no desired member has: a first plan
    over a list of 100,000 leavers took 100,000 reads one after another (17 min at best,
    hours at Iterable's latency), where one export takes a minute."""
    members = [Member(i, "userId", user_id=i) for i in user_ids]
    values = _identifiers_of(client, members, "email", "hybrid", users, "emails of userIds")
    return {i: v.lower() for i, v in values.items()}


def user_ids_of_emails(
    client: IterableClient, emails: Sequence[str], users: ProfilesFile | None = None
) -> dict[str, str]:
    """The userId of each of these emails' profiles (in an email-based project) that has
    one, read as `emails_of_user_ids` reads emails."""
    members = [Member(e, "email", email=e) for e in emails]
    return _identifiers_of(client, members, "userId", "email", users, "userIds of emails")


def _identifiers_of(
    client: IterableClient,
    members: Sequence[Member],
    name: str,
    project_type: ProjectType,
    users: ProfilesFile | None,
    what: str,
) -> dict[str, str]:
    """Each member's profile's `name` (email or userId) where it has one, by its key."""
    if not members:
        return {}
    values: Mapping[str, dict[str, Any] | None]
    try:
        values = read_field_values(client, members, [name], project_type, users, what).values
    except IterableError:
        # An export Iterable will not give (500s, a cut stream) is no reason to fail the
        # plan: per-user reads answer the same question, only more slowly.
        if choose_field_read(len(members), client.settings) != "export":
            raise
        values, _requests = _read_by_user(client, members, [name], project_type)
    out: dict[str, str] = {}
    for member in members:
        value = (values.get(member.key) or {}).get(name)
        if isinstance(value, str):
            out[member.key] = value
    return out


def _known_by_email(item: DesiredList) -> set[str]:
    """The emails that name an audience's members known by email alone: its email-only
    members, and the emails of rows skipped as invalid (a valid email beside an
    over-long userId). Iterable reports such a profile by its userId when it has one;
    without the skipped rows' emails here, a member still in the source would be removed
    because its row cannot be sent."""
    email_only = {m.email for m in item.members.values() if m.user_id is None and m.email}
    # And their other spellings: a profile Iterable has as anna@xn--bcher-kva.de is the
    # source's anna@bücher.de (plan/planner.py `keep_respelled` then keeps it).
    respelled = {alt for email in email_only for alt in other_spellings(email)}
    return email_only | respelled | {i for i in item.skipped_ids if looks_like_email(i)}


def unread_reason(list_name: str, list_id: int, exc: Exception) -> str:
    """Why an audience is left out when its list's members could not be read at all."""
    return (
        f"list {list_name!r} (id {list_id}): its members could not be read ({exc}). The "
        "read is not trusted: this audience is left out of the plan (nothing is added or "
        "removed); run plan again"
    )


def fails_alone(exc: Exception) -> bool:
    """A failure that leaves only one list (or one export) unread: the others can go
    ahead. A refused key or a wrong address fails every read, so it ends the plan."""
    if isinstance(exc, AuthError):
        return False
    return isinstance(exc, RetryExhaustedError | LiveStateError) or (
        isinstance(exc, IterableError) and (exc.status or 0) >= 500
    )


def read_live(
    client: IterableClient,
    desired: DesiredDestination,
    on_read: Callable[[str], None] | None = None,
    *,
    engine: Engine | None = None,
    progress: Progress = NULL_PROGRESS,
    prefetch: Prefetch | None = None,
    member_reads: str | None = None,
    users: UsersShare | None = None,
) -> LiveDestination:
    """`member_reads` overrides the route choice: "export" (the saved-plan check) reads
    every list with one export, the faster kind by the model, whatever their number.
    `users`: the project's user export, shared by the plan's destinations naming it, for
    the hybrid userId lookups where they are read by an export."""
    # The reads started early chose their route from the list index: the same index, not
    # a second GET /api/lists (and the one their downloads' list ids were taken from).
    known = prefetch.take_lists() if prefetch is not None else None
    all_lists = known if known is not None else client.get_lists()
    found, ambiguous = _find_lists(all_lists, desired.lists)
    started, before = uptime(), dict(client.stats.calls)
    early = prefetch.take_export() if prefetch is not None and found else None
    sizes = [expected_size(item) for item, _info in found]
    # An empty audience says nothing of its list's size: asked, rather than read a list
    # of 50,000 by getUsers (minutes) only for the empty-source guard to block the plan.
    sized = dict(prefetch.sized) if prefetch is not None else {}
    if early is None:
        pairs = [(info.id, size) for (_item, info), size in zip(found, sizes, strict=True)]
        sized = size_empty_lists(client, pairs, member_reads, fails_alone, sized)
    known_sizes = [
        sized.get(info.id, size) for (_item, info), size in zip(found, sizes, strict=True)
    ]
    route = choose_route(known_sizes, client.settings, member_reads, expected_size_checks(sizes))
    if sized:
        route = with_sized(route, len(sized))
    route = get_users_if_cut_off(route, client)
    downloaded: Downloaded | None = None
    kept: list[Path] = []  # the early export's file, kept for the plan's later reads
    if early is not None:
        # The export started before the sources were read (a job, the user export, or it
        # in date windows): whatever the sizes now say, it has the head start (and reads
        # exactly what the same export started now would).
        route = MemberRoute(
            early.route.name,
            "; ".join(x for x in (early.route.reason, "started before the sources were read") if x),
            early.route.seconds,
        )
        downloaded = _keeping(
            functools.partial(prefetch.wait_export, early),  # type: ignore[union-attr]
            kept,
        )
        # The read began when the export did: its time and calls are counted from there.
        started, before = early.started, early.calls_before
    elif prefetch is not None and prefetch.downloads:
        # Lists downloaded by getUsers while the sources were read: their calls are the
        # read's too.
        started, before = prefetch.started, prefetch.calls_before
    try:
        live = _read_members(
            client,
            desired,
            found,
            ambiguous,
            route,
            engine,
            progress,
            on_read,
            prefetch,
            downloaded,
            early,
            users,
            sized,
        )
    except BaseException:
        for path in kept:
            path.unlink(missing_ok=True)
        raise
    live.all_lists = all_lists
    live.seconds = uptime() - started
    live.calls = _with_calls(client.stats.calls_since(before), prefetch)
    live.calls.pop("GET /api/lists", None)
    if early is not None and kept and live.member_read == early.route.name:
        live.users_file = UsersFile(
            kept[0], frozenset(early.fields), early.lines, early.started or None
        )
        if users is not None and users.shared.usable():
            # Every profile, with every field the project's destinations ask (the early
            # read asks them all): their later reads of the project take it, not read
            # it again (in date windows, 20+ slow exports against Iterable), as they take
            # windows read once the sources were read.
            windowed = early.route.name == "windowedExport"
            users.offer(live.users_file, early.requests if windowed else 0)
    else:  # the export could not be read: the lists were read by getUsers
        for path in kept:
            path.unlink(missing_ok=True)
    return live


def _with_calls(calls: dict[str, int], prefetch: Prefetch | None) -> dict[str, int]:
    """`calls` and the empty audiences' list sizes the early reads asked to choose the
    route (before the calls were counted from): made for this read, they are its too."""
    if prefetch is not None:
        for endpoint, n in prefetch.size_calls.items():
            calls[endpoint] = calls.get(endpoint, 0) + n
    return calls


def _keeping(downloaded: Downloaded, kept: list[Path]) -> Downloaded:
    """`downloaded`, its file also linked beside it (into `kept`) before the member read
    removes it: the plan's later reads of the same profiles take it (users_file.py). A
    file system without hard links keeps none (a copy could be gigabytes)."""

    def wait(on_lines: Callable[[int], None] | None) -> Path:
        path = downloaded(on_lines)
        copy = path.with_name(f"{path.stem}-users{path.suffix}")
        try:
            os.link(path, copy)
        except OSError:
            return path
        kept.append(copy)
        return path

    return wait


def _read_members(
    client: IterableClient,
    desired: DesiredDestination,
    found: list[tuple[DesiredList, ListInfo]],
    ambiguous: dict[str, str],
    route: MemberRoute,
    engine: Engine | None,
    progress: Progress,
    on_read: Callable[[str], None] | None,
    prefetch: Prefetch | None,
    downloaded: Downloaded | None,
    early: ExportDownload | None,
    users: UsersShare | None = None,
    sized: Mapping[int, int] | None = None,
) -> LiveDestination:
    """read_live's member read by `route` (falling back to getUsers where an export
    cannot be read), proven and with its unproven lists (`users`: as read_live takes
    it; `sized`: the lists' sizes asked before the read, by list id)."""
    in_tables = [(item, info) for item, info in found if item.table is not None]
    live = None
    if route.name == "windowedExport" and found:
        try:
            live = _read_all_by_windows(
                client, desired, found, engine, progress, on_read, downloaded, early, users
            )
        except Exception as exc:
            if not fails_alone(exc):
                raise
            # As for one export: the lists are read one by one rather than not at all.
            progress.note(
                # stderr, whatever --show-members says: Iterable's msg may quote a member.
                f"the user export in date windows could not be read ({mask_emails(str(exc))}); "
                "reading the "
                f"{quantity(len(found), 'list')} with getUsers instead"
            )
            route = MemberRoute(
                "getUsers", f"the user export in date windows could not be read ({exc})"
            )
    if route.name in ("export", "asyncExport") and found:
        try:
            live = _read_all_by_export(
                client,
                desired,
                found,
                engine,
                progress,
                on_read,
                route.name == "asyncExport",
                downloaded,
            )
        except Exception as exc:
            if not fails_alone(exc):
                raise
            if route.name == "export" and isinstance(exc, IterableError):
                cut_off_whole(client, exc)  # the plan's later whole exports: windows
            # The export is one stream for every list: when it cannot be read (cut off
            # each time, a 5xx), the lists are read one by one rather than not at all.
            progress.note(
                f"the user export could not be read ({mask_emails(str(exc))}); reading the "
                f"{quantity(len(found), 'list')} with getUsers instead"
            )
            route = MemberRoute("getUsers", f"the user export could not be read ({exc})")
    if live is None:
        live = _read_by_get_users(
            client, desired, found, engine, progress, prefetch, on_read, users
        )
    live.table_reads = sum(1 for item, _info in in_tables if item.list_name in live.managed)
    live.route = route
    live = _prove_reads(client, live, sized or {})
    _name_project_type_mismatch(desired, live)
    live.unproven.update(ambiguous)
    live.unmatched = frozenset(ambiguous)
    return live


def _read_all_by_export(
    client: IterableClient,
    desired: DesiredDestination,
    found: list[tuple[DesiredList, ListInfo]],
    engine: Engine | None,
    progress: Progress,
    on_read: Callable[[str], None] | None,
    asynchronous: bool = False,
    downloaded: Downloaded | None = None,
) -> LiveDestination:
    """Every list's members from one user export (`asynchronous`: one export job;
    `downloaded`: the file of one already started, waited for)."""
    in_tables = [(item, info) for item, info in found if item.table is not None]
    in_python = [(item, info) for item, info in found if item.table is None]
    how = "one asynchronous export job" if asynchronous else "one user export"
    lists = f"{len(found):,} list{'s' if len(found) != 1 else ''} ({how})"
    if on_read is not None:
        on_read(lists)
    task = progress.task(f"reading members of {lists}")
    # A job's file, or the user export's started before the sources were read: both ask
    # for the consent guard's channel unsubscribes too (the profiles are then not read
    # again). The synchronous export read here does not.
    channels: list[dict[str, Any]] | None = [] if asynchronous or downloaded is not None else None
    try:
        with heartbeat(task):
            if in_tables:
                assert engine is not None
                managed = _read_tables_by_export(
                    client,
                    engine,
                    desired,
                    in_tables,
                    in_python,
                    task,
                    asynchronous,
                    downloaded=downloaded,
                    channels=channels,
                )
            elif channels is not None:
                managed = _read_members_by_export_job(
                    client,
                    desired.project_type,
                    in_python,
                    engine,
                    task.advance,
                    downloaded,
                    channels,
                )
            else:
                managed = _read_members_by_export(
                    client, desired.project_type, in_python, on_rows=task.advance
                )
    finally:
        task.finish()
    live = LiveDestination([], managed, 1, "asyncExport" if asynchronous else "export")
    if channels is not None:
        live.channel_unsubscribed = channels
        live.channels_from = "export job" if asynchronous else "user export"
    return live


def _read_all_by_windows(
    client: IterableClient,
    desired: DesiredDestination,
    found: list[tuple[DesiredList, ListInfo]],
    engine: Engine | None,
    progress: Progress,
    on_read: Callable[[str], None] | None,
    downloaded: Downloaded | None = None,
    early: ExportDownload | None = None,
    users: UsersShare | None = None,
) -> LiveDestination:
    """Every list's members from the user export read in date windows (state/windows.py),
    merged into one file of every profile once, then read as one export is (`downloaded`:
    the file of the windows `early` started reading before the sources were read). Read
    here, they ask every field `users` (the project's shared export) asks as well, as the
    early windows do, and their file is kept for the plan's later reads (users_file)."""
    in_tables = [(item, info) for item, info in found if item.table is not None]
    in_python = [(item, info) for item, info in found if item.table is None]
    lists = f"{len(found):,} list{'s' if len(found) != 1 else ''} (the user export in date windows)"
    if on_read is not None:
        on_read(lists)
    task = progress.task(f"reading members of {lists}")
    membership = _membership(desired.project_type)
    expected = sum(expected_size(item) for item, _info in found)
    report = WindowedRead()

    def download(only: Sequence[str], path: Path, on_lines: Callable[[int], None] | None) -> int:
        nonlocal report
        report = read_export_windows(
            client, only, path, desired.project_type, expected, on_lines, on_note=progress.note
        )
        return report.rows

    kept: list[Path] = []
    names: tuple[str, ...] = ()
    if downloaded is None and users is not None and users.shared.usable():
        # The mapped fields' values, the consent guard's channel unsubscribes and users'
        # existence would each read the whole project again (in the same windows: 20+
        # slow exports against Iterable): they ride on these, as on the early windows.
        names = (
            "email",
            "userId",
            membership,
            *sorted(users.fields - {"email", "userId", membership}),
        )
        assert users.shared.directory is not None  # usable() made it
        downloaded = _keeping(_windows_file(download, names, users.shared.directory), kept)
    # Windows started before the sources were read, or asking the later reads' fields,
    # carry the consent guard's channel unsubscribes too.
    channels: list[dict[str, Any]] | None = [] if downloaded is not None else None

    try:
        with heartbeat(task):
            if in_tables:
                assert engine is not None
                managed = _read_tables_by_export(
                    client,
                    engine,
                    desired,
                    in_tables,
                    in_python,
                    task,
                    download=download,
                    downloaded=downloaded,
                    channels=channels,
                )
            else:
                ids = {info.id for _item, info in in_python}
                with tempfile.TemporaryDirectory(
                    dir=engine.directory if engine is not None else None
                ) as scratch:
                    if downloaded is not None:
                        path = downloaded(task.advance)
                    else:
                        path = Path(scratch) / "export.jsonl"
                        download(["email", "userId", membership], path, task.advance)
                    try:
                        rows = _rows_on_lists(path, membership, ids, channels)
                    finally:
                        path.unlink(missing_ok=True)
                managed = _read_members_by_export(client, desired.project_type, in_python, rows)
    except BaseException:
        for path in kept:
            path.unlink(missing_ok=True)
        raise
    finally:
        task.finish()
    if early is not None and downloaded is not None:
        report = WindowedRead(early.windows, early.requests, rows=early.lines)
    live = LiveDestination([], managed, report.requests, "windowedExport")
    live.windows = report.windows
    live.windows_clock = clock_behind_note(client)
    if channels is not None:
        live.channel_unsubscribed = channels
        live.channels_from = "user export in date windows"
    if kept and users is not None:
        live.users_file = UsersFile(kept[0], frozenset(names), report.rows)
        users.offer(live.users_file, report.requests)
    return live


def _windows_file(
    download: Callable[[Sequence[str], Path, Callable[[int], None] | None], int],
    names: Sequence[str],
    directory: Path,
) -> Downloaded:
    """The windows' merged file of `names`, read by `download` into `directory` (the
    plan's shared exports': a large project's export is gigabytes), as a started export's
    file is waited for."""

    def wait(on_lines: Callable[[int], None] | None) -> Path:
        handle, name = tempfile.mkstemp(prefix="windows-", suffix=".jsonl", dir=directory)
        os.close(handle)
        path = Path(name)
        try:
            download(names, path, on_lines)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    return wait


def _rows_on_lists(
    path: Path, membership: str, ids: set[int], channels: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The rows of an export file (JSON lines) on any of the lists `ids`; every row with
    channel unsubscribes also kept in `channels` (as _job_rows does)."""
    rows = []
    for row in export_rows(path, channels, "the user export holds"):
        lists = row.get(membership)
        if isinstance(lists, list) and any(i in ids for i in lists):
            rows.append(row)
    return rows


def _read_by_get_users(
    client: IterableClient,
    desired: DesiredDestination,
    found: list[tuple[DesiredList, ListInfo]],
    engine: Engine | None,
    progress: Progress,
    prefetch: Prefetch | None,
    on_read: Callable[[str], None] | None,
    users: UsersShare | None = None,
) -> LiveDestination:
    """getUsers for every list, several in flight at once (Iterable limits how many start
    a minute, not how many stream), the largest first so the longest streams start
    earliest. A list whose read still fails after its retries is named in `unproven`, and
    the others go ahead. Reading is done in threads; the workspace (DuckDB) and the
    per-user lookups are used from this one (`users`: as emails_of_user_ids takes it)."""
    order = sorted(found, key=lambda pair: -expected_size(pair[0]))
    paths = {
        item.list_name: engine.directory / f"{engine.name('live')}.txt"
        for item, _info in order
        if item.table is not None and engine is not None
    }

    # A read failing in a way that ends the plan stops the others (ReadGroup).
    group = ReadGroup()

    def read(item: DesiredList, info: ListInfo, beat: Heartbeat) -> Path | set[str]:
        group.check()
        if on_read is not None:
            on_read(item.list_name)
        if item.table is not None:
            fetched = (
                prefetch.take(item.list_name, info.id, item.prefer_user_id) if prefetch else None
            )
            if isinstance(fetched, Exception):
                raise fetched
            if fetched is not None:
                return fetched
        task = progress.task(f"reading list {item.list_name!r}")
        beat.add(task)
        try:
            if item.table is not None:
                path = paths[item.list_name]
                client.download_list_members(
                    info.id, item.prefer_user_id, path, group.watching(task.advance)
                )
                return path
            # Emails come back lowercase (Iterable stores them so) and userIds are exact:
            # compared as given.
            return set(
                client.iter_list_members(info.id, item.prefer_user_id, group.watching(task.advance))
            )
        finally:
            beat.discard(task)
            task.finish()

    workers = max(1, min(len(order), client.settings.list_read_concurrency))
    with heartbeat() as beat, reading_pool(workers, "reconciler-read") as pool:
        futures = {item.list_name: pool.submit(read, item, info, beat) for item, info in order}
        # Judged below once every read has ended, but for an error that ends the plan:
        # the plan's early reads stop with the others, as a read waiting for one of them
        # would otherwise wait until it had read its list.
        outcomes = group.gather(
            futures,
            lambda exc: not fails_alone(exc),
            on_stop=prefetch.stop.set if prefetch is not None else None,
        )
    unproven: dict[str, str] = {}
    # Every list's userIds to resolve are looked up at once: a profile on several lists
    # is read once, and many userIds cost one export, not one per list.
    tables: dict[str, tuple[str, list[str]]] = {}
    candidates: list[str] = []
    for item, info in found:
        outcome = outcomes[item.list_name]
        if isinstance(outcome, Exception):
            if not fails_alone(outcome):
                raise outcome
            unproven[item.list_name] = unread_reason(item.list_name, info.id, outcome)
            continue
        if isinstance(outcome, Path):
            assert engine is not None
            tables[item.list_name] = _load_list_table(engine, item, info, outcome)
        if desired.project_type == "email" and _names_no_email(
            engine, outcome, tables.get(item.list_name)
        ):
            # An email-based project's getUsers answers emails only: a userId there says
            # the project is another type, whose members would be planned and written by
            # the wrong identifier.
            unproven[item.list_name] = _not_an_email_project(desired, item.list_name, info.id)
            outcomes[item.list_name] = LiveStateError(unproven[item.list_name])
            if (loaded := tables.pop(item.list_name, None)) is not None:
                assert engine is not None
                engine.connection.execute(f"DROP TABLE IF EXISTS {loaded[0]}")
        elif item.list_name in tables:
            candidates += tables[item.list_name][1]
        elif item.prefer_user_id and isinstance(outcome, set):
            candidates += _candidates(item, outcome)
    emails = emails_of_user_ids(client, list(dict.fromkeys(candidates)), users)
    managed: dict[str, LiveList] = {}
    for item, info in found:
        outcome = outcomes[item.list_name]
        if isinstance(outcome, Exception):
            continue
        if isinstance(outcome, Path):
            assert engine is not None
            table, mine = tables[item.list_name]
            managed[item.list_name] = _resolve_list_table(engine, item, info, table, mine, emails)
        else:
            members = _resolve_user_ids(item, outcome, emails) if item.prefer_user_id else outcome
            managed[item.list_name] = LiveList(info, members)
    return LiveDestination([], managed, len(found), "getUsers", unproven=unproven)


def _names_no_email(
    engine: Engine | None, outcome: Path | set[str], loaded: tuple[str, list[str]] | None
) -> bool:
    """Whether a getUsers answer (a set, or the table `loaded` from its file) has a member
    that is no email (no `@`)."""
    if isinstance(outcome, set):
        return any("@" not in member for member in outcome)
    assert engine is not None and loaded is not None
    # The table the plan reads anyway: loading the file a second time for this check
    # doubled a 10M list's read and its memory.
    found = engine.connection.execute(
        f"SELECT 1 FROM {loaded[0]} WHERE NOT contains(id, '@') LIMIT 1"
    ).fetchone()
    return found is not None


def _not_an_email_project(desired: DesiredDestination, name: str, list_id: int) -> str:
    return (
        f"list {name!r} (id {list_id}): {names_no_email_hint(desired.destination)}. This "
        "audience is left out of the plan (nothing is added or removed)"
    )


def names_no_email_hint(destination: Destination) -> str:
    """Why a getUsers answer naming a member by something that is no email, to a
    destination declaring projectType email, is not read (plan's, import's)."""
    return (
        "Iterable's member read named members by an identifier that is no email, which an "
        f"email-based project never does; destination {destination.name!r} declares "
        "projectType email, and Iterable's answers look like a hybrid or userID-based "
        f"project: check projectType in {destination.field_location('projectType')}"
    )


def _prove_reads(
    client: IterableClient, live: LiveDestination, sized: Mapping[int, int]
) -> LiveDestination:
    """An empty answer is not an empty list (issue 16, point 8): a 200 with no body, or one
    cut off where a line ends, reads as a list with fewer members or none, and the plan
    would then add everyone again, or (worse) find nothing of what is due for removal and
    report success. So a read that found no members is checked against the size Iterable
    reports for the list (`lists/{id}/size`, from the same 5-a-minute budget, hence only
    for empty reads); when Iterable counts members there, the read is not the list, and
    the list is moved to `unproven` rather than planned from it. A size asked before the
    read (`sized`, by list id: read_live's for empty audiences) is not asked again."""
    for name, live_list in list(live.managed.items()):
        table = live_list.table
        count = table.count if table is not None else len(live_list.members)
        if count:
            continue
        size = sized.get(live_list.info.id)
        if size is None:
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


# What _prove_reads says of a list it leaves out for an empty read; the project-type hint
# below is added to these messages only.
_EMPTY_READ = "Iterable's member read answered no members, yet Iterable counts"
_EXPORTS = ("export", "asyncExport", "windowedExport")


def _name_project_type_mismatch(desired: DesiredDestination, live: LiveDestination) -> None:
    """An export names each profile's lists in the membership field of the project's type
    (emailListIds in email-based projects, userListIds otherwise) and reconciler asks for
    the one its manifest's projectType names. Declared wrong, every list of the export
    reads empty while Iterable counts members on them: the plan left them out (safe) but
    said only "run plan again", which never helps. Where the export found no member on
    any list while at least one list counts members, the likely cause is named, with
    where projectType is written. No request is made for it."""
    if live.route is None or live.route.name not in _EXPORTS:
        return
    doubted = [name for name, why in live.unproven.items() if _EMPTY_READ in why]
    if not doubted:
        return
    if any(_members_read(live_list) for live_list in live.managed.values()):
        return  # the declared field holds memberships: the type is not what is wrong
    hint = f"; {export_type_hint(desired.destination, desired.project_type)}, then run plan again"
    for name in doubted:
        live.unproven[name] = live.unproven[name].removesuffix("; run plan again") + hint


def export_type_hint(destination: Destination, declared: ProjectType) -> str:
    """Why an export that found no member on any list while Iterable counts some likely
    did (plan's _name_project_type_mismatch, import's read_members): the declared type's
    membership field, and where projectType is written."""
    if declared == "email":
        field, looks_like, other = "emailListIds", "a hybrid or userID-based project", "userListIds"
    else:
        field, looks_like, other = "userListIds", "an email-based project", "emailListIds"
    return (
        f"destination {destination.name!r} declares projectType {declared}, whose "
        f"memberships the export reads from {field}, and no list there has a member: "
        f"Iterable's answers look like {looks_like} (memberships in {other}); check "
        f"projectType in {destination.field_location('projectType')}"
    )


def _members_read(live_list: LiveList) -> int:
    table = live_list.table
    return table.count if table is not None else len(live_list.members)


def _load_list_table(
    engine: Engine, item: DesiredList, info: ListInfo, path: Path
) -> tuple[str, list[str]]:
    """A list's getUsers body, downloaded to `path`, as a live table in the workspace,
    and the userIds on it whose emails are to be looked up (_resolve_list_table)."""
    from reconciler.members.model import (
        load_live_file,
        needs_user_id_resolution,
        user_id_candidates,
    )

    assert item.table is not None
    table = engine.name("live")
    load_live_file(engine, path, table, f"getUsers for list {info.id}")
    if needs_user_id_resolution(item.table):
        return user_id_candidates(engine, item.table, table)
    return table, []


def _resolve_list_table(
    engine: Engine,
    item: DesiredList,
    info: ListInfo,
    table: str,
    candidates: list[str],
    emails: Mapping[str, str],
) -> LiveList:
    """The live table _load_list_table made, its userIds resolved with the emails found."""
    from reconciler.members.model import describe_live, resolve_candidates

    assert item.table is not None
    if candidates:
        pairs = [(i, emails[i]) for i in candidates if i in emails]
        table = resolve_candidates(engine, item.table, table, pairs)
    return LiveList(info, set(), describe_live(engine, table))


def _read_tables_by_export(
    client: IterableClient,
    engine: Engine,
    desired: DesiredDestination,
    in_tables: list[tuple[DesiredList, ListInfo]],
    in_python: list[tuple[DesiredList, ListInfo]],
    task: Task,
    asynchronous: bool = False,
    download: Callable[[Sequence[str], Path, Callable[[int], None] | None], int] | None = None,
    downloaded: Downloaded | None = None,
    channels: list[dict[str, Any]] | None = None,
) -> dict[str, LiveList]:
    """One export streamed to disk and read by DuckDB, for lists of both engines
    (`download`: how to read it, when not by one export or job; `channels`: as
    read_export_table takes it)."""
    from reconciler.members.model import (
        EXPORT_BY_LIST_FROM,
        describe_live,
        export_by_list,
        export_rows,
        live_from_export,
        read_export_table,
    )

    membership = _membership(desired.project_type)
    ids = [info.id for _item, info in in_tables + in_python]
    export = read_export_table(
        engine,
        client,
        membership,
        ids,
        task.advance,
        asynchronous,
        download=download,
        downloaded=downloaded,
        channels=channels,
    )
    managed: dict[str, LiveList] = {}
    by_list = None
    if len(in_tables) >= EXPORT_BY_LIST_FROM:
        by_list = export_by_list(engine, export, [info.id for _item, info in in_tables])
    for item, info in in_tables:
        assert item.table is not None
        table = live_from_export(engine, export, info.id, item.table, desired.project_type, by_list)
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
    rows: Iterable[dict[str, Any]] | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> dict[str, LiveList]:
    """Every managed list's members from one export of the project's users (`rows`, when
    it was already read). The export gives both identifiers of each user, so a member is
    reported by the identifier its audience knows it by (no per-user lookups needed in
    hybrid projects)."""
    membership = _membership(project_type)
    ids = {info.id for _item, info in found}

    def on_a_managed_list(row: dict[str, Any]) -> bool:
        if on_rows is not None:
            on_rows(1)
        lists = row.get(membership)
        return isinstance(lists, list) and any(i in ids for i in lists)

    if rows is None:
        rows = list(client.export_users(["email", "userId", membership], keep=on_a_managed_list))
    # How each list names its members, decided once per list (the hybrid project's
    # choice walks every desired member); then each row is visited once, and named only
    # for the lists it is on: 15 lists of 204,000 members in all took minutes when every
    # list walked every row. The rows are not kept: millions of dicts cost gigabytes.
    naming = {info.id: _naming(item, project_type) for item, info in found}
    members: dict[int, set[str]] = {list_id: set() for list_id in ids}
    for row in rows:
        lists = row.get(membership)
        for list_id in lists if isinstance(lists, list) else ():
            on_list = members.get(list_id) if isinstance(list_id, int) else None
            if on_list is not None:
                identifier = _export_identifier(row, *naming[list_id], project_type)
                if identifier:
                    on_list.add(identifier)
    return {item.list_name: LiveList(info, members[info.id]) for item, info in found}


def _naming(item: DesiredList, project_type: ProjectType) -> tuple[set[str], set[str], bool]:
    """What _export_identifier needs of an audience: its members' identifiers, its
    email-only members (and skipped rows' emails), and whether it prefers userIds (always
    in userID-based projects, never in email-based ones)."""
    known_by_email = _known_by_email(item) if project_type != "email" else set()
    if not known_by_email:  # then `wanted` is never asked: no set of every member
        return set(), set(), project_type != "email" and item.prefer_user_id
    wanted = {i for m in item.members.values() for i in m.identifiers}
    return wanted, known_by_email, item.prefer_user_id


def _read_members_by_export_job(
    client: IterableClient,
    project_type: ProjectType,
    found: list[tuple[DesiredList, ListInfo]],
    engine: Engine | None,
    on_lines: Callable[[int], None],
    downloaded: Downloaded | None = None,
    channels: list[dict[str, Any]] | None = None,
) -> dict[str, LiveList]:
    """_read_members_by_export from an asynchronous export job's files (`downloaded`: of
    a job already started), read line by line. The job asks for profiles' channel
    unsubscribes too: those profiles are added to `channels`."""
    membership = _membership(project_type)
    with tempfile.TemporaryDirectory(
        dir=engine.directory if engine is not None else None
    ) as scratch:
        if downloaded is not None:
            path = downloaded(on_lines)
        else:
            path = Path(scratch) / "export.jsonl"
            fields = ["email", "userId", membership, CHANNELS_FIELD]
            client.download_export_job(fields, path, on_lines)
        try:
            return _read_members_by_export(client, project_type, found, _job_rows(path, channels))
        finally:
            path.unlink(missing_ok=True)


def _job_rows(path: Path, channels: list[dict[str, Any]] | None) -> Iterator[dict[str, Any]]:
    """An export job's users, one at a time; those with channel unsubscribes also kept in
    `channels` (a few: they are not held all)."""
    return export_rows(path, channels, "the export job's files hold")


def _export_identifier(
    row: dict[str, Any],
    wanted: set[str],
    email_only: set[str],
    prefer_user_id: bool,
    project_type: ProjectType,
) -> str | None:
    """A member named exactly as getUsers (with `preferUserId` as the audience asks) and
    `_resolve_user_ids` name it: the two reads then give the same members and the same
    fingerprint, so a plan read one way can be checked for staleness the other way."""
    email: str | None = row.get("email") if isinstance(row.get("email"), str) else None
    user_id: str | None = row.get("userId") if isinstance(row.get("userId"), str) else None
    email = email.lower() if email else None
    if project_type == "email":
        return email
    if not prefer_user_id or user_id is None:
        return email or user_id
    # A profile the audience knows by its email alone, reported by a userId it got later.
    if (
        email is not None
        and email in email_only
        and user_id not in wanted
        and not looks_like_email(user_id)
    ):
        return email
    return user_id


# -- current values of mapped fields ---------------------------------------------------------


@dataclass
class LiveFields:
    """Current values of mapped fields, per member key; None for a user Iterable does not
    have (yet: reads lag writes)."""

    values: Mapping[str, dict[str, Any] | None]
    read: FieldRead


class FieldRows(Mapping[str, "dict[str, Any] | None"]):
    """Member key -> its fields' values, held as one tuple per member (the field names
    once): a dict per member would cost three times as much at a large audience's size."""

    def __init__(self, names: Sequence[str], rows: dict[str, tuple[Any, ...] | None]):
        self._names = tuple(names)
        self._rows = rows

    def __getitem__(self, key: str) -> dict[str, Any] | None:
        row = self._rows[key]
        return None if row is None else dict(zip(self._names, row, strict=True))

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


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
    users_file: ProfilesFile | None = None,
    what: str = "mapped fields' values",
) -> LiveFields:
    """Read `fields` of these members' profiles with one export or per-user reads, or
    from `users_file` (the export that read the members) when it has them and that is
    cheaper: no request at all; or where an export is chosen, from the project's export
    that the plan's destinations naming it share (`what`: the read, as the plan names
    it when another destination made that export)."""
    method = choose_field_read(len(members), client.settings)
    values: Mapping[str, dict[str, Any] | None]
    if users_file is not None and users_file.serves(fields, len(members), client.settings, method):
        rows = users_file.read_rows(what)
        values, _windows, _whole = _read_by_export(client, members, fields, project_type, rows)
        return LiveFields(values, users_file.field_read(len(members), fields))
    if method == "export":
        values, windows, whole = _read_by_export(client, members, fields, project_type)
        # The whole export where it was asked, and the date windows where it was cut off.
        read = FieldRead(method, len(members), int(whole) + windows, tuple(fields), windows, whole)
        return LiveFields(values, read)
    values, requests = _read_by_user(client, members, fields, project_type)
    read = FieldRead(method, len(members), requests, tuple(fields))
    return LiveFields(values, read)


def _read_by_export(
    client: IterableClient,
    members: Sequence[Member],
    fields: Sequence[str],
    project_type: ProjectType,
    read: Iterable[dict[str, Any]] | None = None,
) -> tuple[FieldRows, int, bool]:
    """`read`: the project's users as an export already read them, else one is made; and
    the date-window requests that took (0: the one export, or `read`, did), and whether
    it asked one whole export (not where the project's was cut off earlier in the run)."""
    # Match rows by what identifies users in the project: in userID-based projects an email
    # is a plain attribute that several profiles may share, and in email-based ones a
    # userId is (another profile's values stood for the member's, the last with it), as
    # the per-user reads of `_read_by_user` already take them.
    by_user_id = (
        {m.user_id: m.key for m in members if m.user_id is not None}
        if project_type != "email"
        else {}
    )
    by_email = (
        {m.email: m.key for m in members if m.email is not None} if project_type != "userId" else {}
    )

    def keep(row: dict[str, Any]) -> bool:
        return row.get("userId") in by_user_id or _lower(row.get("email")) in by_email

    values: dict[str, tuple[Any, ...] | None] = {m.key: None for m in members}
    matched_by_user_id: set[str] = set()
    # Cut off every time on a project too big for one stream: read in date windows.
    windows, whole = 0, False
    if read is None:
        rows, windows, whole = export_users_whole(
            client, ["email", "userId", *fields], keep, project_type
        )
    else:
        rows = [row for row in read if keep(row)]
    for row in rows:
        key = by_user_id.get(row.get("userId"))  # type: ignore[arg-type]
        if key is not None:
            matched_by_user_id.add(key)
        else:
            key = by_email.get(_lower(row.get("email")))
            # A profile found by userId is the member's; an email match only fills a gap.
            if key is None or key in matched_by_user_id:
                continue
        values[key] = tuple(row.get(name) for name in fields)
    return FieldRows(fields, values), windows, whole


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

    with reading_pool(client.settings.concurrency) as pool:
        found = list(pool.map(read, members))
    return {m.key: v for m, v in zip(members, found, strict=True)}, requests


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value
