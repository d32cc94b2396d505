"""Wire the pieces into a Plan: desired state from manifests and sources, live state from
Iterable, and the pure planner between them."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from reconciler.apply.channel_profiles import plan_profiles
from reconciler.errors import IterableError, LiveStateError, SourceError
from reconciler.iterable import CHANNELS_FIELD, IterableClient
from reconciler.manifest import Audience, Destination, Manifests
from reconciler.manifest.manifests import read_alike
from reconciler.members.identity import Member
from reconciler.members.issue import MemberIssue
from reconciler.members.model import (
    EXPORT_ROUTES,
    Engine,
    Prefetch,
    SharedExports,
    TableRows,
    abandon_all,
    diff_tables,
    digest_members,
    estimate_rows,
    interrupted_by_signal,
    keep_respelled_rows,
    keep_skipped_rows,
    start_prefetch,
)
from reconciler.plan import (
    DestinationPlan,
    ListDeletion,
    ListPlan,
    Plan,
    list_plan,
    plan_deletions,
    plan_destination,
    plan_list,
)
from reconciler.plan.campaigns import campaign_uses, needs_campaigns
from reconciler.plan.field_changes import field_changes
from reconciler.plan.field_clears import field_clears
from reconciler.plan.fingerprint import FIELDS_KEY, list_fingerprint
from reconciler.plan.former import (
    FormerLists,
    lists_by_marked_audience,
    made_for,
    unnamed_lists_by_name,
)
from reconciler.plan.ownership import (
    audience_marks,
    carried_ids,
    is_managed,
    marked_after,
    marked_audience,
    same_description,
    unmarked,
)
from reconciler.plan.policy import DEFAULT_MAX_FIELD_CLEAR_PERCENT, DEFAULT_MAX_REMOVAL_PERCENT
from reconciler.progress import NULL_PROGRESS, Progress, labelled
from reconciler.sources import source_for
from reconciler.state.alongside import read_alongside
from reconciler.state.changed_emails import keep_changed_emails
from reconciler.state.channel_reach import kept_elsewhere_notes
from reconciler.state.consent import EventsShare, SharedEvents, respect_consent
from reconciler.state.desired import (
    DesiredDestination,
    DesiredList,
    at_scale,
    build_desired,
    refuse_unordered_conflicts,
    shared_runs,
    size_key,
    unreadable_sources,
)
from reconciler.state.field_tables import conflict_group
from reconciler.state.fields import FieldsPlan, plan_fields
from reconciler.state.keyed_apart import KeyedApart
from reconciler.state.live import LiveDestination, LiveList, read_live
from reconciler.state.named_by_email import named_by_email, named_by_email_notes
from reconciler.state.routes import choose_route
from reconciler.state.shared_fields import sharing_fields
from reconciler.state.skipped_user_ids import keep_user_id_rows
from reconciler.state.unfamiliar_project import unfamiliar_project
from reconciler.state.unsendable import leave_out_unsendable, not_created_after_consent
from reconciler.state.users_file import SharedUsers, UsersShare
from reconciler.traits import values as trait_values
from reconciler.traits.field_names import case_only_notes as field_case_notes
from reconciler.traits.limits import field_limit_note
from reconciler.traits.mapping import CompiledField


def make_plan(
    manifests: Manifests,
    clients: Mapping[str, IterableClient],
    *,
    targets: set[str] | None = None,
    on_read: Callable[[str], None] | None = None,
    engine: Engine | None = None,
    progress: Progress = NULL_PROGRESS,
    member_reads: str | None = None,
    for_apply: bool = False,
    recorded: Mapping[str, frozenset[int]] | None = None,
) -> Plan:
    """`engine` plans large audiences in DuckDB (one is made from the environment when not
    given); the plan's adds and removes may then live in its workspace until applied.
    `member_reads` "export" reads each destination's lists with one user export whatever
    their number: a saved plan's stale check (one read per destination, not one per list).
    `for_apply`: an apply in this process follows at once, which may take the profiles
    its channel removals need from the plan's export (DestinationPlan.channel_profiles).
    `recorded`: per destination, the list ids the last apply to it from this state
    directory recorded (journal.recorded_list_ids), for state/unfamiliar_project.py."""
    engine = engine if engine is not None else Engine.from_env()
    prefetches: dict[str, Prefetch] = {}
    shared = SharedExports()
    users = SharedUsers(engine.settings.temp_dir)
    try:
        # The reads that need nothing from the sources start first, so that Iterable's
        # slow answers (an export job's queue, getUsers' first byte) overlap the sources'
        # reading and checking rather than follow it.
        _start_prefetches(
            manifests, clients, targets, engine, progress, member_reads, prefetches, shared
        )
        targeted = list(_targeted(manifests, clients, targets))
        reads = _Reads(
            engine,
            progress,
            on_read,
            member_reads,
            SharedEvents(),
            _project_lists(targeted),
            users,
            _project_fields(manifests, targeted),
            KeyedApart(clients, lambda other: _declared_lists(manifests, clients, other)),
            for_apply,
            recorded or {},
        )
        several = len(targeted) > 1
        destinations = []
        fingerprint: dict[str, dict[str, dict[str, Any]]] = {}
        listed: dict[str, dict[int, str]] = {}
        # Every source is read before any fails the plan, so all that cannot be read are
        # named in one run, as validate names them.
        unreadable: list[SourceError] = []
        # --target reads the audiences beside its targets after them: a query both run
        # runs once, as in a full plan (it ran again for each audience beside).
        with shared_runs(_read_with(manifests, targets)):
            built = build_desired(manifests, targets, engine, progress, errors=unreadable)
            if unreadable:
                raise unreadable_sources(unreadable)
            if targets is not None:
                # --target limits what is written, never weakens a check (state/alongside.py).
                for name, desired in built.items():
                    audiences_of = manifests.audiences_of(name)
                    desired.positions = {a.name: i for i, a in enumerate(audiences_of)}
                    desired.alongside = read_alongside(manifests, name, targets, engine, progress)
        # Every audience's listId: Iterable's list ids are unique across projects, and a
        # list one destination's audience holds by id is declared in every destination
        # naming its project (prune in another must not delete it once renamed).
        held = frozenset(a.spec.listId for a in manifests.audiences.values() if a.spec.listId)
        for name, desired in built.items():
            prints = fingerprint.setdefault(name, {})
            # With --target only some audiences are considered, so nothing else may be pruned;
            # the consent guard still tells lists of audiences gone from the others.
            every = _declared_lists(manifests, clients, name)
            declared = every if targets is None else None
            audiences = frozenset(a.name for a in manifests.audiences_of(name))
            with _in_destination(name):
                destinations.append(
                    _plan_destination(
                        clients[name],
                        desired,
                        declared,
                        (every, audiences, held),
                        prefetches.get(name),
                        _for_destination(reads, name) if several else reads,
                        prints,
                        listed.setdefault(name, {}),
                    )
                )
    except Exception as exc:
        if interrupted_by_signal(exc):
            raise KeyboardInterrupt from None
        # A plan writes only in the temporary directory (source copies, reads of Iterable,
        # the workspace and DuckDB's spill files): a full one is said as such, not as a bug.
        said = engine.no_room(exc)
        if said is None:
            raise
        raise said from None
    finally:
        # A source that failed, a Ctrl-C, or reads the plan did not take: nothing read in
        # the background outlives the plan (an export job is cancelled).
        abandon_all(prefetches.values())
        shared.close()
        users.close()
    return Plan(tuple(destinations), fingerprint, listed)


@dataclass(frozen=True)
class _Reads:
    """How this plan reads: the same for every destination."""

    engine: Engine
    progress: Progress
    on_read: Callable[[str], None] | None
    member_reads: str | None
    # The consent guard's emailUnSubscribe events of each project several destinations
    # name, read once for them all; and, for each such destination, the lists of them
    # all (_project_lists).
    events: SharedEvents = dataclasses.field(default_factory=SharedEvents)
    project_lists: Mapping[str, frozenset[str]] = dataclasses.field(default_factory=dict)
    # The user export of each such project (with its type), read once for them all where
    # their reads of mapped fields' values, channel unsubscribes or hybrid userIds' emails
    # are made by an export; and, for each such destination, its project and every field
    # those reads of them all may ask (_project_fields).
    users: SharedUsers = dataclasses.field(default_factory=SharedUsers)
    project_fields: Mapping[str, tuple[str, frozenset[str]]] = dataclasses.field(
        default_factory=dict
    )
    # The lists that destinations reaching the same project with another key declare.
    keyed_apart: KeyedApart | None = None
    # An apply follows in this process (make_plan's for_apply).
    for_apply: bool = False
    # Per destination, the list ids its last apply from this state directory recorded.
    recorded: Mapping[str, frozenset[int]] = dataclasses.field(default_factory=dict)


def _project_fields(
    manifests: Manifests,
    targeted: Sequence[tuple[str, Destination, IterableClient, list[Audience]]],
) -> dict[str, tuple[str, frozenset[str]]]:
    """For each destination, its project and the fields a user export read for any of
    the plan's destinations naming that project (and project type) asks: both
    identifiers, the channel unsubscribes and every field their trait mappings write. A
    destination naming its project alone has a group of its own: its reads of the whole
    project (users' existence, channel unsubscribes, mapped fields' values) take one
    export, not one each (a project too big for one stream read each in date windows)."""
    own = frozenset({"email", "userId", CHANNELS_FIELD})
    groups = _project_groups(targeted)
    for name, destination, client, audiences in targeted:
        if name not in groups:
            groups[name] = (f"{client.project_id}:{destination.spec.projectType}", audiences)
    return {
        name: (project, own | frozenset(_mapped_fields(manifests, audiences)))
        for name, (project, audiences) in groups.items()
    }


def _users_share(
    client: IterableClient, desired: DesiredDestination, reads: _Reads
) -> UsersShare | None:
    """How this destination shares its project's user export with the plan's other
    destinations of the project, if any (with none, its own reads share it): the first
    whose read is made by an export reads it for them all."""
    name = desired.destination.name
    group = reads.project_fields.get(name)
    if group is None:
        return None
    project, fields = group
    alone = sum(1 for other, _fields in reads.project_fields.values() if other == project) == 1
    return UsersShare(reads.users, client, project, desired.project_type, name, fields, alone=alone)


def _project_lists(
    targeted: Sequence[tuple[str, Destination, IterableClient, list[Audience]]],
) -> dict[str, frozenset[str]]:
    """For each destination that names one Iterable project with another (the same host
    and key: the client's project_id), the list names of every audience planned in the
    project's destinations."""
    by_project: dict[str, list[tuple[str, list[Audience]]]] = {}
    for name, _destination, client, audiences in targeted:
        by_project.setdefault(client.project_id, []).append((name, audiences))
    return {
        name: frozenset(a.list_name for _name, group in members for a in group)
        for members in by_project.values()
        if len(members) > 1
        for name, _audiences in members
    }


def _for_destination(reads: _Reads, name: str) -> _Reads:
    """Reads whose progress names the destination: with several, "reading list 'vip'"
    alone does not say which project is being read (or is slow)."""
    return dataclasses.replace(reads, progress=labelled(reads.progress, f"destination {name!r}: "))


@contextmanager
def _in_destination(name: str) -> Iterator[None]:
    """Errors reading Iterable name the destination they happened in."""
    try:
        yield
    except (IterableError, LiveStateError) as exc:
        raise exc.in_destination(name) from None


def _declared_lists(
    manifests: Manifests, clients: Mapping[str, IterableClient], name: str
) -> set[str]:
    """Every list name the manifests declare in this destination's Iterable project: its
    own audiences', and those of every other destination naming the same project (the
    same host and key, as the apply lock tells them apart). Prune in one destination must
    not delete the lists another declares: each apply would delete them and the next
    create them again, losing their ids, history and the campaigns that use them."""
    project = clients[name].project_id
    same = {other for other, client in clients.items() if client.project_id == project}
    return {a.list_name for other in same | {name} for a in manifests.audiences_of(other)}


def _plan_destination(
    client: IterableClient,
    desired: DesiredDestination,
    declared: set[str] | None,
    every: tuple[set[str], frozenset[str], frozenset[int]],
    prefetch: Prefetch | None,
    reads: _Reads,
    prints: dict[str, dict[str, Any]],
    listed: dict[int, str],
) -> DestinationPlan:
    """One destination, in the order its reads depend on one another: its lists and
    members, then (knowing the adds) mapped fields, users that cannot be sent, consent and
    the campaigns the changes reach. `declared` is every list name its manifests declare,
    or None when only some audiences are planned (then nothing may be pruned); `every`,
    every list name and every audience of the destination whichever are planned, and
    every audience's listId.
    `listed` is given the name of each list in Iterable's index, by id (Plan.listed)."""
    users = _users_share(client, desired, reads)
    live = read_live(
        client,
        desired,
        reads.on_read,
        engine=reads.engine,
        progress=reads.progress,
        prefetch=prefetch,
        member_reads=reads.member_reads,
        users=users,
    )
    listed.update((x.id, x.name) for x in live.all_lists)
    try:
        names, audiences, held = every
        # A list an audience's listId names is declared under whatever name Iterable
        # holds it by: renamed in Iterable's web app, the audience is left out (state/
        # live.py), and prune must not take the list for one no manifest declares.
        names = names | {x.name for x in live.all_lists if x.id in held}
        # Judged before the lists of keys apart join `names`: theirs say nothing of
        # whether this key reaches the destination's own project.
        stranger = unfamiliar_project(
            desired.destination,
            names,
            [item.audience for item in desired.lists],
            live.all_lists,
            reads.recorded.get(desired.destination.name, frozenset()),
        )
        if reads.keyed_apart is not None:
            names = reads.keyed_apart.declared(desired.destination.name, live.all_lists, names)
        declared = names if declared is not None else None
        gone = orphan_lists(live.all_lists, audiences, names)
        return _plan_from_live(
            client, desired, declared, live, reads, prints, users, gone, stranger
        )
    finally:
        if live.users_file is not None:
            live.users_file.remove()
        if users is not None:
            users.remove()


def _plan_from_live(
    client: IterableClient,
    desired: DesiredDestination,
    declared: set[str] | None,
    live: LiveDestination,
    reads: _Reads,
    prints: dict[str, dict[str, Any]],
    users: UsersShare | None = None,
    gone: Sequence[Any] = (),
    stranger: str = "",
) -> DestinationPlan:
    """_plan_destination once its lists and members are read (`users`: the project's
    user export shared with the plan's other destinations naming it, if any; `gone`, the
    lists made for audiences no manifest declares any more: orphan_lists; `stranger`, why
    the project seems another's: state/unfamiliar_project.py)."""
    dest_spec = desired.destination.spec
    skipped = [(item.audience.name, issue) for item in desired.lists for issue in item.issues]
    unread, unmatched, desired = _leave_out_unproven(desired, live)
    lists = with_former_lists(
        [
            _plan_list(reads, item, live.managed.get(item.list_name), dest_spec, prints)
            for item in desired.lists
        ],
        live.all_lists,
        declared or set(),
        gone,
    )
    # Members an email-based project knows by userId alone (placeholder emails) whose rows
    # were skipped for lacking an email: kept, as any skipped row's member is.
    lists, user_id_reads = keep_user_id_rows(client, desired, lists, live.users_file or users)
    # A row whose email Iterable has changed (its userId on the list under another email):
    # that profile stays, and the old email is not made a second profile of the person.
    lists, changed_reads = keep_changed_emails(
        client, desired.project_type, lists, desired.lists, live.users_file or users
    )
    # Forgotten users, and unknown ones an audience may not create, are not sent. Left out
    # first: consent is then read only for adds that will be sent (an updateExistingUsers-
    # Only audience of unknown people otherwise read the project's unsubscribes, and in a
    # userID-based project exported every profile, on every run, to add nobody); and the
    # fields are planned with them held back (field_tables.held_back), so no bulkUpdate,
    # which creates unknown users, is planned for them.
    left_out = leave_out_unsendable(client, desired.project_type, lists, live.users_file or users)
    # People who left a list themselves, or its channel, are not re-added (issue 19).
    # Known before the fields are planned: a member held back gets no subscribe, so its
    # fields from another list it is on must be read and updated, not left to that
    # subscribe.
    consented = respect_consent(
        client,
        desired.project_type,
        left_out.lists,
        live.channel_unsubscribed,
        max((_list_size(x) for x in live.managed.values()), default=0),
        live.channels_from or "export job",
        _events_share(client, desired.destination.name, live, reads),
        users,
    )
    consented.lists = not_created_after_consent(consented.lists, left_out, desired.project_type)
    # An audience left out is planned no more than an untargeted one: the lists made for
    # it under another name (a changed listName), or held to it, look undeclared.
    whole = None if unread else declared
    pruned = _prune(live, whole if dest_spec.prune else None, consented.lists, prints)
    if unread and dest_spec.prune and declared is not None:  # None: --target never prunes
        pruned.notes.append(_LEFT_OUT_PRUNE)
    # Trait mappings: fields ride on subscribes, the rest become bulkUpdates. A value
    # that cannot be sent leaves out that field only: its member is still sent.
    # The export that read the members has the fields; else the project's shared one.
    fields = plan_fields(client, desired, consented.lists, reads.progress, live.users_file or users)
    field_issues, field_issues_unlisted = _value_issues(
        desired, fields.issues, fields.issues_unlisted
    )
    if fields.live_digest is not None:
        prints[FIELDS_KEY] = {"digest": fields.live_digest}
    campaigns, campaigns_error, campaign_ids = _read_campaigns(
        client, fields.lists, pruned.deletions
    )
    project_type_at = str(desired.destination.field_location("projectType"))
    # Lists whose every member is removed and re-added by the other identifier: said, with
    # where projectType is written (the removal guard's message says it too).
    by_email = named_by_email(desired.project_type, fields.lists)
    rows = _RowCounts.of(desired)
    return plan_destination(
        desired.destination.name,
        desired.project_type,
        fields.lists,
        skipped,
        pruned.deletions,
        allow_list_deletion=dest_spec.policy.allowListDeletion,
        declared_none_found=pruned.declared_none_found if pruned.deletions else 0,
        unfamiliar_project=stranger,
        skipped_unlisted=rows.skipped_unlisted,
        field_updates=fields.updates,
        field_clears=field_clears(fields.tally, _clear_limits(desired, dest_spec)),
        field_changes=field_changes(
            fields.tally,
            *_change_limits(desired, dest_spec),
        ),
        field_read=fields.read,
        new_fields=fields.new_fields,
        field_issues=tuple(field_issues),
        field_issues_unlisted=field_issues_unlisted,
        member_read=live.describe_reads(),
        notes=_destination_notes(desired, live, whole, pruned, fields.lists, campaign_ids, fields)
        + tuple(named_by_email_notes(desired.destination.name, by_email, project_type_at)),
        project_type_at=project_type_at,
        named_by_email=by_email,
        duplicate_rows=rows.duplicates,
        campaigns=tuple(campaigns),
        campaigns_read_error=campaigns_error,
        duplicate_conflicts=rows.conflicts,
        duplicate_conflicts_unlisted=rows.conflicts_unlisted,
        unread=unread,
        unmatched=unmatched,
        other_reads=tuple(
            user_id_reads + changed_reads + left_out.reads + consented.reads + _shared_note(users)
        ),
        channel_profiles=(
            plan_profiles(live.users_file, fields.lists, client.settings, desired.project_type)
            if reads.for_apply and desired.project_type != "email"
            else None
        ),
    )


def _leave_out_unproven(
    desired: DesiredDestination, live: LiveDestination
) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...], DesiredDestination]:
    """Audiences whose list could not be read with confidence are left out whole: (the
    audiences and why, those of them whose list is not certain (live.unmatched), the
    desired state without them)."""
    unread = tuple(
        (item.audience.name, live.unproven[item.list_name])
        for item in desired.lists
        if item.list_name in live.unproven
    )
    unmatched = tuple(
        item.audience.name for item in desired.lists if item.list_name in live.unmatched
    )
    kept = [item for item in desired.lists if item.list_name not in live.unproven]
    return unread, unmatched, dataclasses.replace(desired, lists=kept)


