"""The emulator: projects, routing, and the checks every request passes, in Iterable's order.

    fault injection (decided first, so a faulted request changes nothing)
    -> route (unknown: an HTML 404, as Iterable's edge answers)
    -> Api-Key (401 BadApiKey), and its type's endpoints (key_types: a Mobile key's 401)
    -> rate limits (429 RateLimitExceeded)
    -> body size, JSON, OpenAPI schema (400 BatchTooLarge / BadJsonBody / BadParams)
    -> the endpoint
    -> persist the state when it changed (a large state at most a tenth of the time)

Control endpoints under /_emulator/ sit outside all of that: no key, no faults, no log.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import httpx

from reconciler.emulator import api, key_types, spec
from reconciler.emulator.exports import DOWNLOAD_PREFIX, ExportJobs
from reconciler.emulator.knobs import (
    MAX_KNOB_SECONDS,
    PROFILES,
    Faults,
    Limits,
    SlidingWindow,
    TokenBucket,
    retry_after_seconds,
)
from reconciler.emulator.project import (
    PROJECT_TYPES,
    ListIdSequence,
    Project,
    ProjectType,
    hash_api_key,
)
from reconciler.emulator.replies import (
    JSON_STREAM_TYPE,
    EmulatorResponse,
    api_error,
    bad_params,
    echoing,
    fault_reply,
    garbled_reply,
    json_reply,
    not_found_page,
    quoting_request,
    rate_limited,
)
from reconciler.emulator.store import read_state, state_to_json, write_state_atomically

# bulkUpdate documents "Max size of request body: 4MB". subscribe/unsubscribe document no
# cap, but they run on the same bulk pipeline, so the emulator holds them to it too. 4 MB
# counted in decimal (RudderStack's Iterable destination holds bulkUpdate bodies to
# 4,000,000 bytes): a client that takes it for 4 MiB would send bodies Iterable may refuse.
MAX_BATCH_BYTES = 4_000_000
CONTROL_PREFIX = "/_emulator/"
# A save that takes longer than this is spaced out to SAVE_SPACING times its duration.
SLOW_SAVE_SECONDS = 0.05
SAVE_SPACING = 10
# Limits Iterable counts per organisation rather than per project: the emulator's projects
# are one organisation.
_ORGANISATION_LIMITS = frozenset({"export_start", "export_files"})


@dataclass(frozen=True)
class LoggedRequest:
    """One request to the Iterable surface, as tests inspect it (never any header)."""

    method: str
    path: str
    query: str
    status: int
    project: str | None
    body: Any = None
    """The parsed JSON body of a POST; None when absent or not JSON."""
    fault: str | None = None
    """Which knob shaped the answer: script, fail_every, drop, rate_limit, write_rate."""
    at: float = 0.0
    """The emulator's clock when the request arrived."""

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "project": self.project,
            "body": self.body,
            "fault": self.fault,
            "at": self.at,
        }


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    endpoint: api.Endpoint
    limit: str
    """The Limits field that rates this route."""
    body: str | None = None
    """The OpenAPI definition the JSON body must satisfy."""
    batch: bool = False
    """Subject to MAX_BATCH_BYTES and Faults.write_rate_per_second."""


def _route(
    method: str,
    path: str,
    endpoint: api.Endpoint,
    limit: str,
    body: str | None = None,
    batch: bool = False,
) -> _Route:
    return _Route(method, re.compile(path), endpoint, limit, body, batch)


