"""Whether another workflow (apply.yml, sync.yml) has a run in progress or waiting.

The drift check plans Iterable against the manifests. While an apply or a sync writes,
Iterable is half-applied, and a plan of it is a false drift report (or closes a real one).
The concurrency group that serialises the runs that apply cannot hold the drift check: a
run that joins a group with cancel-in-progress cancels the running apply, and a run waiting
in the group replaces an apply waiting for approval. So the drift check asks GitHub instead,
before it plans and again before it posts, and skips when a run is busy. Reconciler's own
lock and run journal are on the applying runner's disk, which no other runner sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from reconciler.github.gh import Gh, GhError, GhUnreached

# Every status of a run that is not over (GitHub's list filter takes one at a time):
# running, waiting for a runner, waiting in a concurrency group, waiting for approval.
UNFINISHED = ("in_progress", "queued", "requested", "waiting", "pending")
# Enough to name the busy runs; the concurrency group keeps at most two of each unfinished.
SHOWN = 10


def github_time(text: str) -> str:
    """`text`, an ISO 8601 time (UTC unless it names an offset), as GitHub's run filter reads
    it: `2026-01-31T06:17:00Z`. Anything else raises ValueError: sent as it came, GitHub
    refuses the query, and that refusal reads like a workflow the repository lacks. Parts of
    a second are dropped, which only moves the time earlier: a run is never missed by it."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 time; give one such as 2026-01-31T06:17:00Z"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        in_utc = when.astimezone(UTC)
    except OverflowError:  # an offset that moves 0001-01-01 or 9999-12-31 past its year
        raise ValueError(
            f"{text!r} is outside the years 1 to 9999 in UTC; give one such as 2026-01-31T06:17:00Z"
        ) from None
    return in_utc.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Run:
    workflow: str
    status: str
    url: str


def busy_runs(gh: Gh, repo: str, workflows: list[str], since: str | None = None) -> list[Run]:
    """The runs of `workflows` not yet over, and, with `since` (an ISO 8601 time), those
    created at or after it whatever their status: one that started and finished while the
    drift check planned wrote to Iterable during that plan all the same."""
    created = None if since is None else github_time(since)
    found: dict[object, Run] = {}
    for workflow in workflows:
        base = f"repos/{repo}/actions/workflows/{quote(workflow, safe='')}/runs?per_page={SHOWN}"
        queries = [f"{base}&status={status}" for status in UNFINISHED]
        if created is not None:
            queries.append(f"{base}&created={quote('>=' + created, safe='')}")
        for query in queries:
            try:
                answer = gh.api("GET", query)
            except GhUnreached:
                raise  # no answer: nothing says the workflow or a scope is missing
            except GhError as exc:
                raise GhError(
                    f"{exc} (is there a workflow .github/workflows/{workflow} in {repo}? "
                    "Name only the workflows that apply; reading runs needs `actions: read`)"
                ) from None
            for run in answer["workflow_runs"]:
                found.setdefault(
                    run["id"], Run(workflow, str(run["status"]), str(run.get("html_url") or ""))
                )
    return list(found.values())
