"""A Plan is data: what would change, per destination and list, with the full member sets
that apply needs and the counts and samples that people read."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from reconciler.errors import UnsafePlanError
from reconciler.layout import one_line
from reconciler.members.identity import Member, ProjectType
from reconciler.members.issue import MemberIssue
from reconciler.plan.field_changes import FieldChanges
from reconciler.plan.field_clears import FieldClears
from reconciler.plan.policy import (
    DEFAULT_MAX_REMOVAL_PERCENT,
    Rule,
    override_flags,
    overrides,
)
from reconciler.render.masking import field_path, mask_value, message_for
from reconciler.words import quantity

SAMPLE_SIZE = 10


def counted(keys: Sequence[str], show: Callable[[str], str]) -> dict[str, Any]:
    """How many, and the first few as `show` shows them (masked unless asked otherwise)."""
    return {"count": len(keys), "sample": [show(k) for k in keys[:SAMPLE_SIZE]]}


@dataclass(frozen=True)
class ListPlan:
    """Changes to one Iterable list, in the order apply makes them."""

    audience: str
    list_name: str
    list_id: int | None  # None until the list is created
    create: bool
    description: str | None
    # Tuples, or for audiences planned in DuckDB rows still in its workspace (engine/rows.py)
    add: Sequence[Member]
    remove: Sequence[str]  # identifiers as Iterable reported them
    unchanged: int
    live_count: int
    desired_count: int
    update_existing_users_only: bool = False
    campaign_id: int | None = None
    channel_unsubscribe: bool = False
    # The preferUserId getUsers read the list's members with (DesiredList.prefer_user_id):
    # which profile `remove`'s identifiers name, when one profile has an identifier as its
    # email and another as its userId. None: not known (a plan file saved before it was).
    read_prefer_user_id: bool | None = None
    max_removal_percent: float = DEFAULT_MAX_REMOVAL_PERCENT
    max_removals: int | None = None
    allow_empty: bool = False  # the audience's allowEmpty
    min_members: int | None = None
    max_members: int | None = None
    max_addition_percent: float | None = None
    max_additions: int | None = None
    # Under `removals: never`: members missing from the source that were left on the list.
    held_back_removals: int = 0
    # Live members not removed because a row skipped as invalid stands for them.
    kept_for_skipped: int = 0
    # Live members not removed because Iterable has a desired email in another spelling
    # (identity.other_spellings: punycode or Unicode domain, NFC or NFD).
    kept_respelled: int = 0
    # Desired members counted as on the list because Iterable has their email in another
    # spelling (not added): member keys. Their mapped fields are left alone.
    respelled: tuple[str, ...] = ()
    # Email-based projects: live members not removed because a row gives their profile's
    # userId beside another email (state/changed_emails.py: the email was changed in
    # Iterable, or the source's is newer), and the keys of those rows' members, not added
    # (a second profile of the same person) and their mapped fields left alone.
    kept_email_changed: int = 0
    email_changed: tuple[str, ...] = ()
    # Trait mappings: member key -> the mapped fields sent with that member's subscribe.
    # A dict, or for audiences planned in DuckDB a view of a workspace table
    # (engine/field_tables.py FieldValues, read a window of keys at a time).
    add_fields: Mapping[str, dict[str, Any]] = field(default_factory=dict, hash=False)
    merge_nested_objects: bool = False
    # Members of this list already on it whose mapped fields get a bulkUpdate (the updates
    # themselves are per user, on the DestinationPlan: a user may be on several lists).
    field_update_keys: Sequence[str] = ()  # a tuple, or rows in the DuckDB workspace
    # Desired members left out of `add` because sending them cannot succeed, and that is
    # no failure: users Iterable has forgotten (GDPR), and, with updateExistingUsersOnly,
    # users Iterable does not know (it would not create them). Member keys.
    forgotten: tuple[str, ...] = ()
    not_created: tuple[str, ...] = ()
    # Consent (state/consent.py): desired members not re-added because they left the list
    # by their own action, or their profile is unsubscribed from the list's channel. Member
    # keys; `left_sources` counts the former by Iterable's unsubSource.
    left_themselves: tuple[str, ...] = ()
    left_sources: tuple[tuple[str, int], ...] = ()
    channel_unsubscribed: tuple[str, ...] = ()
    # The audience's `resubscribe: allowed`: such members are added, and `resubscribed`
    # names those of the adds who had left (for the bold warning).
    resubscribe_allowed: bool = False
    resubscribed: tuple[str, ...] = ()
    # Lists made for this audience under another name (a changed listName, or a rename in
    # Iterable's web app): one list to consent, so who left one of them themselves is not
    # added to this one (state/consent.py). Read afresh by every plan; never in a plan file.
    former_list_ids: tuple[int, ...] = ()
    # Of former_list_ids, for a list this plan creates: the lists made for audiences no
    # manifest declares any more (a renamed key), which its marker names (ownership.mark)
    # so that later plans, too, hold back who left them. Never in a plan file either.
    carried_list_ids: tuple[int, ...] = ()
    # `apply --plan`: those of the saved adds held back because they opted out after the
    # plan was made (also in left_themselves / channel_unsubscribed; never in a plan file).
    held_since_plan: tuple[str, ...] = ()
    # policy.activeCampaignAdds: "block" refuses adds to a list an active campaign sends to.
    active_campaign_adds: Literal["block", "warn"] = "warn"

    @property
    def consent_list_id(self) -> int | None:
        """The id the consent guard reads this list's departures under: its own, or for a
        list this plan creates in place of lists made under another name, the first of
        those; None when no list's departures bear on it (a new audience's new list)."""
        if self.list_id is not None:
            return self.list_id
        return min(self.former_list_ids) if self.former_list_ids else None

    @property
    def has_changes(self) -> bool:
        return self.create or bool(self.add) or bool(self.remove)

    @property
    def resulting_count(self) -> int:
        """Members the list has once this plan is applied (as planned: Iterable may still
        reject some adds)."""
        return self.live_count + len(self.add) - len(self.remove)

    @property
    def addition_percent(self) -> float:
        return 100.0 * len(self.add) / self.live_count if self.live_count else 0.0

    @property
    def removal_percent(self) -> float:
        return 100.0 * len(self.remove) / self.live_count if self.live_count else 0.0

    def changes(self, show: Callable[[str], str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.create:
            out.append({"type": "create_list", "list_name": self.list_name})
        if self.add:
            out.append(
                {
                    "type": "add_members",
                    "count": len(self.add),
                    "sample": [show(m.key) for m in self.add[:SAMPLE_SIZE]],
                    "update_existing_users_only": self.update_existing_users_only,
                }
            )
        if self.remove:
            out.append(
                {
                    "type": "remove_members",
                    "count": len(self.remove),
                    "sample": [show(i) for i in self.remove[:SAMPLE_SIZE]],
                    "channel_unsubscribe": self.channel_unsubscribe,
                    "campaign_id": self.campaign_id,
                }
            )
        return out

    def left_out(self, show: Callable[[str], str]) -> dict[str, Any]:
        """Desired members not sent, and why (expected: no change, no failure)."""
        return {
            "forgotten": counted(self.forgotten, show),
            "not_created": counted(self.not_created, show),
            "left_themselves": {
                **counted(self.left_themselves, show),
                "by_source": dict(self.left_sources),
            },
            "channel_unsubscribed": counted(self.channel_unsubscribed, show),
        }

    def held_back_consent(self, show: Callable[[str], str]) -> dict[str, Any]:
        """The consent guard's verdict for this list (JSON): who was held back, and, with
        `resubscribe: allowed`, who is re-added although they had left."""
        return {
            "resubscribe": "allowed" if self.resubscribe_allowed else "never",
            "left_themselves": len(self.left_themselves),
            "channel_unsubscribed": len(self.channel_unsubscribed),
            "resubscribed": counted(self.resubscribed, show),
        }


def without_keys(
    add_fields: Mapping[str, dict[str, Any]], gone: set[str]
) -> Mapping[str, dict[str, Any]]:
    """A list's add_fields without the members left out of its adds (a view stays one)."""
    if not gone:
        return add_fields
    without = getattr(add_fields, "without", None)
    if without is not None:
        return without(gone)  # type: ignore[no-any-return]
    return {k: v for k, v in add_fields.items() if k not in gone}


