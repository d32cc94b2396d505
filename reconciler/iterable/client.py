"""The only code that knows Iterable's URLs.

Layers, inside out: `_send_once` (one HTTP exchange, judged on status), `_request` (pacing
per rate-limit bucket, retries with backoff and jitter, Retry-After, and reading the answer),
and the endpoint methods. The API key lives in the httpx client's default headers and
nowhere else: no exception, log line or repr built here includes request headers. Nor
does any text the server sends: every answer, error or not, has the key cut out (in any
form it may be quoted in) before it becomes a message, a result or a file, because a
server or proxy that echoes its input would otherwise carry the key into output.

What a failure means for a write decides how it is retried. A 429 or a refused connection
means Iterable did not do it. A timeout, a connection cut mid-answer, a 5xx (a gateway can
time out after the work was done) or a 2xx whose body is not the answer means it may have
been done. Subscribe and unsubscribe are idempotent, so they are simply sent again; creating
or deleting a list is not, so the client looks at the lists before sending it again.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import email.utils
import functools
import hashlib
import itertools
import json
import random
import re
import shutil
import ssl
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from reconciler.errors import (
    AuthError,
    FieldTypeRefusal,
    IterableError,
    ListInUseError,
    LiveStateError,
    OutcomeUnknown,
    ReadStopped,
    RetryExhaustedError,
    UnavailableError,
    UnreachableError,
    WriteNotSent,
)
from reconciler.iterable.answer_bounds import AnswerOverrun, bound_answer
from reconciler.iterable.batching import encode, pack_users
from reconciler.iterable.environment import (
    http_client,
    proxy_hint,
    proxy_refusal,
    proxy_variables,
    through_proxy,
    tls_context,
)
from reconciler.iterable.key_refusal import refused_key
from reconciler.iterable.names import REGION_URLS, StreamCut
from reconciler.iterable.ratelimit import SlidingWindow, Slot, WaitGivenUp, Window, WindowUser
from reconciler.iterable.results import BatchResult, parse_bulk_response
from reconciler.iterable.retry_notices import RetryNotices, WaitNotices
from reconciler.iterable.settings import ClientSettings
from reconciler.iterable.unreachable import why_unreachable
from reconciler.layout import one_line
from reconciler.progress import duration
from reconciler.render.masking import marking_sent, mask_emails
from reconciler.threads import reading_pool
from reconciler.traits.types import accepts, value_types
from reconciler.words import quantity

REDACTED = "[api key]"
RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
# Answers that say the service (or the gateway before it) is down, not that this request
# failed: a request that still gets one after its retries stops an apply's destination.
UNAVAILABLE_STATUS = {502, 503, 504}
# How Iterable may answer GET users/byUserId of a userId nobody has, as a 500 (Block's
# production client, block/iterable-go, takes it for "not found"), besides 200 {}.
NO_SUCH_USER_ID = "error.users.noUserWithIdExists"
T = TypeVar("T")


@dataclass(frozen=True)
class ListInfo:
    id: int
    name: str
    description: str | None
    list_type: str
    created_at: int | None


@dataclass(frozen=True)
class CampaignInfo:
    """One campaign as GET /api/campaigns describes it: which lists it sends to and which
    it suppresses, its type (Blast, Triggered) and state (Running, Scheduled, ...)."""

    id: int
    name: str
    type: str
    state: str
    list_ids: tuple[int, ...]
    suppression_list_ids: tuple[int, ...]


# Campaigns per page: Iterable's maximum, so a project's campaigns take few requests.
CAMPAIGN_PAGE_SIZE = 1000


@dataclass(frozen=True)
class ExportJobPage:
    state: str  # lower case: enqueued, running, completed, failed, cancelled
    files: list[tuple[str, str]]  # (file name, link), in the job's order
    truncated: bool


@dataclass
class ProjectExports:
    """What a run has learned of a project's whole user export, held by every client of
    the project (IterableClient.share_project_exports)."""

    whole_cut_off: bool = False
    # The lines (profiles) the project's latest whole user export of this run streamed,
    # None before one ended: what another export of every profile will stream, which no
    # list's size tells (apply/channel_profiles.py chooses by it).
    profiles: int | None = None


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0  # 429s received
    writes: int = 0  # requests that change state in Iterable
    # Requests per endpoint ("GET /api/lists/getUsers"), retries included: what a plan
    # says it spent on its reads.
    calls: dict[str, int] = dataclasses.field(default_factory=dict)

    def calls_since(self, before: dict[str, int]) -> dict[str, int]:
        return {k: n - before.get(k, 0) for k, n in self.calls.items() if n > before.get(k, 0)}


class _Retryable(Exception):
    """A failure worth another attempt. `done_maybe`: the request may have taken effect;
    `rate_limited`: a 429, the server's window for this kind of request is full."""

    def __init__(
        self,
        reason: str,
        retry_after: float | None = None,
        *,
        done_maybe: bool = True,
        rate_limited: bool = False,
        unreachable: bool = False,
        unavailable: int | None = None,
    ):
        self.reason = reason
        self.retry_after = retry_after
        self.done_maybe = done_maybe
        self.rate_limited = rate_limited
        self.unreachable = unreachable  # no connection could be made: nothing was sent
        # The status when 502, 503 or 504: the service is down, not this request refused.
        self.unavailable = unavailable
        super().__init__(reason)


class _BadAnswer(Exception):
    """A 2xx whose body is not the answer the endpoint gives: a proxy's page, a body cut
    short, a shape Iterable does not send. The request may well have taken effect."""


class _Uncertain(Exception):
    """A non-idempotent request failed in a way that leaves open whether it happened."""

    def __init__(self, reason: str, unavailable: int | None = None):
        self.reason = reason
        self.unavailable = unavailable  # as _Retryable's
        super().__init__(reason)


def project_identity(base_url: str, api_key: str) -> str:
    """What identifies the Iterable project a host and key reach, without the key (a
    digest): the apply lock, and which destinations name one project, go by it."""
    return hashlib.sha256(
        f"{base_url.rstrip('/')}\n{api_key}".encode("utf-8", "surrogateescape")
    ).hexdigest()[:32]


# The shortest key cut out of members' identifiers and values as well as of messages
# (IterableClient._scrubs_data): Iterable's keys are 32 hexadecimal characters.
MIN_SCRUBBED_IN_DATA = 16


class IterableClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        settings: ClientSettings | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ):
        self.settings = settings or ClientSettings()
        self.base_url = base_url.rstrip("/")
        self._sleep = sleep
        self._rng = rng or random.Random()
        timeout = httpx.Timeout(self.settings.timeout)
        self._secret_forms = _secret_forms(api_key)
        # Members' identifiers and values (`data` reads) are cut only of a key long enough
        # to be a real one: a key of a letter or two (a sandbox's, an emulator's) is part of
        # many identifiers, which cut read back as others; a real key (32 characters)
        # stored in a profile's field by a careless integration stays out of every output.
        self._scrubs_data = len(api_key) >= MIN_SCRUBBED_IN_DATA
        # What identifies the project this client writes to, without the key: the lock
        # of one apply per project is keyed by it (reconciler.apply.lock).
        self.project_id = project_identity(self.base_url, api_key)
        # One TLS context for both clients, made as httpx makes its default (certifi's CAs,
        # or SSL_CERT_FILE / SSL_CERT_DIR): loading the CAs costs about 25 ms, paid by every
        # command that opens a client. None is made for a given transport (the sandbox).
        verify: ssl.SSLContext | bool = tls_context() if transport is None else True
        # Export files sit behind pre-signed links on another host (S3): fetched by a
        # client that has no key to send.
        self._files = http_client(
            headers={"User-Agent": "reconciler"},
            timeout=httpx.Timeout(self.settings.timeout, read=self.settings.bulk_read_timeout),
            transport=transport,
            follow_redirects=True,
            verify=verify,
        )
        self._http = http_client(
            base_url=self.base_url,
            headers={"Api-Key": api_key, "User-Agent": "reconciler"},
            timeout=timeout,
            transport=transport,
            verify=verify,
            # Writers, getUsers streams or export windows in flight, plus the odd list or
            # user lookup: a request past the pool waits for a connection only
            # RECONCILER_TIMEOUT, and a stream holds one for minutes.
            limits=httpx.Limits(
                max_connections=max(
                    self.settings.concurrency,
                    self.settings.list_read_concurrency,
                    int(self.settings.export_windows_in_flight),
                )
                + 2
            ),
        )
        s = self.settings
        # Iterable's windows; shorter only for benchmarks at an emulator's time scale.
        minute, second = 60.0 / s.time_scale, 1.0 / s.time_scale
        self._buckets: dict[str, Window] = {
            "list_reads": SlidingWindow(s.list_reads_per_minute, minute, clock, sleep),
            "lists": SlidingWindow(s.lists_per_second, second, clock, sleep),
            "writes": SlidingWindow(s.writes_per_second, second, clock, sleep),
            "bulk_update": SlidingWindow(s.bulk_updates_per_second, second, clock, sleep),
            "get_fields": SlidingWindow(s.get_fields_per_second, second, clock, sleep),
            "export": SlidingWindow(s.exports_per_minute, minute, clock, sleep),
            "user_reads": SlidingWindow(s.user_reads_per_second, second, clock, sleep),
            "forgotten": SlidingWindow(s.forgotten_reads_per_second, second, clock, sleep),
            "campaigns": SlidingWindow(s.campaigns_per_second, second, clock, sleep),
            # The asynchronous export: 1 a second per organisation for start and files.
            "export_jobs": SlidingWindow(s.export_jobs_per_second, second, clock, sleep),
            "none": SlidingWindow(0, 1.0, clock, sleep),
        }
        self.stats = ClientStats()
        # Whether the project's whole user export is known too big for one stream (shared
        # by the clients of one project: share_project_exports).
        self._project_exports = ProjectExports()
        self._stats_lock = threading.Lock()  # writers run in a thread pool
        self._notice: Callable[[str], None] | None = None
        self._retry_notices: RetryNotices | None = None
        self._wait_notices: WaitNotices | None = None
        self._clock = clock
        # When this client created each list (its clock): writes to it are retried while
        # Iterable still calls it invalidListId, for settings.fresh_list_wait from then.
        self._created_at: dict[int, float] = {}
        self._fresh_locks: dict[int, threading.Lock] = {}
        self._writable: set[int] = set()  # lists created here that have taken a write
        # Set by an apply when it is interrupted: waiting for a new list to take writes
        # (up to settings.fresh_list_wait) ends, and the writes waiting are not sent.
        self.stop: threading.Event | None = None
        # Per thread: whether a write of the apply step running on it may have taken
        # effect (write_step), after which its writes are no longer given up on Ctrl-C.
        self._step = threading.local()
        # Iterable's clock minus ours (seconds), at least, by the Date header of each
        # answer: the least and the greatest seen (None: no answer had one). See
        # iterable_now and iterable_latest.
        self._clock_offset: float | None = None
        self._clock_offset_most: float | None = None

    def on_notice(self, notice: Callable[[str], None]) -> None:
        """Say every long wait (rate-limit pacing of 5 s or more) and every retry, as it
        starts: a minute of silence looks like a hang. Each on one line (`one_line`): a
        notice can quote Iterable (an export job's state, an answer's reason)."""
        self._notice = lambda text: notice(one_line(text))
        # The first retries are said whole, the rest counted (a failing Iterable's
        # thousands of retries flooded CI logs), unless every request is logged.
        self._retry_notices = RetryNotices(
            self._notice, self._clock, every=self.settings.log == "requests"
        )
        # Likewise long waits: at a slow pace learnt from 429s, every request waits.
        waits = self._wait_notices = WaitNotices(
            self._notice, self._clock, every=self.settings.log == "requests"
        )
        rates = {
            "list_reads": ("list member reads (getUsers)", "minute"),
            "export": ("user exports", "minute"),
        }
        for bucket, window in self._buckets.items():
            what, per = rates.get(bucket, (f"{bucket.replace('_', ' ')} requests", "second"))

            def announce(
                wait: float, what: str = what, per: str = per, window: Window = window
            ) -> None:
                learnt = window.learnt
                limit = (
                    f"{window.rate:g} per {per}"
                    if learnt is None
                    else f"about {learnt:.2g} per second, learnt from its 429s"
                )
                waits.retry(
                    f"waiting {wait:.0f} s for Iterable's rate limit on {what} ({limit})", what
                )

            window.on_wait = announce

            def full(
                in_flight: int, what: str = what, per: str = per, limit: float = window.rate
            ) -> None:
                notice(
                    f"waiting for one of the {in_flight} {what} in flight to be answered: "
                    f"Iterable's rate limit ({limit:g} per {per}) counts each from its answer"
                )

            window.on_full = full

    def _where(self) -> str:
        """host:port of the destination, for messages about reaching it."""
        url = self._http.base_url
        port = url.port or {"https": 443, "http": 80}.get(url.scheme)
        return f"{_bracketed(url.host)}:{port}" if port else _bracketed(url.host)

    def _pack(
        self, users: Sequence[dict[str, Any]], endpoint: str, envelope: int | None = None
    ) -> tuple[list[list[dict[str, Any]]], BatchResult]:
        """`users` in requests within the batch size and the body size limit, and a result
        that already counts the users too large for any request as failed."""
        limit = self.settings.bulk_update_max_bytes
        sizes = {} if envelope is None else {"envelope": envelope}
        packed = pack_users(users, max_users=self.settings.batch_size, max_bytes=limit, **sizes)
        result = BatchResult()
        for user in packed.too_large:
            identifier = user.get("userId") or user.get("email") or ""
            result.failed[str(identifier)] = (
                f"its fields are over {limit} bytes, more than one {endpoint} request may carry"
            )
            result.sent += 1
        return packed.requests, result

    def __repr__(self) -> str:  # never show the key
        return f"IterableClient({self.base_url!r})"

    def close(self) -> None:
        if self._retry_notices is not None:
            self._retry_notices.close()  # the retries counted since the last count line
        if self._wait_notices is not None:
            self._wait_notices.close()
        self._http.close()
        self._files.close()

    def __enter__(self) -> IterableClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def rate_limit_wait_seconds(self) -> float:
        return sum(b.waited for b in self._buckets.values())

    def share_rate_limits(self, other: IterableClient) -> None:
        """Pace this client's requests in `other`'s rate windows: both reach one project
        (the same project_id: two destinations naming it), and Iterable counts a project's
        requests together, so each pacing alone to the full limit (5 getUsers, 4 exports
        a minute) sent twice what it allows. Before on_notice: each client still says
        its own waits."""
        if other.project_id != self.project_id:
            raise ValueError("rate limits are shared only by clients of one project")
        self._buckets = {
            name: WindowUser(window.shared if isinstance(window, WindowUser) else window)
            for name, window in other._buckets.items()
        }

    @property
    def whole_export_cut_off(self) -> bool:
        """Whether a whole-project user export of this run failed after its retries in a
        way date windows get past (state/windows.py marks it): Iterable closes long export
        connections, so a project too big for one stream is so for the whole run, and
        each later read goes to windows at once rather than stream and be cut again
        (against Iterable, half an hour each try). Known of the project, not the client:
        every destination naming it knows it (cli/session.py shares it)."""
        return self._project_exports.whole_cut_off

    @whole_export_cut_off.setter
    def whole_export_cut_off(self, value: bool) -> None:
        self._project_exports.whole_cut_off = value

    def share_project_exports(self, other: IterableClient) -> None:
        """Take what `other` knows of the project's whole user export (whole_export_cut_off)
        and learns from now on: both reach one project (the same project_id), whose users
        are the same whichever destination's client exports them. What either knew
        already is kept."""
        if other.project_id != self.project_id:
            raise ValueError("export knowledge is shared only by clients of one project")
        if other._project_exports is self._project_exports:
            return
        other._project_exports.whole_cut_off |= self._project_exports.whole_cut_off
        if other._project_exports.profiles is None:
            other._project_exports.profiles = self._project_exports.profiles
        self._project_exports = other._project_exports

    @property
    def project_profiles(self) -> int | None:
        """How many profiles the project has, as this run's latest whole user export of
        it counted them (an export, a job, or the export in date windows); None when no
        such export has ended. Known of the project, as whole_export_cut_off."""
        return self._project_exports.profiles

    def counted_profiles(self, lines: int) -> None:
        """A whole user export of the project ended with `lines` profiles."""
        self._project_exports.profiles = lines

    # -- lists ---------------------------------------------------------------------------

    def get_lists(self) -> list[ListInfo]:
        return self._request("GET", "/api/lists", bucket="lists", parse=_parse_lists)

    def create_list(self, name: str, description: str | None = None) -> int:
        """Create a list once. `description` should be unique to this run (see
        plan.ownership.mark): after a create whose answer was lost, the list index is
        watched for a list of this name and description for up to settings.read_lag
        seconds, since the index lags creates, before the create is sent again."""
        payload: dict[str, Any] = {"name": name}
        if description:
            payload["description"] = description

        def send() -> int:
            return self._request(
                "POST",
                "/api/lists",
                bucket="lists",
                json=payload,
                idempotent=False,
                parse=_parse_list_id,
            )

        def ours() -> int | None:
            existing = [x for x in self.get_lists() if x.name == name]
            mine = [x for x in existing if description and x.description == description]
            if len(mine) > 1 or (not description and len(existing) > 1):
                found = mine if description else existing
                ids = ", ".join(str(x.id) for x in found)
                raise LiveStateError(
                    f"creating list {name!r}: Iterable now has {len(found)} lists with that "
                    f"name ({ids}); keep one, delete the others, then apply again"
                )
            if description:
                return mine[0].id if mine else None
            return existing[0].id if existing else None

        def created(failure: str) -> int | None:
            return self._watch_lists(
                f"creating list {name!r}: {failure}, so the list may or may not have been created",
                ours,
            )

        list_id = self._once("POST", "/api/lists", send, created)
        self._created_at[list_id] = self._clock()
        return list_id

    def _watch_lists(self, what: str, look: Callable[[], T | None]) -> T | None:
        """`look` at the list index until it finds something or settings.read_lag has
        passed: the index can take that long to show a change. `what` says what failed
        and what it may have done."""
        found = look()
        lag = self.settings.read_lag
        if found is not None or lag <= 0:
            return found
        self._tell(
            f"{what}; waiting up to {lag:g} s for Iterable's list index (which lags writes) "
            "to show whether it was"
        )
        deadline = self._clock() + lag
        while True:
            left = deadline - self._clock()
            if left <= 0:
                return None
            if self._interrupted() and getattr(self._step, "active", False):
                # Ctrl-C during an apply step: up to read_lag a try, 7 tries (7 minutes by
                # default) was waited out first, then the create sent again.
                raise _WatchStopped
            self._sleep(min(left, max(lag / 20, 0.01), 3.0))
            found = look()
            if found is not None:
                return found

    def wait_until_listed(self, list_ids: Collection[int]) -> list[ListInfo] | None:
        """The list index once it shows every list of `list_ids` (created by this client),
        waited for up to settings.read_lag after the last of those creates; None when it
        did not show them by then, or the run was stopped. The index lags creates: a run
        started meanwhile without this run's journal (a CI runner, another machine or
        --state-dir) would not see the lists and would create them again, and a list of
        the same name that such a run created meanwhile shows only in a later index.
        Read once even without a lag: the apply looks in it for such a list."""
        wanted = set(list_ids)
        if not wanted:
            return []
        lag = max(self.settings.read_lag, 0.0)
        deadline = max(self._created_at.get(i, self._clock()) for i in wanted) + lag
        told = False
        while True:
            if self.stop is not None and self.stop.is_set():
                return None
            listed = self.get_lists()
            if wanted <= {x.id for x in listed}:
                return listed
            left = deadline - self._clock()
            if left <= 0:
                return None
            if not told:
                told = True
                self._tell(
                    f"waiting up to {left:.0f} s for Iterable's list index to show the "
                    f"{quantity(len(wanted), 'list')} this run created (it lags creates), so "
                    "that a run started right after, elsewhere, does not create "
                    f"{'it' if len(wanted) == 1 else 'them'} again"
                )
            self._sleep(min(left, max(lag / 20, 0.01), 3.0))

    def _tell(self, message: str) -> None:
        if self._notice is not None:
            self._notice(message)

    def tell(self, message: str) -> None:
        """Say `message` on stderr as the client's notices are (nothing before on_notice)."""
        self._tell(message)

    def _tell_retry(self, message: str, reason: str) -> None:
        """A retry's line, said or counted (RetryNotices)."""
        if self._retry_notices is not None:
            self._retry_notices.retry(message, reason)

    def delete_list(self, list_id: int) -> None:
        path = f"/api/lists/{list_id}"

        def send() -> bool:
            try:
                self._request("DELETE", path, bucket="lists", idempotent=False, parse=_parse_object)
            except IterableError as exc:
                # No such list: deleted already (by a run the lagging index did not show
                # yet, or by this request, whose answer was lost). The list is gone.
                if not (exc.status == 400 and "invalidListId" in str(exc)):
                    raise
            return True

        def deleted(_failure: str) -> bool | None:
            return True if all(x.id != list_id for x in self.get_lists()) else None

        self._once("DELETE", path, send, deleted)

    def iter_list_members(
        self, list_id: int, prefer_user_id: bool, on_lines: Callable[[int], None] | None = None
    ) -> Iterator[str]:
        """Stream getUsers: one identifier per line. The body can be millions of lines.
        `on_lines(n)` reports progress as lines arrive."""
        params = {"listId": str(list_id), "preferUserId": "true" if prefer_user_id else "false"}

        def parse(response: httpx.Response) -> list[str]:
            return _parse_lines(response, on_lines)

        lines = self._request(
            "GET",
            "/api/lists/getUsers",
            bucket="list_reads",
            params=params,
            parse=parse,
            bulk=True,
            data=True,
        )
        yield from lines

    def list_size(self, list_id: int) -> int:
        """How many members Iterable counts on the list (`GET /api/lists/{id}/size`). It
        shares getUsers' budget of 5 a minute, so it is asked only to check a doubtful read."""
        return self._request(
            "GET",
            f"/api/lists/{int(list_id)}/size",
            bucket="list_reads",
            parse=_parse_count,
            label="/api/lists/{id}/size",
        )

    def forgotten_hashes(self, kind: str) -> frozenset[str]:
        """SHA-256 hashes (lowercase hex) of the project's GDPR-forgotten emails (`kind`
        "email": `GET /api/users/forgotten`) or userIds ("userId": `.../forgottenUserIds`),
        each trimmed and lowercased before hashing. 3 a second."""
        path, key = (
            ("/api/users/forgotten", "hashedEmails")
            if kind == "email"
            else ("/api/users/forgottenUserIds", "hashedUserIds")
        )

        def parse(response: httpx.Response) -> frozenset[str]:
            hashes = _parse_object(response).get(key)
            if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
                raise _BadAnswer(f"JSON without a '{key}' array of strings")
            return frozenset(h.lower() for h in hashes)

        return self._request("GET", path, bucket="forgotten", parse=parse)

    def download_list_members(
        self,
        list_id: int,
        prefer_user_id: bool,
        path: Path,
        on_lines: Callable[[int], None] | None = None,
    ) -> int:
        """Stream getUsers into `path`, one identifier per line, without holding the body:
        for lists of millions, read back by DuckDB. Returns the number of lines. A retry
        starts the file afresh. `on_lines(n)` reports progress as lines arrive."""
        params = {"listId": str(list_id), "preferUserId": "true" if prefer_user_id else "false"}
        return self._download(
            "/api/lists/getUsers",
            "list_reads",
            params,
            path,
            "the list's members",
            on_lines,
            members=True,
        )

    # -- membership writes ---------------------------------------------------------------

    def subscribe(
        self,
        list_id: int,
        subscribers: list[dict[str, Any]],
        *,
        update_existing_users_only: bool = False,
        list_just_created: bool = False,
        packed: bool = False,
    ) -> BatchResult:
        """Subscribe in requests of at most `batch_size` members and
        `bulk_update_max_bytes` bytes of encoded body (members carry their mapped fields,
        so a thousand of them can be over Iterable's 4 MB). A member whose entry alone is
        over the limit is not sent and comes back as failed. When `list_just_created`, an
        invalidListId answer is retried until settings.fresh_list_wait after the create.
        `packed`: the subscribers were packed into one request already, as the executor
        packs a list's adds (batching.pack_lazily with subscribe_envelope's size): sent as
        one request without measuring each member a second time."""
        envelope = self.subscribe_envelope(list_id, update_existing_users_only)
        if packed:
            requests, total = [subscribers] if subscribers else [], BatchResult()
        else:
            requests, total = self._pack(subscribers, "subscribe", len(encode(envelope)))

        def send(chunk: list[dict[str, Any]]) -> BatchResult:
            payload = {**envelope, "subscribers": chunk}
            return self._to_fresh_list(
                list_id,
                list_just_created,
                functools.partial(self._bulk, "/api/lists/subscribe", payload, len(chunk)),
            )

        for chunk in requests:
            total.merge(self._isolating_type_refusals(chunk, send))
        return total

    @staticmethod
    def subscribe_envelope(list_id: int, update_existing_users_only: bool) -> dict[str, Any]:
        """A subscribe's body with no subscribers: what the body size limit leaves for them
        is the limit less its encoded size. updateExistingUsersOnly is sent either way, as
        channelUnsubscribe is: the spec's default (false) is not what every Iterable
        answer shows of its defaults, and left out where it is true, no new member of the
        audience would be created, each reported as not created."""
        return {
            "listId": list_id,
            "subscribers": [],
            "updateExistingUsersOnly": update_existing_users_only,
        }

    def _to_fresh_list(
        self, list_id: int, just_created: bool, send: Callable[[], BatchResult]
    ) -> BatchResult:
        """Send a write; to a list created moments ago, resend it while Iterable answers
        400 invalidListId, until settings.fresh_list_wait after the create. Until the list
        has taken one write, only one request at a time probes it (the other writers wait
        for it), so the wait costs a few requests, not every writer's retry budget."""
        if not just_created:
            return send()
        with self._stats_lock:
            lock = self._fresh_locks.setdefault(list_id, threading.Lock())
        with lock:
            if list_id not in self._writable:
                result = self._probe_fresh_list(list_id, send)
                self._writable.add(list_id)
                return result
        return send()

    def _probe_fresh_list(self, list_id: int, send: Callable[[], BatchResult]) -> BatchResult:
        created = self._created_at.get(list_id, self._clock())
        wait = self.settings.fresh_list_wait
        attempt = 0
        while True:
            if self.stop is not None and self.stop.is_set():
                raise WriteNotSent(f"interrupted while list {list_id} did not take writes yet")
            sent = self._clock()
            try:
                return send()
            except IterableError as exc:
                if not (exc.status == 400 and "invalidListId" in str(exc)):
                    raise
                elapsed = self._clock() - created
                # Given up only once a request sent after the wait was refused: one whose
                # answer was slow (a loaded Iterable, or machine) was refused for when it
                # was sent, and ended the wait early, with the list about to take writes.
                if sent - created >= wait:
                    raise IterableError(
                        f"{exc}; Iterable still refused writes to the list {elapsed:.0f} s "
                        f"after creating it (reconciler waits up to {wait:g} s, "
                        "RECONCILER_FRESH_LIST_WAIT); apply again in a minute",
                        status=exc.status,
                        code=exc.code,
                        endpoint=exc.endpoint,
                    ) from None
                if attempt == 0:
                    self._tell(
                        f"list {list_id} was just created and Iterable does not accept "
                        f"writes to it yet (invalidListId); retrying for up to {wait:g} s "
                        "after the create"
                    )
                attempt += 1
                self._count(retries=1)
                # At least a twentieth of the bound between tries: a few requests in all.
                pause = max(self._backoff(attempt), wait / 20)
                self._sleep(min(pause, 3.0, max(0.0, wait - elapsed)))

    def unsubscribe(
        self,
        list_id: int,
        subscribers: list[dict[str, Any]],
        *,
        campaign_id: int | None = None,
        channel_unsubscribe: bool = False,
    ) -> BatchResult:
        payload: dict[str, Any] = {"listId": list_id, "subscribers": subscribers}
        if campaign_id is not None:
            payload["campaignId"] = campaign_id
        # Always sent, false unless the audience opts in: the OpenAPI documents false as
        # the default, but production clients report that Iterable treats an absent value
        # as true, which unsubscribes the user from every message of the list's channel.
        payload["channelUnsubscribe"] = channel_unsubscribe
        return self._bulk("/api/lists/unsubscribe", payload, len(subscribers))

    def _region_hint(self) -> str:
        """A key works only in its project's data center: a refused key at one region's
        host may be a project of the other (region: us for an EU project)."""
        for region, url in REGION_URLS.items():
            if self.base_url == url:
                other = ", ".join(r for r in REGION_URLS if r != region)
                return (
                    f", and its region: this was Iterable's {region} data center, and a key "
                    f"works only in its project's (region: {other} for a project there)"
                )
        return ""

    def _bulk(self, path: str, payload: dict[str, Any], count: int) -> BatchResult:
        # Encoded as measured (batching.encode): httpx's own encoding adds spaces and
        # escapes, which would make a packed body bigger than its measure.
        body = self._request(
            "POST",
            path,
            bucket="writes",
            content=encode(payload),
            headers={"Content-Type": "application/json"},
            parse=_parse_bulk,
        )
        return parse_bulk_response(body, count)

    # -- user fields ---------------------------------------------------------------------

    def bulk_update(
        self,
        users: Sequence[dict[str, Any]],
        *,
        merge_nested_objects: bool = False,
        packed: bool = False,
    ) -> BatchResult:
        """Write `dataFields` for users (each {"email"|"userId", "dataFields", ...}).

        Sent in requests of at most `batch_size` users and `bulk_update_max_bytes` bytes,
        measured on the encoded body, paced at bulk_updates_per_second. Fields a user's
        entry omits are left alone. A user whose entry alone is over the byte limit is not
        sent and comes back as failed. Idempotent, so retried like subscribe.
        `packed`: the users were packed into one request already, as the executor packs
        its field updates (batching.pack_lazily), each entry as it is sent: sent as one
        request without encoding each user a second time to measure it.
        """
        if merge_nested_objects:
            if packed:  # the key would grow entries measured without it
                raise ValueError("packed users carry their own mergeNestedObjects")
            users = [{**user, "mergeNestedObjects": True} for user in users]
        if packed:
            requests, total = [list(users)] if users else [], BatchResult()
        else:
            requests, total = self._pack(users, "bulkUpdate")

        def send(chunk: list[dict[str, Any]]) -> BatchResult:
            body = self._request(
                "POST",
                "/api/users/bulkUpdate",
                bucket="bulk_update",
                content=encode({"users": chunk}),
                headers={"Content-Type": "application/json"},
                parse=_parse_bulk,
            )
            return parse_bulk_response(body, len(chunk))

        for chunk in requests:
            total.merge(self._isolating_type_refusals(chunk, send))
        return total

    def _isolating_type_refusals(
        self, users: list[dict[str, Any]], send: Callable[[list[dict[str, Any]]], BatchResult]
    ) -> BatchResult:
        """send(users). Iterable refuses a whole subscribe or bulkUpdate when one user's
        value has another type than its field (400 RequestFieldsTypesMismatched), so one
        bad value would keep every other user of the request off the list, or without
        their fields. The users whose values conflict with the fields the answer names are
        failed by name and the others sent again; when the answer names no field that
        tells them apart, the request is halved, until the refusal is one user's.
        A refused request changed nothing, and both writes are idempotent."""
        try:
            return send(users)
        except FieldTypeRefusal as refusal:
            conflicting = [u for u in users if _conflicts(u, refusal.fields)]
            if conflicting and len(conflicting) < len(users):
                result = _refused(conflicting, refusal.fields)
                rest = [u for u in users if not _conflicts(u, refusal.fields)]
                self._count(retries=1)
                result.merge(self._isolating_type_refusals(rest, send))
            elif conflicting or len(users) == 1:
                result = _refused(users, refusal.fields)
            else:
                half = len(users) // 2
                self._count(retries=1)
                result = self._isolating_type_refusals(users[:half], send)
                result.merge(self._isolating_type_refusals(users[half:], send))
            result.requests += 1
            return result

    def get_fields(self) -> dict[str, str]:
        """Every user field of the project with its type (string, long, double, boolean,
        date, object; nested paths as `a.b`)."""
        return self._request(
            "GET", "/api/users/getFields", bucket="get_fields", parse=_parse_fields
        )

    def get_campaigns(self) -> list[CampaignInfo]:
        """Every campaign of the project, a page of 1,000 per request (paced at
        campaigns_per_second); pages are asked for explicitly, since Iterable calls the
        unpaginated answer deprecated."""
        out: list[CampaignInfo] = []
        page = 1
        while True:
            campaigns, more = self._request(
                "GET",
                "/api/campaigns",
                bucket="campaigns",
                parse=_parse_campaigns,
                params={"page": page, "pageSize": CAMPAIGN_PAGE_SIZE},
            )
            out.extend(campaigns)
            if not more or not campaigns:
                return out
            page += 1

    def get_user(
        self, *, email: str | None = None, user_id: str | None = None
    ) -> dict[str, Any] | None:
        """One profile's fields (Iterable's `dataFields`), or None when there is no such user.

        Exactly one of `email`, `user_id`. Error messages name the endpoint, never the
        identifier (it is personal data).
        """
        if (email is None) == (user_id is None):
            raise ValueError("give exactly one of email, user_id")
        params: dict[str, str] | None = None
        if user_id in (".", ".."):
            # As a path segment it is a dot segment, which the HTTP client removes (RFC
            # 3986), sending the read to /api/users or to byUserId with no userId, and
            # percent-encoding a dot does not protect it from every server's normalising.
            # The query form is Iterable's own for special characters.
            path, label = "/api/users/byUserId", "/api/users/byUserId"
            params = {"userId": user_id}
        elif user_id is not None:
            path, label = f"/api/users/byUserId/{quote(user_id, safe='')}", "/api/users/byUserId"
        else:
            assert email is not None
            path, label = f"/api/users/{quote(email, safe='')}", "/api/users/{email}"
        try:
            return self._request(
                "GET",
                path,
                params=params,
                bucket="user_reads",
                parse=_parse_user,
                label=label,
                data=True,
            )
        except IterableError as exc:
            if exc.code == NO_SUCH_USER_ID and user_id is not None:
                return None
            # Iterable's text may quote the path back: the identifier, as source data.
            exc.args = (marking_sent(str(exc), [user_id or email]),)
            raise

    def export_users(
        self,
        only_fields: Sequence[str],
        *,
        keep: Callable[[dict[str, Any]], bool] | None = None,
        marked: Sequence[bytes] = (),
    ) -> Iterator[dict[str, Any]]:
        """Every user of the project, one JSON object per line, with only `only_fields`.

        The body is read line by line as it streams and only rows `keep` accepts are held,
        so memory grows with the users asked about, not with the project. 4 per minute.
        `marked`: texts of which every row `keep` accepts holds one; only lines holding one
        are parsed (_parse_marked_lines), the rest are checked for their shape alone.
        """
        params = [("dataTypeName", "user"), ("range", "All")]
        params += [("onlyFields", name) for name in only_fields]

        lines = [0]

        def parse(response: httpx.Response) -> list[dict[str, Any]]:
            lines[0] = 0  # a retry reads the body anew
            if marked:
                return _parse_marked_lines(response, keep, marked, lines)
            return _parse_json_lines(response, keep, lines)

        rows = self._request(
            "GET",
            "/api/export/data.json",
            bucket="export",
            params=params,
            parse=parse,
            bulk=True,
            data=True,
        )
        self.counted_profiles(lines[0])
        yield from rows

    def export_events(
        self,
        data_type: str,
        only_fields: Sequence[str],
        *,
        keep: Callable[[dict[str, Any]], bool] | None = None,
        marked: Sequence[bytes] = (),
        window: Sequence[tuple[str, str]] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every event of `data_type` (e.g. emailUnSubscribe) the project holds, oldest
        first as Iterable writes them, with only `only_fields`; shares the user export's
        budget (4 per minute) and reads the body line by line as export_users does
        (`marked` as there). `window`: the startDateTime/endDateTime of the events'
        createdAt to read instead of all; an answer of one that dies midway raises
        StreamCut at once (read it in smaller windows, as download_export_window)."""
        params = [("dataTypeName", data_type), *(window or [("range", "All")])]
        params += [("onlyFields", name) for name in only_fields]

        def read(response: httpx.Response) -> list[dict[str, Any]]:
            if marked:
                return _parse_marked_lines(response, keep, marked)
            return _parse_json_lines(response, keep)

        def parse(response: httpx.Response) -> list[dict[str, Any]]:
            if window is None:
                return read(response)
            try:
                return read(response)
            except (httpx.TransportError, httpx.DecodingError) as exc:
                raise StreamCut(
                    f"GET /api/export/data.json: the answer died midway ({type(exc).__name__})"
                ) from None

        rows = self._request(
            "GET",
            "/api/export/data.json",
            bucket="export",
            params=params,
            parse=parse,
            streamed=True,
            data=True,
        )
        yield from rows

    def get_channels(self) -> list[dict[str, Any]]:
        """The project's message channels (id, name, channelType, messageMedium)."""

        def parse(response: httpx.Response) -> list[dict[str, Any]]:
            channels = _parse_object(response).get("channels")
            if not isinstance(channels, list):
                raise _BadAnswer("JSON without a 'channels' array")
            return [c for c in channels if isinstance(c, dict)]

        return self._request("GET", "/api/channels", bucket="lists", parse=parse)

    def download_export(
        self,
        only_fields: Sequence[str],
        path: Path,
        on_lines: Callable[[int], None] | None = None,
    ) -> int:
        """export_users streamed into `path` as it arrives (JSON lines, not parsed here):
        for projects of millions of users, read back by DuckDB. Returns the line count."""
        params = [("dataTypeName", "user"), ("range", "All")]
        params += [("onlyFields", name) for name in only_fields]
        lines = self._download(
            "/api/export/data.json", "export", params, path, "the export", on_lines
        )
        self.counted_profiles(lines)
        return lines

    def download_export_window(
        self,
        only_fields: Sequence[str],
        window: Sequence[tuple[str, str]],
        path: Path,
        on_lines: Callable[[int], None] | None = None,
    ) -> int:
        """The user export of one date window (`window`: its startDateTime/endDateTime
        parameters) streamed into `path`; the line count. A refusal or a failed connection
        is retried as any bulk read; an answer that dies midway raises StreamCut at once:
        Iterable closes long export connections, and the same window would die again, so
        the caller reads it in smaller windows instead (state/windows.py)."""
        params = [("dataTypeName", "user"), *window]
        params += [("onlyFields", name) for name in only_fields]

        def save(response: httpx.Response) -> int:
            if _is_html(response):
                raise _BadAnswer("an HTML page, not the export")
            try:
                return _save_lines(response, path, on_lines)
            except (httpx.TransportError, httpx.DecodingError) as exc:
                raise StreamCut(
                    f"GET /api/export/data.json: the answer died midway ({type(exc).__name__})"
                ) from None

        return self._request(
            "GET", "/api/export/data.json", bucket="export", params=params, parse=save, bulk=True
        )

    def _download(
        self,
        endpoint: str,
        bucket: str,
        params: Any,
        path: Path,
        what: str,
        on_lines: Callable[[int], None] | None,
        members: bool = False,
    ) -> int:
        def save(response: httpx.Response) -> int:
            if _is_html(response):
                # A proxy's or portal's page would otherwise be read as data.
                raise _BadAnswer(f"an HTML page, not {what}")
            return _save_lines(response, path, on_lines, MemberLineEnds() if members else None)

        return self._request("GET", endpoint, bucket=bucket, params=params, parse=save, bulk=True)

    # -- the asynchronous export ---------------------------------------------------------

    def start_export_job(self, only_fields: Sequence[str]) -> int:
        """`POST /api/export/start` of every user with only `only_fields` (JSON lines);
        the job's id. 1 a second per organisation; at most 4 jobs run at a time."""
        body = {
            "dataTypeName": "user",
            "outputFormat": "application/x-json-stream",
            "onlyFields": ",".join(only_fields),
        }
        # Waited for as a bulk read: a start that timed out and was sent again would
        # start a second job, and jobs hold one of the organisation's 4 places each.
        return self._request(
            "POST",
            "/api/export/start",
            bucket="export_jobs",
            json=body,
            parse=_parse_job_id,
            bulk=True,
        )

    def export_job_files(self, job_id: int, start_after: str | None = None) -> ExportJobPage:
        """One page of `GET /api/export/{jobId}/files`: the job's state (lower case:
        Iterable's own client says it answers so, the spec capitalises it), whether it was
        truncated, and up to a page of files after `start_after`."""
        params = {"startAfter": start_after} if start_after is not None else None
        return self._request(
            "GET",
            f"/api/export/{int(job_id)}/files",
            bucket="export_jobs",
            params=params,
            parse=_parse_job_page,
            label="/api/export/{jobId}/files",
        )

    def cancel_export_job(self, job_id: int) -> None:
        self._request(
            "DELETE",
            f"/api/export/{int(job_id)}",
            bucket="export_jobs",
            parse=lambda response: response.read(),
            label="/api/export/{jobId}",
        )

    def download_export_job(
        self,
        only_fields: Sequence[str],
        path: Path,
        on_lines: Callable[[int], None] | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """export_users by the asynchronous export: a job, its files fetched in parallel as
        they are listed, then joined into `path` in the job's order. Returns the line count.

        A job is complete only when its state is Completed and it was not truncated; its
        files are then the ones a full listing names at that point. A job may restart
        (Running back to Enqueued), keeping its files or producing them anew under other
        names: files fetched before that the final listing does not name are dropped,
        and files it names that were not fetched are fetched then. A truncated, failed or
        cancelled job raises IterableError (the read is incomplete).

        `stop`, once set (a plan that failed or was interrupted while this ran in the
        background), abandons the job: the wait, the files' streams and the files not yet
        started end at their next look, chunk or start, the job is cancelled, and
        LiveStateError is raised."""

        # Set once the read has failed (a file that could not be fetched, above all): the
        # files in flight end at their next chunk, those not started do not start.
        failed = threading.Event()

        def abandoned() -> None:
            if (stop is not None and stop.is_set()) or failed.is_set():
                raise LiveStateError("the export job was abandoned")

        def counted(lines: int) -> None:
            abandoned()
            if on_lines is not None:
                on_lines(lines)

        def fetch_file(name: str, url: str, target: Path) -> int:
            abandoned()
            return self._fetch_file(job, name, url, target, counted)

        pause = stop.wait if stop is not None else self._sleep
        abandoned()
        job = self.start_export_job(only_fields)
        folder = path.parent / f"{path.name}.parts"
        folder.mkdir(mode=0o700, exist_ok=True)  # members' profiles, as its parent is
        fetched: dict[str, Future[int]] = {}
        parts: dict[str, Path] = {}
        workers = self.settings.list_read_concurrency
        done = False
        try:
            with reading_pool(workers, "reconciler-export-files") as pool:

                def fetch(files: list[tuple[str, str]]) -> None:
                    # A file that could not be fetched fails the read now, at the job's
                    # next look: found out at its end, it was minutes to hours later,
                    # every other file fetched meanwhile for nothing.
                    _raise_failed_fetch(fetched.values())
                    for name, url in files:
                        if name not in fetched:
                            target = parts[name] = folder / f"{len(fetched):06d}.jsonl"
                            fetched[name] = pool.submit(fetch_file, name, url, target)

                try:
                    self._wait_for_export_job(job, fetch, pause, abandoned)
                    # The complete listing, from its start: after a restart that produced
                    # the files anew, it is the only one that names the right files.
                    final = self._export_job_listing(job)
                    fetch(final)
                    lines = _join_export_files(
                        path, [(fetched[name], parts[name]) for name, _url in final]
                    )
                except BaseException:
                    failed.set()
                    raise
                done = True
                self.counted_profiles(lines)
                return lines
        finally:
            if not done:
                # It would end by itself; meanwhile it holds one of 4 places.
                with contextlib.suppress(IterableError):
                    self.cancel_export_job(job)
            shutil.rmtree(folder, ignore_errors=True)

    def _wait_for_export_job(
        self,
        job: int,
        fetch: Callable[[list[tuple[str, str]]], None],
        pause: Callable[[float], Any],
        abandoned: Callable[[], None],
    ) -> None:
        """Look at the job's files until it has completed, handing each page's files to
        `fetch` as they are listed (pages follow one another at once; a look that lists
        none waits export_poll). Raises LiveStateError when the job failed, was cancelled
        or was truncated: its files are then not the export; and when it has not completed
        within export_job_wait (the caller cancels it), as the job's wait is otherwise
        unbounded: Iterable's queue can keep a job Enqueued, alive, for ever."""
        poll = self.settings.export_poll / self.settings.time_scale
        bound = self.settings.export_job_wait / self.settings.time_scale
        began = self._clock()
        state, last = "", None
        while True:
            abandoned()
            page = self.export_job_files(job, last)
            if page.state != state:
                again = state == "running" and page.state == "enqueued"
                self._tell(
                    f"export job {job}: {_answered(page.state)}"
                    + (" again (Iterable restarted it; waiting for it to end)" if again else "")
                )
            state = page.state
            fetch(page.files)
            if page.files:
                last = page.files[-1][0]
                continue  # more pages may follow at once
            if state in ("failed", "cancelled"):
                raise LiveStateError(
                    f"export job {job} ended {_answered(state)}; its files are not the export"
                )
            if state == "completed":
                break
            waited = self._clock() - began
            if waited >= bound:
                raise LiveStateError(
                    f"export job {job} was still {_answered(state)} after {duration(waited)} "
                    f"(RECONCILER_EXPORT_JOB_WAIT is {self.settings.export_job_wait:g} s); "
                    "it is given up on and cancelled"
                )
            pause(min(poll, bound - waited))
        if page.truncated:
            raise LiveStateError(
                f"export job {job} was truncated (exportTruncated: over Iterable's "
                "largest export); its files are not every user"
            )

    def _export_job_listing(self, job: int) -> list[tuple[str, str]]:
        """Every file (name, link) a finished job names, page after page from the start."""
        final: list[tuple[str, str]] = []
        last = None
        while True:
            page = self.export_job_files(job, last)
            if not page.files:
                return final
            final.extend(page.files)
            last = page.files[-1][0]

    def _fetch_file(
        self,
        job: int,
        name: str,
        url: str,
        target: Path,
        on_lines: Callable[[int], None] | None,
    ) -> int:
        """One export file to `target`, retried; an expired link is asked for afresh."""
        attempt = 0
        label = f"export job {job} file {_answered(name)}"  # never the link: it grants access
        while True:
            try:
                self._count(requests=1)
                with self._stats_lock:
                    key = "GET (export file)"
                    self.stats.calls[key] = self.stats.calls.get(key, 0) + 1
                with (
                    self._fetching(f"GET {label}") as log,
                    self._files.stream("GET", url) as response,
                ):
                    log.answered(response.status_code)
                    bound_answer(response, time.monotonic(), self.settings, whole=False)
                    if response.status_code == 403 and b"expired" in response.read():
                        url = self._fresh_link(job, name)
                        continue
                    if response.status_code != 200:
                        raise _Retryable(f"HTTP {response.status_code}")
                    return _save_lines(response, target, on_lines)
            except (_Retryable, AnswerOverrun, httpx.TransportError, httpx.DecodingError) as exc:
                # A body its Content-Encoding does not describe (gzip cut short or damaged)
                # is retried as a connection that died midway is, as every other read does.
                if isinstance(exc, (httpx.TransportError, httpx.DecodingError)):
                    reason = type(exc).__name__
                else:
                    reason = exc.reason
                if attempt >= self.settings.bulk_read_retries:
                    raise RetryExhaustedError(
                        f"GET {label}: {_gave_up(attempt + 1)}; last failure: {reason}",
                        endpoint="export file",
                    ) from None
                attempt += 1
                self._count(retries=1)
                self._tell_retry(f"GET {label}: {reason}; retry {attempt} in a moment", reason)
                self._sleep(self._backoff(attempt))

    @contextlib.contextmanager
    def _fetching(self, endpoint: str) -> Iterator[_RequestLog]:
        """A request's log line (RECONCILER_LOG=requests), said when it ends, however."""
        log = _RequestLog(endpoint)
        try:
            yield log
        except _Retryable:
            raise  # its status is the line's
        except BaseException as exc:
            log.failed(type(exc).__name__)
            raise
        finally:
            self._log_request(log)

    def _fresh_link(self, job: int, name: str) -> str:
        """The file's link from a new listing (links expire 30 minutes after a listing)."""
        last = None
        while True:
            page = self.export_job_files(job, last)
            for file_name, url in page.files:
                if file_name == name:
                    return url
            if not page.files:
                raise LiveStateError(f"export job {job} no longer lists file {_answered(name)}")
            last = page.files[-1][0]

    # -- transport -----------------------------------------------------------------------

    def _once(
        self,
        method: str,
        path: str,
        send: Callable[[], T],
        happened: Callable[[str], T | None],
    ) -> T:
        """Send a request that must not be repeated blindly. After a failure that may have
        taken effect, `happened` looks at Iterable: its answer, when not None, is the result;
        otherwise the request is sent again. `happened` is told what failed, and which try
        of how many it was, for its notice: a create under 503s waits up to the read lag
        after each try, 7 minutes in all by default, and one unchanging line said seven
        times that 'the answer was lost' when the answer was a 503."""
        attempt = 0
        retries = self.settings.max_retries
        while True:
            try:
                return send()
            except _Uncertain as exc:
                failed = (
                    f"{method} {path} failed ({exc.reason}; try {attempt + 1} of {retries + 1})"
                )
                try:
                    found = happened(failed)
                except (_WatchStopped, ReadStopped):  # a look at the index, given up alike
                    raise OutcomeUnknown(
                        f"{failed}, and the run was interrupted before Iterable's list index "
                        "showed whether it was done: the next apply reads it",
                        endpoint=path,
                    ) from None
                if found is not None:
                    return found
                if self._interrupted() and getattr(self._step, "active", False):
                    # Not done, as the index shows: sent again it would be a new write.
                    raise WriteNotSent(f"{method} {path} was not sent again: interrupted") from None
                if attempt >= retries:
                    gave_up = RetryExhaustedError if exc.unavailable is None else UnavailableError
                    raise gave_up(
                        f"{method} {path}: {_gave_up(attempt + 1)}; last failure: {exc.reason}",
                        endpoint=path,
                        status=exc.unavailable,
                    ) from None
                attempt += 1
                self._count(retries=1)
                wait = self._backoff(attempt)
                self._tell(
                    f"{method} {path}: {exc.reason}, and Iterable's lists show it was not "
                    f"done; retry {attempt} of {retries} in {wait:.1f} s"
                )
                self._sleep(wait)

    def _request(
        self,
        method: str,
        path: str,
        *,
        bucket: str,
        parse: Callable[[httpx.Response], T],
        idempotent: bool = True,
        label: str | None = None,
        bulk: bool = False,
        streamed: bool = False,
        data: bool = False,
        **kwargs: Any,
    ) -> T:
        """Send until a good answer or the retry budget is spent. `parse` reads a 2xx answer
        into the result, raising _BadAnswer when it is not what the endpoint answers; the
        key is cut out of it (_scrub) unless it is `data`: members' identifiers and values,
        what a plan compares (and what no output shows), as the downloads keep them.
        `label` names the endpoint in messages when `path` holds something personal.
        A `bulk` read (a list's members, an export) may take settings.bulk_read_timeout
        between bytes, and is retried settings.bulk_read_retries times. A bulk or
        `streamed` answer (read line by line as it comes) has no bound on its whole time
        or size; any other is held to settings.request_time_limit and ANSWER_MAX_BYTES."""
        limiter = self._buckets[bucket]
        attempt = 0
        shown = label or path
        retries = self.settings.max_retries
        if bulk:
            retries = self.settings.bulk_read_retries
            kwargs["timeout"] = httpx.Timeout(
                self.settings.timeout, read=self.settings.bulk_read_timeout
            )
        counted = 0  # retries spent from the budget: all but raced 429s (below)
        # Raced 429s retried free: at most this many. One that never clears while the
        # others keep being taken (another destination of the project, a long apply's
        # other writers, a limit Iterable keeps apart from theirs) was retried for as
        # long as they went on, hours in a long apply; then the budget counts again.
        free = self.settings.concurrency * (retries + 1)
        # Requests of the bucket Iterable had taken when this one was last answered.
        taken_before = first_taken = limiter.taken
        # A request before this one gave up to 429s alone, and none was taken since.
        refused_before = limiter.refused_at == first_taken
        # A write's wait for its slot ends once the run is interrupted (_not_sent_if_stopped);
        # only an apply step's (write_step), not an export's start or cancel. So does a
        # read's of a step (a profile read): it is what a step waits on, or, after the step's
        # write, only a check of its answer, and at a slow pace (a Retry-After up to
        # retry_after_cap, a backoff of up to backoff_cap each try) it ran on for minutes.
        in_step = getattr(self._step, "active", False)
        stopped = self._stop_flag(method) if in_step else None
        while True:
            try:
                slot = _acquire(limiter, stopped, method, shown)
                with slot:
                    answer = self._send_once(
                        method,
                        path,
                        parse,
                        label=shown,
                        answered=slot.answered,
                        whole=not (bulk or streamed),
                        data=data,
                        **kwargs,
                    )
                limiter.took(slot)
                if method != "GET":
                    self._step.taken = True
                return answer
            except _Retryable as exc:
                if method != "GET" and exc.done_maybe:
                    self._step.taken = True
                if not idempotent and exc.done_maybe:
                    raise _Uncertain(exc.reason, exc.unavailable) from None
                # A 429 after other requests of its kind were taken since this one's last
                # try (while it backed off) lost a race for the project's window to them:
                # Iterable is taking them, at its own pace. It is not counted against the
                # budget, which is for a server taking none: 4 writers sharing a limit
                # tighter than they send gave up batches after 7 429s each (30,000
                # members at 0.3 requests a second: 6 of 30 failed) while the others were
                # written. Once the others are done, or `free` such retries were spent,
                # its 429s are counted again.
                lost = exc.rate_limited and limiter.taken > taken_before
                if lost:
                    # Sent faster than Iterable takes them: an unpaced window learns a
                    # pace. A 429 with none taken meanwhile says nothing of a pace (a
                    # server refusing every other request refuses them at any pace).
                    limiter.refused(slot)
                raced = lost and attempt - counted < free
                taken_before = limiter.taken
                if counted >= retries and not raced:
                    # 429s to the last, Iterable taking no request of this kind since the
                    # first try, after a request that gave up so before this one began:
                    # it refuses them all (_given_up). The first to give up fails its batch
                    # only: another integration's burst on the project's limit outlasting
                    # one request's tries stopped a healthy apply with the rest unsent.
                    refusing = exc.rate_limited and limiter.taken == first_taken
                    if refusing:
                        limiter.refused_at = first_taken
                    raise _given_up(
                        method, shown, attempt, exc, refusing and refused_before
                    ) from None
                attempt += 1
                counted += 0 if raced else 1
                self._count(retries=1)
                wait = self._retry_wait(exc, attempt, retries, limiter)
                stoppable = in_step if method == "GET" else not exc.done_maybe
                self._not_sent_if_stopped(stoppable, method, shown, exc.reason)
                which = (
                    f"retry {attempt} (not one of the {retries}: others got through meanwhile)"
                    if raced
                    else f"retry {counted} of {retries}"
                )
                self._say_retry(method, shown, exc, which, wait)
                self._pause(wait, stoppable, method, shown, exc.reason)

    def _stop_flag(self, method: str) -> Callable[[], bool]:
        """What ends an apply step's request's waits: a read's, the run's interruption; a
        write's, the writes' stop (_not_sent_if_stopped)."""
        return self._interrupted if method == "GET" else self.write_stopped

    def _say_retry(self, method: str, shown: str, exc: _Retryable, which: str, wait: float) -> None:
        """The line of a request retried (`which` retry) in `wait` seconds, on the progress
        display; a 429's short wait is routine, said only in the request log."""
        if exc.rate_limited and wait < 1.0 and self.settings.log != "requests":
            return
        about = getattr(self._step, "about", None)
        self._tell_retry(
            f"{method} {shown}{f' ({about})' if about else ''}: {exc.reason}; "
            f"{which} in {wait:.1f} s",
            exc.reason,
        )

    def _retry_wait(self, exc: _Retryable, attempt: int, retries: int, limiter: Window) -> float:
        """How long to wait before retry `attempt` of a request that failed with `exc`,
        pushing back the bucket's other requests as the answer asks."""
        if exc.retry_after is not None:
            wait = min(exc.retry_after, self.settings.retry_after_cap)
            limiter.push_back(wait)
            return wait
        wait = self._backoff(attempt)
        if exc.rate_limited:
            # The server's window is full (another process's reads: a plan run just
            # before, a CI job beside this one), and a slot frees only as its oldest
            # request leaves it: up to a whole window later, a minute for getUsers and
            # exports. So the retries' waits add up to at least one window, where the
            # backoff alone gave up after 3.5 s. The other threads' requests of this kind
            # wait as well, though no longer than a window.
            share = self._window_share(limiter.window, min(attempt, retries), retries)
            wait = max(wait, min(share, self.settings.retry_after_cap))
            limiter.push_back(min(wait, limiter.window))
        return wait

    @contextlib.contextmanager
    def write_step(self, about: str | None = None) -> Iterator[None]:
        """One step of an apply (a request, or the few one change takes: a removal sent
        again as the other kind of identifier, a refused request sent in halves), made on
        this thread. Once one of its writes may have taken effect, its later writes are
        sent whatever Ctrl-C says (_not_sent_if_stopped): the step is then in flight, and
        given up it would be reported as not sent, what it did with it. `about` names what
        it writes (`list 'vip', 1,000 members`) in its retries' lines: four requests in
        flight to one path, retried, said nothing of which list was kept waiting."""
        self._step.taken, self._step.about, self._step.active = False, about, True
        try:
            yield
        finally:
            self._step.taken, self._step.about, self._step.active = False, None, False

    def write_stopped(self) -> bool:
        """Whether the run was interrupted and no write of this thread's step may have
        taken effect: then a write of it not yet sent is not sent (_not_sent_if_stopped)."""
        return (
            self.stop is not None and self.stop.is_set() and not getattr(self._step, "taken", False)
        )

    def _interrupted(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _not_sent_if_stopped(self, stoppable: bool, method: str, shown: str, reason: str) -> None:
        """WriteNotSent when the run was interrupted (Ctrl-C, SIGTERM) and the write's last
        try is known not to have taken effect (a 429: Iterable refused it before doing
        anything; no connection made), nor any write before it of its step (write_step):
        it is not sent again. The retries went on after "starting no more", 429 after 429,
        their backoffs adding up to half a minute and more: past a cancelled CI job's
        7.5 s, whose SIGTERM then stopped the run at once with its requests unknown. A try
        that may have taken effect is still retried, so that its outcome is known. A read
        of a step is given up alike (ReadStopped), whatever the step sent."""
        if not stoppable:
            return
        if method == "GET" and self._interrupted():
            raise ReadStopped(f"{method} {shown} was not sent again after {reason}: interrupted")
        if method != "GET" and self.write_stopped():
            raise WriteNotSent(f"{method} {shown} was not sent again after {reason}: interrupted")

    def _pause(self, seconds: float, stoppable: bool, method: str, shown: str, reason: str) -> None:
        """Wait `seconds` before a retry; for a `stoppable` write (_not_sent_if_stopped),
        in short turns that end once the run is interrupted."""
        if not stoppable or self.stop is None:
            self._sleep(seconds)
            return
        left = seconds
        while left > 0:
            self._not_sent_if_stopped(stoppable, method, shown, reason)
            turn = min(left, _STOP_LOOK_SECONDS)
            self._sleep(turn)
            left -= turn
        self._not_sent_if_stopped(stoppable, method, shown, reason)

    def _note_date(self, header: str | None) -> None:
        """Learn Iterable's clock against ours from an answer's Date: the header is cut to
        the second and was stamped before the answer arrived, so Iterable's clock reads at
        least `header - our now` past ours. The least of these bounds is the worst case of
        a clock behind ours (iterable_now), the greatest that of one ahead (iterable_latest)."""
        stamped = _http_date(header) if header else None
        if stamped is None:
            return  # no date a client can read: nothing learnt
        offset = (stamped - datetime.now(UTC)).total_seconds()
        with self._stats_lock:
            if self._clock_offset is None or offset < self._clock_offset:
                self._clock_offset = offset
            if self._clock_offset_most is None or offset > self._clock_offset_most:
                self._clock_offset_most = offset

    @property
    def clock_behind(self) -> float:
        """Seconds Iterable's clock may run behind ours, from its answers' Date headers
        (the worst case seen; 0 when it runs ahead or no answer said)."""
        return max(0.0, -(self._clock_offset or 0.0))

    def iterable_now(self) -> datetime:
        """Now by Iterable's clock, at the earliest it can be: what date windows over the
        times Iterable stamps (profileUpdatedAt, an event's createdAt) are planned by. Our
        clock running ahead would put the newest window's start past what Iterable stamps
        during the read, in windows read before; one running behind is no harm (windows
        start earlier), so it is never moved forward."""
        return datetime.now(UTC) - timedelta(seconds=self.clock_behind)

    def iterable_latest(self) -> datetime:
        """Now by Iterable's clock, as late as its answers show it can be (give or take an
        answer's way and the header's second): where a date window that is to hold every
        profile updated from then on must reach. Our clock running behind Iterable's
        would end it before what Iterable stamps during the read."""
        ahead = max(0.0, self._clock_offset_most or 0.0)
        return datetime.now(UTC) + timedelta(seconds=ahead)

    def _scrub(self, value: T) -> T:
        """`value` (server-provided text, or a result parsed from it) without the API key."""
        if isinstance(value, str):
            for form in self._secret_forms:
                if form in value:
                    value = value.replace(form, REDACTED)  # type: ignore[assignment]
            return value
        if isinstance(value, list | tuple):
            try:
                # A list of a million members: one search of the joined text, not a
                # million (a str.join refuses anything but strings).
                whole = "\n".join(value)
            except TypeError:
                pass
            else:
                if not any(form in whole for form in self._secret_forms):
                    return value
            return type(value)(self._scrub(item) for item in value)
        if isinstance(value, dict):
            return {self._scrub(k): self._scrub(v) for k, v in value.items()}  # type: ignore[return-value]
        if isinstance(value, ListInfo):
            return dataclasses.replace(
                value,
                name=self._scrub(value.name),
                description=self._scrub(value.description),
                list_type=self._scrub(value.list_type),
            )
        return value

    def _window_share(self, window: float, attempt: int, retries: int) -> float:
        """Retry `attempt`'s wait after a 429 without Retry-After: doubling, and summing
        over all `retries` to a little more than `window` (each share is jittered up by at
        most a tenth, never down)."""
        share = window * 2 ** (attempt - 1) / max(2**retries - 1, 1)
        return share * self._rng.uniform(1.0, 1.1)

    def _backoff(self, attempt: int) -> float:
        # The doubling stops at 2^64, far past any cap: 2^1075 is too large for a float,
        # and RECONCILER_MAX_RETRIES=100000 ended its 1,076th retry in an OverflowError.
        doubled = self.settings.backoff_base * 2.0 ** min(attempt - 1, 64)
        ceiling = min(self.settings.backoff_cap, doubled)
        return self._rng.uniform(ceiling / 2, ceiling)

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            for name, n in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + n)

    def _send_once(
        self,
        method: str,
        path: str,
        parse: Callable[[httpx.Response], T],
        label: str | None = None,
        answered: Callable[[], None] | None = None,
        whole: bool = False,
        data: bool = False,
        **kwargs: Any,
    ) -> T:
        """`answered` is called as soon as the answer's headers arrive, before its body is
        read: by then the server has counted the request against its rate limit. An answer
        read `whole` must arrive within settings.request_time_limit of the request, and
        hold at most ANSWER_MAX_BYTES (answer_bounds)."""
        self._count(requests=1, writes=int(method != "GET"))
        endpoint = f"{method} {label or path}"
        with self._stats_lock:
            self.stats.calls[endpoint] = self.stats.calls.get(endpoint, 0) + 1
        log = _RequestLog(endpoint)
        started = time.monotonic()  # real time, whatever clock paces the rate limits
        try:
            with self._http.stream(method, path, **kwargs) as response:
                log.answered(response.status_code)
                if answered is not None:
                    answered()
                bound_answer(response, started, self.settings, whole)
                self._note_date(response.headers.get("Date"))
                if 200 <= response.status_code < 300:
                    result = parse(response)
                    return result if data and not self._scrubs_data else self._scrub(result)
                response.read()
                log.refused(_error_words(self._scrub(_json_or_none(response.text))))
        except _BadAnswer as exc:
            log.failed(f"not Iterable's answer ({exc})")
            raise _Retryable(f"HTTP {response.status_code} with {exc}") from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            log.failed("no connection")
            tls = _tls_failure(exc)
            if tls is not None:
                # Not transient: the scheme or the certificate is wrong; retrying cannot help.
                raise IterableError(
                    f"{method} {label or path}: TLS handshake with {self._where()} failed "
                    f"({tls}): check the baseUrl's scheme (https:// or http://) and the "
                    "server's certificate",
                    endpoint=label or path,
                ) from None
            # Nothing was sent, so nothing can have happened.
            raise _Retryable(
                f"could not connect to {self._where()}{through_proxy(self._http)}"
                + why_unreachable(exc, self.settings.timeout),
                done_maybe=False,
                unreachable=True,
            ) from None
        except httpx.TimeoutException as exc:
            log.failed("timed out")
            raise _Retryable(self._timed_out(exc, bulk="timeout" in kwargs)) from None
        except AnswerOverrun as exc:
            log.failed(exc.reason)
            raise _Retryable(exc.reason) from None
        except httpx.ProxyError as exc:
            log.failed("no connection")
            said, transient = proxy_refusal(exc, self._where())
            if not transient:  # a password or a rule of the proxy's: trying again cannot help
                raise IterableError(
                    f"{method} {label or path}: {said}", endpoint=label or path
                ) from None
            # Nothing went past the proxy, so nothing can have happened.
            raise _Retryable(said, done_maybe=False, unreachable=True) from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            log.failed(f"connection failed ({type(exc).__name__})")
            raise _Retryable(f"connection failed ({type(exc).__name__})") from None
        except BaseException as exc:  # Ctrl-C, a full disk under a download: logged, passed on
            log.failed(type(exc).__name__)
            raise
        finally:
            self._log_request(log)
        raise self._refusal(method, label or path, response)

    def _timed_out(self, exc: httpx.TimeoutException, bulk: bool) -> str:
        """Which wait ran out, how long it was and the variable that sets it: 'connection
        timed out' alone left a user to guess whether 30 s or 30 minutes had passed, and
        what to raise. A bulk read waits settings.bulk_read_timeout between bytes."""
        s = self.settings
        if isinstance(exc, httpx.ReadTimeout) and bulk:
            return (
                f"timed out: no byte of the answer for {s.bulk_read_timeout:g} s "
                "(RECONCILER_BULK_READ_TIMEOUT)"
            )
        what = {
            httpx.ReadTimeout: "no byte of the answer for",
            httpx.WriteTimeout: "the request could not be sent within",
            httpx.PoolTimeout: "no connection came free within",
        }.get(type(exc), "no answer within")
        return f"timed out: {what} {s.timeout:g} s (RECONCILER_TIMEOUT)"

    def _log_request(self, log: _RequestLog) -> None:
        """Say the request just ended (RECONCILER_LOG=requests). Only its method and path,
        as messages name it (`label` for a path holding a member), never its headers (the
        key), query (a userId) or body (members)."""
        if self.settings.log == "requests" and self._notice is not None:
            self._notice(log.line())

    def _refusal(self, method: str, path: str, response: httpx.Response) -> Exception:
        """The exception for a non-2xx answer: _Retryable, or an IterableError to report."""
        status = response.status_code
        # JSON can spell the key with escapes, so a JSON body is scrubbed once parsed.
        body = _json_or_none(response.text)
        text = (
            self._scrub(response.text)
            if body is None
            else json.dumps(self._scrub(body), ensure_ascii=False)
        )
        if _error_fields(body)[1] == NO_SUCH_USER_ID:
            # An answer, not a failure, though it may come as a 500: retrying cannot help.
            return IterableError(
                f"{method} {path}: HTTP {status} {NO_SUCH_USER_ID}",
                status=status,
                code=NO_SUCH_USER_ID,
                endpoint=path,
            )
        if status in RETRYABLE_STATUS:
            retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            if status == 429:
                self._count(rate_limited=1)
                # Iterable refused it before doing anything.
                return _Retryable(
                    f"HTTP {status}", retry_after, done_maybe=False, rate_limited=True
                )
            return _Retryable(
                f"HTTP {status}",
                retry_after,
                unavailable=status if status in UNAVAILABLE_STATUS else None,
            )
        msg, code = _error_fields(self._scrub(body))
        where = f"{method} {path}"
        if status == 401:
            return AuthError(
                refused_key(where, code, self._scrub(body), self._region_hint()),
                status=status,
                code=code,
                endpoint=path,
            )
        if 300 <= status < 400:
            return IterableError(
                f"{where}: HTTP {status}, {self._redirect(response)}",
                status=status,
                endpoint=path,
            )
        if status == 407:  # a proxy's (plain http://), refusing as over https: proxy_hint
            return IterableError(
                f"{where}: HTTP 407 from the proxy {proxy_variables()} names{proxy_hint(407)}",
                status=status,
                endpoint=path,
            )
        if status == 409:
            return ListInUseError(
                f"{where}: the list is in use by a campaign or journey (409); detach it in "
                "Iterable first",
                status=status,
                code=code,
                endpoint=path,
            )
        if status == 400 and code == "RequestFieldsTypesMismatched":
            fields = _mismatched_fields(self._scrub(body))
            named = one_line(
                ", ".join(f"{p} is {t or 'of another type'}" for p, t in fields.items())
            )
            # Not the answer's text: its params quote the refused value (personal data).
            return FieldTypeRefusal(
                f"{where}: HTTP 400 RequestFieldsTypesMismatched: a value's type differs "
                f"from its field's in Iterable" + (f" ({named})" if named else ""),
                fields=fields,
                endpoint=path,
            )
        if status == 404 and self._base_ends_in_api():
            detail = (
                "the baseUrl ends in /api, which every request's path starts with already "
                "(this went to /api/api/...): write the baseUrl without it"
            )
        elif _is_html(response):
            detail = (
                "an HTML page, not Iterable's JSON: check the destination's baseUrl, or a "
                "proxy in between"
            )
        else:
            detail = msg or (text[:200] if "json" in _content_type(response) else "")
        # Iterable's words, on one line: an answer's msg may quote input back (a list's
        # name, a value) and reaches stderr in an `error:` line, where a newline or an
        # escape would forge lines of a CI log or rewrite the terminal's.
        return IterableError(
            f"{where}: HTTP {status}"
            + (f" {one_line(code)}" if code else "")
            + (f": {one_line(detail)}" if detail else ""),
            status=status,
            code=code,
            endpoint=path,
        )

    def _base_ends_in_api(self) -> bool:
        """Iterable's docs give its API's address as https://api.iterable.com/api: a
        baseUrl copied from them doubles the /api every path here starts with."""
        return urlsplit(self.base_url).path.rstrip("/").lower().endswith("/api")

    def _redirect(self, response: httpx.Response) -> str:
        """A redirect's words: where it leads, as an origin (its path and query may hold a
        member's address or a token), and that it was not followed: 'HTTP 301' alone left
        a user with an http:// baseUrl of an https:// proxy to guess. The key goes only
        where baseUrl says, so no redirect is followed."""
        try:
            to = _origin(response.request.url.join(response.headers.get("Location", "")))
        except (httpx.InvalidURL, UnicodeError):
            to = ""
        if to in ("", _origin(self._http.base_url)):
            where = "a redirect to another path of its host"
        else:
            where = f"a redirect to {one_line(self._scrub(to))}"
        return (
            f"{where}, not followed (the API key is sent only where baseUrl says): set the "
            "destination's baseUrl to where Iterable's API answers"
        )


class _RequestLog:
    """One request's line for RECONCILER_LOG=requests: `request GET /api/lists: 200 in
    0.12 s`, with when its answer began when its body took a second or more longer (a
    getUsers that waited minutes for its first byte, or streamed for an hour), and how
    it failed when it did."""

    def __init__(self, endpoint: str) -> None:
        self._endpoint = endpoint
        self._started = time.monotonic()
        self._status: int | None = None
        self._headers_after: float | None = None
        self._failure: str | None = None
        self._words: str | None = None

    def answered(self, status: int) -> None:
        self._status = status
        self._headers_after = time.monotonic() - self._started

    def failed(self, how: str) -> None:
        self._failure = how

    def refused(self, words: str | None) -> None:
        """Iterable's error code (and its error key) in a refusal's answer (_error_words)."""
        self._words = words

    def line(self) -> str:
        took = time.monotonic() - self._started
        outcome = [] if self._status is None else [str(self._status)]
        if outcome and self._words:
            outcome[0] += f" {self._words}"
        if self._failure is not None:
            outcome.append(self._failure)
        text = f"request {self._endpoint}: {', then '.join(outcome) or 'no answer'}"
        text += f" in {took:.2f} s"
        if self._headers_after is not None and took - self._headers_after >= 1.0:
            text += f" (answer began after {self._headers_after:.2f} s)"
        return text


def _secret_forms(secret: str) -> tuple[str, ...]:
    """The ways an answer can quote a secret: as sent, JSON-escaped, URL-encoded; longest
    first, so a form that contains another is cut out whole."""
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),
        quote(secret, safe=""),
    }
    return tuple(sorted((f for f in forms if f), key=len, reverse=True))