# Order matters where patterns overlap: the literal segments come before {placeholders}.
_ROUTES: tuple[_Route, ...] = (
    _route("GET", r"/api/lists", api.get_lists, "lists"),
    _route("POST", r"/api/lists", api.create_list, "lists", body="CreateListRequest"),
    _route("GET", r"/api/lists/getUsers", api.get_users, "list_reads"),
    _route(
        "POST",
        r"/api/lists/subscribe",
        api.subscribe,
        "writes",
        body="SubscribeRequest",
        batch=True,
    ),
    _route(
        "POST",
        r"/api/lists/unsubscribe",
        api.unsubscribe,
        "writes",
        body="UnsubscribeRequest",
        batch=True,
    ),
    _route("GET", r"/api/lists/(?P<listId>[^/]+)/size", api.list_size, "list_reads"),
    _route("DELETE", r"/api/lists/(?P<listId>[^/]+)", api.delete_list, "lists"),
    _route(
        "POST",
        r"/api/users/bulkUpdate",
        api.bulk_update,
        "bulk_update",
        body="BulkUpdateUsersRequest",
        batch=True,
    ),
    _route(
        "POST", r"/api/users/update", api.update_user, "user_update", body="ApiUserUpdateRequest"
    ),
    _route(
        "POST",
        r"/api/users/updateEmail",
        api.update_email,
        "user_update",
        body="UpdateEmailRequest",
    ),
    _route("GET", r"/api/users/getFields", api.get_fields, "get_fields"),
    _route("GET", r"/api/users/forgotten", api.get_forgotten_emails, "forgotten"),
    _route("GET", r"/api/users/forgottenUserIds", api.get_forgotten_user_ids, "forgotten"),
    _route("GET", r"/api/users/byUserId/(?P<userId>.+)", api.get_user_by_user_id, "user_reads"),
    _route("GET", r"/api/users/byUserId", api.get_user_by_user_id, "user_reads"),
    _route("GET", r"/api/users/(?P<email>[^/]+)", api.get_user_by_email, "user_reads"),
    _route("GET", r"/api/export/data\.json", api.export_json, "export"),
    _route(
        "POST", r"/api/export/start", api.start_export, "export_start", body="StartExportRequest"
    ),
    _route("GET", r"/api/export/jobs", api.export_jobs, "export_jobs"),
    _route("GET", r"/api/export/(?P<jobId>[^/]+)/files", api.export_files, "export_files"),
    _route("DELETE", r"/api/export/(?P<jobId>[^/]+)", api.cancel_export, "export_cancel"),
    _route("GET", r"/api/campaigns", api.get_campaigns, "campaigns"),
    _route("GET", r"/api/channels", api.get_channels, "lists"),
)


class _NotJson(Exception):
    pass


def _reject_constant(name: str) -> Any:
    # Python's json takes NaN and Infinity; JSON (and Iterable) does not.
    raise _NotJson(name)


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, _NotJson) as error:
        raise _NotJson(str(error)) from None