@dataclass(frozen=True)
class _RowCounts:
    """What the audiences' sources held that the plan reports beside its changes."""

    skipped_unlisted: int
    duplicates: int
    conflicts: tuple[tuple[str, MemberIssue], ...]
    conflicts_unlisted: int

    @classmethod
    def of(cls, desired: DesiredDestination) -> _RowCounts:
        return cls(
            skipped_unlisted=sum(
                item.table.skipped - len(item.table.issues)
                for item in desired.lists
                if item.table is not None
            ),
            duplicates=sum(item.duplicates for item in desired.lists),
            conflicts=tuple(
                (item.audience.name, issue) for item in desired.lists for issue in item.conflicts
            ),
            conflicts_unlisted=sum(item.conflicts_unlisted for item in desired.lists),
        )


_LEFT_OUT_PRUNE = (
    "prune deletes no list in this plan: an audience of the destination is left out of it "
    "(above), and a list made for that audience under another name, or holding back who left "
    "it themselves, would look like one no manifest declares; prune runs again once every "
    "audience is planned."
)


@dataclass(frozen=True)
class _Pruned:
    """What prune deletes, and the lists it keeps for consent (with their notes)."""

    deletions: list[ListDeletion]
    kept: set[int]
    notes: list[str]
    # The lists declared in the project when it holds none of them (else 0): as in DestinationPlan.
    declared_none_found: int = 0