class _WatchStopped(Exception):
    """The run was interrupted while the list index was watched for a write whose answer
    was lost (IterableClient._watch_lists)."""


def _acquire(limiter: Window, stopped: Callable[[], bool] | None, method: str, shown: str) -> Slot:
    """The request's slot in its window; a write the run's interrupt stopped while it
    waited for one (`stopped`) is not sent."""
    try:
        return limiter.acquire(stopped=stopped)
    except WaitGivenUp:
        if method == "GET":
            raise ReadStopped(f"{method} {shown} was not sent: interrupted") from None
        raise WriteNotSent(
            f"{method} {shown} was not sent: interrupted while it waited for Iterable's rate limit"
        ) from None


def _given_up(
    method: str, shown: str, attempt: int, exc: _Retryable, refusing: bool
) -> RetryExhaustedError:
    """The error of a request whose retries are spent. `refusing`: 429s to the last, with
    Iterable taking no request of its kind since the first try (half a minute and more of
    backoff), for the second request in turn: it refuses them all, and each request after
    it would spend its budget so, a 1M-member apply hours, as when it answers 503, so it
    stops the destination alike."""
    unsure = (
        "; the request may have taken effect in Iterable even so (the next plan shows what is left)"
        if method != "GET" and exc.done_maybe
        else ""
    )
    unavailable = 429 if refusing else exc.unavailable
    gave_up = (
        UnreachableError
        if exc.unreachable
        else UnavailableError
        if unavailable is not None
        else RetryExhaustedError
    )
    return gave_up(
        f"{method} {shown}: {_gave_up(attempt + 1)}; last failure: {exc.reason}{unsure}",
        endpoint=shown,
        status=unavailable,
    )


