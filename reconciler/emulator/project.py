"""One Iterable project's state: lists, user profiles, field types.

A project never holds its API key, only the key's SHA-256, so no dump, log or exception
can leak it.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Literal

from reconciler.emulator import fields as profile_fields
from reconciler.emulator.identifiers import (
    PLACEHOLDER_DOMAIN,
    is_valid_email,
    is_valid_user_id,
    normalize_email,
)

ProjectType = Literal["hybrid", "userId", "email"]
PROJECT_TYPES: tuple[ProjectType, ...] = ("hybrid", "userId", "email")
ListType = Literal["Standard", "Dynamic", "Suppression", "Internal"]
LIST_TYPES: tuple[ListType, ...] = ("Standard", "Dynamic", "Suppression", "Internal")

# Profile keys Iterable manages itself. They appear in getFields, user lookups and exports,
# and a dataFields write cannot create them as custom fields.
SYSTEM_FIELD_TYPES: dict[str, str] = {
    "email": "string",
    "userId": "string",
    "signupDate": "date",
    "profileUpdatedAt": "date",
    "emailListIds": "long",
    "userListIds": "long",
    "unsubscribedChannelIds": "long",
}

# Every list shares one marketing channel: enough to show that channelUnsubscribe was sent.
DEFAULT_CHANNEL_ID = 10001
# A second channel (SMS), so that a channel unsubscribe of another medium can be told apart.
SMS_CHANNEL_ID = 10002
# GET /api/channels (the OpenAPI's ChannelDetails).
CHANNELS: tuple[dict[str, Any], ...] = (
    {
        "id": DEFAULT_CHANNEL_ID,
        "name": "Marketing Email",
        "channelType": "Marketing",
        "messageMedium": "Email",
    },
    {
        "id": SMS_CHANNEL_ID,
        "name": "Marketing SMS",
        "channelType": "Marketing",
        "messageMedium": "SMS",
    },
)

# unsubSource of an emailUnSubscribe event, as Iterable's support article 208508736
# ("Subscribe and Unsubscribe Events") describes them: "ListAPI" for POST /lists/unsubscribe
# (older versions of the article said "API" for it and for users/updateSubscriptions).
LIST_API_SOURCE = "ListAPI"
# What the emulator records for a person's own unsubscribe (an email's unsubscribe link or
# a preference centre) unless a test names another source: an assumption, since the
# article's list is not fully known here; reconciler treats every source but the API ones
# as the person's choice, so the exact word does not matter to it.
SELF_SERVICE_SOURCE = "EmailLink"


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def now_ms() -> int:
    return int(time.time() * 1000)


class ListIdSequence:
    """Iterable list ids are global and only grow; projects of one emulator share this."""

    def __init__(self, next_id: int = 1_000_001):
        self.next_id = next_id

    def take(self) -> int:
        value = self.next_id
        self.next_id += 1
        return value


@dataclass
class ListRecord:
    id: int
    name: str
    description: str | None
    created_at: int
    """Epoch milliseconds, as Iterable's createdAt."""
    list_type: ListType = "Standard"
    in_use: bool = False
    """In use by a campaign or journey: DELETE answers 409."""
    channel_id: int = DEFAULT_CHANNEL_ID
    members: dict[int, None] = field(default_factory=dict, repr=False)
    """User keys in subscription order (a dict as an ordered set)."""
    fresh_rejects_left: int = field(default=0, repr=False)
    fresh_until: float = field(default=0.0, repr=False)
    """The emulator's clock before which writes answer invalidListId (Faults.fresh_list_seconds)."""

    def to_api(self) -> dict[str, Any]:
        """The ListDetails object of GET /api/lists."""
        out: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.description is not None:
            out["description"] = self.description
        out["createdAt"] = self.created_at
        out["listType"] = self.list_type
        return out


# Slots, and no empty set per profile for channel unsubscribes: an emulator may hold ten
# million profiles (bench/plan_apply.py), so every profile's bytes count.
@dataclass(slots=True)
class User:
    key: int
    """Internal and stable for the process; not an Iterable concept."""
    email: str | None
    user_id: str | None
    data_fields: dict[str, Any] = field(default_factory=dict)
    list_ids: set[int] = field(default_factory=set)
    unsubscribed_channel_ids: AbstractSet[int] = frozenset()
    """Replaced, never changed in place: most profiles share the one empty frozenset."""
    signup_date: int = field(default_factory=now_ms)
    profile_updated_at: int = field(default_factory=now_ms)


