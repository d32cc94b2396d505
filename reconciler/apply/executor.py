"""Carry out a Plan through the client: create lists, subscribe, unsubscribe.

Every member's outcome is known: identifiers Iterable lists in `failedUpdates` are mapped
back to the member and reported, never counted as done. One list's failure does not stop
the others; a rejected API key stops everything. Each request is recorded in the run
journal (intent before, outcome after), and once `stop` is set (Ctrl-C) no new request
starts: those in flight finish and are reported, the rest are reported as not attempted.
"""

from __future__ import annotations

import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from reconciler.apply.journal import Journal
from reconciler.errors import AuthError, IterableError
from reconciler.iterable import BatchResult, IterableClient
from reconciler.iterable.batching import pack_users
from reconciler.members.identity import Member, ProjectType, looks_like_email
from reconciler.members.model import batches
from reconciler.plan import DestinationPlan, FieldUpdate, ListPlan, Plan
from reconciler.plan.ownership import mark
from reconciler.render.masking import message_for

T = TypeVar("T")
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
    not_attempted_add: int = 0  # members never sent: the run was interrupted first
    not_attempted_remove: int = 0
    create_not_attempted: bool = False
    field_update_keys: tuple[str, ...] = ()  # members whose fields the plan updates
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

    @property
    def ok(self) -> bool:
        return (
            not self.rejected
            and not self.errors
            and not self.unconfirmed_add
            and not self.unconfirmed_remove
        )


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

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.errors and not self.unconfirmed

    def to_dict(self, show: Callable[[str], str]) -> dict[str, Any]:
        return {
            "planned": self.planned,
            "updated": self.updated,
            "not_attempted": self.not_attempted,
            "unconfirmed": self.unconfirmed,
            "rejected": [
                {"member": show(k), "reason": v} for k, v in sorted(self.rejected.items())
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
    rejected_file: str | None = None  # where the CLI wrote every rejected member in full
    not_attempted: int = 0  # requests never sent because the run was interrupted
    # Source data the plan could not use (invalid members, unconvertible values), in words:
    # everything planned can succeed and the run still not make Iterable match.
    source_problems: str | None = None

    @property
    def interrupted(self) -> bool:
        return self.not_attempted > 0

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
                            "rejected": [
                                {"member": show(k), "reason": v}
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
    separate update."""
    out = subscriber_payload(member, project_type)
    data = lp.add_fields.get(member.key)
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


def removal_payload(identifier: str, project_type: ProjectType) -> dict[str, Any]:
    """getUsers reports one identifier per member; in hybrid projects it is an email unless
    the profile has none (or preferUserId chose the userId), so its shape tells which."""
    if project_type == "email":
        return {"email": identifier}
    if project_type == "userId" or not looks_like_email(identifier):
        return {"userId": identifier}
    return {"email": identifier}


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
        try:
            report.destinations.append(_apply_destination(dest_plan, client, run))
        except AuthError as exc:
            raise exc.in_destination(dest_plan.destination) from None
    report.not_attempted = run.not_attempted
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


def _apply_destination(
    dest_plan: DestinationPlan, client: IterableClient, run: _Run
) -> DestinationResult:
    project_type = dest_plan.project_type
    progress, journal, dest = run.progress, run.journal, dest_plan.destination
    work = [lp for lp in dest_plan.lists if lp.has_changes]
    results = {
        lp.list_name: ListResult(
            lp.audience,
            lp.list_name,
            lp.list_id,
            len(lp.add),
            len(lp.remove),
            field_update_keys=lp.field_update_keys,
        )
        for lp in work
    }
    # 1. create lists; a list that could not be created gets no members
    live_ids: dict[str, int] = {}
    for lp in work:
        result = results[lp.list_name]
        if lp.create:
            if run.skip():
                result.create_not_attempted = True
                result.not_attempted_add = len(lp.add)
                continue
            try:
                with journal.step("create_list", dest, lp.list_name) as step:
                    # The marker is how prune knows the list is ours to delete later; the
                    # run token, how a create whose answer was lost is recognised.
                    result.list_id = client.create_list(
                        lp.list_name, mark(lp.description, lp.audience, run.token)
                    )
                    step.done(list_id=result.list_id)
                result.created = True
            except AuthError:
                raise
            except IterableError as exc:
                result.errors.append(f"creating the list failed: {exc}")
                continue
        assert result.list_id is not None
        live_ids[lp.list_name] = result.list_id

    settings = client.settings
    with ThreadPoolExecutor(max_workers=settings.concurrency) as pool:
        # 2. subscribe
        # Generated as the pool takes them: a list of millions is read from DuckDB a
        # batch at a time, never held whole.
        jobs = (
            (lp, chunk)
            for lp in work
            if lp.list_name in live_ids and lp.add
            for chunk in batches(lp.add, settings.batch_size)
        )

        def subscribe(job: tuple[ListPlan, Sequence[Member]]) -> BatchResult | None:
            lp, chunk = job
            if run.skip():
                return None
            list_id = live_ids[lp.list_name]
            with journal.step(
                "subscribe", dest, lp.list_name, list_id=list_id, members=len(chunk)
            ) as step:
                outcome = client.subscribe(
                    list_id,
                    [subscribe_payload(m, lp, project_type) for m in chunk],
                    update_existing_users_only=lp.update_existing_users_only,
                    list_just_created=lp.create,
                )
                step.done(succeeded=outcome.success_count, rejected=len(outcome.failed))
            return outcome

        for (lp, chunk), outcome in _run(pool, subscribe, jobs, settings.concurrency):
            result = results[lp.list_name]
            if outcome is None:
                result.not_attempted_add += len(chunk)
                continue
            if isinstance(outcome, Exception):
                result.errors.append(f"subscribing {len(chunk)} members failed: {outcome}")
                continue
            failed = _failed_members(chunk, outcome.failed)
            expected = 0
            for key, kind in _failed_members(chunk, outcome.kinds).items():
                if kind == "forgotten":
                    result.forgotten += 1
                elif kind == "notFound" and lp.update_existing_users_only:
                    result.not_created += 1
                else:
                    continue
                del failed[key]
                expected += 1
            result.rejected.update(failed)
            done, unconfirmed = _settle(len(chunk), len(failed) + expected, outcome)
            result.added += done
            result.unconfirmed_add += unconfirmed
            if progress is not None:
                progress("add", len(chunk))

        # 2b. update user fields (trait mappings), once the new members exist
        fields_result = (
            _update_fields(dest_plan, client, run, pool) if dest_plan.field_updates else None
        )

        # 3. unsubscribe
        jobs_r = (
            (lp, ids)
            for lp in work
            if lp.list_name in live_ids and lp.remove
            for ids in batches(lp.remove, settings.batch_size)
        )

        def unsubscribe(job: tuple[ListPlan, Sequence[str]]) -> BatchResult | None:
            lp, ids = job
            if run.skip():
                return None
            list_id = live_ids[lp.list_name]
            with journal.step(
                "unsubscribe", dest, lp.list_name, list_id=list_id, members=len(ids)
            ) as step:
                outcome = client.unsubscribe(
                    list_id,
                    [removal_payload(i, project_type) for i in ids],
                    campaign_id=lp.campaign_id,
                    channel_unsubscribe=lp.channel_unsubscribe,
                )
                step.done(succeeded=outcome.success_count, rejected=len(outcome.failed))
            return outcome

        for (lp, ids), outcome in _run(pool, unsubscribe, jobs_r, settings.concurrency):
            result = results[lp.list_name]
            if outcome is None:
                result.not_attempted_remove += len(ids)
                continue
            if isinstance(outcome, Exception):
                result.errors.append(f"unsubscribing {len(ids)} members failed: {outcome}")
                continue
            failed = {i: outcome.failed[i] for i in ids if i in outcome.failed}
            # notFound (or forgotten) on an unsubscribe: Iterable has no such user, so
            # it is on no list. That is the removal done, not a rejection.
            gone = [i for i in failed if outcome.kinds.get(i) in ("notFound", "forgotten")]
            for identifier in gone:
                del failed[identifier]
            result.rejected.update(failed)
            done, unconfirmed = _settle(len(ids), len(failed) + len(gone), outcome)
            result.removed += done + len(gone)
            result.already_gone += len(gone)
            result.unconfirmed_remove += unconfirmed
            if progress is not None:
                progress("remove", len(ids))

    # 4. delete lists (prune); only ever lists that carry the ownership marker
    deletions: list[DeletionResult] = []
    for deletion in dest_plan.deletions:
        deleted = DeletionResult(deletion.list_id, deletion.list_name)
        if run.skip():
            deleted.error = "not attempted: the run was interrupted"
            deletions.append(deleted)
            continue
        try:
            with journal.step(
                "delete_list", dest, deletion.list_name, list_id=deletion.list_id
            ) as step:
                client.delete_list(deletion.list_id)
                step.done()
            deleted.deleted = True
        except AuthError:
            raise
        except IterableError as exc:
            deleted.error = str(exc)
        deletions.append(deleted)
    for result in results.values():
        for count, planned, what in (
            (result.unconfirmed_add, result.planned_add, "additions"),
            (result.unconfirmed_remove, result.planned_remove, "removals"),
        ):
            if count:
                result.errors.append(_unconfirmed(count, planned, what))
        if result.create_not_attempted or result.not_attempted_add or result.not_attempted_remove:
            result.errors.append(
                "interrupted: "
                + ("the list was not created; " if result.create_not_attempted else "")
                + f"{result.not_attempted_add} of {result.planned_add} additions and "
                f"{result.not_attempted_remove} of {result.planned_remove} removals were not sent"
            )
    return DestinationResult(
        dest_plan.destination, list(results.values()), deletions, fields_result
    )


def _update_fields(
    dest_plan: DestinationPlan, client: IterableClient, run: _Run, pool: ThreadPoolExecutor
) -> FieldUpdateResult:
    """bulkUpdate in requests Iterable accepts (users and bytes measured, see batching.py);
    the client paces them at bulk_updates_per_second."""
    updates = dest_plan.field_updates
    result = FieldUpdateResult(planned=len(updates))
    payloads = [update_payload(u, dest_plan.project_type) for u in updates]
    packed = pack_users(
        payloads,
        max_users=client.settings.batch_size,
        max_bytes=client.settings.bulk_update_max_bytes,
    )
    owner = dict(zip((id(p) for p in payloads), updates, strict=True))
    for payload in packed.too_large:
        result.rejected[owner[id(payload)].key] = (
            "its fields are more than one bulkUpdate request may carry (4 MB)"
        )

    def send(chunk: list[dict[str, Any]]) -> BatchResult | None:
        if run.skip():
            return None
        with run.journal.step(
            "bulk_update", dest_plan.destination, "user fields", members=len(chunk)
        ) as step:
            outcome = client.bulk_update(chunk)
            step.done(succeeded=outcome.success_count, rejected=len(outcome.failed))
        return outcome

    jobs = packed.requests
    for chunk, outcome in _run(pool, send, jobs, client.settings.concurrency):
        chunk_updates = [owner[id(p)] for p in chunk]
        if outcome is None:
            result.not_attempted += len(chunk)
            continue
        if isinstance(outcome, Exception):
            result.errors.append(f"updating the fields of {len(chunk)} users failed: {outcome}")
            continue
        failed = _failed_members(chunk_updates, outcome.failed)
        result.rejected.update(failed)
        done, unconfirmed = _settle(len(chunk), len(failed), outcome)
        result.updated += done
        result.unconfirmed += unconfirmed
        if outcome.filtered_out_fields:
            result.errors.append(
                "Iterable dropped the fields "
                + ", ".join(outcome.filtered_out_fields)
                + " (the project does not accept new fields: create them in Iterable first)"
            )
        if run.progress is not None:
            run.progress("update", len(chunk))
    if result.unconfirmed:
        result.errors.append(_unconfirmed(result.unconfirmed, result.planned, "field updates"))
    if result.not_attempted:
        result.errors.append(
            f"interrupted: {result.not_attempted} of {result.planned} field updates were not sent"
        )
    return result


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
    fn: Callable[[T], BatchResult | None],
    jobs: Iterable[T],
    concurrency: int,
) -> Iterator[tuple[T, BatchResult | IterableError | None]]:
    """Each job with its result, in submission order; an IterableError becomes that job's
    result, except a rejected key, which stops the run (every other request would fail
    the same way). Jobs are taken from `jobs` only as the pool has room for them (twice
    its size in flight), so a long generator is never drained into memory."""
    window: deque[tuple[T, Future[BatchResult | None]]] = deque()
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
        except AuthError:
            for _job, other in window:
                other.cancel()
            raise
        except IterableError as exc:
            yield job, exc


_END = object()


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