def _origin(url: httpx.URL) -> str:
    """scheme://host[:port] of `url`, its port only when one is written."""
    return f"{url.scheme}://{_bracketed(url.host)}" + (f":{url.port}" if url.port else "")


def _bracketed(host: str) -> str:
    """A host as a URL writes it: an IPv6 address in brackets, as "[::1]:8080", where
    "could not connect to ::1:8080" left its port unreadable."""
    return f"[{host}]" if ":" in host else host


def _gave_up(attempts: int) -> str:
    return f"gave up after {attempts} attempt{'s' if attempts != 1 else ''}"


def _content_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").lower()


def _is_html(response: httpx.Response) -> bool:
    return "html" in _content_type(response)


# -- answers ---------------------------------------------------------------------------
# Each reads a 2xx answer inside the response's stream, so a body cut short surfaces as an
# httpx error there, and raises _BadAnswer for a body that is not the endpoint's answer.


def _parse_json(response: httpx.Response) -> Any:
    response.read()
    if _is_html(response):
        raise _BadAnswer("an HTML page, not JSON")
    if not response.content.strip():
        raise _BadAnswer("an empty body, not JSON")
    try:
        return json.loads(response.text)
    except (json.JSONDecodeError, RecursionError):
        raise _BadAnswer("a body that is not JSON") from None