@dataclass(frozen=True)
class FieldUpdate:
    """One user whose mapped fields differ from Iterable: field -> (old, new), only the
    fields that differ. Plain values throughout, so a plan file holds it as JSON."""

    key: str
    key_kind: str  # "email" or "userId": which identifier `key` is
    email: str | None
    user_id: str | None
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict, hash=False)
    merge_nested_objects: bool = False

    @property
    def data_fields(self) -> dict[str, Any]:
        """What bulkUpdate writes: the new values of the changed fields only."""
        return {name: new for name, (_old, new) in self.changes.items()}


@dataclass(frozen=True)
class FieldRead:
    """How a plan read the current values of mapped fields (the cheaper of the two in
    rate-limited calls): one user export, or one read per user.

    Saved in plan files: the fields after `fields` are optional, so that plans saved by an
    earlier build (which lack them) load, and are described as that build described them."""

    method: Literal["export", "user_reads"]
    users: int  # members whose current values were needed
    requests: int  # rate-limited calls it took (0: counted with the read that made its file)
    fields: tuple[str, ...] = ()
    # The export's date-window requests (None: a plan saved by an earlier build, whose
    # windows always followed one whole export cut off: `requests` - 1).
    windows: int | None = None
    # Whether one whole export of the project was asked (before the windows: cut off); not
    # where a whole export was cut off earlier in the run, and the windows came at once.
    whole: bool = True
    # The destination of the same Iterable project whose user export this read took (its
    # requests counted in that destination's read); "": the export was this read's own.
    taken_from: str = ""
    # That export was the one that read the other destination's list members.
    taken_members: bool = False

    def describe(self, users: bool = True) -> str:
        """How the values were read; `users`: with the number of users it was for."""
        users_text = f" for {self.users:,} user{'s' if self.users != 1 else ''}" if users else ""
        if self.taken_from:
            return f"{self._taken()}{users_text}"
        if self.method == "export" and not self.requests:
            # The export that read the lists' members carried the fields (users_file.py).
            return f"the user export that read the members{',' if users else ''}{users_text}"
        windows = self.windows if self.windows is not None else max(self.requests - 1, 0)
        if self.method == "export" and windows:
            # Cut off every time (a project too big for one stream): read on in windows.
            how = f"{_requests(windows)}, {windows_reason(self.whole)}"
            return f"the user export in date windows ({how}){users_text}"
        if self.method == "export":
            return f"1 user export{users_text}"
        return f"{self.requests:,} per-user read{'s' if self.requests != 1 else ''}"

    def _taken(self) -> str:
        """Another destination's export of the project: whose, and what it cost there."""
        made = (
            f"the user export that read the members of destination {self.taken_from!r}"
            if self.taken_members
            else f"the user export destination {self.taken_from!r} made"
        )
        windows = self.windows or 0
        if not windows:
            cost = "1 request"
        elif self.taken_members:
            cost = f"in date windows: {_requests(windows)}"
        else:
            cost = f"in date windows: {_requests(windows)}, {windows_reason(self.whole)}"
        return f"{made}, which names the same Iterable project ({cost}, counted there)"


