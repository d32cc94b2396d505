"""Carry out a Plan through the client: create lists, subscribe, unsubscribe.

Every member's outcome is known: identifiers Iterable lists in `failedUpdates` are mapped
back to the member and reported, never counted as done. One list's failure does not stop
the others; a rejected API key, a host that could not be connected to through a
request's retries, or 502/503/504 answers through them (Iterable down), stops its
destination (every other request to it would fail the same way: they are reported as not
sent), and the other destinations go on. Each request is recorded in the run journal
(intent before, outcome after), and once `stop` is set (Ctrl-C) no new request starts:
those in flight finish and are reported, the rest are reported as not attempted.
"""

from __future__ import annotations

import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, Literal, TypeVar, assert_never

from reconciler.apply.channel_profiles import (
    ChannelProfiles,
    PlanProfiles,
    channel_removals_text,
    export_is_faster,
    read_channel_profiles,
    unnamed_profiles,
    unnamed_removals,
)
from reconciler.apply.channel_profiles import ambiguous as _ambiguous
from reconciler.apply.held_back import HeldBack
from reconciler.apply.journal import Journal
from reconciler.errors import (
    AuthError,
    IterableError,
    OutcomeUnknown,
    ReadStopped,
    UnavailableError,
    UnreachableError,
    WriteNotSent,
)
from reconciler.iterable import BatchResult, IterableClient, ListInfo
from reconciler.iterable.batching import encode, pack_lazily
from reconciler.members.identity import Member, ProjectType, looks_like_email
from reconciler.members.model import batches
from reconciler.plan import (
    AddMembers,
    Change,
    CreateList,
    DeleteList,
    DestinationPlan,
    FieldUpdate,
    ListPlan,
    Plan,
    RemoveMembers,
    UpdateFields,
    Violation,
)
from reconciler.plan.model import where_project_type
from reconciler.plan.ownership import mark, marks_audience
from reconciler.progress import duration
from reconciler.render.masking import marking_sent, message_for
from reconciler.threads import thread_pool
from reconciler.traits.compare import holds_value
from reconciler.words import quantity

T = TypeVar("T")

# How a report says to finish what a run left; the CLI says otherwise after a saved plan
# (applying it again would be refused: it is stale once part of it is applied).
RUN_AGAIN = "Run apply again"
Progress = Callable[[str, int], None]  # (phase, members done in this step)


@dataclass
class ListResult:
    audience: str
    list_name: str
    list_id: int | None
    planned_add: int
    planned_remove: int
    created: bool = False
    added: int = 0
    removed: int = 0
    rejected: dict[str, str] = field(default_factory=dict)  # identifier -> reason
    errors: list[str] = field(default_factory=list)
    # Members never sent: the run was interrupted first, the destination refused, or the
    # list was found deleted or could not be created (not_sent_why says which).
    not_attempted_add: int = 0
    not_attempted_remove: int = 0
    create_not_attempted: bool = False
    field_update_keys: Sequence[str] = ()  # members whose fields the plan updates
    # Members whose outcome Iterable's answers did not settle: counted as failed without
    # being named (answers without failedUpdates). Never counted as done.
    unconfirmed_add: int = 0
    unconfirmed_remove: int = 0
    # Outcomes that are no failure (exit 0): removals of users Iterable no longer has
    # (notFound or forgotten: they are off the list), subscribes updateExistingUsersOnly
    # kept from creating users, and subscribes of users Iterable has forgotten (GDPR).
    already_gone: int = 0
    not_created: int = 0
    forgotten: int = 0
    # Mapped fields Iterable left off the subscribes (filteredOutFields: a project that
    # does not accept new fields). The members are on the list; their fields are not.
    dropped_fields: list[str] = field(default_factory=list)
    # The audience's channelUnsubscribe: its removals took the list's channel too.
    channel_unsubscribe: bool = False
    # Why the not_attempted_* members were not sent: Ctrl-C, or the destination's key.
    not_sent_why: str = "interrupted"
    # Iterable's list index showed the list this run created (_Destination.check_created):
    # a run started elsewhere from now on finds it rather than creating it again.
    listed: bool = False
    # Of the errors, those applying again does not resolve: each says what to change
    # first, in the manifests or in Iterable (ApplyReport.how_to_finish).
    change_first: int = 0

    @property
    def channel_unsubscribed(self) -> int:
        """Members this run unsubscribed from the list's channel (consent lost): those
        removed, less those Iterable no longer had."""
        return self.removed - self.already_gone if self.channel_unsubscribe else 0

    @property
    def ok(self) -> bool:
        return (
            not self.rejected
            and not self.errors
            and not self.unconfirmed_add
            and not self.unconfirmed_remove
            and not self.dropped_fields
        )

    @classmethod
    def planned(cls, lp: ListPlan) -> ListResult:
        return cls(
            lp.audience,
            lp.list_name,
            lp.list_id,
            len(lp.add),
            len(lp.remove),
            field_update_keys=lp.field_update_keys,
            channel_unsubscribe=lp.channel_unsubscribe,
        )

    def settle_added(self, lp: ListPlan, chunk: Sequence[Member], outcome: BatchResult) -> None:
        """A subscribe's answer. Users Iterable has forgotten, and with
        updateExistingUsersOnly users it does not know, are expected, not rejected."""
        failed = _failed_members(chunk, outcome.failed)
        expected = 0
        for key, kind in _failed_members(chunk, outcome.kinds).items():
            if kind == "forgotten":
                self.forgotten += 1
            elif kind == "notFound" and lp.update_existing_users_only:
                self.not_created += 1
            else:
                continue
            del failed[key]
            expected += 1
        self.rejected.update(failed)
        done, unconfirmed = _settle(len(chunk), len(failed) + expected, outcome)
        self.added += done
        self.unconfirmed_add += unconfirmed
        for name in outcome.filtered_out_fields:
            if name not in self.dropped_fields:
                self.dropped_fields.append(name)

    def settle_removed(self, ids: Sequence[str], outcome: BatchResult) -> None:
        """An unsubscribe's answer. notFound (or forgotten): Iterable has no such user, so
        it is on no list. That is the removal done, not a rejection."""
        failed = {i: outcome.failed[i] for i in ids if i in outcome.failed}
        gone = [i for i in failed if outcome.kinds.get(i) in ("notFound", "forgotten")]
        for identifier in gone:
            del failed[identifier]
        self.rejected.update(failed)
        # Interrupted before they were sent again (as the other kind): not sent, as a
        # batch the run never started is.
        unsent = sum(1 for i in ids if i in outcome.not_sent)
        done, unconfirmed = _settle(len(ids) - unsent, len(failed) + len(gone), outcome)
        self.removed += done + len(gone)
        self.already_gone += len(gone)
        self.unconfirmed_remove += unconfirmed
        self.not_attempted_remove += unsent

    def close(self) -> None:
        """Errors for what the answers left unconfirmed, dropped, and never sent."""
        if self.dropped_fields:
            self.errors.append(
                "Iterable dropped the fields "
                + ", ".join(self.dropped_fields)
                + " from the subscribes (the project does not accept new fields: create "
                "them in Iterable first); the members were added without them"
            )
            self.change_first += 1
        for count, planned, what in (
            (self.unconfirmed_add, self.planned_add, "additions"),
            (self.unconfirmed_remove, self.planned_remove, "removals"),
        ):
            if count:
                self.errors.append(_unconfirmed(count, planned, what))
        # Only what was left unsent: '3 of 5 additions and 0 of 0 removals were not sent'
        # read as if removals had been planned.
        unsent = [
            f"{count:,} of {planned:,} {what}"
            for count, planned, what in (
                (self.not_attempted_add, self.planned_add, "additions"),
                (self.not_attempted_remove, self.planned_remove, "removals"),
            )
            if count
        ]
        if self.create_not_attempted or unsent:
            said = ["the list was not created"] if self.create_not_attempted else []
            if unsent:
                said.append(f"{' and '.join(unsent)} were not sent")
            self.errors.append(f"{self.not_sent_why}: {'; '.join(said)}")


@dataclass
class DeletionResult:
    list_id: int
    list_name: str
    deleted: bool = False
    error: str | None = None


