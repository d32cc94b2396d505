"""The profiles a hybrid project's removals with channelUnsubscribe are resolved against,
read by one user export when that is modelled to be faster than reading them one by one.

Such a removal whose identifier is an email in lower case may name the member by its email
or by its userId, and another profile may hold that text as the other one: before it is
sent, the apply reads which profile the list read named by it (executor._kind_on_list),
GET /api/users/{email} and then byUserId, at most two reads a removal at Iterable's 100 a
second: a churn of a million such removals was 3 to 6 hours of reads. One user export of
the project (email, userId and userListIds of every profile, the fields those reads are
judged by) answers the same question for every removal at once, at the export's rate;
which is faster is chosen by the model the plan's consent read uses
(consent.choose_profile_read, without its cap on per-user reads), so a few removals are
still a few reads. The export is read once per destination, before the first such removal
is sent, and only the profiles holding one of the removals' texts as their email or userId
are kept. It is as safe as the reads: each removal is judged by the same rule on the same
fields, and a text no profile has is not sent; what it gives up is freshness, the export
being up to minutes older than a read made just before each request (and newer than the
list read the plan was made from).

A userID-based destination's removals with channelUnsubscribe whose userId is shaped like
an email in lower case are likewise read first, one GET /api/users/byUserId each
(executor._unsubscribe_user_ids_channel_safely: sent only when that profile is on the
list), which in a project whose userIds are emails is one read per removal. The same
export answers them: it names each profile by its userId, which is unique in such a
project, with its `userListIds`, the fields that read is judged by; the model is priced at
one read each (those the export finds off the list are then read by email one by one, as
before: a rare case, and one a project's shared emails would make an export answer
ambiguously).

A user export likewise answers the removals (without channelUnsubscribe) of a hybrid batch that an
answer of counts left unnamed (executor._as_the_other_kind): each text no profile has as
the kind it was sent as is sent again as the other, which was one read of each such text
of the batch, up to 1,000 a batch in a project whose userIds are emails (unnamed_profiles).
The export that answers the channel removals (the plan's or the apply's own) keeps those
texts' profiles too, at no cost but their memory, so that it answers them as well: one run
never exports the project once for each kind of removal.

Where the plan read the lists' members by a user export (with email, userId and
userListIds) and the apply follows it in the same process, that export answers instead
(PlanProfiles), if it was started at most a minute before the first such removal is
sent: Iterable's reads lag its writes by up to a minute, so an export made then may be as
old. Never one a saved plan was made from (another process), nor one older: then an
export or per-user reads are chosen as above."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.errors import IterableError, LiveStateError
from reconciler.iterable import ClientSettings, IterableClient
from reconciler.members.identity import ProjectType, looks_like_email
from reconciler.members.model import batches
from reconciler.plan import ListPlan
from reconciler.state.consent import choose_profile_read
from reconciler.state.users_file import ROWS_PER_SECOND, UsersFile
from reconciler.state.windows import export_users_whole
from reconciler.threads import start_thread
from reconciler.uptime import uptime
from reconciler.words import quantity

# What a per-user read's answer is judged by (executor._kind_on_list, _named_by).
FIELDS = ("email", "userId", "userListIds")
Kind = Literal["email", "userId"]
# How often a wait for the export looks at the run's stop flag.
_STOP_LOOK_SECONDS = 0.2
# How long after its start the plan's export answers for the apply: Iterable's reads lag
# its writes by up to about a minute (its docs; its own client's tests wait 60 s), so an
# export made at the first removal may be that old too.
FRESH_SECONDS = 60.0


def ambiguous(identifier: str) -> bool:
    """A hybrid list's identifier that may be an email as well as a userId."""
    return looks_like_email(identifier) and identifier == identifier.lower()


# A profile as kept: its email, its userId, and which of the channel lists it is on
# (a tuple each, not a dict: a churn of a million keeps up to two million).
_Kept = tuple[str | None, str | None, tuple[int, ...]]


@dataclass(repr=False)  # members' identities: never in a traceback's text
class ChannelProfiles:
    """The profiles holding each of `wanted` as their email or userId, as one export
    found them: what GET /api/users/{email} or byUserId would answer for those texts,
    their memberships cut to `list_ids` (the lists the removals are from). Called with
    each row of the export as its `keep`, it records the row and keeps none."""

    wanted: frozenset[str]
    list_ids: frozenset[int]
    by_email: dict[str, _Kept] = field(default_factory=dict)
    by_user_id: dict[str, _Kept] = field(default_factory=dict)

    def answers(self, identifier: str) -> bool:
        return identifier in self.wanted

    def profile(self, kind: Kind, identifier: str) -> dict[str, Any] | None:
        kept = (self.by_email if kind == "email" else self.by_user_id).get(identifier)
        if kept is None:
            return None
        email, user_id, lists = kept
        return {"email": email, "userId": user_id, "userListIds": list(lists)}

    def __call__(self, row: dict[str, Any]) -> bool:
        email, user_id = _email(row), _user_id(row)
        by_email, by_user_id = email in self.wanted, user_id in self.wanted
        if by_email or by_user_id:
            lists = tuple(i for i in _list_ids(row.get("userListIds")) if i in self.list_ids)
            kept = (email, user_id, lists)
            if by_email and email is not None:
                self.by_email[email] = kept
            if by_user_id and user_id is not None:
                self.by_user_id[user_id] = kept
        return False