def windows_reason(whole: bool) -> str:
    """Why a read of the project's users went on in date windows: `whole`, one whole
    export was asked and cut off; else one had been earlier in the run (the client then
    goes to windows at once: iterable/client.py whole_export_cut_off)."""
    if whole:
        return "one whole export being cut off"
    return "a whole user export of the project being cut off earlier in this run"


def _requests(count: int) -> str:
    return f"{count:,} request{'s' if count != 1 else ''}"


# Campaign states in which a campaign sends, or will, to its lists: adds to its send lists
# reach people (Iterable's spec lists these with Draft, Ready, Finished, Aborted, Archived).
ACTIVE_CAMPAIGN_STATES = frozenset({"Running", "Scheduled", "Starting", "Recurring"})


@dataclass(frozen=True)
class CampaignUse:
    """A campaign that uses a list the plan changes, and how (GET /api/campaigns)."""

    list_name: str
    campaign_id: int
    campaign_name: str
    type: str  # Blast or Triggered
    state: str  # Running, Scheduled, Ready, Finished, ...
    role: Literal["send", "suppression"]

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_CAMPAIGN_STATES

    def describe(self) -> str:
        """'send list of running triggered campaign 'Welcome' (id 12)'."""
        return (
            f"{self.role} list of {self.state.lower()} {self.type.lower()} campaign "
            f"{self.campaign_name!r} (id {self.campaign_id})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.campaign_id,
            "name": self.campaign_name,
            "type": self.type,
            "state": self.state,
            "role": self.role,
            "active": self.active,
        }


@dataclass(frozen=True)
class ListDeletion:
    """A list reconciler created (it carries the ownership marker) that no manifest declares."""

    list_id: int
    list_name: str


# The typed changes: what apply does, one kind of request each, in the order
# DestinationPlan.changes() yields them. Each holds a reference to the plan's record and to
# its member sequences, never a copy: those may be lazy views over DuckDB workspace tables
# (members/engine/rows.py) that apply reads a batch at a time. They live here, beside the
# records they reference and the DestinationPlan that yields them: in a module of their own
# they and this one would import each other.
ChangeType = Literal["create_list", "add_members", "update_fields", "remove_members", "delete_list"]


@dataclass(frozen=True)
class _ListChange:
    """A change to one list: its plan record, and the list's name from it."""

    list_plan: ListPlan

    @property
    def list_name(self) -> str:
        return self.list_plan.list_name


@dataclass(frozen=True)
class CreateList(_ListChange):
    """Create `list_plan`'s list, carrying the ownership marker (plan/ownership.py)."""

    kind: ClassVar[ChangeType] = "create_list"


@dataclass(frozen=True)
class AddMembers(_ListChange):
    """Subscribe `members` to the list, each with its mapped fields (trait mappings)."""

    kind: ClassVar[ChangeType] = "add_members"

    @property
    def members(self) -> Sequence[Member]:
        return self.list_plan.add


@dataclass(frozen=True)
class UpdateFields:
    """bulkUpdate the mapped fields of users already on Iterable (a user may be on several
    of the destination's lists, so this is one change for the destination, not per list)."""

    kind: ClassVar[ChangeType] = "update_fields"
    updates: Sequence[FieldUpdate]


@dataclass(frozen=True)
class RemoveMembers(_ListChange):
    """Unsubscribe `identifiers` (as Iterable reported them) from the list."""

    kind: ClassVar[ChangeType] = "remove_members"

    @property
    def identifiers(self) -> Sequence[str]:
        return self.list_plan.remove


