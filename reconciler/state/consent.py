"""Never fight a person's own choice (issue 19, point 1): desired members a plan does not
re-add because they left the list themselves, or their profile is unsubscribed from the
list's channel.

What Iterable reports, and where it is documented:

- Every unsubscribe, from a list, a channel or a message type, is an `emailUnSubscribe`
  event with an `unsubSource` saying what caused it. Iterable's support article 208508736
  ("Subscribe and Unsubscribe Events", formerly "Unsubscribe Sources") lists the sources and
  says to read them with the export (`dataTypeName=emailUnSubscribe`, the spelling of
  Iterable's OpenAPI enum; Airbyte's source-iterable sends `emailUnsubscribe`). The event's
  fields, per Airbyte's `source_iterable/schemas/email_unsubscribe.json` and Stitch's
  tap-iterable docs: `createdAt`, `email`, `userId`, `unsubSource`, `emailListIds` (older
  events: `emailListId`), `channelIds`, `campaignId`, `messageTypeIds`.
- Sources that are an API client's doing: `ListAPI` (POST /lists/unsubscribe, which
  reconciler sends) and `API` (older articles: POST /lists/unsubscribe and
  users/updateSubscriptions; newer: the subscriptions endpoints). Every other source is the
  person's own action (an unsubscribe link, a preference centre, a spam complaint, an SMS
  STOP) or a person at Iterable's web app or import acting for them (WebApp, Import), and a
  source missing or unknown here is taken as the person's choice too: holding a member back
  can be undone by `resubscribe: allowed`, re-subscribing someone cannot.
- Only a person's latest unsubscribe from a list counts: one who left by a link and was
  later removed by an API call (after re-joining) may be re-added.
- A profile's `unsubscribedChannelIds` (OpenAPI: "Email channel ids to unsubscribe from")
  holds the channels the person is unsubscribed from; bulkUpdate can set it without an
  event, so the profile, not the events, says who is unsubscribed now. Iterable's API does
  not say which channel a list belongs to (`channelUnsubscribe` is "the list's associated
  channel"): every Email channel of GET /api/channels is taken as the list's, or, when the
  channels cannot be read, any channel at all (the side that cannot lose consent).

The reads (one export of the events, the profiles' channel unsubscribes, one channels
read) happen only when a plan adds members to an existing list, or to a list it creates in
place of one made for the same audience under another name (a changed listName: the same
audience to the people on it, so who left the old list is not put on the new one; or a
renamed key, planning.with_former_lists), paced by the client. The
profiles are read whichever way is modelled to finish first (choose_profile_read): one
GET /api/users/{email} or /byUserId/{userId} per added identifier (100 a second; its
answer's `dataFields` carry `unsubscribedChannelIds`, as answers recorded from Iterable
show: grouparoo/grouparoo, plugins/@grouparoo/iterable/__tests__/fixtures), or one
user export of the whole project (4 a minute; as many rows as this run's whole export of
the project counted, else at least the largest list's, the export then to win by five
times, at the modelled export rate: the model the apply's reads of removals use). A few
adds to a small list in a project of millions are a few lookups, not an export of every
profile. The export is made only once the adds are known,
never on speculation beside the member reads: a plan with no adds, or few, would spend an
export of every profile (one of the 4 a minute) for nothing, while what it could save is the
member reads' time, and the lists read by getUsers are the small ones (an export job's rows
carry the profiles already).
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from reconciler.errors import IterableError, LiveStateError
from reconciler.iterable import CHANNELS_FIELD, ClientSettings, IterableClient, StreamCut
from reconciler.members.identity import Member, ProjectType
from reconciler.members.model import TableRows, member_rows
from reconciler.plan import ListPlan, Plan
from reconciler.plan.model import windows_reason, without_keys
from reconciler.progress import duration
from reconciler.state.routes import FEW_LISTS_EXPORT_MARGIN, export_seconds
from reconciler.state.unsendable import MAX_TABLE_CHECK
from reconciler.state.users_file import UsersShare
from reconciler.state.windows import (
    UNSPLITTABLE_RETRIES,
    Window,
    clock_behind_note,
    cut_off,
    export_users_whole,
    plan_windows,
    split_window,
)
from reconciler.threads import reading_pool
from reconciler.traits.convert import ConversionError, parse_instant

UNSUBSCRIBE_DATA_TYPE = "emailUnSubscribe"
EVENT_FIELDS = ("createdAt", "email", "userId", "unsubSource", "emailListIds", "emailListId")
# unsubSource values of unsubscribes an API client sent (see the module docstring).
API_SOURCES = frozenset({"API", "ListAPI"})
UNKNOWN_SOURCE = "unknown"
PROFILE_FIELDS = ("email", "userId", CHANNELS_FIELD)
# The only rows the profiles' export keeps hold this text (the client parses no other line).
CHANNELS_MARK = CHANNELS_FIELD.encode()
# Iterable's answers (400) to a per-user read of an identifier it does not take.
NOT_AN_IDENTIFIER = frozenset({"InvalidEmailAddressError", "InvalidUserIdError"})
# Per-user reads are never chosen for more requests than this, whatever the model says:
# the adds are held as members only up to MAX_TABLE_CHECK anyway.
MAX_LOOKUPS = 100_000
# Closed date windows the events are first read in when one export of them is cut off
# (then halved where they die): how unsubscribes spread over time is unknown.
EVENT_WINDOWS = 4


@dataclass(frozen=True)
class Departure:
    """A person whose latest unsubscribe from a list was their own (`source`)."""

    email: str | None
    user_id: str | None
    source: str


@dataclass(frozen=True)
class Optouts:
    """What the reads found: per list id, who left it themselves; and the identifiers of
    profiles unsubscribed from a channel taken as the lists' (lowercased emails, userIds)."""

    departures: Mapping[int, tuple[Departure, ...]] = field(default_factory=dict)
    channel_emails: frozenset[str] = frozenset()
    channel_user_ids: frozenset[str] = frozenset()