@dataclass
class FieldUpdateResult:
    """The bulkUpdate phase of one destination (trait mappings), reported like a list."""

    planned: int
    updated: int = 0
    rejected: dict[str, str] = field(default_factory=dict)  # member key -> reason
    errors: list[str] = field(default_factory=list)
    not_attempted: int = 0
    unconfirmed: int = 0  # counted as failed by Iterable's answers without being named
    dropped_fields: list[str] = field(default_factory=list)  # filteredOutFields, once each
    not_sent_why: str = "interrupted"  # as ListResult's
    change_first: int = 0  # as ListResult's

    @property
    def ok(self) -> bool:
        return (
            not self.rejected
            and not self.errors
            and not self.unconfirmed
            and not self.dropped_fields
        )

    def settle(self, updates: Sequence[FieldUpdate], outcome: BatchResult) -> None:
        """A bulkUpdate's answer for these users."""
        failed = _failed_members(updates, outcome.failed)
        self.rejected.update(failed)
        done, unconfirmed = _settle(len(updates), len(failed), outcome)
        self.updated += done
        self.unconfirmed += unconfirmed
        for name in outcome.filtered_out_fields:
            if name not in self.dropped_fields:
                self.dropped_fields.append(name)

    def close(self) -> None:
        # Said once, however many requests' answers named the fields.
        if self.dropped_fields:
            self.errors.append(
                "Iterable dropped the fields "
                + ", ".join(self.dropped_fields)
                + " (the project does not accept new fields: create them in Iterable first)"
            )
            self.change_first += 1
        if self.unconfirmed:
            self.errors.append(_unconfirmed(self.unconfirmed, self.planned, "field updates"))
        if self.not_attempted:
            self.errors.append(
                f"{self.not_sent_why}: {self.not_attempted:,} of {self.planned:,} field "
                "updates were not sent"
            )

    def to_dict(self, show: Callable[[str], str]) -> dict[str, Any]:
        return {
            "planned": self.planned,
            "updated": self.updated,
            "not_attempted": self.not_attempted,
            "unconfirmed": self.unconfirmed,
            "rejected": [
                {"member": show(k), "reason": message_for(v, show)}
                for k, v in sorted(self.rejected.items())
            ],
            "errors": [message_for(e, show) for e in self.errors],
        }


@dataclass
class DestinationResult:
    destination: str
    lists: list[ListResult]
    deletions: list[DeletionResult] = field(default_factory=list)
    fields: FieldUpdateResult | None = None  # None when the plan updates no user fields


@dataclass
class ApplyReport:
    destinations: list[DestinationResult] = field(default_factory=list)
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    rate_limit_wait_seconds: float = 0.0  # time spent pacing to stay inside rate limits
    rejected_file: str | None = None  # where every rejected member is, in full (rejected.py)
    not_attempted: int = 0  # requests never sent because the run was interrupted
    # Source data the plan could not use (invalid members, unconvertible values), in words:
    # everything planned can succeed and the run still not make Iterable match.
    source_problems: str | None = None
    # Members not sent because they opted out (apply/held_back.py): no change, no failure.
    held_back: list[HeldBack] = field(default_factory=list)
    # The safety policy's verdicts the command line overrode (--allow-removals, ...) to
    # apply this plan: the text and markdown plans printed before the report say so, and
    # the JSON report and the run record are all a script or a sync's history keep.
    overridden: list[Violation] = field(default_factory=list)
    # When (time.monotonic()) the run's last request to each destination it wrote to
    # ended: Iterable's reads may not show it until the read lag later.
    # Empty when a signal asked the run to stop: it does not wait for them then.
    last_write_at: dict[str, float] = field(default_factory=dict)

    @property
    def interrupted(self) -> bool:
        return self.not_attempted > 0

    @property
    def rejected_count(self) -> int:
        """Members (and users' field updates) Iterable rejected, every list's together."""
        return sum(len(lr.rejected) for d in self.destinations for lr in d.lists) + sum(
            len(d.fields.rejected) for d in self.destinations if d.fields is not None
        )

    @property
    def error_count(self) -> int:
        """The lists', the field updates' and the deletions' errors, together."""
        return sum(len(lr.errors) for d in self.destinations for lr in d.lists) + sum(
            (len(d.fields.errors) if d.fields is not None else 0)
            + sum(x.error is not None for x in d.deletions)
            for d in self.destinations
        )

    @property
    def change_first_count(self) -> int:
        """The errors applying again does not resolve (ListResult.change_first)."""
        return sum(lr.change_first for d in self.destinations for lr in d.lists) + sum(
            d.fields.change_first for d in self.destinations if d.fields is not None
        )

    def how_to_finish(self, again: str = RUN_AGAIN) -> str:
        """What to do after a run that did not do all it planned, for people: applying again
        is safe, since it reads Iterable afresh and sends only the differences (the
        members Iterable rejected among them, which it rejects again). An error that
        says to change something first (a listName Iterable keeps otherwise, fields to
        create) is not retried by applying again: the advice says so, not "retry"."""
        if self.interrupted:
            return f"{again} to finish: it reads Iterable afresh and sends only what is left."
        change_first = self.change_first_count
        if change_first and change_first == self.error_count and not self.rejected_count:
            which = "the error above says" if change_first == 1 else "the errors above say"
            return (
                f"Change first what {which}, in the manifests or in Iterable: applying "
                "again before that does not resolve it."
            )
        said = (
            f"{again} to retry what failed: it reads Iterable afresh and sends only what is left."
        )
        if change_first:
            said = (
                "Change first what the errors above that ask for a change in the manifests "
                f"or in Iterable say: applying again does not resolve those. {said}"
            )
        if self.rejected_count:
            said += (
                " Members Iterable rejected are rejected again until their rows in the "
                "source are fixed."
            )
        return said

    def describe_failed(self, again: str = RUN_AGAIN) -> str:
        """A run that applied its plan and did not succeed, for its run record: what failed,
        and what to do (never a member: counts only)."""
        said = []
        if not self.ok:
            said.append(
                f"Apply finished with failures: {quantity(self.rejected_count, 'member')} "
                f"rejected, {quantity(self.error_count, 'error')}. {self.how_to_finish(again)}"
            )
        else:
            said.append("Applied everything planned.")
        if self.source_problems:
            said.append(
                f"Not complete: {self.source_problems}; `reconciler plan --format json` says "
                "which (skipped_members, field_issues, unread)."
            )
        return " ".join(said)

    def describe_not_done(self, again: str = RUN_AGAIN) -> str:
        """What an interrupted run left unsent, for people; `again` says how to finish."""
        lists = [lr for d in self.destinations for lr in d.lists]
        adds = sum(lr.not_attempted_add for lr in lists)
        removes = sum(lr.not_attempted_remove for lr in lists)
        creates = sum(lr.create_not_attempted for lr in lists)
        deletions = sum(1 for d in self.destinations for x in d.deletions if not x.deleted)
        updates = sum(d.fields.not_attempted for d in self.destinations if d.fields is not None)
        return (
            "Interrupted (Ctrl-C or SIGTERM): stopped after the requests in flight. Not done: "
            f"{quantity(adds, 'addition')}, {quantity(removes, 'removal')}, "
            f"{quantity(updates, 'user field update')}, {quantity(creates, 'list creation')}, "
            f"{quantity(deletions, 'list deletion')}. {self.how_to_finish(again)}"
        )

    @property
    def ok(self) -> bool:
        return (
            all(lr.ok for d in self.destinations for lr in d.lists)
            and all(x.error is None for d in self.destinations for x in d.deletions)
            and all(d.fields is None or d.fields.ok for d in self.destinations)
        )

    def to_dict(self, show: Callable[[str], str]) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "interrupted": self.interrupted,
            "source_problems": self.source_problems,
            "rejected_file": self.rejected_file,
            "requests": self.requests,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "destinations": [
                {
                    "name": d.destination,
                    "lists": [
                        {
                            "audience": lr.audience,
                            "list_name": lr.list_name,
                            "list_id": lr.list_id,
                            "created": lr.created,
                            "added": lr.added,
                            "removed": lr.removed,
                            "planned_add": lr.planned_add,
                            "planned_remove": lr.planned_remove,
                            "not_attempted_add": lr.not_attempted_add,
                            "not_attempted_remove": lr.not_attempted_remove,
                            "unconfirmed_add": lr.unconfirmed_add,
                            "unconfirmed_remove": lr.unconfirmed_remove,
                            "already_gone": lr.already_gone,
                            "not_created": lr.not_created,
                            "forgotten": lr.forgotten,
                            "channel_unsubscribed": lr.channel_unsubscribed,
                            "rejected": [
                                {"member": show(k), "reason": message_for(v, show)}
                                for k, v in sorted(lr.rejected.items())
                            ],
                            "errors": [message_for(e, show) for e in lr.errors],
                        }
                        for lr in d.lists
                    ],
                    "deleted_lists": [
                        {
                            "list_id": x.list_id,
                            "list_name": x.list_name,
                            "deleted": x.deleted,
                            "error": x.error and message_for(x.error, show),
                        }
                        for x in d.deletions
                    ],
                    "field_updates": d.fields.to_dict(show) if d.fields is not None else None,
                }
                for d in self.destinations
            ],
            "members_held_back": sum(h.count for h in self.held_back),
            "held_back": [h.to_dict(show) for h in self.held_back],
            "overridden": [v.to_dict() for v in self.overridden],
        }


def subscriber_payload(member: Member, project_type: ProjectType) -> dict[str, Any]:
    """How Iterable identifies the member. Hybrid projects get both identifiers (as
    Segment's destination sends them) so a new user is created with both."""
    if project_type == "email":
        return {"email": member.email}
    if project_type == "userId":
        return {"userId": member.user_id}
    out: dict[str, Any] = {}
    if member.email is not None:
        out["email"] = member.email
    if member.user_id is not None:
        out["userId"] = member.user_id
    return out