def _prune(
    live: LiveDestination,
    declared: set[str] | None,
    lists: Sequence[ListPlan],
    prints: dict[str, dict[str, Any]],
) -> _Pruned:
    """The lists prune deletes (`declared`: the destination's declared list names when it
    prunes and every audience is planned, else None: nothing is deleted), each
    fingerprinted for the stale check. A list made for an audience under another name that
    still holds back who left it is kept (keep_former_lists), and not fingerprinted."""
    if declared is None:
        return _Pruned([], set(), [])
    planned = plan_deletions(live.all_lists, declared)
    deletions, notes = keep_former_lists(lists, planned)
    kept = {x.list_id for x in planned} - {x.list_id for x in deletions}
    for deletion in deletions:
        prints[f"{deletion.list_name}#{deletion.list_id}"] = list_fingerprint(
            deletion.list_id, None
        )
    return _Pruned(deletions, kept, notes, _declared_none_found(live, declared, lists))


def _declared_none_found(
    live: LiveDestination, declared: set[str], lists: Sequence[ListPlan]
) -> int:
    """How many lists the manifests declare in the project when it holds none of them, by
    name or by a marker naming one of `lists`' audiences (0 when it holds some, or none are
    declared: every audience removed, prune deleting their lists as meant). A key swapped
    for another project's reaches a project like that, its lists made by reconciler for
    audiences of another repository: prune would delete them all."""
    if not declared:
        return 0
    marks = audience_marks(lp.audience for lp in lists)
    for info in live.all_lists:
        if info.name in declared or marked_audience(info.description) in marks:
            return 0
    return len(declared)