@dataclass(frozen=True)
class DeleteList:
    """Delete a list reconciler created that no manifest declares any more (prune)."""

    kind: ClassVar[ChangeType] = "delete_list"
    deletion: ListDeletion

    @property
    def list_name(self) -> str:
        return self.deletion.list_name

    @property
    def list_id(self) -> int:
        return self.deletion.list_id


Change = CreateList | AddMembers | UpdateFields | RemoveMembers | DeleteList


@dataclass(frozen=True)
class Violation:
    """One reason the safety policy blocks a plan; `rule` names the flag that overrides it."""

    destination: str
    list_name: str
    rule: Rule
    message: str

    def overridden_by(self, allowed: Collection[str]) -> bool:
        """Whether the rules an apply was told to override (overridden_rules) take it."""
        return overrides(allowed, self.rule, self.destination)

    def to_dict(self) -> dict[str, str]:
        return {
            "destination": self.destination,
            "list_name": self.list_name,
            "rule": self.rule,
            "message": self.message,
        }

    @property
    def where(self) -> str:
        """destination/list, for a line on stderr: a list prune deletes has the name it has
        in Iterable, which may hold a newline or a terminal's escape (`one_line`)."""
        return f"{self.destination}/{one_line(self.list_name)}"


def source_guards(lp: ListPlan) -> list[tuple[Rule, str]]:
    """The guards on a list's source and bounds (issue 19): (rule, message) for each one the
    plan breaks. Each message names the guard, the audience and what permits it."""
    out: list[tuple[Rule, str]] = []
    who = f"audience {lp.audience!r}"
    if lp.remove and lp.desired_count == 0 and lp.live_count and not lp.allow_empty:
        out.append(
            (
                "empty_source",
                f"guard empty_source: the source of {who} yields no members, so "
                f"{'its' if lp.live_count == 1 else 'all'} {quantity(lp.live_count, 'member')} "
                "would be removed; allowEmpty: true on the "
                "audience permits it",
            )
        )
    if lp.has_changes:
        size = lp.resulting_count
        if lp.min_members is not None and size < lp.min_members:
            out.append(
                (
                    "bounds",
                    f"guard minMembers: {who} would leave the list with "
                    f"{quantity(size, 'member')}, "
                    f"fewer than minMembers {lp.min_members:,}",
                )
            )
        if lp.max_members is not None and size > lp.max_members:
            out.append(
                (
                    "bounds",
                    f"guard maxMembers: {who} would leave the list with "
                    f"{quantity(size, 'member')}, "
                    f"more than maxMembers {lp.max_members:,}",
                )
            )
    # A new or empty list has no size to take a share of: maxAdditions still applies.
    limit = lp.max_addition_percent
    if lp.add and lp.live_count and limit is not None and lp.addition_percent > limit:
        out.append(
            (
                "additions",
                f"guard maxAdditionPercent: {who} adds {len(lp.add):,} to {lp.live_count:,} "
                f"members ({lp.addition_percent:.1f}%), more than maxAdditionPercent {limit:g}%",
            )
        )
    if lp.max_additions is not None and len(lp.add) > lp.max_additions:
        out.append(
            (
                "additions",
                f"guard maxAdditions: {who} adds {_members(len(lp.add))}, more than "
                f"maxAdditions {lp.max_additions:,}",
            )
        )
    return out