def subscribe_payload(member: Member, lp: ListPlan, project_type: ProjectType) -> dict[str, Any]:
    """A subscriber with its mapped fields (trait mappings), so a new member needs no
    separate update. Never a clear (a value that holds none: null, empty text, an empty
    list, an object of nulls): plans leave them out (plan/fields.sent_on_subscribe), but
    plan files of format 5 (plan/file.py UNREAD_SUBSCRIBES), still applied, hold a
    joiner's empty cell as a null: a clear sent unread would erase a value no plan showed.
    An object a plan put here is kept: it read the member's field and found nothing to
    lose (plan/fields.object_on_subscribe; format 5's objects are refused as read)."""
    out = subscriber_payload(member, project_type)
    data = lp.add_fields.get(member.key)
    if data and not all(holds_value(v) for v in data.values()):
        data = {name: value for name, value in data.items() if holds_value(value)}
    if data:
        out["dataFields"] = data
        if lp.merge_nested_objects:
            out["mergeNestedObjects"] = True
    return out


def update_payload(update: FieldUpdate, project_type: ProjectType) -> dict[str, Any]:
    """A bulkUpdate user: identified as subscribe identifies it, with only changed fields."""
    out: dict[str, Any] = {}
    if project_type != "userId" and update.email is not None:
        out["email"] = update.email
    if project_type != "email" and update.user_id is not None:
        out["userId"] = update.user_id
    out["dataFields"] = update.data_fields
    if update.merge_nested_objects:
        out["mergeNestedObjects"] = True
    return out


def removal_payload(
    identifier: str, project_type: ProjectType, prefer_user_id: bool | None = None
) -> dict[str, Any]:
    """getUsers reports one identifier per member; in hybrid projects it is the email,
    unless the profile has none or preferUserId chose its userId (`prefer_user_id`, as
    the list was read: ListPlan.read_prefer_user_id), so its shape tells which, except
    that a userId may be shaped like an email: one with a capital letter is a userId
    (Iterable keeps emails in lower case; userIds keep their case), and one in lower case
    is sent first as the kind the read names a profile by when it has both (a userId
    under preferUserId, else an email) and, when Iterable finds no such user, as the other
    (_Destination._as_the_other_kind): sent as an email under preferUserId, it removed
    another person whose email it is and who is on the list under their own userId."""
    if project_type == "email":
        return {"email": identifier}
    if project_type == "userId" or not _ambiguous(identifier):
        return {"userId": identifier}
    return {"userId" if prefer_user_id else "email": identifier}


def _list_ids(value: Any) -> set[int]:
    """A profile's list memberships (`userListIds`: one id or a list of them)."""
    values = value if isinstance(value, list) else [value]
    return {v for v in values if isinstance(v, int) and not isinstance(v, bool)}


def _named_by(
    profile: dict[str, Any],
    kind: Literal["email", "userId"],
    identifier: str,
    prefer_user_id: bool | None,
) -> bool:
    """Whether getUsers, with this preferUserId, names a profile that has `identifier` as
    its `kind` by it: with preferUserId a profile is named by its userId when it has one,
    without by its email when it has one (a hybrid project). So by its email only when
    preferUserId was false or it has no other userId, by its userId only when it was true
    or it has no other email. None (not known): only a profile named by it either way."""
    if prefer_user_id is not None and prefer_user_id == (kind == "userId"):
        return True
    other = profile.get("userId" if kind == "email" else "email")
    if not isinstance(other, str) or not other:
        return True
    # Iterable keeps emails in lower case; userIds as they were given.
    return (other.lower() if kind == "userId" else other) == identifier


# Removals left unnamed by an answer of counts that are read by email to tell a member
# still on the list under that text from a user deleted since the plan
# (_Destination._unnamed_to_read): per batch, and per destination in all.
_UNNAMED_READS_PER_BATCH = 10
_UNNAMED_READS = 100


def _mismatch_hint(
    plan: DestinationPlan, lp: ListPlan, outcome: BatchResult, adding: bool
) -> str | None:
    """What a batch's answer says of a destination declaring projectType userId against
    a project that is not userID-based, once per list (None: nothing). Names the line
    that writes projectType where the plan kept it (a plan file saved before it did not)."""
    if plan.project_type != "userId":
        return None
    check = where_project_type(plan.project_type_at)
    if not adding and "listedByEmail" in outcome.kinds.values():
        # _Destination._still_listed_by_email found removals still on the list by email.
        return (
            f"destination {plan.destination!r} declares projectType userId, yet Iterable "
            f"knows these members by email: the project looks hybrid or email-based; {check} "
            "(the members named were not removed and stay on the list)"
        )
    if adding and not lp.update_existing_users_only and "notFound" in outcome.kinds.values():
        # A userID-based project creates the user of a userId it does not know; an
        # email-based one does not (without preferUserId).
        return (
            f"destination {plan.destination!r} declares projectType userId, yet Iterable "
            "created no user for a userId it does not know, as a userID-based project does: "
            f"the project looks email-based; {check} (the members named were not added)"
        )
    return None


def apply_plan(
    plan: Plan,
    clients: Mapping[str, IterableClient],
    *,
    progress: Progress | None = None,
    journal: Journal | None = None,
    stop: threading.Event | None = None,
) -> ApplyReport:
    report = ApplyReport()
    run = _Run(journal or Journal.disabled(), stop or threading.Event(), progress)
    for dest_plan in plan.destinations:
        if not dest_plan.has_changes:
            continue
        client = clients[dest_plan.destination]
        client.stop = run.stop
        report.destinations.append(_apply_destination(dest_plan, client, run))
    report.not_attempted = run.not_attempted
    count_traffic(report, clients)
    return report


def count_traffic(report: ApplyReport, clients: Mapping[str, IterableClient]) -> ApplyReport:
    """Add to `report` every request the run's clients sent, the plan's reads included, with
    their retries and rate-limit waits (a client two destinations share counted once)."""
    for client in {id(c): c for c in clients.values()}.values():
        report.requests += client.stats.requests
        report.retries += client.stats.retries
        report.rate_limited += client.stats.rate_limited
        report.rate_limit_wait_seconds += client.rate_limit_wait_seconds
    return report


@dataclass
class _Run:
    journal: Journal
    stop: threading.Event
    progress: Progress | None
    not_attempted: int = 0
    token: str = field(default_factory=lambda: secrets.token_hex(4))
    """Marks the lists this run creates (plan.ownership.mark)."""

    def skip(self) -> bool:
        """True (and counted) when the run was interrupted before this request."""
        if self.stop.is_set():
            self.not_attempted += 1
            return True
        return False


@dataclass
class _Step:
    """How one typed change is carried out: its jobs (taken as the sender reaches them),
    how one job is sent, and how its answer, failure or absence is recorded."""

    jobs: Iterable[Any]
    send: Callable[[Any], Any]  # one request, journaled; an IterableError fails only this job
    settle: Callable[[Any, Any], None]
    failed: Callable[[Any, IterableError], None]
    not_sent: Callable[[Any], None]  # the run was interrupted before this job
    # Progress phase. Its jobs are tuples whose last item is the batch: it counts its length.
    phase: str | None = None
    concurrent: bool = True  # False: one at a time, in order (creating and deleting lists)
    # True for a job not to send after all (its list was found deleted): not sent.
    skip: Callable[[Any], bool] = lambda _job: False
    # What a job writes, for its retries' lines (IterableClient.write_step); None: the path
    # says it (a list's create or delete names no member).
    about: Callable[[Any], str] | None = None


def _apply_destination(
    dest_plan: DestinationPlan, client: IterableClient, run: _Run
) -> DestinationResult:
    """One loop over the destination's typed changes, in the order the plan gives them
    (DestinationPlan.changes), each dispatched to its requests and sent through the one
    batch sender. The changes of one kind go to the sender together, so the pool stays
    full across lists; the next kind starts once they have all been answered, so members
    go only to lists that exist by then, and field updates to users subscribes created."""
    destination = _Destination(dest_plan, client, run)
    concurrency = client.settings.concurrency
    with thread_pool(concurrency) as pool:
        for (kind, _later), changes in groupby(dest_plan.changes(), key=_wave):
            steps = [destination.step(change) for change in changes]
            _send(steps, pool, run, concurrency, destination)
            if kind is CreateList:
                destination.check_created()
    return destination.result()


def _wave(change: Change) -> tuple[type, bool]:
    """Changes sent together: one kind at a time, and the subscribes of lists with
    updateExistingUsersOnly after the others, whose subscribes may create the users they
    add (state/unsendable.py keeps such users in their adds)."""
    return type(change), isinstance(
        change, AddMembers
    ) and change.list_plan.update_existing_users_only