def _destination_notes(
    desired: DesiredDestination,
    live: LiveDestination,
    declared: set[str] | None,
    pruned: _Pruned,
    lists: Sequence[ListPlan],
    campaign_ids: frozenset[int] | None,
    fields: FieldsPlan,
) -> tuple[str, ...]:
    """The plan's notes on a destination, in the order they are printed."""
    return tuple(
        list_notes(desired.lists, live.all_lists, live.managed, pruned.deletions, pruned.kept)
        + renamed_audience_notes(
            desired.lists, live.all_lists, live.managed, pruned.deletions, declared, pruned.kept
        )
        + undeclared_list_notes(
            desired.lists, live.all_lists, live.managed, pruned.deletions, declared, pruned.kept
        )
        + unknown_campaign_notes(lists, campaign_ids)
        + kept_elsewhere_notes(desired.lists, lists)
        + _field_limit_notes(fields)
        + case_only_notes(lists)
        + pruned.notes
    )


def _shared_note(users: UsersShare | None) -> list[str]:
    """What the plan says of reads taken from another destination's user export."""
    note = users.note() if users is not None else None
    return [note] if note else []


def _events_share(
    client: IterableClient, name: str, live: LiveDestination, reads: _Reads
) -> EventsShare | None:
    """How this destination's consent guard shares its project's emailUnSubscribe events
    with the plan's other destinations of the project (None: it names a project alone):
    the first to need them reads those about the lists of them all."""
    names = reads.project_lists.get(name)
    if names is None:
        return None
    ids = frozenset(info.id for info in live.all_lists if info.name in names)
    return EventsShare(reads.events, client.project_id, name, ids)


def orphan_lists(
    all_lists: Sequence[Any], audiences: Collection[str], declared: Collection[str]
) -> list[Any]:
    """The lists whose marker names an audience the destination declares no more (not
    among `audiences`) and whose name no manifest of the project declares (`declared`):
    the old list of a renamed key, as renamed_audience_notes names them."""
    marks = audience_marks(audiences)
    return [
        old
        for old in all_lists
        if (audience := marked_audience(old.description)) is not None
        and audience not in marks
        and old.name not in declared
    ]


def with_former_lists(
    lists: list[ListPlan], all_lists: list[Any], declared: set[str], gone: Sequence[Any] = ()
) -> list[ListPlan]:
    """Each list with the lists made for its audience under another name (a changed
    listName, or a rename in Iterable's web app; list_notes names them), and the list
    without an audience's marker named by its key (unnamed_lists_by_name: one adopted by
    `reconciler import`, as Segment names its lists), unless another audience declares
    that name (`declared`, or those of this plan). Consent follows the
    audience, not the name: who left the old list by their own action must not be put on
    its replacement (state/consent.py reads their departures), on the plan that creates it
    and on every plan after while the old list is there.

    A renamed key is another audience to the marker, so a list this plan creates while
    Iterable holds lists of audiences declared no more (`gone`: orphan_lists) is held to
    their departures too, whichever audience it is for (the side that cannot lose
    consent), and its marker names them (carried_list_ids), which ties them to it on every
    plan after as a changed listName's are."""
    formers = FormerLists(all_lists)
    if not formers:
        return lists
    planned = declared | {lp.list_name for lp in lists}
    orphans = tuple(sorted({old.id for old in gone if old.name not in planned}))
    out = []
    for lp in lists:
        carried = orphans if lp.list_id is None else ()
        own = () if lp.list_id is None else (lp.list_id,)
        former = tuple(sorted(formers.of(lp.audience, own, planned) | set(carried)))
        if former:
            lp = dataclasses.replace(lp, former_list_ids=former, carried_list_ids=carried)
        out.append(lp)
    return out


def _list_size(live_list: LiveList) -> int:
    return live_list.table.count if live_list.table is not None else len(live_list.members)


def _read_with(manifests: Manifests, targets: set[str] | None) -> list[Audience]:
    """The audiences a --target plan reads: its targets, and those beside them
    (state/shared_fields.py); none without --target (build_desired shares runs itself)."""
    if targets is None:
        return []
    read = [a for n, a in manifests.audiences.items() if n in targets]
    for destination in sorted({a.spec.destination for a in read}):
        read += [a for _, a, _ in sharing_fields(manifests, destination, targets)]
    return read


def _targeted(
    manifests: Manifests, clients: Mapping[str, IterableClient], targets: set[str] | None
) -> Iterator[tuple[str, Destination, IterableClient, list[Audience]]]:
    """Each destination with a client and audiences to plan (of `targets`, when given):
    its name, manifest, client and those audiences."""
    for name, destination in manifests.destinations.items():
        audiences = [
            a for a in manifests.audiences_of(name) if targets is None or a.name in targets
        ]
        if audiences and name in clients:
            yield name, destination, clients[name], audiences


def _plan_list(
    reads: _Reads,
    item: DesiredList,
    live_list: LiveList | None,
    dest_spec: Any,
    prints: dict[str, dict[str, Any]],
) -> ListPlan:
    """One audience's list: in DuckDB when its members are in a table, else in Python;
    its live fingerprint is recorded in `prints` for the stale check."""
    options = _list_options(item, dest_spec)
    live_id = live_list.info.id if live_list else None
    if item.table is not None:
        table = live_list.table if live_list is not None else None
        prints[item.list_name] = list_fingerprint(
            live_id, table.members_digest if table is not None else None
        )
        return _plan_table(reads.engine, item, live_list, reads.progress, options)
    prints[item.list_name] = list_fingerprint(
        live_id, digest_members(live_list.members) if live_list else None
    )
    return plan_list(
        audience=item.audience.name,
        list_name=item.list_name,
        description=item.audience.spec.description,
        desired=item.members,
        live_list_id=live_id,
        live_members=live_list.members if live_list else (),
        skipped_ids=item.skipped_ids,
        **options,
    )