class Emulator:
    """A faithful stand-in for Iterable's API, for one or more projects.

    Thread-safe: one lock serialises request handling and state changes.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        faults: Faults | None = None,
        state_path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        log_limit: int = 100_000,
    ):
        self.limits: Limits = limits if limits is not None else Limits.iterable()
        self._faults: Faults = faults if faults is not None else Faults()
        self.state_path = Path(state_path) if state_path is not None else None
        self.request_log: list[LoggedRequest] = []
        self._log_limit = log_limit
        self._clock = clock
        self._lock = threading.RLock()
        self._fault_count = 0
        self._windows: dict[tuple[str | None, str], SlidingWindow] = {}
        self._write_buckets: dict[str, TokenBucket] = {}
        self._key_index: dict[str, str] = {}
        # Keys of a type other than server-side (add_api_key), by their SHA-256.
        self._key_types: dict[str, str] = {}
        self.projects: dict[str, Project] = {}
        self.exports = ExportJobs()
        """Asynchronous export jobs, in memory only (not saved with the state)."""
        self.on_deferred_work: Callable[[str], None] | None = None
        """Called (with the request's path) as an answer's deferred work starts, outside
        the lock: lets a test order another request against a job being built."""
        self._list_ids = ListIdSequence()
        self._saved_at = 0.0
        self._save_seconds = 0.0
        if self.state_path is not None and self.state_path.exists():
            self.projects, self._list_ids = read_state(self.state_path)
            for project in self.projects.values():
                project.use_wall_clock(self.wall_clock_ms)
            self._key_index = {p.api_key_sha256: p.name for p in self.projects.values()}

    @classmethod
    def load(cls, path: Path, **kwargs: Any) -> Emulator:
        """An emulator over an existing state file, saving back to it."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no emulator state at {path}")
        return cls(state_path=path, **kwargs)

    def __repr__(self) -> str:
        return f"Emulator(projects={sorted(self.projects)!r}, state_path={self.state_path!r})"

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults
            # "every k-th request" counts from when the faults were set.
            self._fault_count = 0
            self._write_buckets.clear()

    def wall_clock(self) -> float:
        """Iterable's clock, in seconds since the epoch: the machine's, moved by
        Faults.clock_offset_seconds."""
        return time.time() + self._faults.clock_offset_seconds

    def wall_clock_ms(self) -> int:
        """wall_clock in milliseconds, as the projects stamp their changes."""
        return int(self.wall_clock() * 1000)

    def _set_profile(self, payload: Any) -> None:
        self.faults = _profile_faults(payload)

    # Projects ----------------------------------------------------------------------------

    def add_project(self, name: str, project_type: ProjectType | str, api_key: str) -> Project:
        """Create a project answering to `api_key` (only its SHA-256 is kept)."""
        if not name:
            raise ValueError("a project needs a name")
        if project_type not in PROJECT_TYPES:
            raise ValueError(f"project type must be one of {', '.join(PROJECT_TYPES)}")
        if not api_key:
            raise ValueError("a project needs a non-empty API key")
        key_hash = hash_api_key(api_key)
        with self._lock:
            if name in self.projects:
                raise ValueError(f"project {name!r} already exists")
            if key_hash in self._key_index:
                owner = self._key_index[key_hash]
                raise ValueError(f"that API key already belongs to project {owner!r}")
            project = Project(
                name,
                project_type,
                key_hash,
                list_ids=self._list_ids,
                wall_clock_ms=self.wall_clock_ms,
            )
            self.projects[name] = project
            self._key_index[key_hash] = name
            project.dirty = True
            self._persist_if_dirty()
            return project

    def set_api_key(self, name: str, api_key: str) -> None:
        """Rotate a project's key (the old one stops working)."""
        if not api_key:
            raise ValueError("a project needs a non-empty API key")
        key_hash = hash_api_key(api_key)
        with self._lock:
            project = self.project(name)
            owner = self._key_index.get(key_hash)
            if owner is not None and owner != name:
                raise ValueError(f"that API key already belongs to project {owner!r}")
            self._key_index.pop(project.api_key_sha256, None)
            project.api_key_sha256 = key_hash
            self._key_index[key_hash] = name
            project.dirty = True
            self._persist_if_dirty()

    def add_api_key(self, name: str, api_key: str, key_type: str = key_types.SERVER_SIDE) -> None:
        """Another key for a project, beside its own (Iterable's admins make as many as they
        like: a key per integration), of one of key_types.KEY_TYPES (a Mobile key may call
        only its SDKs' endpoints). For tests: kept in memory, not in a --state file."""
        if not api_key:
            raise ValueError("a project needs a non-empty API key")
        if key_type not in key_types.KEY_TYPES:
            raise ValueError(f"key type must be one of {', '.join(key_types.KEY_TYPES)}")
        key_hash = hash_api_key(api_key)
        with self._lock:
            self.project(name)
            owner = self._key_index.get(key_hash)
            if owner is not None and owner != name:
                raise ValueError(f"that API key already belongs to project {owner!r}")
            self._key_index[key_hash] = name
            if key_type != key_types.SERVER_SIDE:
                self._key_types[key_hash] = key_type

    def project(self, name: str) -> Project:
        try:
            return self.projects[name]
        except KeyError:
            raise KeyError(f"no project named {name!r}") from None

    # Log and state -----------------------------------------------------------------------

    def clear_log(self) -> None:
        with self._lock:
            self.request_log.clear()

    def save(self) -> None:
        """Write the state file now (when there is one), whether or not anything changed."""
        with self._lock:
            if self.state_path is not None:
                started = time.monotonic()
                write_state_atomically(
                    self.state_path, state_to_json(self.projects, self._list_ids)
                )
                self._saved_at = time.monotonic()
                self._save_seconds = self._saved_at - started
            for project in self.projects.values():
                project.dirty = False

    def flush(self) -> None:
        """Save what a request left unsaved (see _persist_if_dirty); the sandbox's client
        calls it as it closes, `serve` saves as it stops."""
        with self._lock:
            if any(project.dirty for project in self.projects.values()):
                self.save()

    def state_json(self) -> dict[str, Any]:
        """The whole state without key hashes, as GET /_emulator/state shows it."""
        with self._lock:
            return state_to_json(self.projects, self._list_ids, include_key_hash=False)

    def _persist_if_dirty(self) -> None:
        if not any(project.dirty for project in self.projects.values()):
            return
        # Each save writes the whole state, so saving after every request made an apply of
        # N members (N/1,000 subscribes) cost N^2: 100,000 members into the sandbox took
        # 33 s, 7 of 12 s at 50,000 in 52 saves. A save that took long is followed by the
        # next only after ten times as long (the rest stays dirty until then or flush()),
        # which holds saving to a tenth of the time; a small state is saved every time.
        if (
            self._save_seconds > SLOW_SAVE_SECONDS
            and time.monotonic() - self._saved_at < SAVE_SPACING * self._save_seconds
        ):
            return
        self.save()

    def _log(self, entry: LoggedRequest) -> None:
        self.request_log.append(entry)
        if len(self.request_log) > self._log_limit:
            # Trim in chunks so a long-running `serve` does not pay a shift per request.
            del self.request_log[: max(1, self._log_limit // 10)]

    # Requests ----------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> EmulatorResponse:
        """Answer one request as Iterable would (plus the fault instructions)."""
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = request.read()
        target = request.url.raw_path.decode("ascii", errors="replace")
        path, _, query = target.partition("?")
        method = request.method.upper()
        if path.startswith(CONTROL_PREFIX):
            return self._control(method, path, body)
        if path.startswith(DOWNLOAD_PREFIX):
            return self._download(method, path, query)
        host = request.headers.get("host") or request.url.netloc.decode("ascii")
        link_base = f"{request.url.scheme}://{host}"
        with self._lock:
            parsed: Any = None
            if method == "POST" and body:
                try:
                    parsed = _parse_json(body)
                except _NotJson:
                    parsed = None
            outcome = self._answer(
                method, path, query, body, request.headers.get("Api-Key"), link_base
            )
            entry = LoggedRequest(
                method=method,
                path=path,
                query=query,
                status=outcome.response.status,
                project=outcome.project,
                body=parsed,
                fault=outcome.fault,
                at=outcome.at,
            )
            self._log(entry)
            self._persist_if_dirty()
        response = outcome.response
        if response.deferred is not None:
            build, response.deferred = response.deferred, None
            if self.on_deferred_work is not None:
                self.on_deferred_work(path)
            publish = build()  # outside the lock: other requests are answered meanwhile
            with self._lock:
                publish()
                if response.fault is not None and entry.fault is None:
                    # A knob that shaped the answer as it was built (a stream to be cut).
                    self._relog(entry, dataclasses.replace(entry, fault=response.fault))
        return response

    def _relog(self, old: LoggedRequest, new: LoggedRequest) -> None:
        for index in range(len(self.request_log) - 1, -1, -1):
            if self.request_log[index] is old:
                self.request_log[index] = new
                return

    def _download(self, method: str, path: str, query: str) -> EmulatorResponse:
        """A file link of the asynchronous export: no Api-Key (the link is the credential,
        as a pre-signed S3 link is), no rate limit; logged."""
        token = path[len(DOWNLOAD_PREFIX) :].split("/", 1)[0]
        with self._lock:
            now = self._clock()
            if method != "GET":
                response = not_found_page()
            else:
                status, content = self.exports.download(token, now)
                kind = JSON_STREAM_TYPE if status == 200 else "application/xml"
                response = EmulatorResponse(status, {"Content-Type": kind}, content)
            self._log(
                LoggedRequest(
                    method=method,
                    path=DOWNLOAD_PREFIX + "...",
                    query=query,
                    status=response.status,
                    project=None,
                    fault="link_expired" if response.status == 403 else None,
                    at=now,
                )
            )
            return response

    def _answer(
        self,
        method: str,
        path: str,
        query: str,
        body: bytes,
        api_key: str | None,
        link_base: str = "http://emulator.invalid",
    ) -> _Outcome:
        now = self._clock()
        faults = self._faults
        counted = self._counts_for_faults(path)
        latency = faults.latency_seconds if counted else 0.0
        fault: str | None = None
        drop = False
        bad_body: str | None = None
        if counted:
            self._fault_count += 1
            if faults.latency_every and self._fault_count % faults.latency_every:
                latency = 0.0
            status: int | None = None
            if faults.script:
                status, fault = faults.script.pop(0), "script"
            elif faults.fail_every and self._fault_count % faults.fail_every == 0:
                status, fault = faults.fail_status, "fail_every"
            elif faults.drop_every and self._fault_count % faults.drop_every == 0:
                drop, fault = True, "drop"
            elif faults.bad_body_every and self._fault_count % faults.bad_body_every == 0:
                bad_body, fault = faults.bad_body, "bad_body"
            if status is not None:
                retry_after = 1 if status == 429 and faults.retry_after else None
                response = fault_reply(status, retry_after, faults.fail_message)
                if faults.echo_request:
                    response = quoting_request(response, f"{method} {path}", body)
                if faults.echo_api_key and api_key:
                    response = echoing(response, api_key)
                response.latency_seconds = latency
                return _Outcome(response, None, fault, now)

        response, project_name, limit_fault = self._dispatch(
            method, path, query, body, api_key, now, link_base
        )
        fault = limit_fault or response.fault or fault
        deferred = response.deferred  # the work is done whatever the answer then says
        if faults.echo_api_key and api_key:
            response = echoing(response, api_key)
        if bad_body is not None and limit_fault is None:
            response = garbled_reply(response, bad_body)
        response.deferred = deferred
        response.latency_seconds = latency
        response.drop = drop
        return _Outcome(response, project_name, fault, now)

    def _counts_for_faults(self, path: str) -> bool:
        prefixes = self._faults.paths
        if prefixes is None:
            return path.startswith("/api/")
        return any(path.startswith(prefix) for prefix in prefixes)

    def _dispatch(
        self,
        method: str,
        path: str,
        query: str,
        body: bytes,
        api_key: str | None,
        now: float,
        link_base: str,
    ) -> tuple[EmulatorResponse, str | None, str | None]:
        """The answer, the project it was for, and the rate-limit fault if one applied."""
        match = None
        route = None
        for candidate in _ROUTES:
            if candidate.method == method:
                match = candidate.pattern.fullmatch(path)
                if match:
                    route = candidate
                    break
        if route is None or match is None:
            return not_found_page(), None, None

        project = self._authenticate(api_key)
        if project is None:
            return api_error(401, "BadApiKey", "Invalid API key"), None, None
        assert api_key is not None  # _authenticate found its project
        key_type = self._key_types.get(hash_api_key(api_key), key_types.SERVER_SIDE)
        if not key_types.may_call(key_type, method, path):
            return key_types.insufficient(key_type, api_key, path), project.name, None

        limited = self._rate_limit(project, route, now)
        if limited is not None:
            return limited[0], project.name, limited[1]

        call_body: Any = None
        if route.body is not None:
            if route.batch and len(body) > MAX_BATCH_BYTES:
                # 400 with Iterable's own BatchTooLarge code rather than a 413: the code is
                # in Iterable's IterableApiResponse enum, so the application layer answers
                # it with JSON, and a client can tell it from an edge error page.
                response = api_error(
                    400,
                    "BatchTooLarge",
                    f"Request body is {len(body)} bytes; the limit is {MAX_BATCH_BYTES} bytes",
                )
                return response, project.name, None
            try:
                call_body = _parse_json(body)
            except _NotJson:
                response = api_error(400, "BadJsonBody", "Request body is not valid JSON")
                return response, project.name, None
            problem = spec.body_problem(route.body, call_body)
            if problem is not None:
                return bad_params(f"Invalid request body: {problem}"), project.name, None

        params = {name: unquote(value) for name, value in match.groupdict().items()}
        call = api.Call(
            path_params=params,
            query=parse_qs(query, keep_blank_values=True),
            body=call_body,
            faults=self._faults,
            now=now,
            limits=self.limits,
            exports=self.exports,
            link_base=link_base,
        )
        cutoff = call.read_cutoff
        project.forget_changes_before(cutoff)
        project.recording_at = None if cutoff is None else now
        try:
            return route.endpoint(project, call), project.name, None
        finally:
            project.recording_at = None

    def _authenticate(self, api_key: str | None) -> Project | None:
        if not api_key:
            return None
        name = self._key_index.get(hash_api_key(api_key))
        return None if name is None else self.projects.get(name)

    def _rate_limit(
        self, project: Project, route: _Route, now: float
    ) -> tuple[EmulatorResponse, str] | None:
        send_retry_after = self._faults.retry_after
        rate = getattr(self.limits, route.limit)
        if rate is not None:
            scope = None if route.limit in _ORGANISATION_LIMITS else project.name
            window = self._windows.setdefault((scope, route.limit), SlidingWindow())
            wait = window.acquire(now, rate)
            if wait is not None:
                seconds = retry_after_seconds(wait) if send_retry_after else None
                return rate_limited(seconds), "rate_limit"
        write_rate = self._faults.write_rate_per_second
        if route.batch and write_rate is not None:
            bucket = self._write_buckets.setdefault(project.name, TokenBucket())
            wait = bucket.acquire(now, write_rate)
            if wait is not None:
                seconds = retry_after_seconds(wait) if send_retry_after else None
                return rate_limited(seconds), "write_rate"
        return None

    # Control endpoints -------------------------------------------------------------------

    def _control(self, method: str, path: str, body: bytes) -> EmulatorResponse:
        with self._lock:
            try:
                payload = _parse_json(body) if body else {}
            except _NotJson:
                return api_error(400, "BadJsonBody", "Request body is not valid JSON")
            try:
                response = self._control_route(method, path, payload)
            except (ValueError, TypeError, KeyError) as error:
                message = error.args[0] if error.args else str(error)
                return api_error(400, "BadParams", str(message))
            self._persist_if_dirty()
            return response

    def _control_route(self, method: str, path: str, payload: Any) -> EmulatorResponse:
        route = path[len(CONTROL_PREFIX) :]
        handler = _CONTROL_ROUTES.get((method, route))
        if handler is not None:
            return handler(self, payload)
        in_use = re.fullmatch(r"lists/(\d+)/in-use", route)
        if method == "POST" and in_use:
            return self._set_list_in_use(int(in_use.group(1)), payload)
        return api_error(404, "NotFound", f"No emulator control endpoint {method} {path}")

    def _get_state(self, payload: Any) -> EmulatorResponse:
        return json_reply(200, self.state_json())

    def _get_requests(self, payload: Any) -> EmulatorResponse:
        return json_reply(200, {"requests": [r.to_json() for r in self.request_log]})

    def _clear_requests(self, payload: Any) -> EmulatorResponse:
        self.request_log.clear()
        return json_reply(200, {"requests": []})

    def _get_faults(self, payload: Any) -> EmulatorResponse:
        return json_reply(200, self._faults.to_json())

    def _post_faults(self, payload: Any) -> EmulatorResponse:
        if not isinstance(payload, dict):
            raise ValueError("expected a JSON object of fault settings")
        self._faults.update(payload)
        self._fault_count = 0
        self._write_buckets.clear()
        return json_reply(200, self._faults.to_json())

    def _post_profile(self, payload: Any) -> EmulatorResponse:
        self._set_profile(payload)
        return json_reply(200, self._faults.to_json())

    def _post_limits(self, payload: Any) -> EmulatorResponse:
        self.limits = _limits_from_json(payload)
        self._windows.clear()
        return json_reply(200, {"ok": True})

    def _get_limits(self, payload: Any) -> EmulatorResponse:
        return json_reply(200, asdict(self.limits))

    def _post_project(self, payload: Any) -> EmulatorResponse:
        if not isinstance(payload, dict):
            raise ValueError("expected {name, projectType, apiKey}")
        project = self.add_project(
            str(payload["name"]), str(payload["projectType"]), str(payload["apiKey"])
        )
        return json_reply(200, {"name": project.name, "projectType": project.project_type})

    def _named_project(self, payload: dict[str, Any]) -> Project:
        """The project a test-only request names (`project`), or the only one there is."""
        name = payload.get("project")
        if name is None:
            if len(self.projects) != 1:
                raise ValueError("name the project: the emulator has several")
            name = next(iter(self.projects))
        return self.project(str(name))

    def _post_forget(self, payload: Any) -> EmulatorResponse:
        """GDPR forget: {"project"?, "email"?, "userId"?}; project defaults to the only one."""
        if not isinstance(payload, dict) or not (payload.get("email") or payload.get("userId")):
            raise ValueError("expected {project?, email?, userId?} with an identifier")
        found = self._named_project(payload).forget(payload.get("email"), payload.get("userId"))
        return json_reply(200, {"forgotten": True, "profileFound": found})

    def _post_campaign(self, payload: Any) -> EmulatorResponse:
        """Test-only: Iterable creates campaigns in its web app, not through the API."""
        if not isinstance(payload, dict):
            raise ValueError("expected {project, name, type, campaignState, listIds, ...}")
        campaign_id = self.project(str(payload.get("project", "default"))).add_campaign(
            str(payload["name"]),
            campaign_type=str(payload.get("type", "Blast")),
            state=str(payload.get("campaignState", "Running")),
            list_ids=payload.get("listIds", ()),
            suppression_list_ids=payload.get("suppressionListIds", ()),
        )
        return json_reply(200, {"id": campaign_id})

    def _set_list_in_use(self, list_id: int, payload: Any) -> EmulatorResponse:
        flag = payload.get("inUse", True) if isinstance(payload, dict) else True
        for project in self.projects.values():
            if list_id in project.lists:
                project.set_in_use(list_id, bool(flag))
                return json_reply(200, {"listId": list_id, "inUse": bool(flag)})
        return api_error(404, "NotFound", f"No list {list_id}")

    def _self_unsubscribe(self, payload: Any) -> EmulatorResponse:
        """Test-only: a person leaves a list (`listId`) and/or its channel (`channel: true`)
        by their own action, recorded as Iterable reports it: an emailUnSubscribe event with
        its unsubSource, and the channel in the profile's unsubscribedChannelIds.
        {project?, email?, userId?, listId?, channel?, unsubSource?}."""
        if not isinstance(payload, dict) or not (payload.get("email") or payload.get("userId")):
            raise ValueError("expected {project?, email?, userId?, listId?, channel?}")
        if payload.get("listId") is None and not payload.get("channel"):
            raise ValueError("name a listId, or channel: true, or both")
        project = self._named_project(payload)
        user = project.find_user(payload.get("email"), payload.get("userId"))
        if user is None:
            return api_error(404, "NotFound", "No such user")
        list_id = payload.get("listId")
        options: dict[str, Any] = {}
        if payload.get("unsubSource"):
            options["source"] = str(payload["unsubSource"])
        project.self_unsubscribe(
            user,
            list_id=None if list_id is None else int(list_id),
            channel=bool(payload.get("channel")),
            **options,
        )
        return json_reply(200, {"ok": True})


# The emulator's control endpoints (CONTROL_PREFIX + route), by method and route; POST
# lists/{id}/in-use, the one with a parameter, is matched apart (Emulator._control_route).
_CONTROL_ROUTES: dict[tuple[str, str], Callable[[Emulator, Any], EmulatorResponse]] = {
    ("GET", "state"): Emulator._get_state,
    ("GET", "requests"): Emulator._get_requests,
    ("DELETE", "requests"): Emulator._clear_requests,
    ("GET", "faults"): Emulator._get_faults,
    ("POST", "faults"): Emulator._post_faults,
    ("POST", "profile"): Emulator._post_profile,
    ("POST", "limits"): Emulator._post_limits,
    ("GET", "limits"): Emulator._get_limits,
    ("POST", "projects"): Emulator._post_project,
    ("POST", "forget"): Emulator._post_forget,
    ("POST", "campaigns"): Emulator._post_campaign,
    ("POST", "self-unsubscribe"): Emulator._self_unsubscribe,
}


@dataclass
class _Outcome:
    response: EmulatorResponse
    project: str | None
    fault: str | None
    at: float


def _profile_faults(payload: Any) -> Faults:
    """{"name": "field", "timeScale": K, "lostRepliesEvery": k}: the faults of a profile;
    {"name": "none"} for none at all."""
    if not isinstance(payload, dict):
        raise ValueError("expected {name, timeScale, lostRepliesEvery}")
    unknown = sorted(set(payload) - {"name", "timeScale", "lostRepliesEvery"})
    if unknown:
        noun = "setting" if len(unknown) == 1 else "settings"
        raise ValueError(f"unknown profile {noun}: {', '.join(unknown)}")
    name = payload.get("name")
    if name == "none":
        return Faults()
    if name not in PROFILES:
        raise ValueError(f"profile must be one of: none, {', '.join(PROFILES)}")
    scale = payload.get("timeScale", 1.0)
    lost = payload.get("lostRepliesEvery", 0)
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise ValueError("timeScale must be a finite number more than 0")
    if isinstance(lost, bool) or not isinstance(lost, int) or lost < 0:
        raise ValueError("lostRepliesEvery must be a whole number, 0 or more")
    return Faults.field(float(scale), lost_replies_every=lost)


def _whole_at_least_0(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _rate(requests: Any, window: Any) -> bool:
    """Whether [requests, window] is a rate limit: 0 requests refuses every one."""
    number = isinstance(window, int | float) and not isinstance(window, bool)
    return _whole_at_least_0(requests) and number and 0 < window <= MAX_KNOB_SECONDS


def _limits_from_json(payload: Any) -> Limits:
    """{"preset": "iterable"|"unlimited"} and/or {"<field>": [max, seconds] | null}, and
    {"timeScale": K} to divide every window by K (after the fields are set)."""
    if not isinstance(payload, dict):
        raise ValueError("expected a JSON object")
    preset = payload.get("preset", "iterable")
    if preset not in ("iterable", "unlimited"):
        raise ValueError("preset must be iterable or unlimited")
    limits = Limits.unlimited() if preset == "unlimited" else Limits.iterable()
    for name, value in payload.items():
        if name in ("preset", "timeScale"):
            continue
        if not hasattr(limits, name):
            raise ValueError(f"unknown limit {name}")
        if name == "export_concurrent_jobs":
            if value is not None and not _whole_at_least_0(value):
                raise ValueError(
                    "limit export_concurrent_jobs must be a whole number, 0 or more, or null"
                )
            limits.export_concurrent_jobs = value
        elif value is None:
            setattr(limits, name, None)
        elif isinstance(value, list) and len(value) == 2 and _rate(value[0], value[1]):
            setattr(limits, name, (value[0], float(value[1])))
        else:
            # A window of -60 s or 0 let every request through, one of Infinity made the
            # 429's Retry-After a traceback, and -5 requests refused every one as 0 does.
            raise ValueError(
                f"limit {name} must be [max_requests, window_seconds] or null: max_requests "
                f"a whole number, 0 or more, and window_seconds more than 0, at most "
                f"{MAX_KNOB_SECONDS:,.0f}"
            )
    scale = payload.get("timeScale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise ValueError("timeScale must be a finite number more than 0")
    return limits.scaled(float(scale)) if scale != 1.0 else limits