def _parse_object(response: httpx.Response) -> dict[str, Any]:
    body = _parse_json(response)
    if not isinstance(body, dict):
        raise _BadAnswer("JSON that is not an object")
    return body


def _parse_lists(response: httpx.Response) -> list[ListInfo]:
    lists = _parse_object(response).get("lists")
    if not isinstance(lists, list):
        raise _BadAnswer("JSON without a 'lists' array")
    out = []
    for item in lists:
        if not isinstance(item, dict):
            raise _BadAnswer("a 'lists' entry that is not an object")
        list_id, name = item.get("id"), item.get("name")
        if not isinstance(list_id, int) or isinstance(list_id, bool) or not isinstance(name, str):
            raise _BadAnswer("a 'lists' entry without an integer id and a name")
        description, created_at = item.get("description"), item.get("createdAt")
        out.append(
            ListInfo(
                id=list_id,
                name=name,
                description=description if isinstance(description, str) else None,
                list_type=str(item.get("listType", "Standard")),
                created_at=created_at if isinstance(created_at, int) else None,
            )
        )
    return out


def _parse_campaigns(response: httpx.Response) -> tuple[list[CampaignInfo], bool]:
    body = _parse_object(response)
    campaigns = body.get("campaigns")
    if not isinstance(campaigns, list):
        raise _BadAnswer("JSON without a 'campaigns' array")
    out = []
    for item in campaigns:
        if not isinstance(item, dict):
            raise _BadAnswer("a 'campaigns' entry that is not an object")
        campaign_id = item.get("id")
        if not isinstance(campaign_id, int | float) or isinstance(campaign_id, bool):
            raise _BadAnswer("a 'campaigns' entry without a numeric id")
        out.append(
            CampaignInfo(
                id=int(campaign_id),
                name=str(item.get("name", "")),
                type=str(item.get("type", "")),
                state=str(item.get("campaignState", "")),
                list_ids=_int_tuple(item.get("listIds")),
                suppression_list_ids=_int_tuple(item.get("suppressionListIds")),
            )
        )
    return out, bool(body.get("nextPageUrl"))