@dataclass(frozen=True)
class DestinationPlan:
    destination: str
    project_type: ProjectType
    lists: tuple[ListPlan, ...]
    skipped_members: tuple[tuple[str, MemberIssue], ...] = ()  # (audience, issue)
    # Skipped rows beyond those listed: audiences planned in DuckDB list the first 1,000.
    skipped_unlisted: int = 0
    # Mapped field values not sent (a value that does not convert, two audiences that
    # disagree): that field is left out, the member is still sent. (audience, issue)
    field_issues: tuple[tuple[str, MemberIssue], ...] = ()
    # Values not sent beyond those listed: an audience lists 1,000 values not made per
    # field, a pair of audiences 1,000 disagreements per field (planning._value_issues).
    field_issues_unlisted: int = 0
    # Source rows collapsed into an earlier row with the same identity key, and those of
    # them that disagreed with it (another email, userId or value): (audience, issue).
    duplicate_rows: int = 0
    duplicate_conflicts: tuple[tuple[str, MemberIssue], ...] = ()
    # Disagreeing rows beyond those listed: audiences planned in DuckDB list the first 1,000.
    duplicate_conflicts_unlisted: int = 0
    deletions: tuple[ListDeletion, ...] = ()
    allow_list_deletion: bool = False
    # How many lists the manifests declare in the project when the project holds none of
    # them (0: it holds some): its key may be another project's, whose lists prune would
    # delete, so deletions are blocked whatever the policy says (planning._prune).
    declared_none_found: int = 0
    # Why the project the destination's key reaches seems another's, when it holds none
    # of the lists declared in it although the audiences or this machine's applies knew
    # lists of it (state/unfamiliar_project.py); "" when nothing says so. Its changes are
    # then blocked until --allow-new-project names the destination.
    unfamiliar_project: str = ""
    # bulkUpdate, between subscribe and unsubscribe: a tuple, or rows in the DuckDB workspace
    field_updates: Sequence[FieldUpdate] = ()
    field_read: FieldRead | None = None
    # The mapped fields this plan clears where they held a value (the field_clears guard):
    # only fields with some clear, with the limit the audiences mapping them set.
    field_clears: tuple[FieldClears, ...] = ()
    # The mapped fields whose values this plan replaces with others (the field_changes
    # guard, opt-in): only fields with a limit and some change.
    field_changes: tuple[FieldChanges, ...] = ()
    # User fields the project does not have yet that this plan's values create, with the
    # type Iterable will give them (fixed for good by the first value): (path, type).
    new_fields: tuple[tuple[str, str], ...] = ()
    member_read: str | None = None  # how list members were read, for people (rate limits)
    # What people should know about lists beyond the changes (a listName or description
    # that changed, which Iterable cannot do in place).
    notes: tuple[str, ...] = ()
    # Set when the last apply to this destination was recent enough that Iterable's reads
    # may lag it (they lag writes by up to about a minute): what the plan did about it.
    read_note: str | None = None
    # Audiences left out of the plan because their list could not be read with
    # confidence: (audience, why). Nothing is sent for them and the run exits 1.
    unread: tuple[tuple[str, str], ...] = ()
    # Of `unread`, the audiences no one list in Iterable is certainly the list of (several
    # of its name, its listId renamed or gone): not read at all, and said so in the summary.
    unmatched: tuple[str, ...] = ()
    # Reads beyond members and fields, for people: forgotten users, existence checks.
    other_reads: tuple[str, ...] = ()
    # Blast radius: campaigns using the lists this plan changes (read only when it changes
    # some list), and why they could not be read when that failed.
    campaigns: tuple[CampaignUse, ...] = ()
    campaigns_read_error: str | None = None
    # Where the manifests write the destination's projectType (file:line), for messages
    # that find the project of another type; None in a plan file saved before it was kept.
    project_type_at: str | None = None
    # Lists every member of which Iterable names by an email while the plan removes them
    # all and adds userIds that are none, under projectType userId (state/
    # named_by_email.py): the removal guard's message names the likely mismatch.
    named_by_email: tuple[str, ...] = ()
    # The profiles this plan's own user export holds for its channel removals, for an
    # apply in this process right after it (apply/channel_profiles.py PlanProfiles);
    # never written to a plan file, never compared. Typed Any: the plan's model imports
    # nothing of apply's (tests/unit/test_import_graph.py).
    channel_profiles: Any = field(default=None, compare=False, repr=False)

    def changes(self) -> Iterator[Change]:
        """What apply does to this destination, in the order it does it: lists are created
        before members go to them; subscribes come before the field updates (a subscribe
        may create the user they update); unsubscribes follow, and prune's deletions come
        last. Apply starts each kind once the kind before has finished."""
        yield from (CreateList(lp) for lp in self.lists if lp.create)
        # Lists that may create users first: a list with updateExistingUsersOnly may add
        # someone another list creates in this run (state/unsendable.py), and apply starts
        # its subscribes once those have been answered.
        adds = sorted((lp for lp in self.lists if lp.add), key=_creates_nobody)
        yield from (AddMembers(lp) for lp in adds)
        if self.field_updates:
            yield UpdateFields(self.field_updates)
        yield from (RemoveMembers(lp) for lp in self.lists if lp.remove)
        yield from (DeleteList(x) for x in self.deletions)

    def campaigns_of(self, list_name: str) -> list[CampaignUse]:
        return list(self._campaigns_by_list.get(list_name, ()))

    @functools.cached_property
    def _campaigns_by_list(self) -> dict[str, list[CampaignUse]]:
        """The campaigns by list name, made once: the plan's renderers and its JSON ask for
        each list's (up to four times a list), and a walk over every campaign each time
        made a plan of many lists and campaigns cost lists x campaigns to print."""
        by_list: dict[str, list[CampaignUse]] = {}
        for c in self.campaigns:
            by_list.setdefault(c.list_name, []).append(c)
        return by_list

    def active_sends(self, lp: ListPlan) -> list[CampaignUse]:
        """Active campaigns that send to `lp`: members it adds can be messaged at once."""
        if not lp.add:
            return []
        return [c for c in self.campaigns_of(lp.list_name) if c.role == "send" and c.active]

    def suppressions(self, lp: ListPlan) -> list[CampaignUse]:
        """Campaigns that suppress `lp`: members it removes become reachable by them."""
        if not lp.remove:
            return []
        return [c for c in self.campaigns_of(lp.list_name) if c.role == "suppression"]

    @property
    def skipped_count(self) -> int:
        return len(self.skipped_members) + self.skipped_unlisted

    @property
    def duplicate_conflict_count(self) -> int:
        return len(self.duplicate_conflicts) + self.duplicate_conflicts_unlisted

    @property
    def field_issue_count(self) -> int:
        return len(self.field_issues) + self.field_issues_unlisted

    @property
    def has_changes(self) -> bool:
        return next(self.changes(), None) is not None

    def violations(self) -> list[Violation]:
        """The safety policy, judged on the plan itself (as octoDNS's Plan.raise_if_unsafe)."""
        out: list[Violation] = []
        for lp in self.lists:
            out.extend(
                Violation(self.destination, lp.list_name, rule, message)
                for rule, message in source_guards(lp)
            )
            if not lp.remove:
                continue
            cause = self._removals_cause(lp)
            if lp.removal_percent > lp.max_removal_percent:
                out.append(
                    Violation(
                        self.destination,
                        lp.list_name,
                        "removals",
                        f"removes {len(lp.remove):,} of {lp.live_count:,} members "
                        f"({lp.removal_percent:.1f}%), more than maxRemovalPercent "
                        f"{lp.max_removal_percent:g}%{cause}",
                    )
                )
            if lp.max_removals is not None and len(lp.remove) > lp.max_removals:
                out.append(
                    Violation(
                        self.destination,
                        lp.list_name,
                        "removals",
                        f"removes {_members(len(lp.remove))}, more than maxRemovals "
                        f"{lp.max_removals:,}{cause}",
                    )
                )
        for lp in self.lists:
            if not lp.add or lp.active_campaign_adds != "block" or lp.list_id is None:
                continue
            who = f"audience {lp.audience!r} adds {_members(len(lp.add))} to list {lp.list_name!r}"
            sends = self.active_sends(lp)
            if sends:
                out.append(
                    Violation(
                        self.destination,
                        lp.list_name,
                        "active_campaign_adds",
                        f"{who}, the {'; '.join(c.describe() for c in sends)}; policy "
                        "activeCampaignAdds is block",
                    )
                )
            elif self.campaigns_read_error is not None:
                # Unknown is not safe: the campaigns that would message them are unknown.
                out.append(
                    Violation(
                        self.destination,
                        lp.list_name,
                        "active_campaign_adds",
                        f"{who}, and campaigns could not be read to check that no active "
                        "campaign sends to it; policy activeCampaignAdds is block",
                    )
                )
        out.extend(
            Violation(self.destination, ", ".join(c.lists), "field_clears", c.message())
            for c in self.field_clears
            if c.blocks
        )
        out.extend(
            Violation(self.destination, ", ".join(c.lists), "field_changes", c.message())
            for c in self.field_changes
            if c.blocks
        )
        if self.unfamiliar_project and self.has_changes:
            out.append(
                Violation(
                    self.destination,
                    ", ".join(lp.list_name for lp in self.lists if lp.has_changes),
                    "unfamiliar_project",
                    self.unfamiliar_project,
                )
            )
        if self.declared_none_found:
            out.extend(self._unfamiliar_deletions())
        elif not self.allow_list_deletion:
            for deletion in self.deletions:
                out.append(
                    Violation(
                        self.destination,
                        deletion.list_name,
                        "list_deletion",
                        f"deletes list {deletion.list_name!r} (id {deletion.list_id}); the "
                        "destination's policy does not set allowListDeletion: true",
                    )
                )
        return out

    def _removals_cause(self, lp: ListPlan) -> str:
        """The likely cause of a list's removals, when the plan found one (else empty):
        said on the removal guard's message, which is all a blocked apply prints."""
        if lp.list_name not in self.named_by_email:
            return ""
        return (
            "; likely cause: Iterable names every member by an email and the manifests give "
            "userIds that are none: the project looks email-based though projectType userId "
            f"is declared ({where_project_type(self.project_type_at)})"
        )

    def _unfamiliar_deletions(self) -> list[Violation]:
        """Prune's deletions in a project holding none of the lists declared in it: the
        destination's key swapped for another project's (a rotated secret pasted wrong)
        would otherwise create every list there and delete that project's own, whatever
        allowListDeletion says, and the apply after it would delete them with its lists
        there. --allow-list-deletion deletes them when that is meant (every audience
        renamed at once)."""
        declared = self.declared_none_found
        return [
            Violation(
                self.destination,
                deletion.list_name,
                "list_deletion",
                f"deletes list {deletion.list_name!r} (id {deletion.list_id}) from a project "
                "holding no list the manifests declare in it (they declare "
                f"{quantity(declared, 'list')} there): is the destination's API key another "
                "project's? If instead every audience was renamed at once, the deletion is "
                "meant",
            )
            for deletion in self.deletions
        ]


