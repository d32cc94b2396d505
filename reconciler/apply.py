"""Carry out a Plan through the client: create lists, subscribe, unsubscribe.

Every member's outcome is known: identifiers Iterable lists in `failedUpdates` are mapped
back to the member and reported, never counted as done. One list's failure does not stop
the others; a rejected API key stops everything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from reconciler.errors import AuthError, IterableError
from reconciler.identity import Member, ProjectType, looks_like_email
from reconciler.iterable import BatchResult, IterableClient
from reconciler.plan import DestinationPlan, ListPlan, Plan
from reconciler.plan.ownership import mark

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

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.errors


@dataclass
class DeletionResult:
    list_id: int
    list_name: str
    deleted: bool = False
    error: str | None = None


@dataclass
class DestinationResult:
    destination: str
    lists: list[ListResult]
    deletions: list[DeletionResult] = field(default_factory=list)


@dataclass
class ApplyReport:
    destinations: list[DestinationResult] = field(default_factory=list)
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    rate_limit_wait_seconds: float = 0.0  # time spent pacing to stay inside rate limits
    rejected_file: str | None = None  # where the CLI wrote every rejected member in full

    @property
    def ok(self) -> bool:
        return all(lr.ok for d in self.destinations for lr in d.lists) and all(
            x.error is None for d in self.destinations for x in d.deletions
        )

    def to_dict(self, show: Callable[[str], str]) -> dict[str, Any]:
        return {
            "ok": self.ok,
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
                            "rejected": [
                                {"member": show(k), "reason": v}
                                for k, v in sorted(lr.rejected.items())
                            ],
                            "errors": lr.errors,
                        }
                        for lr in d.lists
                    ],
                    "deleted_lists": [
                        {
                            "list_id": x.list_id,
                            "list_name": x.list_name,
                            "deleted": x.deleted,
                            "error": x.error,
                        }
                        for x in d.deletions
                    ],
                }
                for d in self.destinations
            ],
        }


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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
) -> ApplyReport:
    report = ApplyReport()
    for dest_plan in plan.destinations:
        if not dest_plan.has_changes:
            continue
        client = clients[dest_plan.destination]
        report.destinations.append(_apply_destination(dest_plan, client, progress))
    for client in {id(c): c for c in clients.values()}.values():
        report.requests += client.stats.requests
        report.retries += client.stats.retries
        report.rate_limited += client.stats.rate_limited
        report.rate_limit_wait_seconds += client.rate_limit_wait_seconds
    return report


def _apply_destination(
    dest_plan: DestinationPlan, client: IterableClient, progress: Progress | None
) -> DestinationResult:
    project_type = dest_plan.project_type
    work = [lp for lp in dest_plan.lists if lp.has_changes]
    results = {
        lp.list_name: ListResult(lp.audience, lp.list_name, lp.list_id, len(lp.add), len(lp.remove))
        for lp in work
    }
    # 1. create lists; a list that could not be created gets no members
    live_ids: dict[str, int] = {}
    for lp in work:
        result = results[lp.list_name]
        if lp.create:
            try:
                # The marker is how prune knows the list is ours to delete later.
                result.list_id = client.create_list(lp.list_name, mark(lp.description))
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
        jobs = []
        for lp in work:
            if lp.list_name not in live_ids or not lp.add:
                continue
            for chunk in batches(lp.add, settings.batch_size):
                jobs.append((lp, chunk))

        def subscribe(job: tuple[ListPlan, Sequence[Member]]) -> BatchResult:
            lp, chunk = job
            return client.subscribe(
                live_ids[lp.list_name],
                [subscriber_payload(m, project_type) for m in chunk],
                update_existing_users_only=lp.update_existing_users_only,
                list_just_created=lp.create,
            )

        for (lp, chunk), outcome in zip(jobs, _run(pool, subscribe, jobs), strict=True):
            result = results[lp.list_name]
            if isinstance(outcome, Exception):
                result.errors.append(f"subscribing {len(chunk)} members failed: {outcome}")
                continue
            failed = _failed_members(chunk, outcome.failed)
            result.rejected.update(failed)
            result.added += len(chunk) - len(failed)
            if progress is not None:
                progress("add", len(chunk))

        # 3. unsubscribe
        jobs_r = []
        for lp in work:
            if lp.list_name not in live_ids or not lp.remove:
                continue
            for ids in batches(lp.remove, settings.batch_size):
                jobs_r.append((lp, ids))

        def unsubscribe(job: tuple[ListPlan, Sequence[str]]) -> BatchResult:
            lp, ids = job
            return client.unsubscribe(
                live_ids[lp.list_name],
                [removal_payload(i, project_type) for i in ids],
                campaign_id=lp.campaign_id,
                channel_unsubscribe=lp.channel_unsubscribe,
            )

        for (lp, ids), outcome in zip(jobs_r, _run(pool, unsubscribe, jobs_r), strict=True):
            result = results[lp.list_name]
            if isinstance(outcome, Exception):
                result.errors.append(f"unsubscribing {len(ids)} members failed: {outcome}")
                continue
            failed = {i: outcome.failed[i] for i in ids if i in outcome.failed}
            result.rejected.update(failed)
            result.removed += len(ids) - len(failed)
            if progress is not None:
                progress("remove", len(ids))

    # 4. delete lists (prune); only ever lists that carry the ownership marker
    deletions = []
    for deletion in dest_plan.deletions:
        outcome = DeletionResult(deletion.list_id, deletion.list_name)
        try:
            client.delete_list(deletion.list_id)
            outcome.deleted = True
        except AuthError:
            raise
        except IterableError as exc:
            outcome.error = str(exc)
        deletions.append(outcome)
    return DestinationResult(dest_plan.destination, list(results.values()), deletions)


def _run(
    pool: ThreadPoolExecutor, fn: Callable[[T], BatchResult], jobs: list[T]
) -> Iterator[BatchResult | IterableError]:
    """Results in submission order; an IterableError becomes that job's result, except a
    rejected key, which stops the run (every other request would fail the same way)."""
    futures = [pool.submit(fn, job) for job in jobs]
    for future in futures:
        try:
            yield future.result()
        except AuthError:
            for f in futures:
                f.cancel()
            raise
        except IterableError as exc:
            yield exc


def _failed_members(chunk: Sequence[Member], failed: Mapping[str, str]) -> dict[str, str]:
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