@dataclass
class Consented:
    lists: list[ListPlan]
    reads: list[str] = field(default_factory=list)  # what was read, for people


def _int_list(value: Any) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if not isinstance(value, list):
        return []
    return [x for x in value if isinstance(x, int) and not isinstance(x, bool)]


def _person(event: Mapping[str, Any]) -> tuple[str, str] | None:
    email, user_id = event.get("email"), event.get("userId")
    if isinstance(email, str) and email.strip():
        return ("email", email.strip().lower())
    if isinstance(user_id, str) and user_id:
        return ("userId", user_id)
    return None


def _moment(event: Mapping[str, Any]) -> float:
    """When an event was made, in epoch seconds, for ordering one person's unsubscribes:
    by the moment, not the text, which orders moments alike only while every event gives
    one form in one offset ("2026-01-01 09:30:00 -05:00" before "2026-01-01 10:00:00
    +00:00" by text, after it in time; an epoch in milliseconds beside either). -inf for
    one that gives no moment (see _order)."""
    value = event.get("createdAt")
    if isinstance(value, bool):
        return -math.inf
    if isinstance(value, int | float):
        # Iterable's epoch milliseconds; one past a float (an integer of 400 digits) or not
        # finite (NaN, Infinity, which Python's JSON reads) is no moment.
        try:
            seconds = value / 1000
        except OverflowError:
            return -math.inf
        return seconds if math.isfinite(seconds) else -math.inf
    try:
        return parse_instant(value).timestamp()
    except ConversionError:
        return -math.inf


def _source(event: Mapping[str, Any]) -> str:
    source = event.get("unsubSource")
    return source if isinstance(source, str) and source else UNKNOWN_SOURCE


def _order(event: Mapping[str, Any]) -> tuple[float, bool]:
    """Where an event goes among one person's, oldest first: by its moment, and at one
    moment (Iterable gives seconds) an API removal before the person's own unsubscribe,
    whatever order the export gave them in, which is no order within a second: an API
    removal taken as the later re-added someone who had just left. One without a moment
    can be shown to follow nothing: an API removal so comes first (any dated event
    outranks it), a person's own unsubscribe last (no dated API removal outranks it)."""
    moment, own = _moment(event), _source(event) not in API_SOURCES
    return (math.inf if own and moment == -math.inf else moment, own)


def self_departures(
    events: Iterable[Mapping[str, Any]],
    list_ids: Iterable[int],
    same_as: Mapping[int, Collection[int]] | None = None,
) -> dict[int, tuple[Departure, ...]]:
    """Per list in `list_ids`, the people whose latest unsubscribe from it was not sent by
    an API client. `events` in any order (_order orders them). `same_as` maps a list to
    those its events count for (lists made for one audience under other names: one list to
    consent, whose latest unsubscribe from any of them counts; a renamed key's old list
    counts for every list created beside it).

    An event names a person by the identifiers their profile had then, so one person's
    events need not name them alike: one who left while known by a userId alone, and was
    removed by an API client once their profile had an email too, is named by more the
    second time; and in userID-based projects two profiles may share an email. A later API
    unsubscribe is the person's latest only when it names every identifier their own one
    named, with the same values: never another profile's removal taken as theirs."""
    wanted = set(list_ids)
    same_as = same_as or {}
    ordered = sorted(enumerate(events), key=lambda item: (*_order(item[1]), item[0]))
    left: dict[int, dict[tuple[str | None, str | None], Departure]] = {}
    for _index, event in ordered:
        if _person(event) is None:
            continue
        named = set(_int_list(event.get("emailListIds"))) | set(_int_list(event.get("emailListId")))
        lists = {c for i in named & wanted for c in same_as.get(i, (i,))}
        if not lists:
            continue
        email, user_id = _identifiers_of(event)
        source = _source(event)
        for list_id in sorted(lists):
            found = left.setdefault(list_id, {})
            if source in API_SOURCES:
                # The departures it names all of: keyed by their identifiers, so looked up,
                # not searched for (a project's events and departures run to the 100,000s).
                for key in {(email, user_id), (email, None), (None, user_id)} - {(None, None)}:
                    found.pop(key, None)
            else:
                found[(email, user_id)] = Departure(email, user_id, source)
    return {
        list_id: tuple(found[k] for k in sorted(found, key=lambda k: (k[0] or "", k[1] or "")))
        for list_id, found in sorted(left.items())
        if found
    }