def _send(
    steps: Sequence[_Step],
    pool: ThreadPoolExecutor,
    run: _Run,
    concurrency: int,
    destination: _Destination,
) -> None:
    """The batch sender: every job of `steps` sent (unless the run was interrupted first,
    or the destination's key was refused) and its outcome recorded, in job order."""

    def attempt(item: tuple[_Step, Any]) -> Any:
        step, job = item
        if destination.refused is not None or step.skip(job):
            return _NOT_SENT  # every request would be refused as the one before was
        if run.skip():
            return _NOT_SENT
        try:
            about = step.about(job) if step.about is not None else None
            with destination.client.write_step(about):
                return step.send(job)
        except WriteNotSent:
            run.not_attempted += 1
            return _NOT_SENT
        except (AuthError, UnreachableError, UnavailableError) as exc:
            destination.refuse(exc)
            raise

    jobs = ((step, job) for step in steps for job in step.jobs)
    answers = (
        _run(pool, attempt, jobs, concurrency)
        if all(step.concurrent for step in steps)
        else _one_at_a_time(attempt, jobs)
    )
    for (step, job), answer in answers:
        if answer is _NOT_SENT:
            step.not_sent(job)
        elif isinstance(answer, IterableError):
            step.failed(job, answer)
            if isinstance(answer, OutcomeUnknown):
                run.not_attempted += 1  # its next try, which the interrupt did not send
        else:
            step.settle(job, answer)
            if step.phase is not None and run.progress is not None:
                run.progress(step.phase, len(job[-1]))