def _list_options(item: DesiredList, dest_spec: Any) -> dict[str, Any]:
    """What an audience asks of its list's plan: its own settings, and the policy it
    inherits from its destination where it sets none (the default lives in plan/policy)."""
    spec = item.audience.spec
    percent = _inherited(spec.policy, dest_spec.policy, "maxRemovalPercent")
    return dict(
        update_existing_users_only=spec.updateExistingUsersOnly,
        campaign_id=spec.unsubscribe.campaignId,
        channel_unsubscribe=spec.unsubscribe.channelUnsubscribe,
        # How the list is read (state/live.py): apply needs it to tell which profile an
        # identifier its removals send names (executor._kind_on_list).
        read_prefer_user_id=item.prefer_user_id,
        max_removal_percent=DEFAULT_MAX_REMOVAL_PERCENT if percent is None else percent,
        max_removals=_inherited(spec.policy, dest_spec.policy, "maxRemovals"),
        allow_empty=spec.allowEmpty,
        min_members=spec.minMembers,
        max_members=spec.maxMembers,
        max_addition_percent=_inherited(spec.policy, dest_spec.policy, "maxAdditionPercent"),
        max_additions=_inherited(spec.policy, dest_spec.policy, "maxAdditions"),
        removals=spec.removals,
        resubscribe_allowed=spec.resubscribe == "allowed",
        active_campaign_adds=_inherited(spec.policy, dest_spec.policy, "activeCampaignAdds")
        or "warn",
    )


def _read_campaigns(
    client: IterableClient, lists: list[ListPlan], deletions: Sequence[ListDeletion]
) -> tuple[list[Any], str | None, frozenset[int] | None]:
    """The campaigns using the lists this plan changes or deletes (one paced read of GET
    /api/campaigns per destination, only when some existing list changes or is deleted),
    and the ids of every campaign of the project (None when not read). A failed read does
    not fail the plan: the plan says that its blast radius is unknown."""
    if not needs_campaigns(lists, deletions):
        return [], None, None
    try:
        every = client.get_campaigns()
    except IterableError as exc:
        return (
            [],
            f"campaigns could not be read ({exc}); the campaigns these changes reach are unknown",
            None,
        )
    return campaign_uses(lists, every, deletions), None, frozenset(c.id for c in every)


def _field_limit_notes(fields: FieldsPlan) -> list[str]:
    """The plan's notes on its new fields: taking the project past Iterable's field limit,
    and named as another field but for letter case."""
    if fields.project_fields is None:
        return []
    note = field_limit_note(fields.new_fields, fields.project_fields)
    return ([note] if note is not None else []) + field_case_notes(
        fields.new_fields, fields.project_field_names
    )


def keep_former_lists(
    lists: Sequence[ListPlan], deletions: Sequence[ListDeletion]
) -> tuple[list[ListDeletion], list[str]]:
    """The deletions prune may make, and why the others are not made. A list made for an
    audience under another name holds the only record that people left it themselves
    (Iterable keeps no link between it and the audience's new list): while it holds any
    of them back from the audience's list (with_former_lists), deleting it would have the
    next plan add them. So it is kept, and named; prune deletes it once none is held back
    (they left the source, or the audience says `resubscribe: allowed`)."""
    holding: dict[int, ListPlan] = {}
    for lp in lists:
        if lp.left_themselves:
            holding.update((list_id, lp) for list_id in lp.former_list_ids)
    kept = [x for x in deletions if x.list_id not in holding]
    notes = []
    for x in deletions:
        held = holding.get(x.list_id)
        if held is None:
            continue
        count = len(held.left_themselves)
        # A renamed key's old list was made for the old key (with_former_lists' `gone`).
        made_for = (
            "its audience is declared no more"
            if x.list_id in held.carried_list_ids
            else f"it was made for audience {held.audience!r}"
        )
        notes.append(
            f"list {x.list_name!r} (list {x.list_id}) is not deleted, prune or not: "
            f"{made_for}, and {count:,} "
            f"member{'s' if count != 1 else ''} who left it (or {held.list_name!r}) "
            f"themselves {'are' if count != 1 else 'is'} held back from {held.list_name!r} "
            "because of it; deleted, nothing would say they left, and the next plan would "
            "add them. Prune deletes it once none is held back (out of the source, or "
            "`resubscribe: allowed`)."
        )
    return kept, notes


def case_only_notes(lists: Sequence[ListPlan]) -> list[str]:
    """A list whose adds have userIds that differ only in letter case from identifiers it
    removes: Iterable matches userIds exactly, so to it they are other profiles, and the
    plan swaps its members for them. When they are one person the source spells them
    otherwise than Iterable holds them: a uuid column (DuckDB, PostgreSQL) reads as
    lower-case text while an app may have written upper case (iOS's uuidString). Said,
    counted, never named (they are member identities); not blocked: two userIds in two
    cases can be two people, and the removal limits guard a list emptied so. Only lists
    that both add and remove are looked at."""
    notes = []
    for lp in lists:
        if not lp.add or not lp.remove:
            continue
        found = _case_only_adds(lp.add, lp.remove)
        if found:
            removed = len(lp.remove)
            from_whom = (
                "the one member it removes"
                if removed == 1
                else f"one of the {removed:,} members it removes"
            )
            notes.append(
                f"list {lp.list_name!r}: {found:,} of the members this plan adds "
                f"{'has' if found == 1 else 'have'} a userId that differs only in letter "
                f"case from {from_whom}. Iterable "
                "matches userIds exactly, so they are other profiles to it (in a hybrid "
                "project it refuses such an add when its email is the removed profile's). "
                "If they are the same people, have the source give the userIds as Iterable "
                "holds them: a uuid column reads as lower-case text (in a query, "
                "upper(CAST(id AS VARCHAR)) gives upper case)."
            )
    return notes


def _case_only_adds(add: Sequence[Member], remove: Sequence[str]) -> int:
    """How many added userIds equal a removed identifier but for letter case (userIds
    are ASCII). In DuckDB when both live there: adds and removes can run to millions."""
    if isinstance(add, TableRows) and isinstance(remove, TableRows) and add.engine is remove.engine:
        (found,) = add.engine.connection.execute(
            f"SELECT count(DISTINCT a.user_id) FROM {add.table} a WHERE a.user_id IS NOT NULL "
            f"AND lower(a.user_id) IN (SELECT lower(id) FROM {remove.table})"
        ).fetchone() or (0,)
        return int(found)
    removed = {identifier.lower() for identifier in remove}
    return len({m.user_id for m in add if m.user_id and m.user_id.lower() in removed})


def unknown_campaign_notes(
    lists: Sequence[ListPlan], campaign_ids: frozenset[int] | None
) -> list[str]:
    """An audience's unsubscribe.campaignId that is none of the project's campaigns (a
    typo, another project's id): its removals would be attributed to it. Said, not
    blocked: whether Iterable refuses such an unsubscribe is not documented. Removals
    happen only to existing lists, so the campaigns were read whenever this matters."""
    if campaign_ids is None:
        return []
    return [
        f"unsubscribe.campaignId {lp.campaign_id} of audience {lp.audience!r} is not a "
        f"campaign of this project (GET /api/campaigns has no such id), yet its "
        f"{len(lp.remove):,} removal{'s' if len(lp.remove) != 1 else ''} from "
        f"{lp.list_name!r} would be attributed to it: "
        "check the id"
        for lp in lists
        if lp.remove and lp.campaign_id is not None and lp.campaign_id not in campaign_ids
    ]