def channel_removals(lists: Sequence[ListPlan]) -> frozenset[str]:
    """The removals of `lists` (a hybrid or userID-based destination's) that are resolved
    by a profile read: those of audiences with channelUnsubscribe whose text may be an
    email or a userId. Read a batch at a time (they may be rows in the DuckDB
    workspace)."""
    return frozenset(
        identifier
        for lp in lists
        if lp.channel_unsubscribe and lp.has_changes
        for batch in batches(lp.remove, 10_000)
        for identifier in batch
        if ambiguous(identifier)
    )


@dataclass(repr=False)
class PlanProfiles:
    """ChannelProfiles the plan's own user export answered, and when (uptime()) that
    export was started."""

    profiles: ChannelProfiles
    started: float

    def age(self) -> float:
        return uptime() - self.started

    def fresh(self, time_scale: float, now: float | None = None) -> bool:
        """Whether the export is no older than a fresh one may be (FRESH_SECONDS)."""
        return _fresh(self.started, time_scale, now)


def _fresh(started: float, time_scale: float, now: float | None = None) -> bool:
    age = (uptime() if now is None else now) - started
    return age <= FRESH_SECONDS / time_scale


def plan_profiles(
    users: UsersFile | None,
    lists: Sequence[ListPlan],
    settings: ClientSettings,
    project_type: ProjectType,
) -> PlanProfiles | None:
    """The profiles of a hybrid or userID-based destination's channel removals (`lists`)
    from `users`, the export its plan read the members by, for an apply right after the
    plan; None when it lacks what they are judged by, when its start is unknown or
    already more than FRESH_SECONDS ago, or when parsing its every line takes longer
    than the per-user reads would take at Iterable's rate."""
    if users is None or users.started is None or not set(FIELDS) <= users.fields:
        return None
    if not _fresh(users.started, settings.time_scale):
        return None  # too old already (a long export): no apply could take it
    channel = channel_removals(lists)
    if not channel:
        return None
    rate = settings.user_reads_per_second * settings.time_scale
    by_reads = reads_per_removal(project_type) * len(channel) / rate if rate > 0 else 0.0
    if users.rows / ROWS_PER_SECOND >= by_reads:
        return None
    profiles = ChannelProfiles(_wanted(lists, channel, project_type), _channel_list_ids(lists))
    for row in users.read_rows("", b"@"):
        profiles(row)
    return PlanProfiles(profiles, users.started)


def _channel_list_ids(lists: Sequence[ListPlan]) -> frozenset[int]:
    return frozenset(
        lp.list_id for lp in lists if lp.channel_unsubscribe and lp.list_id is not None
    )


def reads_per_removal(project_type: ProjectType) -> int:
    """Per-user reads a channel removal makes at most (hybrid: the email's, then
    byUserId) or, in a userID-based project, at least (byUserId; one found off the list
    is read by email too)."""
    return 2 if project_type == "hybrid" else 1


def channel_removals_text(count: int, project_type: ProjectType) -> str:
    """What the channel removals resolved by a profile read are, for stderr."""
    whose = (
        "userId is shaped like an email"
        if project_type == "userId"
        else "identifier may be an email or a userId"
    )
    return f"{quantity(count, 'removal')} with channelUnsubscribe whose {whose}"


def _wanted(
    lists: Sequence[ListPlan], channel: frozenset[str], project_type: ProjectType
) -> frozenset[str]:
    """The texts an export for the channel removals keeps profiles for: theirs, and a
    hybrid destination's unnamed removals' too (executor._unnamed_profiles)."""
    return channel | unnamed_removals(lists) if project_type == "hybrid" else channel


def read_channel_profiles(
    client: IterableClient,
    lists: Sequence[ListPlan],
    stop: threading.Event,
    project_type: ProjectType = "hybrid",
) -> ChannelProfiles | None:
    """One user export's profiles for the channel removals of `lists` (a hybrid or
    userID-based destination's), when it is modelled to be faster than the per-user reads
    (reads_per_removal each; None: read them one by one, as before). Says which and why
    on stderr. An export that fails leaves them to the per-user reads (None): slower, as
    safe. Once the run is interrupted (`stop`) the export is left to end with the
    process, not waited for (it may stream for many minutes; the requests after it are
    not sent anyway)."""
    wanted = channel_removals(lists)
    if not wanted:
        return None
    why = export_is_faster(
        client, reads_per_removal(project_type) * len(wanted), len(wanted), lists
    )
    if why is None:
        return None
    # The client's notices name the destination.
    what = channel_removals_text(len(wanted), project_type)
    client.tell(f"{what}: reading which profile each names by 1 user export ({why})")
    profiles = ChannelProfiles(_wanted(lists, wanted, project_type), _channel_list_ids(lists))
    return _exported(client, profiles, what, stop, project_type)