def _int_tuple(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(int(x) for x in value if isinstance(x, int) and not isinstance(x, bool))


def _answered(text: str) -> str:
    """Iterable's words that the client quotes as a job goes on (an export job's state, its
    files' names), masked and on one line, as every other text from Iterable is shown: they
    reach notices, the request log and errors, said as they come and kept in CI logs, where
    an email in them would be shown in full and a line end would start a line of its own
    (a forged 'no changes', a workflow command)."""
    return one_line(mask_emails(text))


def _parse_job_id(response: httpx.Response) -> int:
    job_id = _parse_object(response).get("jobId")
    if not isinstance(job_id, int) or isinstance(job_id, bool):
        raise _BadAnswer("JSON without an integer jobId")
    return job_id


def _parse_job_page(response: httpx.Response) -> ExportJobPage:
    body = _parse_object(response)
    state, files = body.get("jobState"), body.get("files")
    if not isinstance(state, str) or not isinstance(files, list):
        raise _BadAnswer("JSON without a jobState and a files array")
    listed = []
    for item in files:
        if not isinstance(item, dict):
            raise _BadAnswer("a 'files' entry that is not an object")
        name, url = item.get("file"), item.get("url")
        if not isinstance(name, str) or not isinstance(url, str):
            raise _BadAnswer("a 'files' entry without a file name and a url")
        listed.append((name, url))
    return ExportJobPage(state.strip().lower(), listed, body.get("exportTruncated") is True)


def _parse_list_id(response: httpx.Response) -> int:
    list_id = _parse_object(response).get("listId")
    if not isinstance(list_id, int) or isinstance(list_id, bool):
        raise _BadAnswer("JSON without an integer listId")
    return list_id


def _parse_bulk(response: httpx.Response) -> dict[str, Any]:
    body = _parse_object(response)
    # successCount is required in Iterable's answer; without it nothing says what happened.
    if not isinstance(body.get("successCount"), int):
        raise _BadAnswer("JSON without a successCount")
    return body


def _parse_fields(response: httpx.Response) -> dict[str, str]:
    fields = _parse_object(response).get("fields")
    if not isinstance(fields, dict):
        raise _BadAnswer("JSON without a 'fields' object")
    return {str(name): str(kind) for name, kind in fields.items()}


def _parse_user(response: httpx.Response) -> dict[str, Any] | None:
    body = _parse_object(response)
    if "user" not in body:
        return None  # Iterable answers an unknown user with 200 and {}
    user = body["user"]
    if not isinstance(user, dict):
        raise _BadAnswer("a 'user' that is not an object")
    if not (user.get("email") or user.get("userId")):
        # Also "not found": {"user": {}}, or {"user": {"email": "", "userId": ""}} (as
        # block/iterable-go takes them); every profile has an email or a userId.
        return None
    data = user.get("dataFields", {})
    if not isinstance(data, dict):
        raise _BadAnswer("a user whose dataFields is not an object")
    # The identifiers sit beside dataFields; callers resolving one identifier to the other
    # need them.
    identifiers = {k: user[k] for k in ("email", "userId") if k in user and k not in data}
    return {**data, **identifiers}


def _parse_json_lines(
    response: httpx.Response,
    keep: Callable[[dict[str, Any]], bool] | None,
    lines: list[int] | None = None,
) -> list[dict[str, Any]]:
    """The JSON object on each line of the body that `keep` keeps. `lines`: its first
    item is given the body's lines (a last one without its newline counted too)."""
    if _is_html(response):
        raise _BadAnswer("an HTML page, not the export")
    rows: list[dict[str, Any]] = []
    # Lines end at "\n" alone (a "\r" before it is whitespace to JSON). Not httpx's
    # iter_lines: it splits as str.splitlines does, also at U+2028, U+2029 and NEL, which a
    # JSON string may hold unescaped (a profile's text pasted from elsewhere), so such a
    # line was "not JSON" and the whole export was retried and read again in windows.
    # Each chunk's whole lines are decoded at once (a "\n" byte is never inside a UTF-8
    # character) and parsed as text: json.loads of each line's bytes, which detects its
    # encoding and decodes it alone, made a 1M-line export 25% slower to read.
    pending: list[bytes] = []
    codec = "utf-8-sig"  # a byte-order mark may start the body (json.loads of bytes took it)
    try:
        for chunk in response.iter_bytes():
            if lines is not None:
                lines[0] += chunk.count(b"\n")
            end = chunk.rfind(b"\n")
            if end < 0:
                pending.append(chunk)  # joined once its line ends: a long line costs no rescans
                continue
            pending.append(chunk[:end])
            _take_lines(b"".join(pending).decode(codec), keep, rows)
            pending, codec = [chunk[end + 1 :]], "utf-8"
        last = b"".join(pending)
        if lines is not None and last.strip():
            lines[0] += 1
        _take_lines(last.decode(codec), keep, rows)
    except UnicodeDecodeError:
        raise _BadAnswer("an export line that is not JSON") from None
    return rows


# What bytes.strip() strips: a line of nothing else is blank, as before the text was decoded.
_BLANK = " \t\n\r\x0b\x0c"


def _take_lines(
    text: str, keep: Callable[[dict[str, Any]], bool] | None, rows: list[dict[str, Any]]
) -> None:
    """The JSON object on each line of `text` (lines end at "\n" alone) that `keep` keeps,
    onto `rows`; blank lines are skipped."""
    loads = json.loads
    for line in text.split("\n"):
        if not line.strip(_BLANK):
            continue
        try:
            row = loads(line)
        except (json.JSONDecodeError, RecursionError):
            raise _BadAnswer("an export line that is not JSON") from None
        if not isinstance(row, dict):
            raise _BadAnswer("an export line that is not a JSON object")
        if keep is None or keep(row):
            rows.append(row)


# Lines of a marked export parsed whole before the rest are only checked for their shape:
# a body that is not JSON lines at all fails on its first line, not silently.
FIRST_LINES_PARSED = 16
# What starts a JSON escape (a key's letters may be spelled \\uXXXX): a line holding one is
# parsed whatever the marks, since a mark could hide behind it. One byte: found fast.
_ESCAPE = b"\\"


def _parse_marked_lines(
    response: httpx.Response,
    keep: Callable[[dict[str, Any]], bool] | None,
    marks: Sequence[bytes],
    lines: list[int] | None = None,
) -> list[dict[str, Any]]:
    """_parse_json_lines for a caller whose `keep` refuses every row that holds none of
    `marks` (a field's name, a list id's digits): only lines holding a mark (or an escape,
    or among the first lines) are parsed; the rest must still look like JSON objects, one
    a line (start with `{`, end with `}`), else they are parsed too and one that is not
    JSON fails the read. So a truncated or garbled body fails as before, at a fraction of
    the cost: a project's profiles are millions of lines, of which a few hold the mark."""
    if _is_html(response):
        raise _BadAnswer("an HTML page, not the export")
    rows: list[dict[str, Any]] = []
    needles = (*marks, _ESCAPE)
    parsed = 0

    def take(line: bytes) -> None:
        line = line.strip()
        if not line:
            return
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError, UnicodeDecodeError):
            raise _BadAnswer("an export line that is not JSON") from None
        if not isinstance(row, dict):
            raise _BadAnswer("an export line that is not a JSON object")
        if keep is None or keep(row):
            rows.append(row)

    def block(text: bytes) -> None:
        """Whole lines, each ending in a newline."""
        nonlocal parsed
        if b"\r" in text:
            text = text.replace(b"\r\n", b"\n")
        if parsed < FIRST_LINES_PARSED:
            head = text.split(b"\n", FIRST_LINES_PARSED - parsed)
            rest = head.pop() if len(head) > FIRST_LINES_PARSED - parsed else b""
            for line in head:
                take(line)
            parsed += len(head)
            text = rest
            if not text:
                return
        lines = text.count(b"\n")
        if not (
            text.startswith(b"{") and text.endswith(b"}\n") and text.count(b"}\n{") == lines - 1
        ):
            # A blank line, spaces around an object, or something else: line by line.
            for line in text.split(b"\n"):
                bare = line.strip()
                if not (bare.startswith(b"{") and bare.endswith(b"}")) or any(
                    needle in bare for needle in needles
                ):
                    take(bare)
            return
        starts: set[int] = set()
        for needle in needles:
            at = text.find(needle)
            while at >= 0:
                start = text.rfind(b"\n", 0, at) + 1
                starts.add(start)
                at = text.find(needle, text.find(b"\n", at))
        for start in sorted(starts):
            take(text[start : text.find(b"\n", start)])

    pending = b""
    for chunk in response.iter_bytes():
        if lines is not None:
            lines[0] += chunk.count(b"\n")
        pending += chunk
        end = pending.rfind(b"\n")
        if end < 0:
            continue
        block(pending[: end + 1])
        pending = pending[end + 1 :]
    if pending.strip():
        if lines is not None:
            lines[0] += 1
        block(pending + b"\n")
    return rows