def list_notes(
    items: list[DesiredList],
    all_lists: list[Any],
    managed: Mapping[str, LiveList],
    deletions: Sequence[Any],
    kept: Collection[int] = (),
) -> list[str]:
    """What a plan should say about lists beyond adds and removes: a changed listName
    (Iterable cannot rename a list, so it is a new list with a new id) and a changed
    description (Iterable cannot change one, so it is left as it is)."""
    notes: list[str] = []
    deleted = {x.list_id for x in deletions}
    # Looked up by key, not by a walk of every list for each list created: a first plan of
    # 2,000 audiences beside 4,000 lists made 8M marker and name-folding comparisons.
    marked = lists_by_marked_audience(all_lists)
    by_key = unnamed_lists_by_name(all_lists)
    lookalikes = _standard_lists_by_folded_name(all_lists)
    for item in items:
        live_list = managed.get(item.list_name)
        wanted = item.audience.spec.description
        if live_list is None:
            notes.extend(
                _keyed_list_note(item, old, _fate(old.id, deleted, kept))
                for old in by_key.get(item.audience.name, ())
                if old.name not in managed
            )
            for old in made_for(marked, item.audience.name):
                if old.name == item.list_name:
                    continue
                fate = _fate(old.id, deleted, kept)
                # Which side changed is not known: the manifest's listName, or the list's
                # name in Iterable's web app (which can rename a list; its API cannot).
                notes.append(
                    f"list {old.id}, created for audience {item.audience.name!r}, is named "
                    f"{old.name!r} in Iterable, not {item.list_name!r} (the audience's "
                    "listName changed, or the list was renamed in Iterable): Iterable's API "
                    f"cannot rename a list, so this creates a new list with a new id and {fate}. "
                    f"Campaigns and journeys that use list {old.id} must be repointed to the "
                    f"new list; to keep list {old.id} instead, set listName: {old.name!r} on "
                    "the audience."
                )
            notes.extend(_lookalike_notes(item, lookalikes))
            continue
        current = unmarked(live_list.info.description)
        carried = marked_after(live_list.info.description)
        if not same_description(current, wanted, item.audience.name, carried):

            def shown(text: str | None) -> str:
                return "empty" if not text else repr(text)

            notes.append(
                f"description of list {item.list_name!r} (list {live_list.info.id}) is "
                f"{shown(current)} in Iterable, {shown(wanted)} in the manifest: Iterable "
                "cannot change "
                "a list's description, so it is left as it is (a list reconciler creates "
                "takes the manifest's)."
            )
    return notes


def _fate(list_id: int, deleted: Collection[int], kept: Collection[int]) -> str:
    """What becomes of an audience's former list, as list_notes says it."""
    # Said without a place: text and markdown print the deletion above the notes, JSON in
    # a list of its own.
    if list_id in deleted:
        return "prune deletes it in this plan"
    if list_id in kept:
        return "it stays, holding back who left it themselves (below)"
    return "it stays as it is (no longer managed; `prune: true` deletes it)"


def _keyed_list_note(item: DesiredList, old: Any, fate: str) -> str:
    """A plan creates the audience's list under its listName while the list named by its
    key, without reconciler's marker (unnamed_lists_by_name), is left behind."""
    unmarked_how = (
        "made by an older reconciler"
        if is_managed(old.description)
        else "without reconciler's marker (adopted by `reconciler import`, or made by "
        "Segment's Iterable Lists destination, which names lists by the audience key)"
    )
    if fate.endswith("`prune: true` deletes it)") and not is_managed(old.description):
        fate = "it stays as it is (no longer managed; prune never deletes it)"
    return (
        f"list {old.id}, named {old.name!r} after audience {item.audience.name!r} and "
        f"{unmarked_how}, is not the audience's list now that its listName is "
        f"{item.list_name!r}: Iterable's API cannot rename a list, so this creates a new "
        f"list with a new id and {fate}. Who left list {old.id} themselves is held back "
        f"from the new list. Campaigns and journeys that use list {old.id} must be "
        f"repointed to the new list; to keep list {old.id} instead, remove the audience's "
        "listName."
    )


def _standard_lists_by_folded_name(all_lists: list[Any]) -> dict[str, list[Any]]:
    """Standard lists (the only kind reconciler manages) by their name as read_alike
    reads it, in their order among all lists."""
    folded: dict[str, list[Any]] = {}
    for other in all_lists:
        if other.list_type == "Standard":
            folded.setdefault(read_alike(other.name), []).append(other)
    return folded


def _lookalike_notes(item: DesiredList, lookalikes: Mapping[str, list[Any]]) -> list[str]:
    """A list the plan creates while Iterable has one whose name reads the same (another
    case, spaces, `_` for `-`, an invisible character, another Unicode form): names are
    matched exactly, as Iterable keeps them, so the plan would make a second list that
    looks like the first.
    `lookalikes`: Standard lists by folded name (_standard_lists_by_folded_name)."""
    return [
        f"this plan creates list {item.list_name!r} while Iterable has list {other.id} named "
        f"{other.name!r}, which differs from it only in case, spaces, `_` or `-`, invisible "
        "characters or Unicode form: reconciler matches list names exactly, as Iterable "
        "keeps them, so "
        f"it is another list. To manage list {other.id} instead, set listName: "
        f"{other.name!r} on audience {item.audience.name!r}."
        for other in lookalikes.get(read_alike(item.list_name), ())
        if other.name != item.list_name
    ]


def _created_names(created: Sequence[str]) -> str:
    """The lists a plan creates, as each renamed audience's note names them: every old list
    gets a note, so naming every new list in each made the notes grow with the square of
    the audiences renamed (1,000 at once: a million names)."""
    if len(created) == 1:
        return f"list {created[0]!r}"
    shown = ", ".join(repr(name) for name in created[:3])
    more = len(created) - 3
    if more <= 0:
        return f"lists {shown}"
    return f"{len(created):,} lists ({shown} and {more:,} more)"


def renamed_audience_notes(
    items: list[DesiredList],
    all_lists: list[Any],
    managed: Mapping[str, LiveList],
    deletions: Sequence[Any],
    declared: set[str] | None,
    kept: Collection[int] = (),
) -> list[str]:
    """A renamed audience key looks like one audience gone and another new: its old list
    (whose marker names the old key) is deleted by prune, or left behind unsynced, and a
    new list is created. When a plan creates lists, each such list is named with how to
    keep it, since deleting it loses its id, its history and the campaigns and journeys
    that use it. Only when every audience of the project is planned (`declared`). Who
    left it themselves is held back from the new lists (with_former_lists) and kept there
    (`kept`: keep_former_lists spares the list while it holds any of them back)."""
    created = [item.list_name for item in items if item.list_name not in managed]
    if declared is None or not created:
        return []
    deleted = {x.list_id for x in deletions}
    new = _created_names(created)
    # Consent follows an audience, and a renamed key is another audience to the marker:
    # who left the old list is held back from every list created beside it
    # (with_former_lists). Said, since a new audience's list is held back from too.
    them = "the new list" if len(created) == 1 else "the new lists"
    olds = orphan_lists(all_lists, [item.audience.name for item in items], declared)
    # A created list's marker names the old lists its 140 characters have room for.
    ids = [old.id for old in olds]
    roomless = {
        item.list_name: set(ids) - set(carried_ids(item.audience.name, ids))
        for item in items
        if item.list_name not in managed
    }
    notes = []
    for old in olds:
        audience = marked_audience(old.description)
        if old.id in deleted:
            fate = "prune deletes it in this plan, losing its id and history"
        elif old.id in kept:
            fate = "it stays, holding back who left it themselves (below)"
        else:
            fate = "it stays as it is, no longer kept in line"
        notes.append(
            f"list {old.name!r} (list {old.id}) was created for audience {audience!r}, which "
            f"no manifest declares any more, and this plan creates {new}: {fate}. Who "
            f"left it themselves is held back from {them}, on this plan and those after "
            "(nothing to do: they left; `resubscribe: allowed` on an audience adds them). "
            f"If an audience was renamed from {audience!r}, set its listName: {old.name!r} "
            f"to keep list {old.id} and the campaigns and journeys that use it."
            + _roomless(old.id, roomless)
        )
    return notes