@dataclass(frozen=True)
class Summary:
    lists_to_create: int = 0
    lists_to_delete: int = 0
    members_to_add: int = 0
    members_to_remove: int = 0
    users_to_update: int = 0
    members_skipped: int = 0
    field_values_skipped: int = 0
    lists_unread: int = 0  # audiences left out: their list's read was not trusted
    # Of those, the audiences no one list in Iterable is certainly the list of (several of
    # its name, its listId renamed or gone): not read at all.
    lists_unmatched: int = 0
    members_forgotten: int = 0  # not sent: forgotten in Iterable (expected, exit 0)
    members_not_created: int = 0  # not sent: updateExistingUsersOnly, unknown to Iterable
    members_left_themselves: int = 0  # held back: left the list by their own action
    members_channel_unsubscribed: int = 0  # held back: unsubscribed from the list's channel
    members_resubscribed: int = 0  # re-added under `resubscribe: allowed` although they left
    # Removals whose audience sets channelUnsubscribe: they lose the list's channel too.
    members_to_unsubscribe_from_channel: int = 0

    @property
    def problems(self) -> int:
        """Source data that could not be used, or lists that could not be read: a plan
        with any exits 1."""
        return self.members_skipped + self.field_values_skipped + self.lists_unread

    def describe_problems(self) -> str:
        """The problems in words ("" when there are none)."""
        parts = []
        if self.members_skipped:
            n = self.members_skipped
            parts.append(f"{n:,} member{'s' if n != 1 else ''} could not be used")
        if self.field_values_skipped:
            n = self.field_values_skipped
            parts.append(f"{n:,} field value{'s' if n != 1 else ''} could not be sent")
        if self.lists_unread:
            n = self.lists_unread
            parts.append(
                f"{n:,} audience{'s were' if n != 1 else ' was'} left out ({self.left_out_why})"
            )
        return " and ".join(parts)

    @property
    def left_out_why(self) -> str:
        """Why the audiences left out were, in words true of each: a list read but not
        trusted, or no list certainly theirs (the per-audience reasons say which)."""
        unmatched = self.lists_unmatched
        unread = self.lists_unread - unmatched
        read, matched = "list not read with confidence", "which list in Iterable not certain"
        if not unmatched:
            return read
        if not unread:
            return matched
        return f"{unread:,} {read}, {unmatched:,} {matched}"

    @property
    def changes(self) -> int:
        return (
            self.lists_to_create
            + self.lists_to_delete
            + self.members_to_add
            + self.members_to_remove
            + self.users_to_update
        )