def _parse_lines(
    response: httpx.Response, on_lines: Callable[[int], None] | None = None
) -> list[str]:
    if _is_html(response):
        # A proxy's or portal's page would otherwise be read as members, and the plan would
        # remove everyone the page does not name.
        raise _BadAnswer("an HTML page, not the list's members")
    lines: list[str] = []
    pending = ""
    reported = 0
    ends = MemberLineEnds()
    # Decoded as httpx's iter_text decodes, after the line ends are made one.
    decoder = codecs.getincrementaldecoder(response.encoding or "utf-8")(errors="replace")
    try:
        for raw in itertools.chain(response.iter_bytes(), [None]):
            chunk = decoder.decode(ends.feed(raw), final=raw is None)
            pending += chunk
            *complete, pending = pending.split("\n")
            lines.extend(member_line(x) for x in complete if x.strip())
            if on_lines is not None and complete:
                on_lines(len(complete))
                reported += len(complete)
    except BaseException:
        _take_back(on_lines, reported)
        raise
    if pending.strip():
        lines.append(member_line(pending))
    return lines


def _tls_failure(exc: BaseException) -> str | None:
    """The TLS reason when a connection failed in its handshake (a certificate that does
    not verify, an http:// server reached with https://), else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return _unverified(current)
        if isinstance(current, ssl.SSLError):
            return getattr(current, "reason", None) or type(current).__name__
        current = current.__cause__ or current.__context__
    text = str(exc)
    return text if "SSL" in text or "CERTIFICATE" in text.upper() else None


# OpenSSL's verify codes (X509_V_ERR_...) whose fixes differ: an issuer the system does not
# know (self-signed, or signed by a proxy or a company network that inspects TLS) and a
# certificate made out to another host.
_UNKNOWN_ISSUER = frozenset({18, 19, 20, 21})
_OTHER_HOST = frozenset({62, 64})


def _unverified(exc: ssl.SSLCertVerificationError) -> str:
    """Why a certificate did not verify, in OpenSSL's words, and what to do: every kind was
    'CERTIFICATE_VERIFY_FAILED' alone, the same for a company proxy's own authority (set
    SSL_CERT_FILE) as for a certificate of another host (the baseUrl is wrong)."""
    words = one_line(exc.verify_message or "").rstrip(".")
    said = f"{exc.reason or 'CERTIFICATE_VERIFY_FAILED'}: {words}"
    if exc.verify_code in _UNKNOWN_ISSUER:
        return (
            f"{said}; a proxy or network that signs its own certificates needs its "
            "certificate authority named in SSL_CERT_FILE"
        )
    if exc.verify_code in _OTHER_HOST:
        return f"{said}; the certificate is another host's: check the baseUrl's host"
    return said


def member_line(line: str) -> str:
    """One identifier of a getUsers line, exactly as Iterable sent it: a userId may begin
    with a space, and DuckDB reads the same lines untouched (issue 16, point 10). Only a
    line ending's carriage return goes (no identifier Iterable accepts contains one)."""
    return line.removesuffix("\r")