class _Destination:
    """The requests that carry out each kind of typed change to one destination, and what
    came of them."""

    def __init__(self, dest_plan: DestinationPlan, client: IterableClient, run: _Run):
        self.plan, self.client, self.run = dest_plan, client, run
        self.dest = dest_plan.destination
        self.work = [lp for lp in dest_plan.lists if lp.has_changes]
        self.results = {lp.list_name: ListResult.planned(lp) for lp in self.work}
        # Lists that exist: a list that could not be created gets no members.
        self.live_ids: dict[str, int] = {}
        for lp in self.work:
            if not lp.create:
                assert lp.list_id is not None
                self.live_ids[lp.list_name] = lp.list_id
        # The description each list this run creates is sent with (its run token).
        self.created_as: dict[str, str] = {}
        self.fields: FieldUpdateResult | None = None  # made by the UpdateFields change
        self.deletions: list[DeletionResult] = []
        # Lists found deleted in Iterable during the run (by hand): sent nothing more.
        self.gone: set[str] = set()
        # Lists this run could not create: their members are not sent, and say why.
        self.uncreated: set[str] = set()
        # A removal by userId found a member still on its list under that text as its
        # email (_still_listed_by_email): the project is not the userID-based one declared.
        self.listed_by_email = False
        self._unnamed_reads_left = _UNNAMED_READS  # _unnamed_to_read's budget
        self._unnamed_lock = threading.Lock()
        # The first 401, a host found gone, or Iterable down (502/503/504 through a
        # request's retries, or 429s to two requests in turn while it took none of their
        # kind): nothing more is sent to this destination (the others go on).
        self.refused: AuthError | UnreachableError | UnavailableError | None = None
        # The profiles the channel removals are resolved against, when one export read
        # them (apply/channel_profiles.py); None: each is read by itself. Read once.
        self.channel_profiles: ChannelProfiles | None = None
        self._channel_profiles_read = False
        # The profiles a hybrid batch's removals that an answer of counts left unnamed are
        # judged by, when one export read them (_unnamed_profiles); None: read one by one.
        self.unnamed_profiles: ChannelProfiles | None = None
        self._unnamed_export_read = False
        self._unnamed_wanted: frozenset[str] | None = None
        self._unnamed_reads_made = 0  # by the batches answered short so far
        self._unnamed_export_lock = threading.Lock()
        # The per-user reads those removals made, by (kind, identifier): a member leaving
        # several such lists is read once, as the export answers every list from one
        # read (an answer trimmed to what _kind_on_list judges: a churn may be 100,000s).
        self._channel_reads: dict[tuple[str, str], Future[dict[str, Any] | None]] = {}
        self._channel_reads_lock = threading.Lock()

    def refuse(self, exc: AuthError | UnreachableError | UnavailableError) -> None:
        if self.refused is None:
            self.refused = exc

    @property
    def _not_sent_why(self) -> str:
        if self.refused is None:
            return "interrupted"
        if isinstance(self.refused, UnreachableError):
            return "not sent after the destination's host could not be reached"
        if isinstance(self.refused, UnavailableError) and self.refused.status == 429:
            return (
                "not sent after the destination's Iterable answered every try of two "
                "requests in turn with HTTP 429 (its rate limit), taking none of their kind "
                "meanwhile"
            )
        if isinstance(self.refused, UnavailableError):
            return (
                "not sent after the destination's Iterable answered every try of a request "
                f"with HTTP {self.refused.status}"
            )
        return "not sent after Iterable rejected the destination's API key"

    def step(self, change: Change) -> _Step:
        """The dispatch: how `change` is sent."""
        match change:
            case CreateList():
                return self._create_list(change.list_plan)
            case AddMembers():
                return self._members("subscribe", change.list_plan, change.members)
            case UpdateFields():
                self.fields = FieldUpdateResult(planned=len(change.updates))
                return self._update_fields(self.fields, change.updates)
            case RemoveMembers():
                self._read_channel_profiles(change.list_plan)
                return self._members("unsubscribe", change.list_plan, change.identifiers)
            case DeleteList():
                outcome = DeletionResult(change.list_id, change.list_name)
                self.deletions.append(outcome)
                return self._delete_list(outcome)
            case _:
                assert_never(change)

    def _read_channel_profiles(self, lp: ListPlan) -> None:
        """Before the first removal with channelUnsubscribe of a hybrid or userID-based
        project is sent: the profiles all of them are resolved against, by one export when
        that is faster than the per-user reads (_kind_on_list,
        _unsubscribe_user_ids_channel_safely)."""
        project_type = self.plan.project_type
        if (
            self._channel_profiles_read
            or project_type == "email"
            or not lp.channel_unsubscribe
            or self.run.stop.is_set()
            or self.refused is not None
        ):
            return
        self._channel_profiles_read = True
        kept: PlanProfiles | None = self.plan.channel_profiles
        if kept is not None and kept.fresh(self.client.settings.time_scale):
            # The plan's own export, made moments ago in this process: no second one.
            what = channel_removals_text(len(kept.profiles.wanted), project_type)
            self.client.tell(
                f"{what}: reading which profile each names from the plan's user export, "
                f"started {duration(kept.age())} ago"
            )
            self.channel_profiles = kept.profiles
            return
        # Every list of the destination: the largest, unchanged or not, bounds the export.
        self.channel_profiles = read_channel_profiles(
            self.client, self.plan.lists, self.run.stop, project_type
        )

    def result(self) -> DestinationResult:
        for result in self.results.values():
            if result.list_name not in self.gone | self.uncreated or self.refused is not None:
                result.not_sent_why = self._not_sent_why
            result.close()
        if self.fields is not None:
            self.fields.not_sent_why = self._not_sent_why
            self.fields.close()
        return DestinationResult(
            self.dest, list(self.results.values()), self.deletions, self.fields
        )

    def check_created(self) -> None:
        """Once the lists are created, before a member is sent: wait until Iterable's list
        index shows the lists this run created, and look there for another list of the
        same name. Another apply of the same manifests (a CI runner and a laptop share no
        lock and no run journal) or a person in the web app may have created one
        meanwhile, which this run's plan could not see; Iterable would then hold two
        lists of one name, each with every member, and every later plan would leave the
        audience out until someone chose which to delete, and with it the unsubscribes it
        recorded. Of the copies made for the audience (its marker), the older is kept: the
        run whose copy is the newer deletes it while it is still empty and sends it
        nothing. The index shows lists in the order they were created, so the run that
        created later is the one sure to see both. A list without the audience's marker
        is someone else's and is never taken for ours: this run keeps its own and names
        the other. The wait also serves runs started elsewhere right after this one
        (IterableClient.wait_until_listed)."""
        created = {
            r.list_id: r for r in self.results.values() if r.created and r.list_id is not None
        }
        if not created or self.run.stop.is_set() or self.refused is not None:
            return
        try:
            listed = self.client.wait_until_listed(created)
        except IterableError:
            return  # the writes go on as planned; the next plan sees a second list
        shown = {x.id: x for x in listed or ()}
        for list_id, result in created.items():
            result.listed = list_id in shown
            if list_id in shown and shown[list_id].name != result.list_name:
                result.errors.append(_kept_as(result, list_id, shown[list_id].name))
                result.change_first += 1
            self._settle_namesakes(result, list_id, _namesakes(listed or (), result.list_name))

    def _settle_namesakes(self, result: ListResult, list_id: int, same: list[ListInfo]) -> None:
        """Keep one list of the name when the index shows another beside this run's
        (check_created): this run's if it is the older copy of the audience, or another
        list's; see there."""
        if len(same) < 2 or list_id not in {x.id for x in same}:
            return
        first = _first_copy(same, list_id, result.audience)
        if first.id == list_id:
            result.errors.append(_kept_own(result.list_name, list_id, same))
            result.change_first += 1
        elif first.description == self.created_as[result.list_name]:
            self._take_back(result, list_id, first.id)
        else:
            self._give_way(result, list_id, first.id)

    def _delete_copy(self, result: ListResult, list_id: int) -> None:
        """Delete a second list of the audience's name this run made (check_created),
        still empty, journaled as prune's deletions are."""
        with self.run.journal.step(
            "delete_list", self.dest, result.list_name, list_id=list_id
        ) as step:
            self.client.delete_list(list_id)
            step.done()

    def _take_back(self, result: ListResult, list_id: int, first: int) -> None:
        """The older copy carries this run's own token: it is this run's create whose
        answer was lost, which the list index showed only after the create was sent
        again (its lag is 'up to about a minute', not a bound). The newer copy is deleted,
        still empty, and the members go to the first, as if its answer had come."""
        try:
            self._delete_copy(result, list_id)
        except IterableError as exc:
            result.errors.append(
                f"Iterable shows list {first} named {result.list_name!r}, made by this run's "
                f"create whose answer was lost, beside list {list_id}, made when the create "
                f"was sent again; deleting list {list_id} failed ({exc}): this run wrote to "
                "it, so delete the other, empty, in Iterable, as the next plan leaves the "
                "audience out while two lists have its name"
            )
            return
        result.list_id = self.live_ids[result.list_name] = first

    def _give_way(self, result: ListResult, list_id: int, kept: int) -> None:
        """Delete this run's copy of a list another writer created first (check_created);
        nothing is sent to it, deleted or not."""
        why = (
            f"another list named {result.list_name!r} (list {kept}) was created in Iterable "
            f"while this run created its own (list {list_id}): {_WHO}. The older is kept"
        )
        try:
            self._delete_copy(result, list_id)
        except IterableError as exc:
            why += (
                f"; deleting this run's copy failed ({exc}): delete list {list_id} in "
                "Iterable, as the next plan leaves the audience out while two lists have its "
                "name. Not sent to this run's copy"
            )
        else:
            why += (
                f", so this run deleted its copy, empty, and the next plan manages list {kept}."
                " Not sent to this run's copy"
            )
            result.created, result.list_id = False, None
        self.gone.add(result.list_name)
        result.not_sent_why = why

    def _create_list(self, lp: ListPlan) -> _Step:
        def send(lp: ListPlan) -> int:
            with self.run.journal.step("create_list", self.dest, lp.list_name) as step:
                # The marker is how prune knows the list is ours to delete later; the run
                # token, how a create whose answer was lost is recognised; the lists it is
                # held to, how later plans keep holding back who left them.
                description = mark(lp.description, lp.audience, self.run.token, lp.carried_list_ids)
                self.created_as[lp.list_name] = description
                list_id = self.client.create_list(lp.list_name, description)
                step.done(list_id=list_id)
            return list_id

        def settle(lp: ListPlan, list_id: int) -> None:
            result = self.results[lp.list_name]
            result.list_id, result.created = list_id, True
            self.live_ids[lp.list_name] = list_id

        def failed(lp: ListPlan, exc: IterableError) -> None:
            result = self.results[lp.list_name]
            result.errors.append(f"creating the list failed: {exc}")
            # Its members are never sent: counted and said as not sent, or 'added 0/3,000'
            # and a run record with no member unaccounted for as rejected, unconfirmed or
            # not attempted left a reader to guess what became of them.
            result.not_attempted_add = len(lp.add)
            result.not_sent_why = "not sent, as the list could not be created"
            self.uncreated.add(lp.list_name)

        def not_sent(lp: ListPlan) -> None:
            result = self.results[lp.list_name]
            result.create_not_attempted = True
            result.not_attempted_add = len(lp.add)

        return _Step([lp], send, settle, failed, not_sent, concurrent=False)

    def _members(
        self, op: Literal["subscribe", "unsubscribe"], lp: ListPlan, members: Sequence[Any]
    ) -> _Step:
        """Subscribes or unsubscribes, a request per job: unsubscribes in batches of at
        most batch_size members, subscribes packed by count and by encoded size at once
        (_subscribe_requests). Jobs are generated as the pool takes them: a list of
        millions is read from DuckDB a batch at a time, never held whole."""
        adding = op == "subscribe"
        project_type = self.plan.project_type
        size = self.client.settings.batch_size

        def jobs() -> Iterator[tuple[ListPlan, Sequence[Any]]]:
            if lp.list_name not in self.live_ids:  # a list that could not be created gets none
                return
            if adding:
                for request in self._subscribe_requests(lp, members):
                    yield lp, request
            else:
                # An unsubscribe entry is an identifier alone, as Iterable's read named it
                # (a userId is at most 52 characters): a thousand of them are far under the
                # body limit, so the count is the only limit that binds.
                for chunk in batches(members, size):
                    yield lp, chunk

        def send(job: tuple[ListPlan, Sequence[Any]]) -> BatchResult:
            lp, chunk = job
            try:
                return write(lp, chunk)
            except IterableError as exc:
                if _list_gone(exc, lp):
                    # Deleted in Iterable since the plan read it: every other write to it
                    # would be refused the same way.
                    self.gone.add(lp.list_name)
                    self.results[
                        lp.list_name
                    ].not_sent_why = "not sent after the list was found deleted in Iterable"
                raise

        def sent_payloads(lp: ListPlan, chunk: Sequence[Any]) -> list[dict[str, Any]]:
            """What a request for `chunk` carries, to mark where an error quotes it."""
            if adding:
                return [subscribe_payload(m, lp, project_type) for m in chunk]
            return [removal_payload(i, project_type, lp.read_prefer_user_id) for i in chunk]

        def write(lp: ListPlan, chunk: Sequence[Any]) -> BatchResult:
            list_id = self.live_ids[lp.list_name]
            with self.run.journal.step(
                op,
                self.dest,
                lp.list_name,
                list_id=list_id,
                members=len(chunk),
                sent=lambda: sent_payloads(lp, chunk),
            ) as step:
                if adding:
                    outcome = self.client.subscribe(
                        list_id,
                        [subscribe_payload(m, lp, project_type) for m in chunk],
                        update_existing_users_only=lp.update_existing_users_only,
                        list_just_created=lp.create,
                        packed=True,  # by _subscribe_requests
                    )
                elif project_type == "hybrid" and lp.channel_unsubscribe:
                    outcome = self._unsubscribe_channel_safely(lp, list_id, chunk)
                elif project_type == "userId" and lp.channel_unsubscribe:
                    outcome = self._unsubscribe_user_ids_channel_safely(lp, list_id, chunk)
                else:
                    outcome = self.client.unsubscribe(
                        list_id,
                        [removal_payload(i, project_type, lp.read_prefer_user_id) for i in chunk],
                        campaign_id=lp.campaign_id,
                        channel_unsubscribe=lp.channel_unsubscribe,
                    )
                    if project_type == "hybrid":
                        outcome = self._as_the_other_kind(lp, list_id, chunk, outcome)
                    elif project_type == "userId":
                        outcome = self._still_listed_by_email(lp, list_id, chunk, outcome)
                step.done(succeeded=outcome.success_count, rejected=len(outcome.failed))
            return outcome

        def settle(job: tuple[ListPlan, Sequence[Any]], outcome: BatchResult) -> None:
            lp, chunk = job
            result = self.results[lp.list_name]
            if adding:
                result.settle_added(lp, chunk, outcome)
            else:
                result.settle_removed(chunk, outcome)
            hint = _mismatch_hint(self.plan, lp, outcome, adding)
            if hint is not None and hint not in result.errors:
                result.errors.append(hint)

        def failed(job: tuple[ListPlan, Sequence[Any]], exc: IterableError) -> None:
            lp, chunk = job
            verb = "subscribing" if adding else "unsubscribing"
            sent = sent_payloads(lp, chunk)
            gone = (
                f"; list {self.live_ids[lp.list_name]} no longer exists in Iterable (deleted "
                "since the plan read it?): the next plan creates it again"
                if _list_gone(exc, lp)
                else ""
            )
            self.results[lp.list_name].errors.append(
                f"{verb} {len(chunk):,} member{'' if len(chunk) == 1 else 's'} failed: "
                f"{marking_sent(str(exc), sent)}{gone}"
            )

        def not_sent(job: tuple[ListPlan, Sequence[Any]]) -> None:
            lp, chunk = job
            result = self.results[lp.list_name]
            if adding:
                result.not_attempted_add += len(chunk)
            else:
                result.not_attempted_remove += len(chunk)

        return _Step(
            jobs(),
            send,
            settle,
            failed,
            not_sent,
            phase="add" if adding else "remove",
            skip=lambda job: job[0].list_name in self.gone,
            about=lambda job: f"list {job[0].list_name!r}, {quantity(len(job[1]), 'member')}",
        )

    def _subscribe_requests(
        self, lp: ListPlan, members: Sequence[Member]
    ) -> Iterator[list[Member]]:
        """A list's adds in subscribe requests each as full as both of Iterable's limits
        allow: at most batch_size members and bulk_update_max_bytes of encoded body, its
        members' mapped fields included, measured on the bytes client.subscribe sends.
        Cutting into batch_size batches first and each batch by size again sent a short
        request behind every cut (a thousand members of 4 KB fields each: 962 and 38, so
        about twice the requests). Greedy in the plan's order: the same plan makes the same
        requests. A member whose entry alone is over the limit is rejected, not sent."""
        project_type = self.plan.project_type
        settings = self.client.settings
        envelope = self.client.subscribe_envelope(
            self.live_ids[lp.list_name], lp.update_existing_users_only
        )
        result = self.results[lp.list_name]

        def too_large(member: Member) -> None:
            result.rejected[member.key] = (
                f"its fields are over {settings.bulk_update_max_bytes:,} bytes, more than one "
                "subscribe request may carry"
            )

        return pack_lazily(
            (member for batch in batches(members, settings.batch_size) for member in batch),
            max_users=settings.batch_size,
            max_bytes=settings.bulk_update_max_bytes,
            too_large=too_large,
            envelope=len(encode(envelope)),
            payload=lambda member: subscribe_payload(member, lp, project_type),
        )

    def _unsubscribe_channel_safely(
        self, lp: ListPlan, list_id: int, chunk: Sequence[str]
    ) -> BatchResult:
        """A hybrid list's removals with channelUnsubscribe. An identifier in lower case
        shaped like an email may be a member's email or its userId, and another profile
        may have that text as the other one: sent as the wrong kind, the unsubscribe
        takes that other person's channel (Iterable answers success for a user not on the
        list) and leaves the member on it. Each such identifier is read first (GET
        /api/users/{email}, then byUserId) and sent as the kind of the profile the list
        read named by it (see _kind_on_list); one no such profile has is already gone and
        is not sent. (byUserId is not read when the email's profile is on the list and
        named by it: it is the member. Where one user export was modelled faster, the
        profiles come from it instead: apply/channel_profiles.py.)"""
        payloads: list[dict[str, Any]] = []
        gone: list[str] = []
        for identifier in chunk:
            if not _ambiguous(identifier):
                payloads.append({"userId": identifier})
                continue
            self._not_read_once_stopped()
            if (kind := self._kind_on_list(list_id, identifier, lp.read_prefer_user_id)) is None:
                gone.append(identifier)
            else:
                payloads.append({kind: identifier})
        outcome = BatchResult()
        if payloads:
            outcome = self.client.unsubscribe(
                list_id, payloads, campaign_id=lp.campaign_id, channel_unsubscribe=True
            )
        for identifier in gone:
            outcome.failed[identifier] = "on the list under neither its email nor its userId"
            outcome.kinds[identifier] = "notFound"
        return outcome

    def _unsubscribe_user_ids_channel_safely(
        self, lp: ListPlan, list_id: int, chunk: Sequence[str]
    ) -> BatchResult:
        """Removals with channelUnsubscribe of a destination declaring projectType userId.
        Against a hybrid project its getUsers names a member without a userId by its email,
        and another person's userId may be that text (an app that took emails for userIds):
        sent as a userId, the unsubscribe took that person's channel (Iterable answers
        success for a user not on the list) and left the member on the list, 'removed'.
        So such a text (in lower case and shaped like an email: an email as Iterable keeps
        it) is read by userId first and sent only when that profile is on the list;
        otherwise it is not sent: a failure naming the mismatch when the profile with that
        email is on the list (one more read), else already gone. Other texts cost no
        read; in a userID-based project whose userIds are emails, each such removal costs
        one, the price of never taking a channel from someone the list does not hold, or
        all of them one user export where that is modelled faster
        (apply/channel_profiles.py: the userId's profile as the read would answer it)."""
        payloads: list[dict[str, Any]] = []
        held: dict[str, tuple[str, str]] = {}
        for identifier in chunk:
            if not _ambiguous(identifier):
                payloads.append({"userId": identifier})
                continue
            self._not_read_once_stopped()
            # Once a run, as a hybrid destination's channel removals: a member leaving
            # several lists is one read.
            profile = self._channel_profile("userId", identifier)
            if profile is not None and list_id in _list_ids(profile.get("userListIds")):
                payloads.append({"userId": identifier})
            elif self._on_list_by_email(list_id, identifier):
                self.listed_by_email = True
                why = "still on the list under this email, not as a userId: not sent"
                held[identifier] = (why, "listedByEmail")
            else:
                held[identifier] = (
                    "on the list under neither its email nor its userId",
                    "notFound",
                )
        outcome = BatchResult()
        if payloads:
            outcome = self.client.unsubscribe(
                list_id, payloads, campaign_id=lp.campaign_id, channel_unsubscribe=True
            )
        for identifier, (why, kind) in held.items():
            outcome.failed[identifier] = why
            outcome.kinds[identifier] = kind
        return outcome

    def _not_read_once_stopped(self) -> None:
        """WriteNotSent once the run is interrupted and no write of this step may have
        taken effect (IterableClient.write_stopped): a batch of channel removals reads up to
        two profiles each before its unsubscribe (1,000 removals: 10 to 20 s at Iterable's
        100 a second), and those reads went on after Ctrl-C for a request then not sent."""
        if self.client.write_stopped():
            raise WriteNotSent("channel removals not read further: interrupted")

    def _kind_on_list(
        self, list_id: int, identifier: str, prefer_user_id: bool | None
    ) -> Literal["email", "userId"] | None:
        """Whether the member of the list with this identifier has it as its email or its
        userId. Only a profile getUsers named by it counts (`_named_by`: with the list's
        preferUserId, a profile with a userId is named by that, without it a profile with
        an email by that; `prefer_user_id` None, not known, counts only a profile named
        by it either way): another profile with that text, on the list under its other
        identifier, is someone the plan does not remove. Of those, the one whose list
        memberships (`userListIds`) hold the list, the email's first when both do (both
        were named by it: the next apply removes the other); else the only profile that
        has the text, if named by it. None: no such profile (already gone, not sent: that
        cannot take the wrong person's consent)."""
        found: dict[Literal["email", "userId"], dict[str, Any]] = {}
        for kind in ("email", "userId"):
            profile = self._channel_profile(kind, identifier)
            if profile is not None:
                found[kind] = profile
                if (
                    kind == "email"
                    and list_id in _list_ids(profile.get("userListIds"))
                    and _named_by(profile, kind, identifier, prefer_user_id)
                ):
                    # The email's profile is on the list, named by it: it is the member,
                    # whatever a byUserId read would find (below, it is chosen first).
                    return kind
        named = {k: p for k, p in found.items() if _named_by(p, k, identifier, prefer_user_id)}
        for kind, profile in named.items():
            if list_id in _list_ids(profile.get("userListIds")):
                return kind
        if len(found) == 1 and named:
            return next(iter(named))
        return None

    def _as_the_other_kind(
        self, lp: ListPlan, list_id: int, chunk: Sequence[str], outcome: BatchResult
    ) -> BatchResult:
        """The identifiers of a hybrid list's removal that may be emails or userIds alike
        (an email-shaped userId in lower case) and that Iterable found no user for as the
        kind they were sent as (removal_payload), sent again as the other kind: a member
        whose userId reads like an email (or, read with preferUserId, whose email is all
        it has) is otherwise never removed, yet counted as already gone. Not with
        channelUnsubscribe: should the first kind's user have been deleted meanwhile, the
        other could be another person's, whose consent to the channel would go."""
        if lp.channel_unsubscribe:
            return outcome
        again = [i for i in chunk if _ambiguous(i) and outcome.kinds.get(i) == "notFound"]
        first: Literal["email", "userId"] = "userId" if lp.read_prefer_user_id else "email"
        if outcome.success_count + len(outcome.failed) < len(chunk):
            # An answer of counts only names no notFound: such a text was sent again never,
            # and its member stayed on the list through every apply. Those that no
            # profile has as the kind they were sent as failed so, whatever the counts.
            unnamed = [i for i in chunk if _ambiguous(i) and i not in outcome.failed]
            again += self._nobody_has_each(first, unnamed)
            if self.run.stop.is_set():
                # Their reads may have been cut short (_nobody_has_each): which of them a
                # profile has is not known, nor whether the first request removed them.
                again += [i for i in unnamed if i not in again]
        if again and self.run.stop.is_set():
            return self._not_sent_again(outcome, again)
        if not again:
            return outcome
        other = "email" if lp.read_prefer_user_id else "userId"
        second = self.client.unsubscribe(
            list_id,
            [{other: i} for i in again],
            campaign_id=lp.campaign_id,
            channel_unsubscribe=False,
        )
        for identifier in again:
            outcome.failed.pop(identifier, None)
            outcome.kinds.pop(identifier, None)
        outcome.success_count += second.success_count
        outcome.failed.update(second.failed)
        outcome.kinds.update(second.kinds)
        outcome.requests += second.requests
        return outcome

    def _not_sent_again(self, outcome: BatchResult, again: list[str]) -> BatchResult:
        """`outcome` of a removal whose second request (`again`, as the other kind) the
        interrupted run does not send: "starting no more", it is a request of its own
        after one whose answer is known. Those members are not sent (and not counted as
        already gone), the run is interrupted (exit 130), and the next apply reads the
        list afresh and removes them."""
        self.run.not_attempted += 1
        for identifier in again:
            outcome.failed.pop(identifier, None)
            outcome.kinds.pop(identifier, None)
        outcome.not_sent.update(again)
        return outcome

    def _nobody_has_each(self, kind: Literal["email", "userId"], texts: list[str]) -> list[str]:
        """Those of `texts` (unnamed removals of a hybrid batch) that no profile has as its
        `kind`: one read each, or one user export's answer for them all once that is
        modelled faster (_unnamed_profiles). The same texts either way."""
        profiles = self._unnamed_profiles(len(texts))
        if profiles is None:
            nobody: list[str] = []
            for text in texts:
                try:
                    if self._nobody_has(kind, text):
                        nobody.append(text)
                except ReadStopped:
                    # Interrupted: the removal is sent and its answer kept; the texts not
                    # read stay unconfirmed, and the next apply reads the list again.
                    break
            return nobody
        return [
            t
            for t in texts
            if (
                profiles.profile(kind, t) is None
                if profiles.answers(t)
                else self._nobody_has(kind, t)
            )
        ]

    def _unnamed_profiles(self, reads: int) -> ChannelProfiles | None:
        """The user export's profiles for every unnamed removal the destination's hybrid
        lists may leave (channel_profiles.unnamed_profiles), read once the per-user reads of
        the batches answered short so far and the `reads` of the one at hand are modelled
        slower than it; None: this batch reads its own. The other batches wait while it
        streams (they would otherwise read the same profiles one by one)."""
        with self._unnamed_export_lock:
            if self._unnamed_export_read:
                return self.unnamed_profiles
            if self.run.stop.is_set() or self.refused is not None:
                return None
            if self._unnamed_wanted is None:
                self._unnamed_wanted = unnamed_removals(self.plan.lists)
            # The export the channel removals were judged by (the plan's or this run's,
            # read in step() before any removal is sent) kept these texts too: no other.
            read = self.channel_profiles
            if read is not None and self._unnamed_wanted <= read.wanted:
                self._unnamed_export_read = True
                self.unnamed_profiles = read
                return read
            self._unnamed_reads_made += reads
            why = export_is_faster(
                self.client, self._unnamed_reads_made, len(self._unnamed_wanted), self.plan.lists
            )
            if why is None:
                return None
            self._unnamed_export_read = True
            self.unnamed_profiles = unnamed_profiles(
                self.client, self._unnamed_wanted, why, self.run.stop
            )
            return self.unnamed_profiles

    def _still_listed_by_email(
        self, lp: ListPlan, list_id: int, chunk: Sequence[str], outcome: BatchResult
    ) -> BatchResult:
        """A userID-based project's getUsers names every member by its userId, so a removal
        Iterable finds no user for is a user deleted since the read: already gone. Declared
        userId against a hybrid or email-based project, the read names a member with no
        userId (in an email-based project, perhaps every member) by its email; sent as a
        userId, no user has that text, and counting it removed was a false success: the
        member stayed on the list. So an email-shaped identifier answered notFound is read
        by email (only then: removals that go through cost no read); a profile with that
        email still on the list shows the mismatch, and it, and every such identifier of
        the destination after it, is a failure naming it (a user deleted meanwhile is then
        reported too: never a member on the list counted as removed). An answer of counts
        only (as Iterable's are) names no notFound: then any email-shaped identifier it does
        not name may be one, and only a few of them are read (`_unnamed_to_read`); once the
        mismatch is found, every one of them is a failure, read or not."""
        named = [i for i in chunk if outcome.kinds.get(i) == "notFound" and looks_like_email(i)]
        unnamed: list[str] = []
        if outcome.success_count + len(outcome.failed) < len(chunk):
            unnamed = [i for i in chunk if i not in outcome.failed and looks_like_email(i)]
        gone: set[str] = set()  # read, and not on the list by email: already gone
        if not self.listed_by_email:
            for identifier in [*named, *self._unnamed_to_read(unnamed)]:
                try:
                    if self.listed_by_email or self._on_list_by_email(list_id, identifier):
                        self.listed_by_email = True
                        break
                except ReadStopped:
                    self.run.not_attempted += 1  # the reads not made: an interrupted run
                    return _unconfirmed_but(outcome, named, gone)
                gone.add(identifier)
        if not self.listed_by_email:
            return outcome
        for identifier in [*named, *unnamed]:
            if identifier not in gone:
                outcome.failed[identifier] = "still on the list under this email, not as a userId"
                outcome.kinds[identifier] = "listedByEmail"
        return outcome

    def _unnamed_to_read(self, unnamed: Sequence[str]) -> list[str]:
        """Which of a batch's removals that an answer of counts left unnamed are read by
        email: at most _UNNAMED_READS_PER_BATCH, spread over the batch, and a destination's
        at most _UNNAMED_READS in all. In a userID-based project whose userIds are emails,
        one user deleted since the plan leaves its batch's count short, and reading every
        removal of it to find that one was up to 1,000 reads a batch, found on the list by
        none. Declared userId against a hybrid project, the members named by email are the
        batch's email-shaped removals, mostly all of them, so the first read finds one;
        against an email-based one every removal is."""
        with self._unnamed_lock:
            take = min(len(unnamed), _UNNAMED_READS_PER_BATCH, self._unnamed_reads_left)
            self._unnamed_reads_left -= take
        if take <= 0:
            return []
        step = len(unnamed) / take
        return [unnamed[int(k * step)] for k in range(take)]

    def _on_list_by_email(self, list_id: int, email: str) -> bool:
        """Whether the profile with this email is on the list, as a member named by its
        email, not a userId (one read of it; a second, by userId, when it has one). A
        profile with a userId while some user has `email` as its userId shows nothing: in
        a userID-based project whose userIds are emails that is the user just removed, its
        read lagging the removal (Iterable's reads lag writes by up to a minute), or
        another user whose email is that text; either was taken for the mismatch, and
        every removal of the run after it for a failure."""
        profile = self._profile("email", email)
        if profile is None:
            return False
        if list_id not in _list_ids(profile.get("emailListIds")) | _list_ids(
            profile.get("userListIds")
        ):
            return False
        return not profile.get("userId") or self._nobody_has("userId", email)

    def _nobody_has(self, kind: Literal["email", "userId"], identifier: str) -> bool:
        """Whether no profile has `identifier` as its `kind` (one read of it)."""
        return self._profile(kind, identifier) is None

    def _channel_profile(
        self, kind: Literal["email", "userId"], identifier: str
    ) -> dict[str, Any] | None:
        """_profile for a channel removal: from the export that read the channel
        removals' profiles when one did (self.channel_profiles), else read once a run
        however many of the destination's lists the member leaves (their removals are
        sent side by side: a read in flight is waited for, not made again). The answer is
        no older than that export, and names the same person (the lists' reads named them
        by this text; which holds the member, userListIds says). A read that failed is
        not kept: each removal waiting for it reads for itself."""
        exported = self.channel_profiles
        if exported is not None and exported.answers(identifier):
            return exported.profile(kind, identifier)
        key = (kind, identifier)
        while True:
            with self._channel_reads_lock:
                pending = self._channel_reads.get(key)
                mine = pending is None
                if pending is None:
                    pending = self._channel_reads[key] = Future()
            if not mine:
                try:
                    return pending.result()
                except Exception:
                    continue  # the reader's failure, not this removal's: read again
            try:
                profile = self._profile(kind, identifier)
            except BaseException as exc:
                with self._channel_reads_lock:
                    del self._channel_reads[key]
                pending.set_exception(exc)
                raise
            kept = (
                None
                if profile is None
                else {k: profile.get(k) for k in ("email", "userId", "userListIds")}
            )
            pending.set_result(kept)
            return kept

    def _profile(self, kind: Literal["email", "userId"], identifier: str) -> dict[str, Any] | None:
        """The profile that has `identifier` as its `kind`, or None (one read of it)."""
        try:
            if kind == "email":
                return self.client.get_user(email=identifier)
            return self.client.get_user(user_id=identifier)
        except IterableError as exc:
            # Iterable refuses the text as an email (two..dots@): no profile has it.
            if exc.status != 400 or exc.code != "InvalidEmailAddressError":
                raise
            return None

    def _update_fields(self, result: FieldUpdateResult, updates: Sequence[FieldUpdate]) -> _Step:
        """bulkUpdate in requests Iterable accepts (users and bytes measured, see
        batching.py); the client paces them at bulk_updates_per_second. The updates are
        read a batch at a time (they may be rows in the DuckDB workspace), and only the
        requests in flight are held."""
        project_type = self.plan.project_type
        owner: dict[int, FieldUpdate] = {}  # payload -> its update, while it is in flight
        lock = threading.Lock()

        def payloads() -> Iterator[dict[str, Any]]:
            for batch in batches(updates, _UPDATE_BATCH):
                for update in batch:
                    payload = update_payload(update, project_type)
                    with lock:
                        owner[id(payload)] = update
                    yield payload

        def too_large(payload: dict[str, Any]) -> None:
            with lock:
                key = owner.pop(id(payload)).key
            result.rejected[key] = (
                "its fields are more than one bulkUpdate request may carry (4 MB)"
            )

        def settled(chunk: list[dict[str, Any]]) -> list[FieldUpdate]:
            with lock:
                return [owner.pop(id(p)) for p in chunk]

        def send(job: tuple[list[dict[str, Any]]]) -> BatchResult:
            (chunk,) = job
            with self.run.journal.step(
                "bulk_update", self.dest, "user fields", members=len(chunk), sent=lambda: chunk
            ) as step:
                outcome = self.client.bulk_update(chunk, packed=True)  # by pack_lazily
                step.done(succeeded=outcome.success_count, rejected=len(outcome.failed))
            return outcome

        def settle(job: tuple[list[dict[str, Any]]], outcome: BatchResult) -> None:
            (chunk,) = job
            result.settle(settled(chunk), outcome)

        def failed(job: tuple[list[dict[str, Any]]], exc: IterableError) -> None:
            settled(job[0])
            error = marking_sent(str(exc), job[0])
            result.errors.append(
                f"updating the fields of {quantity(len(job[0]), 'user')} failed: {error}"
            )

        def not_sent(job: tuple[list[dict[str, Any]]]) -> None:
            settled(job[0])
            result.not_attempted += len(job[0])

        packed = pack_lazily(
            payloads(),
            max_users=self.client.settings.batch_size,
            max_bytes=self.client.settings.bulk_update_max_bytes,
            too_large=too_large,
        )
        jobs = ((chunk,) for chunk in packed)
        return _Step(
            jobs,
            send,
            settle,
            failed,
            not_sent,
            phase="update",
            about=lambda job: f"fields of {quantity(len(job[0]), 'user')}",
        )

    def _delete_list(self, outcome: DeletionResult) -> _Step:
        """Prune: only ever lists that carry the ownership marker (plan_deletions)."""

        def send(outcome: DeletionResult) -> bool:
            with self.run.journal.step(
                "delete_list", self.dest, outcome.list_name, list_id=outcome.list_id
            ) as step:
                self.client.delete_list(outcome.list_id)
                step.done()
            return True

        def settle(outcome: DeletionResult, _answer: bool) -> None:
            outcome.deleted = True

        def failed(outcome: DeletionResult, exc: IterableError) -> None:
            outcome.error = str(exc)

        def not_sent(outcome: DeletionResult) -> None:
            outcome.error = (
                "not attempted: the run was interrupted"
                if self.refused is None
                else f"{self._not_sent_why} ({self.refused})"
            )

        return _Step([outcome], send, settle, failed, not_sent, concurrent=False)