@dataclass(frozen=True)
class Plan:
    destinations: tuple[DestinationPlan, ...] = field(default_factory=tuple)
    # destination -> list name -> what the live list looked like (see plan/fingerprint.py)
    fingerprint: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # destination -> list id -> its name in Iterable's index, for the stale check's words
    # (a list renamed in the web app keeps its id); not saved with a plan.
    listed: dict[str, dict[int, str]] = field(default_factory=dict)

    @property
    def has_changes(self) -> bool:
        return any(d.has_changes for d in self.destinations)

    def violations(self) -> list[Violation]:
        return [v for d in self.destinations for v in d.violations()]

    def raise_if_unsafe(self, allowed: frozenset[str] = frozenset()) -> list[Violation]:
        """Raise UnsafePlanError naming every violation whose rule is not in `allowed`
        (policy.overridden_rules); otherwise return the violations, all overridden."""
        violations = self.violations()
        blocking = [v for v in violations if not v.overridden_by(allowed)]
        if blocking:
            reasons = "; ".join(f"{v.where}: {v.message}" for v in blocking)
            flags = override_flags(blocking)
            raise UnsafePlanError(
                f"the safety policy blocks this plan, nothing was changed: {reasons}. Review "
                f"it, then pass {flags} to apply"
            )
        return violations

    @property
    def uses_channel_unsubscribe(self) -> bool:
        return any(
            lp.channel_unsubscribe and lp.remove for d in self.destinations for lp in d.lists
        )

    @property
    def summary(self) -> Summary:
        lists = [lp for d in self.destinations for lp in d.lists]
        return Summary(
            lists_to_delete=sum(len(d.deletions) for d in self.destinations),
            lists_to_create=sum(lp.create for lp in lists),
            members_to_add=sum(len(lp.add) for lp in lists),
            members_to_remove=sum(len(lp.remove) for lp in lists),
            users_to_update=sum(len(d.field_updates) for d in self.destinations),
            members_skipped=sum(d.skipped_count for d in self.destinations),
            field_values_skipped=sum(d.field_issue_count for d in self.destinations),
            lists_unread=sum(len(d.unread) for d in self.destinations),
            lists_unmatched=sum(len(d.unmatched) for d in self.destinations),
            members_forgotten=sum(len(lp.forgotten) for lp in lists),
            members_not_created=sum(len(lp.not_created) for lp in lists),
            members_left_themselves=sum(len(lp.left_themselves) for lp in lists),
            members_channel_unsubscribed=sum(len(lp.channel_unsubscribed) for lp in lists),
            members_resubscribed=sum(len(lp.resubscribed) for lp in lists),
            members_to_unsubscribe_from_channel=sum(
                len(lp.remove) for lp in lists if lp.channel_unsubscribe
            ),
        )

    def to_dict(self, show: Callable[[str], str], allowed: Collection[str] = ()) -> dict[str, Any]:
        """The plan for machines (`--format json`): counts, samples through `show` (masked by
        default), policy verdicts. Full member sets live only in saved plan files.
        `allowed`: the rules apply was told to override (--allow-removals, ...): those
        violations are `overridden`, not `violations`, as the text plan apply prints says."""
        every = self.violations()
        violations = [v for v in every if not v.overridden_by(allowed)]
        overridden = [v for v in every if v.overridden_by(allowed)]
        return {
            "format_version": 1,
            "has_changes": self.has_changes,
            "blocked": bool(violations),
            # Summary's fields, in their order, are the JSON's summary keys.
            "summary": dataclasses.asdict(self.summary),
            "violations": [v.to_dict() for v in violations],
            "overridden": [v.to_dict() for v in overridden],
            "destinations": [_destination_dict(d, show) for d in self.destinations],
        }