_UTF8_BOM = b"\xef\xbb\xbf"


class MemberLineEnds:
    """A getUsers body's bytes, fed chunk by chunk, as both member engines read them: a
    leading UTF-8 byte-order mark dropped, and each line ending (\\r\\n, a bare \\r, or
    \\n) made \\n. Iterable sends neither, but a proxy or CDN may add a mark or rewrite line
    ends, and no identifier Iterable accepts holds a \\r or starts with the mark: kept, the
    mark made the first member another identifier (removed and added again every run) and
    DuckDB failed on a body whose lines ended both ways, where Python read it."""

    def __init__(self) -> None:
        self._held = b""  # a \r that may begin a \r\n, or the start of a mark
        self._started = False

    def feed(self, chunk: bytes | None) -> bytes:
        """The next normalised bytes of the body; `chunk` None at its end."""
        data = self._held + (chunk or b"")
        self._held = b""
        if not self._started:
            if chunk is not None and _UTF8_BOM.startswith(data) and data != _UTF8_BOM:
                self._held = data  # too short yet to tell
                return b""
            self._started = True
            data = data.removeprefix(_UTF8_BOM)
        if chunk is not None and data.endswith(b"\r"):
            self._held, data = b"\r", data[:-1]
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return data


def _parse_count(response: httpx.Response) -> int:
    text = response.read().decode("utf-8", errors="replace").strip().strip('"')
    if not text.isdigit():
        raise _BadAnswer("a body that is not a count")
    return int(text)


def _retry_after_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare enough to fall back to our own backoff
    return seconds if seconds >= 0 else 0.0  # NaN is not >= 0: no wait


@functools.lru_cache(maxsize=8)
def _http_date(header: str) -> datetime | None:
    """An HTTP Date header's time; None when it is not one. Cached: every answer carries
    one, and those of one second are the same text."""
    try:
        stamped = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return None
    if stamped.tzinfo is None:
        stamped = stamped.replace(tzinfo=UTC)  # "-0000": HTTP dates are GMT
    return stamped


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError, RecursionError):
        return None


def _error_fields(body: Any) -> tuple[str | None, str | None]:
    if not isinstance(body, dict):
        return None, None
    msg, code = body.get("msg"), body.get("code")
    return (msg if isinstance(msg, str) else None), (code if isinstance(code, str) else None)


# An error code or key as Iterable writes them (BadParams, error.lists.invalidListId(12)):
# no space, no @, short. Anything else an answer says may quote the request back (members,
# field values), and is left to the report, which masks it.
_ERROR_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,79}(\([0-9, ]{1,40}\))?")


def _error_words(body: Any) -> str | None:
    """A refusal's `code`, with its `msg` when that is one of Iterable's error keys
    (`Success (error.lists.invalidListId(12))`: a 400 whose code says nothing), for the
    request's log line; None when neither is a token (_ERROR_TOKEN)."""
    msg, code = _error_fields(body)
    if code is None or not _ERROR_TOKEN.fullmatch(code):
        return None
    if msg is not None and msg.startswith("error.") and _ERROR_TOKEN.fullmatch(msg):
        return f"{code} ({msg})"
    return code


def _mismatched_fields(body: Any) -> dict[str, str]:
    """The field paths (and the types they have) a RequestFieldsTypesMismatched answer
    names in params.validationErrors, keyed "<index>:::<field path>"."""
    params = body.get("params") if isinstance(body, dict) else None
    errors = params.get("validationErrors") if isinstance(params, dict) else None
    if not isinstance(errors, dict):
        return {}
    out: dict[str, str] = {}
    for key, detail in errors.items():
        expected = detail.get("expectedType") if isinstance(detail, dict) else None
        out[str(key).rsplit(":::", 1)[-1]] = expected if isinstance(expected, str) else ""
    return out


def _conflicts(user: dict[str, Any], fields: dict[str, str]) -> bool:
    """Whether `user`'s dataFields hold a value Iterable types other than a named field."""
    data = user.get("dataFields")
    if not isinstance(data, dict):
        return False
    for key, value in data.items():
        for path, sent in value_types(value, key).items():
            expected = fields.get(path)
            if expected and not accepts(expected, sent):
                return True
    return False


def _refused(users: Sequence[dict[str, Any]], fields: dict[str, str]) -> BatchResult:
    """`users` failed for a field type Iterable refused, under every identifier each
    carries (the caller maps failures back by either)."""
    # One line: the paths and types are Iterable's answer, read into every report.
    named = one_line(", ".join(f"{p} is {t}" for p, t in fields.items() if t))
    reason = "a field value of another type than Iterable's field" + (
        f" ({named})" if named else ""
    )
    result = BatchResult(sent=len(users), requests=0)
    for user in users:
        for key in ("userId", "email"):
            identifier = user.get(key)
            if isinstance(identifier, str):
                result.failed[identifier] = reason
                result.kinds[identifier] = "invalidData"
    return result


# How often a write waiting to be retried looks whether the run was interrupted.
_STOP_LOOK_SECONDS = 0.1


def _raise_failed_fetch(fetches: Iterable[Future[int]]) -> None:
    """The error of the first of `fetches` to have failed, raised; nothing while none has."""
    for fetched in fetches:
        if fetched.done() and not fetched.cancelled():
            error = fetched.exception()
            if error is not None:
                raise error


def _join_export_files(path: Path, files: Sequence[tuple[Future[int], Path]]) -> int:
    """The fetched files (each its fetch and where it went), in the job's order, into
    `path`; their line count. Waits for each fetch in turn: one that failed raises."""
    lines = 0
    with path.open("wb") as out:
        for fetched, part in files:
            lines += fetched.result()
            with part.open("rb") as handle:
                shutil.copyfileobj(handle, out, 1 << 20)
    return lines


def _save_lines(
    response: httpx.Response,
    path: Path,
    on_lines: Callable[[int], None] | None,
    ends: MemberLineEnds | None = None,
) -> int:
    """Stream a body of lines to `path`, saying how many lines arrived as they do; through
    `ends` when given (a getUsers body, saved as the Python engine reads one)."""
    lines = 0
    try:
        with path.open("wb") as handle:
            for raw in itertools.chain(response.iter_bytes(), [None] if ends else []):
                chunk = ends.feed(raw) if ends is not None else raw or b""
                handle.write(chunk)
                found = chunk.count(b"\n")
                lines += found
                if on_lines is not None and found:
                    on_lines(found)
    except BaseException:
        _take_back(on_lines, lines)
        raise
    return lines


def _take_back(on_lines: Callable[[int], None] | None, lines: int) -> None:
    """An attempt that failed midway takes back the lines it reported: its retry reports
    them again, and progress would otherwise count a list's members twice."""
    if on_lines is not None and lines:
        on_lines(-lines)