# Who creates a list of the same name while an apply creates it.
def _namesakes(listed: Iterable[ListInfo], list_name: str) -> list[ListInfo]:
    """The standard lists of the index named `list_name` (a run's own list among them)."""
    return [x for x in listed if x.name == list_name and x.list_type == "Standard"]


def _first_copy(same: Sequence[ListInfo], list_id: int, audience: str) -> ListInfo:
    """The oldest of the lists named alike that were made for the audience: this run's
    own list `list_id`, whatever the index says of its description (optional in GET
    /api/lists' answer), and any other carrying the audience's marker."""
    copies = [x for x in same if x.id == list_id or marks_audience(x.description, audience)]
    return min(copies, key=_creation_order)


def _creation_order(listed: ListInfo) -> tuple[bool, int, int]:
    # A list without a creation time sorts after those with one; ids break ties.
    return (listed.created_at is None, listed.created_at or 0, listed.id)


def _kept_as(result: ListResult, list_id: int, kept: str) -> str:
    """The error of a run whose created list Iterable's index shows under another name
    than the one sent (check_created). Iterable does not publish whether it trims or
    normalises a list's name; if it does, plans, which find a list by its exact name,
    would never find this one, and each apply would create another beside it."""
    return (
        f"Iterable keeps the list this run created (list {list_id}) under the name "
        f"{kept!r}, not {result.list_name!r} as sent: plans find a list by its exact name, "
        f"so the next would create another list; set listName: {kept!r} on audience "
        f"{result.audience!r}"
    )