def unnamed_removals(lists: Sequence[ListPlan]) -> frozenset[str]:
    """The removals of `lists` (a hybrid destination's) that executor._as_the_other_kind
    may read when an answer of counts leaves them unnamed: those of audiences without
    channelUnsubscribe whose text may be an email or a userId."""
    return frozenset(
        identifier
        for lp in lists
        if not lp.channel_unsubscribe and lp.has_changes
        for batch in batches(lp.remove, 10_000)
        for identifier in batch
        if ambiguous(identifier)
    )


def unnamed_profiles(
    client: IterableClient, wanted: frozenset[str], why: str, stop: threading.Event
) -> ChannelProfiles | None:
    """One user export's profiles for `wanted` (unnamed_removals), read once
    export_is_faster says so (`why`) for the per-user reads the batches answered short so
    far made and the one at hand would make. Which batches come back short is not known
    before their answers (one user deleted since the plan suffices), so the reads are
    counted as they are made and the export is read once they would take longer than it
    (five times longer in a project no export of this run counted, whose size is known
    only as its largest list): a few short batches are a few reads, and many cost at most
    twice the faster of the two, or six times it where the project's size is unknown.
    Says so and why on stderr; an export that fails leaves them to the per-user reads
    (None), as for channel removals."""
    what = (
        f"{quantity(len(wanted), 'removal')} whose identifier may be an email or a userId, "
        "answered by counts that name none"
    )
    client.tell(
        f"{what}: reading which no profile has as the kind each was sent as by 1 user export "
        f"({why})"
    )
    # Only whether a profile has the text is asked: no list memberships are kept.
    return _exported(client, ChannelProfiles(wanted, frozenset()), what, stop, "hybrid")


def export_is_faster(
    client: IterableClient, reads: int, wanted: int, lists: Sequence[ListPlan]
) -> str | None:
    """Why one user export is modelled faster than `reads` per-user reads (None: it is
    not). The export streams every profile of the project: as many as this run's whole
    export of it counted, else at least the destination's largest list (a lower bound: 300
    removals from a list of 5,000 in a project of 5M chose 42 minutes of export over 6 s
    of reads), which must then win by the margin the member read asks of an export of a
    project of unknown size. By the model alone: consent's cap on per-user reads is for
    adds it holds in memory, and 60,000 removals from a list of 5M are 20 minutes of reads
    against 40 or more."""
    largest = max([wanted, *(lp.live_count for lp in lists)])
    route, why = choose_profile_read(
        reads, largest, client.settings, client.project_profiles, capped=False
    )
    return why if route == "export" else None


def _exported(
    client: IterableClient,
    profiles: ChannelProfiles,
    what: str,
    stop: threading.Event,
    project_type: ProjectType,
) -> ChannelProfiles | None:
    """`profiles` filled by one user export (None: it failed, or the run was stopped)."""
    try:
        _unless_stopped(
            lambda: export_users_whole(client, FIELDS, profiles, project_type, (b"@",)).rows,
            stop,
        )
    except _Stopped:
        return None
    except (IterableError, LiveStateError, OSError) as exc:
        # Said by its status alone: an export's error may quote a line of profiles.
        how = f"HTTP {exc.status}" if isinstance(exc, IterableError) and exc.status else "no answer"
        client.tell(f"{what}: the user export failed ({how}); reading each profile instead")
        return None
    return profiles


class _Stopped(Exception):
    pass


def _unless_stopped(read: Callable[[], list[dict[str, Any]]], stop: threading.Event) -> Any:
    """`read()` on a thread of its own, given up on (_Stopped) once `stop` is set: a read
    is no request the run's stop flag ends, and the main thread must see the flag."""
    answer: list[Any] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            answer.append(read())
        except BaseException as exc:  # handed to the waiting thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="reconciler-channel-profiles", daemon=True)
    start_thread(thread)
    while thread.is_alive():
        thread.join(_STOP_LOOK_SECONDS)
        if stop.is_set() and thread.is_alive():
            raise _Stopped
    if failure:
        raise failure[0]
    return answer[0]


def _email(row: dict[str, Any]) -> str | None:
    # Iterable keeps emails in lower case; a per-user read by email finds it either way.
    email = row.get("email")
    return email.lower() if isinstance(email, str) and email else None


def _user_id(row: dict[str, Any]) -> str | None:
    user_id = row.get("userId")
    return user_id if isinstance(user_id, str) and user_id else None


def _list_ids(value: Any) -> list[int]:
    """A profile's list memberships (`userListIds`: one id or a list of them)."""
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