class Project:
    """An Iterable project: its type decides how users are identified."""

    def __init__(
        self,
        name: str,
        project_type: ProjectType,
        api_key_sha256: str,
        *,
        list_ids: ListIdSequence | None = None,
        wall_clock_ms: Callable[[], int] = now_ms,
    ):
        if project_type not in PROJECT_TYPES:
            raise ValueError(f"project type must be one of {', '.join(PROJECT_TYPES)}")
        self.name = name
        self.project_type: ProjectType = project_type
        self.api_key_sha256 = api_key_sha256
        self.lists: dict[int, ListRecord] = {}
        self.users: dict[int, User] = {}
        self.field_types: dict[str, str] = {}
        # Campaign id -> CampaignDetails as GET /api/campaigns answers it (seeded by tests).
        self.campaigns: dict[int, dict[str, Any]] = {}
        """Custom field path -> type; fixed once created. System fields are not listed."""
        self.accepts_new_fields = True
        """The project's setting for fields it does not know yet: True creates them; False
        drops them from every write that does not say `createNewFields` (subscribe cannot),
        listing them in the answer's filteredOutFields (OpenAPI BulkUpdateUsersRequest)."""
        self.silent_membership_writes = 0
        """How often a dataFields write set the membership field directly (no events)."""
        self._list_ids = list_ids or ListIdSequence()
        self._now_ms = wall_clock_ms
        self._next_user_key = 1
        # Keys oldest first; a tuple, because all but userID-based projects have one per
        # email and a dict per email would cost ten million profiles 2 GB.
        self._by_email: dict[str, tuple[int, ...]] = {}
        self._by_user_id: dict[str, int] = {}
        # Email-based projects do not keep userIds unique (support article 9216719179796,
        # "Enforce userId uniqueness? ... No"): the profiles after the oldest with a userId,
        # oldest first. Apart, as few profiles share one: a tuple for each of ten million
        # userIds would cost the others memory.
        self._more_by_user_id: dict[str, tuple[int, ...]] = {}
        self.dirty = False
        """Changed since the last save; the emulator persists and clears it."""
        self.recording_at: float | None = None
        """While a request is handled with a read lag (Faults.read_lag_seconds): its time on
        the emulator's clock, stamped on every change so reads can undo the recent ones.
        None otherwise, so seeding a test and big benchmarks record nothing."""
        self.changes: deque[Change] = deque()
        # GDPR: SHA-256 of each forgotten email and userId (trimmed, lowercased), as
        # GET /api/users/forgotten and /forgottenUserIds answer them.
        self.forgotten_emails: set[str] = set()
        self.forgotten_user_ids: set[str] = set()
        # emailUnSubscribe events, oldest first, as the export of that data type shows them
        # (createdAt in epoch ms here; the export formats it).
        self.unsubscribe_events: list[dict[str, Any]] = []

    def use_wall_clock(self, wall_clock_ms: Callable[[], int]) -> None:
        """Stamp changes from now on by `wall_clock_ms` (the emulator's, once loaded)."""
        self._now_ms = wall_clock_ms

    def __repr__(self) -> str:
        return (
            f"Project(name={self.name!r}, project_type={self.project_type!r}, "
            f"lists={len(self.lists)}, users={len(self.users)})"
        )

    @property
    def membership_field(self) -> str:
        """The profile field holding list ids: emailListIds in email-based projects."""
        return "emailListIds" if self.project_type == "email" else "userListIds"

    # Lists -------------------------------------------------------------------------------

    def add_list(
        self, name: str, description: str | None = None, list_type: ListType = "Standard"
    ) -> int:
        """Create a list directly (no request, no rate limit) and return its id."""
        if list_type not in LIST_TYPES:
            raise ValueError(f"list type must be one of {', '.join(LIST_TYPES)}")
        list_id = self._list_ids.take()
        self.lists[list_id] = ListRecord(
            id=list_id,
            name=name,
            description=description,
            created_at=self._now_ms(),
            list_type=list_type,
        )
        self._record("list+", self.lists[list_id])
        self.dirty = True
        return list_id

    def add_campaign(
        self,
        name: str,
        *,
        campaign_type: str = "Blast",
        state: str = "Running",
        list_ids: Iterable[int] = (),
        suppression_list_ids: Iterable[int] = (),
        message_medium: str = "Email",
    ) -> int:
        """A campaign that sends to `list_ids` and suppresses `suppression_list_ids`; Iterable
        creates these in its web app, so there is no API route for it (tests seed them)."""
        if campaign_type not in ("Blast", "Triggered"):
            raise ValueError("campaign type must be Blast or Triggered")
        campaign_id = max(self.campaigns, default=0) + 1
        now = self._now_ms()
        self.campaigns[campaign_id] = {
            "id": campaign_id,
            "name": name,
            "type": campaign_type,
            "campaignState": state,
            "listIds": [int(x) for x in list_ids],
            "suppressionListIds": [int(x) for x in suppression_list_ids],
            "messageMedium": message_medium,
            "createdAt": now,
            "updatedAt": now,
            "createdByUserId": "emulator",
        }
        self.dirty = True
        return campaign_id

    def writable_list(self, list_id: int) -> ListRecord | None:
        """The list if it exists and is Standard: only static lists take API writes."""
        record = self.lists.get(list_id)
        if record is None or record.list_type != "Standard":
            return None
        return record

    def set_in_use(self, list_id: int, in_use: bool = True) -> None:
        """Mark a list as used by a campaign or journey, so deleting it answers 409."""
        self._list(list_id).in_use = in_use
        self.dirty = True

    def delete_list(self, list_id: int) -> None:
        record = self.lists.pop(list_id)
        for key in record.members:
            self.users[key].list_ids.discard(list_id)
        self._record("list-", record)
        self.dirty = True

    def members(self, list_id: int, prefer_user_id: bool | None = None) -> list[str]:
        """The list's members as getUsers returns them for this preferUserId; None (for
        tests): by what identifies users in the project (false in hybrid projects)."""
        return self.identifiers(self._list(list_id).members, prefer_user_id)

    def identifiers(self, keys: Iterable[int], prefer_user_id: bool | None = None) -> list[str]:
        """The users with these keys, one identifier each, as getUsers reports them."""
        users = map(self.users.__getitem__, keys)
        if self.project_type == "userId" and prefer_user_id is False:
            # Iterable's getUsers names profiles by email unless asked for userIds, in
            # userID-based projects too (where the email is a plain attribute).
            return [self.list_identifier(user, False) for user in users]
        if self.project_type != "hybrid":
            # One identifier kind, always present: read in C, not a call per member, since
            # getUsers of a ten-million-member list would otherwise take seconds here.
            kind = "email" if self.project_type == "email" else "user_id"
            return list(map(attrgetter(kind), users))
        return [self.list_identifier(user, prefer_user_id) for user in users]

    def list_identifier(self, user: User, prefer_user_id: bool | None) -> str:
        """How getUsers names `user` (None: as `members` does by default)."""
        if self.project_type == "email":
            assert user.email is not None
            return user.email
        if self.project_type == "userId" and prefer_user_id is not False:
            assert user.user_id is not None
            return user.user_id
        if prefer_user_id:
            return user.user_id if user.user_id is not None else _required(user.email)
        return user.email if user.email is not None else _required(user.user_id)

    def _list(self, list_id: int) -> ListRecord:
        try:
            return self.lists[list_id]
        except KeyError:
            raise KeyError(f"no list {list_id} in project {self.name!r}") from None

    # Users -------------------------------------------------------------------------------

    def find_user(self, email: str | None = None, user_id: str | None = None) -> User | None:
        """The user with this email (any case) or exactly this userId, if there is one."""
        if email is not None:
            found = self.user_by_email(email)
            if found is not None:
                return found
        if user_id is not None:
            return self.user_by_user_id(user_id)
        return None

    def user_by_email(self, email: str) -> User | None:
        keys = self._by_email.get(normalize_email(email))
        # In userID-based projects emails are not unique; the oldest profile answers.
        return self.users[keys[0]] if keys else None

    def user_by_user_id(self, user_id: str) -> User | None:
        """The profile with this userId; where several have it (email-based projects), the
        oldest: Iterable takes "the first user profile returned with that UserID"
        (its announcement of userId support in every API)."""
        key = self._by_user_id.get(user_id)
        return None if key is None else self.users[key]

    def users_by_user_id(self, user_id: str) -> list[User]:
        """Every profile with this userId, oldest first."""
        key = self._by_user_id.get(user_id)
        if key is None:
            return []
        return [self.users[k] for k in (key, *self._more_by_user_id.get(user_id, ()))]

    def add_user(
        self,
        email: str | None = None,
        user_id: str | None = None,
        data_fields: Mapping[str, Any] | None = None,
        list_ids: Iterable[int] = (),
    ) -> User:
        """Seed a user directly. Raises ValueError for anything Iterable would refuse."""
        if email is None and user_id is None:
            raise ValueError("a user needs an email or a userId")
        if email is not None and not is_valid_email(email):
            raise ValueError(f"invalid email {email!r}")
        if user_id is not None and not is_valid_user_id(user_id):
            raise ValueError(f"invalid userId {user_id!r}")
        if self.project_type == "userId" and user_id is None:
            raise ValueError("userID-based projects identify users by userId")
        if self.project_type == "email" and email is None:
            email = placeholder_email(user_id or "")
        if email is not None and self.project_type != "userId" and self.user_by_email(email):
            raise ValueError(f"email {email!r} already exists")
        if user_id is not None and self.project_type != "email" and self.user_by_user_id(user_id):
            raise ValueError(f"userId {user_id!r} already exists")
        if data_fields:
            write = profile_fields.plan_write(self.field_types, data_fields, create_new=True)
        user = self.create_user(email, user_id)
        if data_fields:
            self.write_fields(user, write, merge_nested=False)
        for list_id in list_ids:
            self.subscribe(user, list_id)
        return user

    def subscribe_direct(
        self,
        list_id: int,
        *,
        email: str | None = None,
        user_id: str | None = None,
        data_fields: Mapping[str, Any] | None = None,
    ) -> User:
        """Put a user (found, or created) on a list without a request: for seeding tests."""
        self._list(list_id)
        user = self.find_user(email, user_id)
        if user is None:
            user = self.add_user(email, user_id, data_fields)
        elif data_fields:
            write = profile_fields.plan_write(self.field_types, data_fields, create_new=True)
            self.write_fields(user, write, merge_nested=False)
        self.subscribe(user, list_id)
        return user

    def forget(self, email: str | None = None, user_id: str | None = None) -> bool:
        """GDPR-forget a user: its profile and memberships go, and its identifiers (those
        given and those of the profile found) are remembered as hashes, so writes naming
        them are refused as forgotten. True when a profile was found."""
        user = self.find_user(email.strip() if email else None, user_id)
        emails = {e for e in (email, user.email if user else None) if e is not None}
        user_ids = {u for u in (user_id, user.user_id if user else None) if u is not None}
        self.forgotten_emails.update(forgotten_hash(e) for e in emails)
        self.forgotten_user_ids.update(forgotten_hash(u) for u in user_ids)
        if user is not None:
            self.delete_user(user)
        self.dirty = True
        return user is not None

    def is_forgotten(self, email: str | None, user_id: str | None) -> bool:
        return (email is not None and forgotten_hash(email) in self.forgotten_emails) or (
            user_id is not None and forgotten_hash(user_id) in self.forgotten_user_ids
        )

    def delete_user(self, user: User) -> None:
        """Remove a profile and its list memberships (as Iterable's user delete does)."""
        for list_id in list(user.list_ids):
            self.unsubscribe(user, list_id)
        if user.email is not None:
            others = tuple(k for k in self._by_email.get(user.email, ()) if k != user.key)
            if others:
                self._by_email[user.email] = others
            else:
                self._by_email.pop(user.email, None)
        if user.user_id is not None:
            self._drop_user_id(user)
        del self.users[user.key]
        # Lagged reads undo recent changes of users that exist: a deleted user's go.
        self.changes = deque(c for c in self.changes if not _about_user(c, user.key))
        self.dirty = True

    # Mutations used by the endpoints; callers have validated their arguments.

    def create_user(self, email: str | None, user_id: str | None) -> User:
        key = self._next_user_key
        self._next_user_key += 1
        stamp = self._now_ms()
        user = User(key=key, email=None, user_id=None, signup_date=stamp, profile_updated_at=stamp)
        self.users[key] = user
        self._record("user+", key)
        if email is not None:
            self.set_email(user, email)
        if user_id is not None:
            self.set_user_id(user, user_id)
        self.dirty = True
        return user

    def set_email(self, user: User, email: str) -> None:
        email = normalize_email(email)
        if user.email == email:
            return
        if user.email is not None:
            others = tuple(k for k in self._by_email[user.email] if k != user.key)
            if others:
                self._by_email[user.email] = others
            else:
                del self._by_email[user.email]
        user.email = email
        self._by_email[email] = (*self._by_email.get(email, ()), user.key)
        self.touch(user)

    def set_user_id(self, user: User, user_id: str) -> None:
        if user.user_id == user_id:
            return
        if user.user_id is not None:
            self._drop_user_id(user)
        user.user_id = user_id
        first = self._by_user_id.get(user_id)
        if first is not None and self.project_type == "email":
            # Kept in age order, as the first one answers for the userId.
            keys = sorted((first, *self._more_by_user_id.get(user_id, ()), user.key))
            self._by_user_id[user_id] = keys[0]
            self._more_by_user_id[user_id] = tuple(keys[1:])
        else:
            self._by_user_id[user_id] = user.key
        self.touch(user)

    def _drop_user_id(self, user: User) -> None:
        """`user` out of its userId's index (the next oldest holder, if any, answering)."""
        assert user.user_id is not None
        user_id = user.user_id
        more = self._more_by_user_id.pop(user_id, ())
        keys = [k for k in (self._by_user_id.get(user_id), *more) if k not in (None, user.key)]
        if not keys:
            self._by_user_id.pop(user_id, None)
            return
        self._by_user_id[user_id] = keys[0]
        if len(keys) > 1:
            self._more_by_user_id[user_id] = tuple(keys[1:])

    def subscribe(self, user: User, list_id: int) -> None:
        record = self._list(list_id)
        if user.key not in record.members:
            record.members[user.key] = None
            user.list_ids.add(list_id)
            self._record("sub", (list_id, user.key))
            self.touch(user)

    def unsubscribe(self, user: User, list_id: int) -> None:
        record = self._list(list_id)
        if user.key in record.members:
            del record.members[user.key]
            user.list_ids.discard(list_id)
            self._record("unsub", (list_id, user.key))
            self.touch(user)

    def record_unsubscribe(
        self,
        user: User,
        source: str,
        *,
        list_ids: Iterable[int] = (),
        channel_ids: Iterable[int] = (),
        campaign_id: int | None = None,
    ) -> None:
        """An emailUnSubscribe event (Airbyte's source-iterable schema email_unsubscribe.json
        names its fields: unsubSource, emailListIds, channelIds, campaignId, createdAt)."""
        event: dict[str, Any] = {"createdAt": self._now_ms()}
        if user.email is not None:
            event["email"] = user.email
        if user.user_id is not None:
            event["userId"] = user.user_id
        event["unsubSource"] = source
        event["emailListIds"] = sorted(set(list_ids))
        event["channelIds"] = sorted(set(channel_ids))
        if campaign_id is not None:
            event["campaignId"] = campaign_id
        self.unsubscribe_events.append(event)
        self.dirty = True

    def self_unsubscribe(
        self,
        user: User,
        *,
        list_id: int | None = None,
        channel: bool = False,
        source: str = SELF_SERVICE_SOURCE,
    ) -> None:
        """A person leaves a list, or the list's channel, by their own action (a preference
        centre, an unsubscribe link): no API request, one event with its source."""
        channel_id = self._list(list_id).channel_id if list_id is not None else DEFAULT_CHANNEL_ID
        if list_id is not None:
            self.unsubscribe(user, list_id)
        if channel:
            user.unsubscribed_channel_ids = {*user.unsubscribed_channel_ids, channel_id}
            self.touch(user)
        self.record_unsubscribe(
            user,
            source,
            list_ids=() if list_id is None else (list_id,),
            channel_ids=(channel_id,) if channel else (),
        )

    def set_membership(self, user: User, list_ids: Iterable[int]) -> None:
        """What writing the membership field through a user update does: no events."""
        wanted = {i for i in list_ids if self.writable_list(i) is not None}
        for list_id in sorted(user.list_ids - wanted):
            self.unsubscribe(user, list_id)
        for list_id in sorted(wanted - user.list_ids):
            self.subscribe(user, list_id)
        self.silent_membership_writes += 1
        self.dirty = True

    def write_fields(
        self, user: User, write: profile_fields.FieldWrite, *, merge_nested: bool
    ) -> None:
        self.field_types.update(write.created)
        profile_fields.write(user.data_fields, write.data, merge_nested=merge_nested)
        self.touch(user)

    def touch(self, user: User) -> None:
        user.profile_updated_at = self._now_ms()
        self.dirty = True

    # Read lag (Faults.read_lag_seconds) ----------------------------------------------------
    # Reads answer from the current state with the changes younger than the cutoff undone,
    # newest first: cheaper than snapshots, and the log holds only the lag's worth.

    def _record(self, op: str, subject: Any) -> None:
        if self.recording_at is not None:
            self.changes.append(Change(self.recording_at, op, subject))

    def forget_changes_before(self, cutoff: float | None) -> None:
        """Drop changes every lagged read already shows (all of them when there is no lag)."""
        if cutoff is None:
            self.changes.clear()
            return
        while self.changes and self.changes[0].at <= cutoff:
            self.changes.popleft()

    def _recent(self, cutoff: float) -> list[Change]:
        """Changes after `cutoff`, newest first."""
        out = []
        for change in reversed(self.changes):
            if change.at <= cutoff:
                break
            out.append(change)
        return out

    def lists_as_of(self, cutoff: float) -> list[ListRecord]:
        """GET /api/lists as it was at `cutoff`."""
        visible = dict(self.lists)
        for change in self._recent(cutoff):
            if change.op == "list+":
                visible.pop(change.subject.id, None)
            elif change.op == "list-":
                visible[change.subject.id] = change.subject
        return sorted(visible.values(), key=attrgetter("id"))

    def list_as_of(self, list_id: int, cutoff: float) -> ListRecord | None:
        return next((r for r in self.lists_as_of(cutoff) if r.id == list_id), None)

    def member_keys_as_of(self, record: ListRecord, cutoff: float) -> list[int]:
        """The list's members (user keys) as they were at `cutoff`."""
        was: dict[int, bool] = {}
        for change in self._recent(cutoff):
            if change.op in ("sub", "unsub") and change.subject[0] == record.id:
                was[change.subject[1]] = change.op == "unsub"
        keys = [k for k in record.members if was.get(k, True)]
        keys.extend(k for k, member in was.items() if member and k not in record.members)
        return keys

    def users_as_of(self, cutoff: float) -> Iterable[tuple[User, set[int]]]:
        """Every user that existed at `cutoff`, with the lists it was on then."""
        recent = self._recent(cutoff)
        if not recent:
            for user in self.users.values():
                yield user, user.list_ids
            return
        born = {c.subject for c in recent if c.op == "user+"}
        lists_then: dict[int, set[int]] = {}
        for change in recent:
            if change.op in ("sub", "unsub"):
                list_id, key = change.subject
                ids = lists_then.setdefault(key, set(self.users[key].list_ids))
                if change.op == "sub":
                    ids.discard(list_id)
                else:
                    ids.add(list_id)
            elif change.op == "list-":
                for key in change.subject.members:
                    lists_then.setdefault(key, set(self.users[key].list_ids)).add(change.subject.id)
        for user in self.users.values():
            if user.key not in born:
                yield user, lists_then.get(user.key, user.list_ids)


@dataclass(frozen=True, slots=True)
class Change:
    """One change a lagged read may have to undo; `subject` depends on `op`: a ListRecord
    (list+, list-), a user key (user+), or (list id, user key) (sub, unsub)."""

    at: float
    op: str
    subject: Any


def _about_user(change: Change, key: int) -> bool:
    if change.op == "user+":
        return bool(change.subject == key)
    return change.op in ("sub", "unsub") and change.subject[1] == key


def forgotten_hash(identifier: str) -> str:
    """How Iterable lists a forgotten email or userId: SHA-256 of it trimmed and lowercased."""
    return hashlib.sha256(identifier.strip().lower().encode("utf-8")).hexdigest()


def placeholder_email(user_id: str) -> str:
    """What an email-based project gives a user created from a userId alone."""
    digest = hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:32]
    return f"{digest}@{PLACEHOLDER_DOMAIN}"


def _required(value: str | None) -> str:
    assert value is not None, "a profile has an email or a userId"
    return value