def _kept_own(list_name: str, list_id: int, same: Sequence[ListInfo]) -> str:
    """The error of a run that kept its own list beside another of the name (not the
    audience's copy, or a newer one)."""
    others = ", ".join(str(x.id) for x in same if x.id != list_id)
    return (
        f"another list named {list_name!r} (list {others}) was created in "
        f"Iterable while this run created its own (list {list_id}): {_WHO}. This run "
        "kept its own and wrote to it. An apply that made the other deletes that "
        "copy, the newer, once it sees this one; if none does, delete or rename it in "
        "Iterable, as the next plan leaves the audience out while two lists have its "
        "name"
    )


_WHO = (
    "another apply of these manifests (a CI runner and a laptop share no lock), or a "
    "person in Iterable's web app"
)


def _list_gone(exc: IterableError, lp: ListPlan) -> bool:
    """Iterable's answer to a write to a list it does not have (400 invalidListId, code
    Success), for a list the plan read as existing. A list this run created answers the
    same while it is new: the client waits that out, so it is not taken for gone."""
    return exc.status == 400 and "invalidListId" in str(exc) and not lp.create


def _unconfirmed_but(outcome: BatchResult, named: Sequence[str], gone: set[str]) -> BatchResult:
    """`outcome` of a userID-based removal whose reads of the removals answered notFound
    (`named`) were interrupted: those not read (not in `gone`) may be on the list by email,
    so they are not confirmed (taken out of the failures counted as already gone)."""
    for identifier in named:
        if identifier not in gone:
            outcome.failed.pop(identifier, None)
            outcome.kinds.pop(identifier, None)
    return outcome