def _identifiers_of(event: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The event's email (lower case) and userId, each None when it names none."""
    email, user_id = event.get("email"), event.get("userId")
    return (
        email.strip().lower() if isinstance(email, str) and email.strip() else None,
        user_id if isinstance(user_id, str) and user_id else None,
    )


@dataclass(frozen=True)
class Lone:
    """Departures that name one identifier of a hybrid project's profile (the event names
    what the profile had then), where some add names the profile by the other alone."""

    emails: frozenset[str]  # departures by email alone, the adds' userIds to be joined
    user_ids: frozenset[str]  # departures by userId alone, the adds' emails to be joined

    def __bool__(self) -> bool:
        return bool(self.emails or self.user_ids)


def _lone_identifiers(
    departures: Mapping[int, tuple[Departure, ...]],
    lists: Sequence[ListPlan],
    project_type: ProjectType,
) -> Lone:
    """What the profile reads must also join (Lone). A person who left while known by
    email alone, whose profile got a userId later (Segment subscribes by email, an app
    identifies them afterwards), is named by the userId alone in a source keyed by userId:
    matched only by what each side names, the plan put them back on the list they left.
    Only in hybrid projects, where an email names one profile as a userId does (in
    userID-based ones profiles may share an email). Empty when no add could need it."""
    none = Lone(frozenset(), frozenset())
    if project_type != "hybrid":
        return none
    everyone = [d for found in departures.values() for d in found]
    by_email = frozenset(d.email for d in everyone if d.email is not None and d.user_id is None)
    by_id = frozenset(d.user_id for d in everyone if d.user_id is not None and d.email is None)
    if not by_email and not by_id:
        return none
    adds = [lp.add for lp in lists if lp.add and lp.consent_list_id is not None]
    if any(isinstance(a, TableRows) and len(a) > MAX_TABLE_CHECK for a in adds):
        return Lone(by_email, by_id)  # adds DuckDB holds are not walked here: join for any
    ids_alone = any(m.email is None and m.user_id is not None for a in adds for m in a)
    emails_alone = any(m.user_id is None and m.email is not None for a in adds for m in a)
    return Lone(by_email if ids_alone else frozenset(), by_id if emails_alone else frozenset())


def _joins(profile: Mapping[str, Any], lone: Lone) -> bool:
    """Whether a profile carries both identifiers and a lone departure names one."""
    email, user_id = profile.get("email"), profile.get("userId")
    if not (isinstance(email, str) and email.strip() and isinstance(user_id, str) and user_id):
        return False
    return email.strip().lower() in lone.emails or user_id in lone.user_ids


def joined_departures(
    departures: Mapping[int, tuple[Departure, ...]],
    profiles: Iterable[Mapping[str, Any]],
    lone: Lone,
) -> dict[int, tuple[Departure, ...]]:
    """`departures` with each lone one (Lone) named by both identifiers of the profile
    that now carries its one: the same person, whichever one a source names them by."""
    by_email: dict[str, str] = {}
    by_id: dict[str, str] = {}
    for profile in profiles:
        if not _joins(profile, lone):
            continue
        email, user_id = str(profile["email"]).strip().lower(), str(profile["userId"])
        by_email[email] = user_id
        by_id[user_id] = email
    if not by_email:
        return dict(departures)
    out: dict[int, tuple[Departure, ...]] = {}
    for list_id, found in departures.items():
        joined = []
        for d in found:
            if d.user_id is None and d.email in by_email:
                d = Departure(d.email, by_email[d.email], d.source)
            elif d.email is None and d.user_id in by_id:
                d = Departure(by_id[d.user_id], d.user_id, d.source)
            joined.append(d)
        out[list_id] = tuple(joined)
    return out


def email_channel_ids(channels: Sequence[Mapping[str, Any]]) -> frozenset[int]:
    """The channels a list's `channelUnsubscribe` can mean: every Email channel."""
    return frozenset(
        c["id"]
        for c in channels
        if isinstance(c.get("id"), int) and str(c.get("messageMedium", "")).lower() == "email"
    )


def channel_unsubscribed(
    profiles: Iterable[Mapping[str, Any]], channel_ids: frozenset[int] | None
) -> tuple[frozenset[str], frozenset[str]]:
    """(emails, userIds) of profiles unsubscribed from any of `channel_ids` (None: from any
    channel at all)."""
    emails: set[str] = set()
    user_ids: set[str] = set()
    for profile in profiles:
        ids = set(_int_list(profile.get(CHANNELS_FIELD)))
        if not ids or (channel_ids is not None and not ids & channel_ids):
            continue
        email, user_id = profile.get("email"), profile.get("userId")
        if isinstance(email, str) and email.strip():
            emails.add(email.strip().lower())
        if isinstance(user_id, str) and user_id:
            user_ids.add(user_id)
    return frozenset(emails), frozenset(user_ids)


def _matches(member: Member, emails: frozenset[str], user_ids: frozenset[str]) -> bool:
    return (member.email is not None and member.email.lower() in emails) or (
        member.user_id is not None and member.user_id in user_ids
    )


def hold_back(lp: ListPlan, optouts: Optouts) -> ListPlan:
    """The list's plan with its opted-out adds held back (or, under `resubscribe:
    allowed`, named as re-subscribed). Pure for adds held as members; adds still in DuckDB
    are filtered there."""
    consent_id = lp.consent_list_id
    if not lp.add or consent_id is None:
        return lp
    departures = optouts.departures.get(consent_id, ())
    if not departures and not optouts.channel_emails and not optouts.channel_user_ids:
        return lp
    if isinstance(lp.add, TableRows):
        return _table_hold_back(lp, lp.add, departures, optouts)
    left, unsubscribed = _opted_out(lp.add, departures, optouts)
    if not left and not unsubscribed:
        return lp
    if lp.resubscribe_allowed:
        return _resubscribed(lp, (*left, *unsubscribed))
    return _held_members(lp, lp.add, left, unsubscribed, departures)


def _resubscribed(lp: ListPlan, opted_out: Sequence[Member]) -> ListPlan:
    # In key order, as DuckDB lists them (_table_hold_back): the plan's sample of them
    # must not depend on the engine.
    return dataclasses.replace(lp, resubscribed=tuple(sorted(m.key for m in opted_out)))


def _held_members(
    lp: ListPlan,
    adds: Sequence[Member],
    left: Sequence[Member],
    unsubscribed: Sequence[Member],
    departures: Sequence[Departure],
) -> ListPlan:
    """The plan without the adds who left the list or unsubscribed from its channel."""
    gone = {m.key for m in (*left, *unsubscribed)}
    return _held(
        lp,
        tuple(m for m in adds if m.key not in gone),
        tuple(m.key for m in left),
        _sources(left, departures),
        tuple(m.key for m in unsubscribed),
    )


def _opted_out(
    adds: Sequence[Member], departures: Sequence[Departure], optouts: Optouts
) -> tuple[tuple[Member, ...], tuple[Member, ...]]:
    """Of `adds`: those who left the list themselves, and those who did not but are
    unsubscribed from its channel (leaving the list outranks the channel)."""
    left_emails = frozenset(d.email for d in departures if d.email is not None)
    left_ids = frozenset(d.user_id for d in departures if d.user_id is not None)
    left = tuple(m for m in adds if _matches(m, left_emails, left_ids))
    left_keys = {m.key for m in left}
    unsubscribed = tuple(
        m
        for m in adds
        if m.key not in left_keys and _matches(m, optouts.channel_emails, optouts.channel_user_ids)
    )
    return left, unsubscribed


def _sources(
    left: Sequence[Member], departures: Sequence[Departure]
) -> tuple[tuple[str, int], ...]:
    """How many of the held-back members left by each unsubSource."""
    by_email = {d.email: d.source for d in departures if d.email is not None}
    by_id = {d.user_id: d.source for d in departures if d.user_id is not None}
    counts: Counter[str] = Counter()
    for m in left:
        source = (by_email.get(m.email.lower()) if m.email else None) or (
            by_id.get(m.user_id) if m.user_id else None
        )
        counts[source or UNKNOWN_SOURCE] += 1
    return tuple(sorted(counts.items()))


def _held(
    lp: ListPlan,
    add: Sequence[Member],
    left: tuple[str, ...],
    sources: tuple[tuple[str, int], ...],
    unsubscribed: tuple[str, ...],
) -> ListPlan:
    gone = set(left) | set(unsubscribed)
    return dataclasses.replace(
        lp,
        add=add,
        add_fields=without_keys(lp.add_fields, gone),
        left_themselves=lp.left_themselves + left,
        left_sources=sources,
        channel_unsubscribed=lp.channel_unsubscribed + unsubscribed,
    )


def _table_hold_back(
    lp: ListPlan, adds: TableRows[Member], departures: Sequence[Departure], optouts: Optouts
) -> ListPlan:
    """The same in DuckDB, for adds that live in its workspace."""
    engine = adds.engine
    connection = engine.connection
    optout = engine.name("optouts")
    connection.execute(
        f"CREATE TEMP TABLE {optout} (reason VARCHAR, kind VARCHAR, value VARCHAR, source VARCHAR)"
    )
    rows: list[tuple[str, str, str, str | None]] = [
        ("left", "email", d.email, d.source) for d in departures if d.email is not None
    ]
    rows += [("left", "userId", d.user_id, d.source) for d in departures if d.user_id is not None]
    rows += [("channel", "email", e, None) for e in optouts.channel_emails]
    rows += [("channel", "userId", u, None) for u in optouts.channel_user_ids]
    connection.executemany(f"INSERT INTO {optout} VALUES (?, ?, ?, ?)", rows)
    # Each add's one reason: leaving the list ("left") outranks the channel (it says more).
    found = connection.execute(
        f"SELECT a.key, max(o.reason) AS reason, min(o.source) AS source "
        f"FROM {adds.table} a JOIN {optout} o ON (o.kind = 'email' AND lower(a.email) = o.value) "
        f"OR (o.kind = 'userId' AND a.user_id = o.value) GROUP BY a.key ORDER BY a.key"
    ).fetchall()
    if not found:
        connection.execute(f"DROP TABLE {optout}")
        return lp
    if lp.resubscribe_allowed:
        connection.execute(f"DROP TABLE {optout}")
        return dataclasses.replace(lp, resubscribed=tuple(key for key, _r, _s in found))
    kept = engine.name("adds")
    gone = engine.name("held")
    connection.execute(f"CREATE TEMP TABLE {gone} (key VARCHAR)")
    connection.executemany(f"INSERT INTO {gone} VALUES (?)", [(key,) for key, _r, _s in found])
    connection.execute(
        f"CREATE TABLE {kept} AS SELECT key, key_kind, email, user_id FROM {adds.table} "
        f"WHERE key NOT IN (SELECT key FROM {gone})"
    )
    connection.execute(f"DROP TABLE {optout}")
    connection.execute(f"DROP TABLE {gone}")
    left = tuple(key for key, reason, _s in found if reason == "left")
    counts = Counter(source or UNKNOWN_SOURCE for _k, reason, source in found if reason == "left")
    return _held(
        lp,
        member_rows(engine, kept, len(adds) - len(found)),
        left,
        tuple(sorted(counts.items())),
        tuple(key for key, reason, _s in found if reason == "channel"),
    )


@dataclass
class SharedEvents:
    """One plan's emailUnSubscribe events of projects several destinations name, by
    project (IterableClient.project_id): the list ids the read kept events about, its
    events (oldest first), its date windows, and the destination that read them. The
    events are the project's whichever destination asks: one export for every
    destination of a project, not one each from Iterable's 4 a minute."""

    reads: dict[str, tuple[frozenset[int], list[dict[str, Any]], int, str]] = field(
        default_factory=dict
    )


@dataclass(frozen=True)
class EventsShare:
    """How a destination takes part in SharedEvents: its project, its name, and the ids of
    every list of its project that a destination of the plan reads (the first read keeps
    the events about any of them, so the others need not read again)."""

    events: SharedEvents
    project: str
    destination: str
    group_ids: frozenset[int]


def read_optouts(
    client: IterableClient,
    lists: Sequence[ListPlan],
    reads: list[str],
    profiles_read: Sequence[Mapping[str, Any]] | None = None,
    project_type: ProjectType = "hybrid",
    largest_list: int = 0,
    profiles_from: str = "export job",
    share: EventsShare | None = None,
    users: UsersShare | None = None,
) -> Optouts:
    """The reads the consent guard needs for the lists that add members (see the module
    docstring). `profiles_read`: every channel-unsubscribed profile of the project, from
    the export that read the members (`profiles_from`: a job, or a user export started
    before the sources were read; its unsubscribedChannelIds asked for too): the
    profiles are then not read again. `largest_list`: the most members a list read holds
    (the project has at least as many profiles: what the export is modelled on).
    `share`: the events of the project read once for every destination naming it;
    `users`: its user export, likewise, where the profiles are read by an export."""
    same_as = _lineage(lists)
    list_ids = frozenset(same_as)
    events, event_windows, reader = _unsubscribe_events(client, list_ids, share)
    departures = self_departures(events, list_ids, same_as)
    try:
        found = email_channel_ids(client.get_channels())
        channel_ids: frozenset[int] | None = found
        channels_note = f"{len(found)} email channel{'s' if len(found) != 1 else ''}"
    except IterableError as exc:
        channel_ids = None
        channels_note = (
            f"channels could not be read ({_why(exc)}): any channel unsubscribe holds a member back"
        )
    wanted = _identifiers(lists)
    lone = _lone_identifiers(departures, lists, project_type)

    def added(profile: dict[str, Any]) -> bool:
        if wanted is None:
            return True
        email, user_id = profile.get("email"), profile.get("userId")
        return (isinstance(email, str) and email.strip().lower() in wanted[0]) or (
            isinstance(user_id, str) and user_id in wanted[1]
        )

    def keep(profile: dict[str, Any]) -> bool:
        if not profile.get(CHANNELS_FIELD) and not (lone and _joins(profile, lone)):
            return False
        return added(profile)

    # Only channel-unsubscribed profiles are held, and of those only the adds' when they
    # are known here.
    profiles: Iterable[Mapping[str, Any]]
    # The events export is this destination's to count only where it made it.
    own_events = reader is None
    if profiles_read is not None:
        profiles = [p for p in profiles_read if keep(dict(p))]
        from_members = f"profiles' {CHANNELS_FIELD} from the members' {profiles_from}"
        how = f"1 export (emailUnSubscribe events; {from_members})" if own_events else from_members
        if lone:
            # That export kept only channel-unsubscribed profiles: the profiles joining a
            # lone departure (_lone_identifiers) are read as the guard reads profiles.
            joining, joined_how = _read_profiles(
                client,
                lists,
                project_type,
                lambda p: _joins(p, lone) and added(p),
                largest_list,
                users,
                whole=True,
                events=False,  # counted above
            )
            profiles = [*profiles, *joining]
            how += f"; then, for who left named by one identifier, {joined_how}"
    else:
        profiles, how = _read_profiles(
            client, lists, project_type, keep, largest_list, users, bool(lone), own_events
        )
    if lone:
        departures = joined_departures(departures, profiles, lone)
    emails, user_ids = channel_unsubscribed(profiles, channel_ids)
    if event_windows:
        how += (
            f"; the emailUnSubscribe events in {event_windows} date windows, one export "
            "being cut off"
        )
        behind = clock_behind_note(client)
        if behind:
            how += f", planned by {behind}"
    if reader is not None:
        how += f"; {shared_events_note(reader)}"
    reads.append(f"consent read with {how} and 1 read of the channels ({channels_note})")
    return Optouts(departures, emails, user_ids)


def shared_events_note(reader: str) -> str:
    """What a plan says of emailUnSubscribe events another destination exported."""
    return (
        f"the emailUnSubscribe events taken from the export of destination {reader!r}, "
        "which names the same Iterable project"
    )


def _about(list_ids: frozenset[int]) -> Callable[[dict[str, Any]], bool]:
    """Whether an emailUnSubscribe event is about any of these lists."""

    def about(event: dict[str, Any]) -> bool:
        ids = _int_list(event.get("emailListIds")) + _int_list(event.get("emailListId"))
        return any(i in list_ids for i in ids)

    return about


def _unsubscribe_events(
    client: IterableClient, list_ids: frozenset[int], share: EventsShare | None
) -> tuple[list[dict[str, Any]], int, str | None]:
    """The emailUnSubscribe events about `list_ids` (oldest first), the date windows
    read, and the destination whose export they were taken from when not this one's
    (`share`: read once for the project's destinations: the events about every list of
    theirs, each destination keeping those about its own, as its own read keeps them)."""
    if share is None:
        events, windows = _export_about(client, list_ids)
        return events, windows, None
    read = share.events.reads.get(share.project)
    if read is None or not list_ids <= read[0]:
        wanted = list_ids | share.group_ids
        events, windows = _export_about(client, wanted)
        read = (wanted, events, windows, share.destination)
        share.events.reads[share.project] = read
    _ids, events, windows, reader = read
    mine = _about(list_ids)
    return (
        [event for event in events if mine(event)],
        windows,
        reader if reader != share.destination else None,
    )


def _export_about(
    client: IterableClient, list_ids: frozenset[int]
) -> tuple[list[dict[str, Any]], int]:
    """export_unsubscribes of the events about these lists."""
    # Only events about the lists planned are held: a project's unsubscribes from
    # campaigns' channels can be many. An event about a list holds its id's digits (JSON
    # spells an integer no other way), so no other line is parsed.
    return export_unsubscribes(
        client, _about(list_ids), tuple(str(i).encode() for i in sorted(list_ids))
    )


def export_unsubscribes(
    client: IterableClient,
    keep: Callable[[dict[str, Any]], bool],
    marked: Sequence[bytes],
    clock: Callable[[], datetime] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The emailUnSubscribe events `keep` accepts, oldest first, from one export; where
    Iterable cuts that export off every time (a project with very many unsubscribes),
    from date windows over createdAt (state/windows.py's, read one after the other, the
    oldest first and the open one last): an event's createdAt never changes, so each is in
    exactly one window, and the windows' events in their order are the one export's.
    Also the window requests made (0: the one export did). A window that dies is read
    again as two halves; both failing raises."""
    try:
        return list(
            client.export_events(UNSUBSCRIBE_DATA_TYPE, EVENT_FIELDS, keep=keep, marked=marked)
        ), 0
    except IterableError as exc:
        if not cut_off(exc):
            raise
    # Iterable's clock, not ours: the windows are over the times it stamps (createdAt).
    now = clock or client.iterable_now
    latest = clock or client.iterable_latest
    span = timedelta(days=client.settings.export_window_days)
    pending = plan_windows(now(), EVENT_WINDOWS, span)
    attempts: dict[Window, int] = {}
    events: list[dict[str, Any]] = []
    requests = 0
    while pending:
        window = pending.pop(0)
        requests += 1
        try:
            events += client.export_events(
                UNSUBSCRIBE_DATA_TYPE,
                EVENT_FIELDS,
                keep=keep,
                marked=marked,
                window=window.params(latest()),
            )
        except StreamCut:
            halves = split_window(window, now())
            if halves is not None:
                pending[:0] = halves
                continue
            attempts[window] = attempts.get(window, 0) + 1
            if attempts[window] > UNSPLITTABLE_RETRIES:
                raise LiveStateError(
                    f"the emailUnSubscribe export's window {window.describe()} (one second) "
                    f"died {attempts[window]} times; it cannot be cut smaller"
                ) from None
            pending.insert(0, window)
    return events, requests


# -- the profiles' channel unsubscribes: per-user reads or one export --------------------

ProfileRead = Literal["lookups", "export"]


def people_to_look_up(
    lists: Sequence[ListPlan], project_type: ProjectType
) -> list[tuple[str | None, str | None]] | None:
    """The (email, userId) of every member added to an existing list (or to one taking the
    place of lists under another name), once each; None when
    per-user reads cannot answer what the export does: in userID-based projects profiles
    may share an email and GET /api/users/{email} answers one of them, while a member is
    held back when any profile with its email is unsubscribed; and adds beyond
    MAX_TABLE_CHECK stay in DuckDB."""
    if _identifiers(lists) is None:
        return None
    people: dict[tuple[str | None, str | None], None] = {}
    for lp in lists:
        if not lp.add or lp.consent_list_id is None:
            continue
        for m in lp.add:
            email = m.email.strip().lower() if m.email and m.email.strip() else None
            people[(email, m.user_id or None)] = None
    if project_type == "userId" and any(email is not None for email, _u in people):
        return None
    return list(people)


def lookup_requests(people: Sequence[tuple[str | None, str | None]]) -> int:
    """Requests the per-user reads take at most: one per identifier."""
    return sum((email is not None) + (user_id is not None) for email, user_id in people)


def choose_profile_read(
    requests: int | None,
    largest_list: int,
    settings: ClientSettings,
    project_profiles: int | None,
    capped: bool = True,
) -> tuple[ProfileRead, str]:
    """Per-user reads or one user export, by the time each is modelled to take under
    Iterable's limits (the reason said in the plan): the one model of the plan's consent
    read and the apply's reads of removals (apply/channel_profiles.py). `requests` None:
    per-user reads cannot answer (people_to_look_up). The export streams every profile of
    the project: `project_profiles` of them, as this run's whole export of it counted
    them (IterableClient.project_profiles), or, where none was made (None), at least
    `largest_list` (state/routes.py export_seconds: a lower bound; 300 adds to a list of
    1,000 in a project of 5M chose 42 minutes of export over 3 s of reads), and the export
    must then win by routes.FEW_LISTS_EXPORT_MARGIN, as the member read asks of an export
    of a project of unknown size. `capped`: per-user reads are never chosen for more than
    MAX_LOOKUPS requests (False: by the model alone)."""
    if requests is None:
        return "export", ""
    counted = project_profiles is not None
    profiles = max(largest_list, project_profiles or 0)
    rate = settings.user_reads_per_second * settings.time_scale
    by_lookups = requests / rate if rate > 0 else 0.0
    by_export = export_seconds([profiles], settings)
    margin = 1.0 if counted else FEW_LISTS_EXPORT_MARGIN
    # No list read yet (only lists to create) gives no lower bound: "at least 0" read as
    # an empty project.
    every = (
        f"{profiles:,}" if counted else f"at least {profiles:,}" if profiles else "how many unknown"
    )
    # "At most": one read per identifier, but a profile found by its email that carries
    # the person's userId answers for both (read_profiles_by_lookups), so the plan's
    # count of reads made may be lower; two bare numbers for one thing read as a mistake.
    if (not capped or requests <= MAX_LOOKUPS) and by_lookups <= by_export * margin:
        return "lookups", (
            f"about {duration(by_lookups)} by at most {requests:,} per-user read"
            f"{'s' if requests != 1 else ''} against {duration(by_export)} or more by one "
            f"export of every profile ({every})"
        )
    return "export", (
        f"about {duration(by_export)} or more by one export of every profile ({every}) "
        f"against {duration(by_lookups)} by at most {requests:,} per-user reads"
    )


def _read_profiles(
    client: IterableClient,
    lists: Sequence[ListPlan],
    project_type: ProjectType,
    keep: Callable[[dict[str, Any]], bool],
    largest_list: int,
    users: UsersShare | None = None,
    whole: bool = False,
    events: bool = True,
) -> tuple[list[dict[str, Any]], str]:
    """The channel-unsubscribed profiles `keep` accepts, and how they were read (by an
    export: from `users`, the project's export shared by the plan's destinations naming
    it, when given). `whole`: `keep` also takes profiles without a channel unsubscribe
    (_lone_identifiers), so an export's every line is parsed, not only those holding
    one. `events`: the text counts the emailUnSubscribe events' export too (this
    destination made it)."""
    and_events = "1 export (emailUnSubscribe events) and " if events else ""
    mark = b"" if whole else CHANNELS_MARK
    people = people_to_look_up(lists, project_type)
    requests = lookup_requests(people) if people is not None else None
    route, why = choose_profile_read(
        requests, largest_list, client.settings, client.project_profiles
    )
    why = f"; {why}" if why else ""
    if route == "lookups":
        assert people is not None
        found, made = read_profiles_by_lookups(client, people)
        return [p for p in found if keep(p)], f"{and_events}{_by_lookups(made)}{why}"
    if users is not None and users.serves(PROFILE_FIELDS, 0, client.settings, route):
        rows = users.read_rows(f"profiles' {CHANNELS_FIELD}", mark)
        profiles = [{k: p.get(k) for k in PROFILE_FIELDS} for p in rows if keep(p)]
        taken = users.taken_text()
        if taken:  # one export of this read's own: the events
            return profiles, f"{and_events}profiles' {CHANNELS_FIELD} from {taken}{why}"
        how = users.export_text()
    else:
        profiles, windows, whole = export_users_whole(
            client, PROFILE_FIELDS, keep, project_type, marked=(mark,) if mark else ()
        )
        # A project too big for one export stream is read in date windows.
        how = f" in {windows:,} date windows, {windows_reason(whole)}" if windows else ""
    if not events:
        return profiles, f"1 export (profiles' {CHANNELS_FIELD}{how}){why}"
    return profiles, f"2 exports (emailUnSubscribe events, profiles' {CHANNELS_FIELD}{how}){why}"


def _by_lookups(requests: int) -> str:
    return f"{requests:,} per-user read{'s' if requests != 1 else ''} of profiles' {CHANNELS_FIELD}"


def read_profiles_by_lookups(
    client: IterableClient,
    people: Sequence[tuple[str | None, str | None]],
) -> tuple[list[dict[str, Any]], int]:
    """The profiles of `people` (email, userId and unsubscribedChannelIds, as the export
    gives them; the caller keeps those it needs), one GET per identifier, paced at
    user_reads_per_second; and the requests made. A profile found by one identifier that
    carries the person's other one answers for both (emails and userIds each name one
    profile in email-based and hybrid projects). An unknown user (200 {}) has no
    unsubscribe; a read that fails after its retries raises: the plan fails rather than
    guess, and the reads not yet made are not made."""
    made = 0
    lock = threading.Lock()
    stop = threading.Event()

    def read(person: tuple[str | None, str | None]) -> list[dict[str, Any]]:
        nonlocal made
        email, user_id = person
        found: list[dict[str, Any]] = []
        asks = [{"email": email}] if email is not None else []
        asks += [{"user_id": user_id}] if user_id is not None else []
        for ask in asks:
            if stop.is_set():
                raise LiveStateError("the per-user reads were abandoned")
            with lock:
                made += 1
            try:
                profile = client.get_user(**ask)
            except IterableError as exc:
                if exc.status != 400 or exc.code not in NOT_AN_IDENTIFIER:
                    raise
                # Iterable refuses the identifier itself (an email it does not take, as
                # two..dots@): no profile can have it, as no export row would.
                profile = None
            if profile is None:
                continue  # no such user: nobody to hold back by this identifier
            found.append({k: profile.get(k) for k in PROFILE_FIELDS})
            if "email" in ask and user_id is not None and profile.get("userId") == user_id:
                break  # the profile of the email is the userId's too
        return found

    # A reading pool: Ctrl-C does not wait for the reads in flight, which a 503 or a 429
    # keeps retrying for half a minute and more each (plan waited for them, a minute
    # after Ctrl-C, before it said it was interrupted).
    with reading_pool(max(1, client.settings.concurrency), "reconciler-consent") as pool:
        try:
            answers = list(pool.map(read, people))
        except BaseException:
            stop.set()
            raise
    return [p for found in answers for p in found], made


def _lineage(lists: Sequence[ListPlan]) -> dict[int, set[int]]:
    """Every list whose departures bear on the adds planned, to the list ids they count
    for (ListPlan.consent_list_id): a list's own id, and the lists made for its audience
    under other names. A renamed key's old list is the former list of every list created
    beside it (planning.with_former_lists), so it may count for several."""
    same_as: dict[int, set[int]] = {}
    for lp in lists:
        consent_id = lp.consent_list_id
        if not lp.add or consent_id is None:
            continue
        for list_id in (consent_id, *lp.former_list_ids):
            same_as.setdefault(list_id, set()).add(consent_id)
    return same_as


def _identifiers(lists: Sequence[ListPlan]) -> tuple[frozenset[str], frozenset[str]] | None:
    """The emails and userIds of the members added to existing lists (or to ones taking the
    place of lists under another name), or None when more than
    MAX_TABLE_CHECK of them live in DuckDB (a first load of millions): then every
    channel-unsubscribed profile is held, and matched there."""
    emails: set[str] = set()
    user_ids: set[str] = set()
    for lp in lists:
        if not lp.add or lp.consent_list_id is None:
            continue
        if isinstance(lp.add, TableRows) and len(lp.add) > MAX_TABLE_CHECK:
            return None
        for m in lp.add:
            if m.email is not None:
                emails.add(m.email.lower())
            if m.user_id is not None:
                user_ids.add(m.user_id)
    return frozenset(emails), frozenset(user_ids)


def _why(exc: IterableError) -> str:
    """The failure without Iterable's message, which may quote a member's identifier."""
    where = f"{exc.endpoint}: " if exc.endpoint else ""
    return f"{where}HTTP {exc.status}" if exc.status else f"{where}no answer"


def respect_consent(
    client: IterableClient,
    project_type: ProjectType,
    lists: Sequence[ListPlan],
    profiles_read: Sequence[Mapping[str, Any]] | None = None,
    largest_list: int = 0,
    profiles_from: str = "export job",
    share: EventsShare | None = None,
    users: UsersShare | None = None,
) -> Consented:
    """Hold back the adds of people who opted out (module docstring). Reads nothing unless
    some existing list gets adds (or a list made in place of ones under another name:
    ListPlan.former_list_ids). A failed read fails the plan: sending without knowing
    who opted out could re-subscribe them."""
    out = Consented(list(lists))
    if not any(lp.add and lp.consent_list_id is not None for lp in out.lists):
        return out
    # Matching is by email or userId in every project type: in userID-based projects two
    # profiles may share an email, and holding both back is the side that keeps consent.
    # (The project type only shapes a windowed read's merge.)
    optouts = read_optouts(
        client,
        out.lists,
        out.reads,
        profiles_read,
        project_type,
        largest_list,
        profiles_from,
        share,
        users,
    )
    out.lists = [hold_back(lp, optouts) for lp in out.lists]
    return out


def recheck_saved(saved: Plan, current: Plan) -> Plan:
    """`apply --plan`: the saved plan with the adds held back that `current` (a plan made
    now, from the same manifests and the same lists: the stale check has passed) holds back.

    A saved plan can wait days for review. A member may meanwhile unsubscribe from the
    channel, or leave the list by a link after someone else added them, and neither
    changes the list's members, so the plan is not stale; sending its adds as saved would
    re-subscribe them. The plan made for the stale check has read consent afresh, so this
    costs no read of its own. Only adds are taken away: the rest is applied as reviewed."""
    now = {(d.destination, lp.list_name): lp for d in current.destinations for lp in d.lists}
    return dataclasses.replace(
        saved,
        destinations=tuple(
            dataclasses.replace(
                d,
                lists=tuple(_recheck(lp, now.get((d.destination, lp.list_name))) for lp in d.lists),
            )
            for d in saved.destinations
        ),
    )


def _recheck(lp: ListPlan, now: ListPlan | None) -> ListPlan:
    # A list the saved plan creates is checked too: one made in place of a list under
    # another name is held to that list's departures (now.former_list_ids), and a plan
    # file does not keep which lists those were, nor which its marker is to name.
    if now is not None and lp.create:
        lp = dataclasses.replace(lp, carried_list_ids=now.carried_list_ids)
    if now is None or not lp.add:
        return lp
    if lp.resubscribe_allowed:
        # Nobody is held back; the re-added who had left are still named (the bold warning).
        again = _keys_in(lp.add, frozenset(now.resubscribed) - set(lp.resubscribed))
        return dataclasses.replace(lp, resubscribed=lp.resubscribed + tuple(sorted(again)))
    left = _keys_in(lp.add, frozenset(now.left_themselves))
    unsubscribed = _keys_in(lp.add, frozenset(now.channel_unsubscribed)) - left
    if not left and not unsubscribed:
        return lp
    gone = left | unsubscribed
    held = _held(
        lp,
        _without(lp.add, gone),
        tuple(sorted(left)),
        _merged_sources(lp, now, len(left)),
        tuple(sorted(unsubscribed)),
    )
    return dataclasses.replace(held, held_since_plan=tuple(sorted(gone)))


def _merged_sources(lp: ListPlan, now: ListPlan, new: int) -> tuple[tuple[str, int], ...]:
    """The saved plan's unsubSource counts and those of the `new` members held back as
    having left. Only counts are kept per list: the new ones' sources are what the plan
    made now counts beyond the saved one's (exact when those who had left stay left, the
    usual case), and any that cannot be told apart are counted as unknown."""
    if not new:
        return lp.left_sources
    saved = Counter(dict(lp.left_sources))
    beyond = Counter(dict(now.left_sources))
    beyond.subtract(saved)
    added: Counter[str] = Counter()
    for source, count in sorted(beyond.items()):
        take = min(count, new - sum(added.values()))
        if take > 0:
            added[source] += take
    added[UNKNOWN_SOURCE] += new - sum(added.values())
    return tuple(sorted((saved + added).items()))


def _keys_in(adds: Sequence[Member], keys: frozenset[str]) -> set[str]:
    """Which of `keys` are keys of `adds` (in DuckDB when the adds live there)."""
    if not keys:
        return set()
    if not isinstance(adds, TableRows):
        return {m.key for m in adds if m.key in keys}
    connection = adds.engine.connection
    wanted = adds.engine.name("recheck")
    connection.execute(f"CREATE TEMP TABLE {wanted} (key VARCHAR)")
    connection.executemany(f"INSERT INTO {wanted} VALUES (?)", [(k,) for k in sorted(keys)])
    found = connection.execute(
        f"SELECT a.key FROM {adds.table} a JOIN {wanted} w ON a.key = w.key"
    ).fetchall()
    connection.execute(f"DROP TABLE {wanted}")
    return {key for (key,) in found}


def _without(adds: Sequence[Member], gone: set[str]) -> Sequence[Member]:
    """`adds` but the members keyed in `gone` (all of which are among them)."""
    if not isinstance(adds, TableRows):
        return tuple(m for m in adds if m.key not in gone)
    engine = adds.engine
    connection = engine.connection
    held, kept = engine.name("held"), engine.name("adds")
    connection.execute(f"CREATE TEMP TABLE {held} (key VARCHAR)")
    connection.executemany(f"INSERT INTO {held} VALUES (?)", [(k,) for k in sorted(gone)])
    connection.execute(
        f"CREATE TABLE {kept} AS SELECT key, key_kind, email, user_id FROM {adds.table} "
        f"WHERE key NOT IN (SELECT key FROM {held})"
    )
    connection.execute(f"DROP TABLE {held}")
    return member_rows(engine, kept, len(adds) - len(gone))