def _roomless(list_id: int, roomless: Mapping[str, set[int]]) -> str:
    """What renamed_audience_notes says when a created list's description has no room to
    name the old list: only the plan that creates it holds back who left that one."""
    names = [name for name, ids in roomless.items() if list_id in ids]
    if not names:
        return ""
    return (
        f" Only this plan does: the description of {_created_names(names)} (Iterable keeps "
        f"140 characters) has no room to name list {list_id} beside the audience, so the "
        f"plans after add them; to keep them out, set the old list's listName on the audience."
    )


def undeclared_list_notes(
    items: list[DesiredList],
    all_lists: list[Any],
    managed: Mapping[str, LiveList],
    deletions: Sequence[Any],
    declared: set[str] | None,
    kept: Collection[int] = (),
) -> list[str]:
    """A list reconciler created that no manifest declares any more (its audience was
    removed) and that prune does not delete (`prune: false`, the default) stays in
    Iterable, no longer kept in line: its members keep getting campaigns while the
    repository says nothing of it. Each is named, unless the notes of a renamed audience
    or a changed listName already name it. Only when every audience of the project is
    planned (`declared`)."""
    if declared is None:
        return []
    deleted = {x.list_id for x in deletions}
    created = [item for item in items if item.list_name not in managed]
    planned = audience_marks(item.audience.name for item in items)
    # marks_audience against each created audience in turn, as one set look-up.
    created_marks = audience_marks(item.audience.name for item in created)
    # The lists a created list's marker ties to it (`; after <id>`): who left them
    # themselves is held back from it while no manifest declares them (with_former_lists).
    holders: dict[int, list[str]] = {}
    for info in all_lists:
        for list_id in marked_after(info.description):
            holders.setdefault(list_id, []).append(info.name)
    notes = []
    for old in all_lists:
        if (
            old.list_type != "Standard"
            or not is_managed(old.description)
            or old.name in declared
            or old.id in deleted
            or old.id in kept  # named by keep_former_lists
        ):
            continue
        audience = marked_audience(old.description)
        # Already named: by list_notes (a changed listName: the list was made for an
        # audience whose list this plan creates) or by renamed_audience_notes (a renamed
        # key: this plan creates lists while the list's audience is declared no more).
        if audience in created_marks:
            continue
        if created and audience is not None and audience not in planned:
            continue
        made_for = f" for audience {audience!r}" if audience is not None else ""
        left = (
            f"list {old.name!r} (list {old.id}) was created by reconciler{made_for} and no "
            "manifest declares it any more: prune is off, so it stays in Iterable as it is, "
            "no longer kept in line"
        )
        held = holders.get(old.id)
        if held:
            # Declared again, it is no audience's former list: the hold ends (a renamed
            # key's old list, vip after vip-customers was created).
            notes.append(
                f"{left}. It holds back who left it themselves from "
                f"{_created_names(sorted(held))}: leave it undeclared (declared again, the "
                "next plan adds them there; `prune: true` deletes it once it holds nobody "
                "back)."
            )
            continue
        notes.append(
            f"{left} (`prune: true` on the destination deletes it; declare it again to "
            "keep managing it)."
        )
    return notes


def _clear_limits(
    desired: DesiredDestination, dest_spec: Any
) -> dict[str, tuple[tuple[str, ...], float]]:
    """Mapped field -> the lists whose audiences map it, and the field_clears guard's limit
    (_field_limits), every audience having one."""
    limits = _field_limits(
        desired, dest_spec, "maxFieldClearPercent", DEFAULT_MAX_FIELD_CLEAR_PERCENT
    )
    return {
        name: (lists, DEFAULT_MAX_FIELD_CLEAR_PERCENT if limit is None else limit)
        for name, (lists, limit) in limits.items()
    }


def _field_limits(
    desired: DesiredDestination,
    dest_spec: Any,
    setting: str,
    default: float | None,
    own: Callable[[CompiledField], float | None] = lambda _: None,
) -> dict[str, tuple[tuple[str, ...], float | None]]:
    """Mapped field -> the lists whose audiences map it, and a field guard's limit: the
    smallest `setting` of those audiences (each inheriting its destination's, else
    `default`; None: no limit), since a field is one per user whichever list's mapping
    writes it. `own`: a mapped field's own limit, which counts for its audience instead
    (maxChangePercent)."""
    out: dict[str, tuple[tuple[str, ...], float | None]] = {}
    for audience, mapping, list_name in _mappings(desired):
        policy = _inherited(audience.spec.policy, dest_spec.policy, setting)
        policy = default if policy is None else policy
        for mapped in mapping.fields:
            name, limit = mapped.name, own(mapped)
            limit = policy if limit is None else limit
            lists, before = out.get(name, ((), limit))
            smallest = min(x for x in (before, limit, math.inf) if x is not None)
            named = (*lists, list_name) if list_name is not None else lists
            out[name] = (named, None if smallest == math.inf else smallest)
    return out


def _mappings(desired: DesiredDestination) -> Iterator[tuple[Audience, Any, str | None]]:
    """Each mapped audience of the plan with its mapping and list name; then, with
    --target, those not targeted that write a field a target writes (state/alongside.py),
    with no list name: their limits hold the targets' writes of that field as a full plan
    holds them (the smallest), but none of their members is compared."""
    for item in desired.lists:
        if item.fields is not None:
            yield item.audience, item.fields.mapping, item.list_name
    for beside in desired.alongside:
        yield beside.audience, beside.mapping, None


def _change_limits(
    desired: DesiredDestination, dest_spec: Any
) -> tuple[dict[str, tuple[tuple[str, ...], float | None]], dict[str, str]]:
    """The field_changes guard's limits (_field_limits), and where the fields whose limit
    is their own maxChangePercent write it (_own_change_limits_at)."""
    limits = _field_limits(desired, dest_spec, "maxFieldChangePercent", None, _own_change_limit)
    return limits, _own_change_limits_at(desired, dest_spec)


def _own_change_limit(mapped: CompiledField) -> float | None:
    return mapped.max_change_percent


def _own_change_limits_at(desired: DesiredDestination, dest_spec: Any) -> dict[str, str]:
    """Mapped field -> where its own maxChangePercent is written, for the fields whose
    field_changes limit (the smallest, _field_limits) is that, no audience's policy as
    small: the violation then says to raise it, not the policy it counts instead of."""
    smallest: dict[str, tuple[float, str | None]] = {}  # field -> limit, own one's place
    for audience, mapping, _list_name in _mappings(desired):
        policy = _inherited(audience.spec.policy, dest_spec.policy, "maxFieldChangePercent")
        for mapped in mapping.fields:
            own = mapped.max_change_percent
            limit, at = (policy, None) if own is None else (own, str(mapped.location))
            if limit is None:
                continue
            before = smallest.get(mapped.name)
            if before is None or limit < before[0] or (limit == before[0] and at is None):
                smallest[mapped.name] = (limit, at)
    return {name: at for name, (_limit, at) in smallest.items() if at is not None}


def _inherited(audience: Any, destination: Any, name: str) -> Any:
    """An audience's policy setting, or its destination's when the audience leaves it out."""
    value = getattr(audience, name)
    return getattr(destination, name) if value is None else value


