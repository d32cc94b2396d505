"""Iterable's asynchronous export: jobs that run in the background, files behind expiring
links (`POST /api/export/start`, `GET /api/export/{jobId}/files`, `GET /api/export/jobs`,
`DELETE /api/export/{jobId}`).

A job's rows are taken when it starts (the same rows the synchronous export gives), cut
into files of at most `Faults.export_file_bytes`, and released over the emulator's clock:
Enqueued for `export_job_queue_seconds`, then Running at `export_job_members_per_second`,
a file listed once all its rows are produced. The timeline is fixed when the job starts,
so moving a test's clock replays it exactly; jobs live in memory only (not in the state
file), as Iterable's disappear after a while.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

# The states the OpenAPI lists (ExportJobStatusAndFiles.jobState), plus Cancelled, which
# Iterable's own client (src/types/export.ts) and Estuary's connector both know.
ENQUEUED, RUNNING, COMPLETED, FAILED, CANCELLED = (
    "Enqueued",
    "Running",
    "Completed",
    "Failed",
    "Cancelled",
)
FINAL_STATES = frozenset({COMPLETED, FAILED, CANCELLED})
# Iterable's client says the API answers jobState in lower case although the spec lists
# capitalised values; Faults.export_job_state_case picks which the emulator sends.
STATE_CASES = ("spec", "lower")
EXCESS_JOBS = ("reject", "queue")
DOWNLOAD_PREFIX = "/export-files/"
KEPT_FINISHED_JOBS = 8
# What S3 answers a pre-signed link past its expiry; Estuary's connector looks for
# "Request has expired" in a 403 to fetch fresh links.
EXPIRED_LINK_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Request has expired</Message></Error>"
)
DENIED_LINK_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message></Error>"
)


@dataclass
class ExportPlan:
    """What a job will produce and how, fixed when it starts."""

    body: bytes
    """Every row, one JSON object per line (already cut at the maximum size)."""
    file_ends: list[int]
    """Byte offset where each file ends."""
    file_rows: list[int]
    """Rows produced when each file is complete (cumulative)."""
    truncated: bool
    queue_seconds: float
    rows_per_second: float | None
    restart: bool
    restart_resets_files: bool
    fail: bool
    building: bool = False
    """Its rows are still being written (outside the emulator's lock): the job stays
    Enqueued, with no files, until they are."""


def plan_files(
    body: bytes, file_bytes: int, max_bytes: int
) -> tuple[bytes, list[int], list[int], bool]:
    """Cut `body` (JSON lines) at `max_bytes` (whole rows) and into files of at most
    `file_bytes` (whole rows; a row longer than that gets a file of its own)."""
    truncated = len(body) > max_bytes
    if truncated:
        body = body[: body.rfind(b"\n", 0, max_bytes + 1) + 1]
    ends: list[int] = []
    rows: list[int] = []
    start = 0
    produced = 0
    while start < len(body):
        limit = start + file_bytes
        if limit >= len(body):
            end = len(body)
        else:
            end = body.rfind(b"\n", start, limit) + 1
            if end <= start:
                end = body.find(b"\n", start) + 1 or len(body)
        produced += body.count(b"\n", start, end)
        ends.append(end)
        rows.append(produced)
        start = end
    return body, ends, rows, truncated


@dataclass
class ExportJob:
    id: int
    project: str
    data_type: str
    plan: ExportPlan
    created_at: float
    """The emulator's clock at the start request."""
    created_wall: datetime
    state: str = ENQUEUED
    ready_at: float = 0.0
    """When an Enqueued job may run (its queue time over)."""
    run_started: float = 0.0
    produced_base: int = 0
    """Rows produced before the current run began (kept across a restart, or 0)."""
    produced: int = 0
    attempt: int = 0
    """Restarts that reset the files; a new attempt's files get new names."""
    ended_at: float | None = None
    restarts: int = 0
    holds_slot: bool = False
    """It has run (and keeps its place among the concurrent jobs until it ends)."""
    slot_passed: bool = False
    """It has ended and a queued job has taken its place."""

    @property
    def total_rows(self) -> int:
        return self.plan.file_rows[-1] if self.plan.file_rows else 0

    def advance(self, now: float) -> None:
        """Bring the job's state up to `now` along its fixed timeline."""
        plan = self.plan
        while self.state not in FINAL_STATES:
            if self.state == ENQUEUED:
                if now < self.ready_at or plan.building:
                    return
                self.state = RUNNING
                self.holds_slot = True
                self.run_started = self.ready_at
                continue
            # Running: the next event is a restart or failure at half way, or the end.
            total = self.total_rows
            halfway = total // 2
            target = halfway if (plan.restart or plan.fail) else total
            due_at = self._time_for(target)
            if now < due_at:
                self.produced = self._rows_at(now)
                return
            self.produced = target
            if plan.restart:
                plan.restart = False
                self.restarts += 1
                self.state = ENQUEUED
                self.ready_at = due_at + plan.queue_seconds
                if plan.restart_resets_files:
                    self.attempt += 1
                    self.produced = self.produced_base = 0
                else:
                    self.produced_base = target
                continue
            self.state = FAILED if plan.fail else COMPLETED
            self.ended_at = due_at

    def _time_for(self, rows: int) -> float:
        rate = self.plan.rows_per_second
        if rate is None or rows <= self.produced_base:
            return self.run_started
        return self.run_started + (rows - self.produced_base) / rate

    def _rows_at(self, now: float) -> int:
        rate = self.plan.rows_per_second
        if rate is None:
            return self.total_rows
        return min(self.total_rows, self.produced_base + int((now - self.run_started) * rate))

    def files_ready(self) -> list[int]:
        """Indexes of the files whose rows are all produced (this attempt's)."""
        if self.state == CANCELLED and self.produced == 0:
            return []
        return [i for i, rows in enumerate(self.plan.file_rows) if rows <= self.produced]

    def file_name(self, index: int) -> str:
        # Sorted names, so startAfter pages through them; a reset restart's files sort
        # after the first attempt's.
        return f"export-{self.id}-a{self.attempt}-{index:05d}.json"

    def file_body(self, index: int) -> bytes:
        start = self.plan.file_ends[index - 1] if index else 0
        return self.plan.body[start : self.plan.file_ends[index]]

    def bytes_exported(self) -> int:
        ready = self.files_ready()
        return self.plan.file_ends[ready[-1]] if ready else 0

    def wall_time(self, clock_time: float) -> str:
        moment = self.created_wall + timedelta(seconds=clock_time - self.created_at)
        return moment.isoformat(timespec="milliseconds")


@dataclass
class _Link:
    job_id: int
    index: int
    attempt: int
    expires_at: float


@dataclass
class ExportJobs:
    """Every export job of the emulator: one organisation, so limits span its projects."""

    jobs: dict[int, ExportJob] = field(default_factory=dict)
    links: dict[str, _Link] = field(default_factory=dict)
    next_id: int = 1

    def start(self, project: str, data_type: str, plan: ExportPlan, now: float) -> ExportJob:
        job = ExportJob(
            id=self.next_id,
            project=project,
            data_type=data_type,
            plan=plan,
            created_at=now,
            created_wall=datetime.now(UTC),
            ready_at=now + plan.queue_seconds,
        )
        self.next_id += 1
        self.jobs[job.id] = job
        return job

    def _forget_old_jobs(self) -> None:
        # A job holds every row it exported (hundreds of MB for millions of users): keep
        # the last few finished ones, as Iterable lists only recent jobs. A forgotten job's
        # links answer 403 like any unknown link.
        finished = [job_id for job_id, job in self.jobs.items() if job.state in FINAL_STATES]
        for job_id in finished[: max(0, len(finished) - KEPT_FINISHED_JOBS)]:
            del self.jobs[job_id]

    def advance(self, now: float, max_running: int | None) -> None:
        """Every job up to `now`, oldest first; with `max_running`, a job ready to run
        waits in the queue until one of that many running jobs ends, and runs from then."""
        if max_running is None:
            for job in self.jobs.values():
                job.advance(now)
        else:
            self._advance_queued(now, max_running)
        self._forget_old_jobs()

    def _advance_queued(self, now: float, max_running: int) -> None:
        holders = [job for job in self.jobs.values() if job.holds_slot]
        for job in holders:
            job.advance(now)
        # Free places: ended jobs' (from their end) and never used ones (from always).
        freed = sorted(
            (job.ended_at or 0.0, job.id)
            for job in holders
            if job.state in FINAL_STATES and not job.slot_passed
        )
        occupied = sum(1 for job in holders if job.state not in FINAL_STATES)
        never_used = max(0, max_running - occupied - len(freed))
        for job in self.jobs.values():
            if job.holds_slot or job.state != ENQUEUED or now < job.ready_at:
                continue
            if never_used:
                never_used -= 1
            elif freed and freed[0][0] <= now:
                free_since, passer = freed.pop(0)
                self.jobs[passer].slot_passed = True
                job.ready_at = max(job.ready_at, free_since)
            else:
                continue
            job.advance(now)
            if job.state in FINAL_STATES:
                freed.append((job.ended_at or now, job.id))
                freed.sort()

    def unfinished(self) -> int:
        return sum(1 for job in self.jobs.values() if job.state not in FINAL_STATES)

    def link(self, job: ExportJob, index: int, now: float, lifetime: float) -> str:
        """A fresh pre-signed-style token for one file, valid for `lifetime` seconds."""
        self._forget_expired(now)
        token = secrets.token_urlsafe(18)
        self.links[token] = _Link(job.id, index, job.attempt, now + lifetime)
        return token

    def download(self, token: str, now: float) -> tuple[int, bytes]:
        """(status, body) for a file link: 403 once expired or unknown, as S3 answers."""
        link = self.links.get(token)
        if link is None:
            return 403, DENIED_LINK_BODY
        if now >= link.expires_at:
            return 403, EXPIRED_LINK_BODY
        job = self.jobs.get(link.job_id)
        if job is None:
            return 403, DENIED_LINK_BODY
        return 200, job.file_body(link.index)

    def _forget_expired(self, now: float) -> None:
        # Kept a while past expiry so a late download still gets "Request has expired".
        stale = [t for t, link in self.links.items() if now >= link.expires_at + 3600.0]
        for token in stale:
            del self.links[token]


def job_state(state: str, case: str) -> str:
    return state.lower() if case == "lower" else state


def job_model(job: ExportJob, case: str) -> dict[str, Any]:
    """JobModel, as GET /api/export/jobs lists it."""
    model: dict[str, Any] = {
        "id": job.id,
        "dataTypeName": job.data_type,
        "jobState": job_state(job.state, case),
        "scheduledStartTime": job.wall_time(job.created_at + job.plan.queue_seconds),
        "bytesExported": job.bytes_exported(),
    }
    if job.ended_at is not None:
        model["endTime"] = job.wall_time(job.ended_at)
    return model