def _settle(sent: int, named: int, outcome: BatchResult) -> tuple[int, int]:
    """(done, not confirmed) of `sent` members, `named` of whom the answer named as failed.
    Done is what Iterable counted as done (successCount), never more than were not named;
    whatever neither the count nor a name accounts for is not confirmed. Answers without
    failedUpdates count failures they do not name: taking `sent - named` as done would
    report those members as added (issue 16, point 4)."""
    done = max(0, min(outcome.success_count, sent - named))
    return done, sent - named - done


def _unconfirmed(count: int, planned: int, what: str) -> str:
    return (
        f"{count:,} of {planned:,} {what} not confirmed by Iterable: its answers counted "
        "failures without naming the members, so they are not reported as done; the next "
        "plan shows what is left"
    )


def _run(
    pool: ThreadPoolExecutor,
    fn: Callable[[T], Any],
    jobs: Iterable[T],
    concurrency: int,
) -> Iterator[tuple[T, Any]]:
    """Each job with its result, in submission order; an IterableError becomes that job's
    result (a rejected key too: the sender then sends nothing more to its destination).
    Jobs are taken from `jobs` only as the pool has room for them (twice
    its size in flight), so a long generator is never drained into memory."""
    window: deque[tuple[T, Future[Any]]] = deque()
    pending = iter(jobs)
    exhausted = False
    while True:
        while not exhausted and len(window) < 2 * concurrency:
            job = next(pending, _END)
            if job is _END:
                exhausted = True
                break
            window.append((job, pool.submit(fn, job)))  # type: ignore[arg-type]
        if not window:
            return
        job, future = window.popleft()
        try:
            yield job, future.result()
        except IterableError as exc:
            yield job, exc


def _one_at_a_time(fn: Callable[[T], Any], jobs: Iterable[T]) -> Iterator[tuple[T, Any]]:
    """As `_run`, in the calling thread, one job after the other."""
    for job in jobs:
        try:
            answer = fn(job)
        except IterableError as exc:
            answer = exc
        yield job, answer


_END = object()
_UPDATE_BATCH = 10_000  # field updates read per batch (from the workspace, for large plans)
_NOT_SENT = object()  # a job's answer when the run was interrupted before it was sent


def _failed_members(
    chunk: Sequence[Member] | Sequence[FieldUpdate], failed: Mapping[str, str]
) -> dict[str, str]:
    if not failed:
        return {}
    lowered = {k.lower(): v for k, v in failed.items()}
    out: dict[str, str] = {}
    for member in chunk:
        reason = None
        if member.user_id is not None:
            reason = failed.get(member.user_id)
        if reason is None and member.email is not None:
            reason = lowered.get(member.email)
        if reason is not None:
            out[member.key] = reason
    return out