def _destination_dict(d: DestinationPlan, show: Callable[[str], str]) -> dict[str, Any]:
    """One destination of Plan.to_dict."""
    return {
        "name": d.destination,
        "project_type": d.project_type,
        # Iterable's words on a read that failed may quote a member's value.
        "member_read": _said(d.member_read, show),
        "read_note": _said(d.read_note, show),
        "other_reads": [message_for(x, show) for x in d.other_reads],
        "campaigns_read_error": _said(d.campaigns_read_error, show),
        "lists": [_list_dict(d, lp, show) for lp in d.lists],
        # Why a list's read was not trusted quotes Iterable's answer, as member_read does.
        "unread": [
            {"audience": audience, "reason": message_for(reason, show)}
            for audience, reason in d.unread
        ],
        "lists_to_delete": [
            {
                "list_id": x.list_id,
                "list_name": x.list_name,
                "campaigns": [c.to_dict() for c in d.campaigns_of(x.list_name)],
            }
            for x in d.deletions
        ],
        "field_updates": _field_updates_dict(d, show),
        "new_fields": {field_path(path, show): kind for path, kind in d.new_fields},
        # More rows skipped than `skipped_members` lists (large audiences).
        "skipped_unlisted": d.skipped_unlisted,
        "skipped_members": [_issue_dict(a, issue, show) for a, issue in d.skipped_members],
        "field_issues": [_issue_dict(a, issue, show) for a, issue in d.field_issues],
        "field_issues_unlisted": d.field_issues_unlisted,
        "notes": list(d.notes),
        "duplicate_rows": d.duplicate_rows,
        "duplicate_conflicts": [
            {"audience": audience, "where": issue.where, "reason": issue.message}
            for audience, issue in d.duplicate_conflicts
        ],
        "duplicate_conflicts_unlisted": d.duplicate_conflicts_unlisted,
    }


def _list_dict(d: DestinationPlan, lp: ListPlan, show: Callable[[str], str]) -> dict[str, Any]:
    """One list of a destination in Plan.to_dict."""
    return {
        "audience": lp.audience,
        "list_name": lp.list_name,
        "list_id": lp.list_id,
        "live_members": lp.live_count,
        "desired_members": lp.desired_count,
        "unchanged_members": lp.unchanged,
        "users_to_update": len(lp.field_update_keys),
        "resulting_members": lp.resulting_count,
        "held_back_removals": lp.held_back_removals,
        "kept_for_skipped_rows": lp.kept_for_skipped,
        "kept_for_other_spelling": lp.kept_respelled,
        "kept_for_changed_email": lp.kept_email_changed,
        "changes": lp.changes(show),
        "not_sent": lp.left_out(show),
        "consent": lp.held_back_consent(show),
        "campaigns": [c.to_dict() for c in d.campaigns_of(lp.list_name)],
    }


def _issue_dict(audience: str, issue: MemberIssue, show: Callable[[str], str]) -> dict[str, Any]:
    """A skipped member or a field value that could not be used, its value masked."""
    return {
        "audience": audience,
        "where": issue.where,
        "reason": issue.reason(show),
        **({"value": show(issue.value)} if issue.value is not None else {}),
    }


def _field_updates_dict(d: DestinationPlan, show: Callable[[str], str]) -> dict[str, Any]:
    read = d.field_read
    return {
        "count": len(d.field_updates),
        "read": None
        if read is None
        else {
            "method": read.method,
            "users": read.users,
            "requests": read.requests,
            "fields": list(read.fields),
        },
        "sample": [
            {
                "member": show(u.key),
                "changes": {
                    name: {"old": mask_value(old, show), "new": mask_value(new, show)}
                    for name, (old, new) in u.changes.items()
                },
            }
            for u in d.field_updates[:SAMPLE_SIZE]
        ],
    }


def where_project_type(at: str | None) -> str:
    """What a message finding the project of another type tells people to check: the
    line that writes projectType, where the plan knows it."""
    return f"check projectType in {at}" if at else "check the destination's projectType"


def _members(count: int) -> str:
    return f"{count:,} member{'' if count == 1 else 's'}"


def _creates_nobody(lp: ListPlan) -> bool:
    return lp.update_existing_users_only


def _said(text: str | None, show: Callable[[str], str]) -> str | None:
    """A free-text line of the plan as `show` shows members (None stays None)."""
    return None if text is None else message_for(text, show)