def _plan_table(
    engine: Engine,
    item: DesiredList,
    live_list: LiveList | None,
    progress: Progress,
    options: dict[str, Any],
) -> ListPlan:
    """A list planned in DuckDB: anti-joins of the desired and live tables."""
    assert item.table is not None
    live_table = live_list.table if live_list is not None else None
    task = progress.task(f"diffing list {item.list_name!r} in DuckDB", total=None)
    diff = diff_tables(engine, item.table, live_table)
    diff, kept = keep_skipped_rows(engine, item.table, diff)
    diff, respelled, present = keep_respelled_rows(engine, item.table, live_table, diff)
    task.advance(diff.desired_count)
    task.finish()
    # The join counted the members: the duplicates are known without a count of its own,
    # and only when there are some are the keys grouped to name the rows that disagree.
    item.duplicates = item.table.valid - diff.desired_count
    if item.duplicates:
        item.conflicts = item.table.conflicts()
        item.conflicts_unlisted = item.table.conflict_count - len(item.conflicts)
        refuse_unordered_conflicts(item)
    return list_plan(
        audience=item.audience.name,
        list_name=item.list_name,
        description=item.audience.spec.description,
        live_list_id=live_list.info.id if live_list else None,
        add=diff.add,
        remove=diff.remove,
        desired_count=diff.desired_count,
        live_count=live_table.count if live_table else 0,
        kept_for_skipped=kept,
        kept_respelled=respelled,
        respelled=present,
        **options,
    )


def _start_prefetches(
    manifests: Manifests,
    clients: Mapping[str, IterableClient],
    targets: set[str] | None,
    engine: Engine,
    progress: Progress,
    member_reads: str | None,
    out: dict[str, Prefetch],
    shared: SharedExports | None = None,
) -> None:
    """Member reads start now, while the sources are read (engine/prefetch.py), into `out`
    (filled as they start, so that a failure here still abandons those started): the
    export when the route chosen from the sources' row counts is one (an asynchronous
    export job, the user export, or it in date windows), or the getUsers downloads of
    large lists. Nothing starts when neither would be read. Destinations that name one
    project share an export (`shared`: see engine/prefetch.py) when they choose the same
    one."""
    targeted = list(_targeted(manifests, clients, targets))
    groups = _project_groups(targeted)
    for name, destination, client, audiences in targeted:
        # With several destinations, each read says which it is of (as _for_destination).
        shown = labelled(progress, f"destination {name!r}: ") if len(targeted) > 1 else progress
        if client.settings.member_reads == "asyncExport":
            sizes: dict[str, int | None] = {a.list_name: None for a in audiences}
            large: list[Any] = []  # the route needs no sizes, and reads no list by getUsers
        else:
            sizes = {a.list_name: _expected_rows(engine, a) for a in audiences}
            large = [a for a in audiences if at_scale(engine, a, manifests)]
        route = choose_route(list(sizes.values()), client.settings, member_reads)
        # An export (a job, the user export, or it in date windows) on sizes partly
        # unknown is left to read_live, which knows them all.
        by_export = route.name in EXPORT_ROUTES and (
            client.settings.member_reads != "auto" or None not in sizes.values()
        )
        by_get_users = (
            bool(large) and member_reads is None and destination.spec.projectType != "hybrid"
        )
        if by_export or by_get_users:
            group = groups.get(name)
            # An export shared by the destinations of one project asks for the fields
            # every one of them maps: each reads only its own from the file.
            mapped = _mapped_fields(manifests, group[1] if group is not None else audiences)
            out[name] = start_prefetch(
                engine,
                client,
                destination,
                large,
                set(sizes),
                shown,
                sizes=sizes,
                member_reads=member_reads,
                mapped_fields=mapped,
                shared=(shared, group[0]) if group is not None and shared is not None else None,
            )


def _project_groups(
    targeted: Sequence[tuple[str, Destination, IterableClient, list[Audience]]],
) -> dict[str, tuple[str, list[Audience]]]:
    """The destinations that name one Iterable project with another, each with its group
    (a name for it, and the audiences of its destinations planned). One project is the
    same host and the same key (the client's project_id, a digest: the key itself is never
    compared or kept), as the apply lock tells it; and the same project type, since that
    decides how its export is asked for and read. Two keys of one project are not known
    to be one: each reads it."""
    by_project: dict[tuple[str, str], list[tuple[str, list[Audience]]]] = {}
    for name, destination, client, audiences in targeted:
        key = (client.project_id, destination.spec.projectType)
        by_project.setdefault(key, []).append((name, audiences))
    return {
        name: (f"{project}:{project_type}", [a for _name, group in members for a in group])
        for (project, project_type), members in by_project.items()
        if len(members) > 1
        for name, _audiences in members
    }


def _mapped_fields(manifests: Manifests, audiences: Sequence[Audience]) -> tuple[str, ...]:
    """The fields the trait mappings of these audiences write, sorted."""
    names: set[str] = set()
    for audience in audiences:
        mapping = manifests.trait_mappings.get(audience.spec.traits or "")
        if mapping is not None:
            names.update(mapping.spec.fields)
    return tuple(sorted(names))


def _value_issues(
    desired: DesiredDestination,
    conflicts: Sequence[tuple[str, MemberIssue]],
    conflicts_unlisted: int = 0,
) -> tuple[list[tuple[str, MemberIssue]], int]:
    """The mapped values not sent, (audience, issue) as listed, and how many more there
    are: each audience lists its first MAX_FIELD_ISSUES values not made per field
    (traits/values.py), and each pair of audiences that disagree the first as many
    members per field (both engines find them in the same order; the DuckDB path keeps
    no more than those and counts the rest, `conflicts_unlisted`)."""
    mapped = [(i.audience.name, i.fields) for i in desired.lists if i.fields is not None]
    listed = [(name, issue) for name, fields in mapped for issue in fields.issues]
    more = sum(fields.unlisted for _, fields in mapped) + conflicts_unlisted
    shown: dict[tuple[str, str, str], int] = {}
    for audience, issue in conflicts:
        # "field 'plan' gets ... from one and ... from the other" (plan/fields.py)
        group = conflict_group(audience, issue)
        if shown.get(group, 0) < trait_values.MAX_FIELD_ISSUES:
            shown[group] = shown.get(group, 0) + 1
            listed.append((audience, issue))
        else:
            more += 1
    return listed, more


def _expected_rows(engine: Engine, audience: Any) -> int | None:
    """An audience's source rows, counted without parsing them: what its list is expected
    to hold, for choosing the read route before the source is read. A query's count is a
    second, cheaper run of it; it is made once (the memo at_scale keeps), and at_scale
    needs it anyway to choose the engine by size, trait mapping or not (every kind of
    source that scales plans its mapped fields in DuckDB too, Source.traits_at_scale).
    None when the source cannot be counted, or when a query would be run again only for
    this (a forced RECONCILER_ENGINE). An audience whose mapped fields stay in Python (a kind
    with traits_at_scale false) is not counted for this alone."""
    source = source_for(audience)
    if not source.scales:
        return source.estimate_rows()  # inline: the manifest's entries
    if source.counted_by_running and engine.settings.engine != "auto":
        # A forced engine skips the query's second run, as the README promises: the
        # route is then chosen once the sources are read, which gives their sizes.
        return None
    if audience.spec.traits is not None and not source.traits_at_scale:
        return None
    # The memo at_scale keeps: the count is made once (for every audience of the query).
    return engine.remember(size_key(audience), lambda: estimate_rows(audience))
