"""The emulator's knobs: Iterable's rate limits (`Limits`) and injected faults (`Faults`),
plus the small counters that enforce them against an injectable clock."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from dataclasses import field as dataclass_field
from typing import Any

# (max_requests, window_seconds); None means unlimited.
Rate = tuple[int, float] | None


@dataclass
class Limits:
    """Per-project sliding-window rate limits, one per group of endpoints.

    The defaults are Iterable's documented limits (OpenAPI descriptions, "Rate limit").
    """

    list_reads: Rate = (5, 60.0)
    """getUsers and lists/{id}/size share one budget: 5 requests per minute."""
    export: Rate = (4, 60.0)
    """export/data.json: 4 requests per minute."""
    bulk_update: Rate = (5, 1.0)
    """users/bulkUpdate: 5 requests per second."""
    get_fields: Rate = (3, 1.0)
    """users/getFields: 3 requests per second."""
    lists: Rate = (100, 1.0)
    """GET/POST /lists and DELETE /lists/{id}: 100 requests per second."""
    user_reads: Rate = (100, 1.0)
    """users/{email} and users/byUserId/{userId}: 100 requests per second."""
    user_update: Rate = (500, 1.0)
    """users/update: 500 requests per second."""
    forgotten: Rate = (3, 1.0)
    """users/forgotten and users/forgottenUserIds: 3 requests per second."""
    campaigns: Rate = (100, 1.0)
    """GET /api/campaigns: 100 requests per second."""
    writes: Rate = None
    """lists/subscribe and lists/unsubscribe: Iterable documents no limit."""
    export_start: Rate = (1, 1.0)
    """export/start: 1 request per second, per organisation (every project of the emulator)."""
    export_files: Rate = (1, 1.0)
    """export/{jobId}/files: 1 request per second, per organisation."""
    export_cancel: Rate = (1, 1.0)
    """DELETE export/{jobId}: 1 request per second, per project."""
    export_jobs: Rate = None
    """GET export/jobs: Iterable documents no limit."""
    export_concurrent_jobs: int | None = 4
    """Unfinished (enqueued or running) export jobs per organisation: "Up to 4 exports
    process at a time". Beyond it: Faults.export_excess_jobs."""

    @classmethod
    def iterable(cls) -> Limits:
        """Iterable's documented limits (the default)."""
        return cls()

    @classmethod
    def unlimited(cls) -> Limits:
        """No rate limits at all, for tests that are not about them."""
        return cls(**{f.name: None for f in fields(cls)})

    def scaled(self, time_scale: float) -> Limits:
        """These limits with every window divided by `time_scale` K (5 per minute becomes 5
        per 60/K seconds), so a benchmark at time scale K keeps the shape of a run that
        waits on them; how many jobs may run at once is not a duration and stays."""
        _check_time_scale(time_scale)
        values: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, tuple):
                value = (value[0], value[1] / time_scale)
            values[item.name] = value
        return Limits(**values)


@dataclass
class Faults:
    """Faults to inject; mutable while the emulator runs.

    A fault is decided before the request is handled, so a faulted request changes nothing,
    except `drop_every`, which applies the write and then loses the answer: the client
    cannot know it succeeded, which is the case retries must survive.
    """

    fail_every: int = 0
    """Every k-th counted request answers `fail_status` (0 = never)."""
    fail_status: int = 503
    script: list[int] = field(default_factory=list)
    """A queue: the next counted requests answer these statuses in order."""
    latency_seconds: float = 0.0
    """Added before each counted answer is sent."""
    latency_every: int = 0
    """With `latency_seconds`: only every k-th counted request is slow (0 = every one)."""
    drop_every: int = 0
    """Every k-th counted request is handled, then its response is cut off mid-body."""
    bad_body_every: int = 0
    """Every k-th counted request is handled, then answered 200 with a body that is not the
    one asked for (`bad_body`): the write took effect, the answer cannot say so."""
    bad_body: str = "html"
    """What `bad_body_every` answers: "html" (a page, as a captive portal or a misrouted
    proxy sends), "truncated" (the first half of a JSON body, with a Content-Length that
    matches, so only parsing can notice; other answers are left whole) or "empty" (no body)."""
    write_rate_per_second: float | None = None
    """subscribe/unsubscribe/bulkUpdate beyond this rate (per project) answer 429."""
    retry_after: bool = False
    """Send Retry-After on 429s (Iterable does not document the header)."""
    paths: list[str] | None = None
    """Only paths starting with one of these count for faults; None = every /api/ path."""
    fresh_list_rejects: int = 0
    """A list created through the API answers 400 invalidListId to its first N
    subscribe/unsubscribe requests, as Iterable does for a few seconds after a create."""
    echo_api_key: bool = False
    """Answers quote the request's Api-Key back, as a server that echoes its input might:
    every JSON error's `msg`, and every bulk answer (subscribe, unsubscribe, bulkUpdate) as
    a failed identifier and a filtered-out field. For testing that no such text is shown."""
    fail_message: str | None = None
    """The `msg` of an injected failure's JSON error (`fail_every`, `script`,
    `failing_list_ids`; not 429, 502, 503 or 504, which have their own bodies) instead of
    "Injected failure (HTTP N)": text an answer may quote back from input anyone with the
    project writes, for testing that output shows it on one line."""
    echo_request: bool = False
    """A fault's error answer (`fail_every`, `script`) quotes the request's method, path
    and body back in its `msg`, members and field values included, as a server that echoes
    its input might.
    For testing that output masks what such text quotes."""
    fresh_list_seconds: float = 0.0
    """A list created through the API answers 400 invalidListId to subscribe/unsubscribe
    for this many seconds after its create (the emulator's clock); with
    `fresh_list_rejects`, a request must pass both."""
    absent_channel_unsubscribe_is_true: bool = False
    """An unsubscribe without `channelUnsubscribe` also unsubscribes the user from the
    list's channel (`unsubscribedChannelIds`), as production clients say Iterable does,
    though the OpenAPI documents false as the default."""
    clock_offset_seconds: float = 0.0
    """Iterable's clock runs this far from the machine's (negative: behind it): the times
    it stamps (profileUpdatedAt, signupDate, an event's createdAt, a list's createdAt), the
    export's startDateTime/endDateTime measured against them, and every answer's `Date`
    header. For testing that reconciler plans its export windows by Iterable's clock."""
    read_lag_seconds: float = 0.0
    """GET /api/lists, getUsers, lists/{id}/size and the user export show the project as
    it was this many seconds ago: lists created since are missing, lists deleted since
    still there, memberships and users added or removed since undone. Profile fields and
    single-user lookups are not lagged."""

    @classmethod
    def field(cls, time_scale: float = 1.0, *, lost_replies_every: int = 0) -> Faults:
        """The `field` profile: what production clients of Iterable meet, at realistic
        values (README, "The emulator's field profile", gives the evidence for each).

        `time_scale` K divides every modelled duration by K, so a test suite sees the same
        behaviour in a K-th of the time. `lost_replies_every` k loses the answer to every
        k-th request after its work is done (`drop_every`); off unless asked for.
        """
        _check_time_scale(time_scale)
        return cls(
            fresh_list_seconds=FIELD_FRESH_LIST_SECONDS / time_scale,
            absent_channel_unsubscribe_is_true=True,
            read_lag_seconds=FIELD_READ_LAG_SECONDS / time_scale,
            drop_every=lost_replies_every,
            # Answers recorded from Iterable carry only the counts (grouparoo's fixtures);
            # failedUpdates is optional in Iterable's own client's schema.
            counts_only_answers=True,
            type_mismatch_rejects_request=True,
            unknown_user_id_answer="error",
            list_description_max=FIELD_LIST_DESCRIPTION_MAX,
            phone_number_e164_only=True,
            get_users_first_byte_seconds=FIELD_GET_USERS_FIRST_BYTE_SECONDS / time_scale,
            get_users_members_per_second=FIELD_GET_USERS_MEMBERS_PER_SECOND * time_scale,
            export_first_byte_seconds=FIELD_EXPORT_FIRST_BYTE_SECONDS / time_scale,
            export_members_per_second=FIELD_EXPORT_MEMBERS_PER_SECOND * time_scale,
            export_stream_seconds=FIELD_EXPORT_STREAM_SECONDS / time_scale,
            export_job_queue_seconds=FIELD_EXPORT_JOB_QUEUE_SECONDS / time_scale,
            export_job_members_per_second=FIELD_EXPORT_JOB_MEMBERS_PER_SECOND * time_scale,
            export_link_seconds=FIELD_EXPORT_LINK_SECONDS / time_scale,
            export_job_state_case="lower",
        )

    # -- Field behaviour the tool must be right under (issue 16, points 4-8 and 10) ------
    # (Forgotten users are project state, not a knob: Project.forget or POST
    # /_emulator/forget. An empty 200 to a member read is bad_body "empty" with paths
    # ["/api/lists/getUsers"].)
    counts_only_answers: bool = False
    """Bulk answers (subscribe, unsubscribe, bulkUpdate) carry only successCount, failCount
    and the deprecated top-level invalidEmails/invalidUserIds, without failedUpdates, as
    answers recorded from Iterable do (grouparoo's fixtures): other failures are counted,
    not named."""
    type_mismatch_rejects_request: bool = False
    """A subscribe or bulkUpdate in which any user's value has another type than its field
    answers 400 RequestFieldsTypesMismatched, naming the fields in
    params.validationErrors, and changes nothing, as production clients see Iterable do
    (block/iterable-go resends such a batch user by user). Off: only those users fail,
    as invalidData."""
    unknown_user_id_answer: str = "empty"
    """GET users/byUserId of a userId no profile has: "empty" answers 200 {} (as by email,
    Iterable's own client's tests), "blank" 200 {"user": {"email": "", "userId": ""}} and
    "error" 500 {"code": "error.users.noUserWithIdExists"}: the two answers Block's
    production client (block/iterable-go, api/users_test.go) takes for "not found"."""
    list_description_max: int | None = None
    """POST /api/lists with a description longer than this answers 400 BadParams; None:
    any length."""
    phone_number_e164_only: bool = False
    """A user update, subscribe or bulkUpdate whose phoneNumber is not E.164 text
    (+16503926753) succeeds without saving it (the profile keeps what it had; the other
    fields are written), as Iterable keeps phoneNumber only "in the proper format and
    include a country code" (its SMS overview) and does not show another form (Segment's
    Iterable docs). null still clears it. Off: any value is stored."""

    # -- Read speed and read failures (issue 18, point 1) ---------------------------------
    # Durations are as the emulator applies them: Faults.field divides its figures by the
    # time scale; a test setting one knob sets the value it wants directly. Paced answers
    # are sent with chunked encoding as they are produced, so a client sees the bytes
    # arrive at the modelled rate and can tell a stream cut short from a complete one.
    get_users_first_byte_seconds: float = 0.0
    """getUsers: how long before the answer's first byte (its status line)."""
    get_users_members_per_second: float | None = None
    """getUsers: members (lines) sent per second once the answer starts; None: at once."""
    export_first_byte_seconds: float = 0.0
    """export/data.json: how long before the answer's first byte."""
    export_members_per_second: float | None = None
    """export/data.json: rows (users) sent per second; None: at once."""
    get_users_stream_seconds: float | None = None
    """getUsers: the connection is closed this long after the request (modelled from the
    two knobs above, so the cut falls after the same member however loaded the machine):
    the members due later are never sent, the last line is cut in half and the chunked
    body never ends. None: never."""
    export_stream_seconds: float | None = None
    """export/data.json: the same, for the synchronous export."""
    events_stream_lines: float | None = None
    """export/data.json of events (emailUnSubscribe): an answer of more events than this
    dies after this many (Iterable closes long export connections: a project with very
    many unsubscribes); None: never."""
    streams_to_cut: int = 0
    """A countdown: the next N getUsers or export/data.json answers that would have gone
    out whole die after half their members (then answers are whole again): a stream that
    dies midway once, for testing that a retry recovers."""
    # (`field` is the profile's classmethod by here.)
    failing_list_ids: list[int] = dataclass_field(default_factory=list)
    """getUsers and lists/{id}/size of these lists answer `failing_list_status`, every
    time, as production clients saw some lists do."""
    failing_list_status: int = 500
    list_name_rewrites: list[str] = dataclass_field(default_factory=list)
    """How POST /api/lists keeps a list's name, each named rewrite applied: "trim" (spaces
    at its ends dropped) and "nfc" (accents composed, Unicode NFC); the index and every
    read then show that name. Iterable does not publish whether it rewrites a name: for
    testing a client that would not find its own list again by the name it sent."""
    get_users_rewrites: list[str] = dataclass_field(default_factory=list)
    """getUsers answers rewritten as a proxy or CDN between the client and Iterable may
    rewrite a text body, each named one applied: "bom" (a UTF-8 byte-order mark first),
    "crlf" (every other line ending in \\r\\n, the rest in \\n), "cr" (every third line
    ending in a bare \\r) and "blank_lines" (an empty line and lines of spaces and tabs
    between the members). Not an Iterable behaviour: for testing that both member engines
    read such an answer alike."""

    # -- The asynchronous export (export/start, export/{jobId}/files) ---------------------
    # A job's timeline is fixed from these when it starts (on the emulator's clock).
    export_job_queue_seconds: float = 0.0
    """A job stays Enqueued this long before it runs (and again after a restart)."""
    export_job_members_per_second: float | None = None
    """A running job produces rows (users) at this rate; None: all at once."""
    export_file_bytes: int = 10 * 1024 * 1024
    """A file holds at most this many bytes of whole rows ("Each file is up to 10MB")."""
    export_max_bytes: int = 100 * 1000**3
    """A job stops at this size and reports exportTruncated ("limited to 100GB")."""
    export_files_per_page: int = 10
    """export/{jobId}/files lists at most this many files; startAfter pages on (10, as
    Estuary's connector pages)."""
    export_link_seconds: float = 30 * 60.0
    """A file link works this long after the files call that gave it ("Expires after 30
    minutes"); later it answers 403 "Request has expired", as S3 does."""
    export_jobs_to_restart: int = 0
    """A countdown: the next N jobs started go back to Enqueued once, at half way ("a job
    status may change from running to enqueued because it had to restart")."""
    export_restart_resets_files: bool = False
    """On a restart the job starts over: its files list empties and is produced again under
    new names. Off: it "maintains progress and begins where it previously stopped"."""
    export_jobs_to_fail: int = 0
    """A countdown: the next N jobs started end Failed at half way."""
    export_job_state_case: str = "spec"
    """"spec": jobState as the OpenAPI spells it (Running); "lower": as Iterable's own
    client says the API answers (running)."""
    export_words: str | None = None
    """Text Iterable's answers about a job carry after each file's name and after the
    jobState of a job not yet finished (Enqueued, Running): both are Iterable's words, which
    a client prints as a job goes on; for testing that it prints them as untrusted text."""
    export_excess_jobs: str = "reject"
    """A start beyond Limits.export_concurrent_jobs: "reject" answers 429, "queue" accepts
    it and keeps it Enqueued until a job ends (the OpenAPI: "Additional requests are
    queued")."""

    def get_users_seconds(self, members: int) -> float:
        """How long one whole getUsers of `members` takes under these knobs (for a
        benchmark's modelled floor); the stream cut is not considered."""
        rate = self.get_users_members_per_second
        return self.get_users_first_byte_seconds + (members / rate if rate else 0.0)

    def export_seconds(self, rows: int) -> float:
        """How long one whole export/data.json of `rows` users takes."""
        rate = self.export_members_per_second
        return self.export_first_byte_seconds + (rows / rate if rate else 0.0)

    def export_job_seconds(self, rows: int) -> float:
        """From export/start until a job of `rows` users is Completed (no restart)."""
        rate = self.export_job_members_per_second
        return self.export_job_queue_seconds + (rows / rate if rate else 0.0)

    def update(self, values: dict[str, Any]) -> None:
        """Set fields from a JSON object (the control endpoint); unknown names are an error."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            noun = "setting" if len(unknown) == 1 else "settings"
            raise ValueError(f"unknown fault {noun}: {', '.join(unknown)}")
        for name, value in values.items():
            _check_fault_value(name, value)
            setattr(self, name, list(value) if isinstance(value, list) else value)

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# Iterable's support article 115000770906: "The list description field has a max
# character count of 140". What the API does beyond it is not published; refusing the
# create is the answer a client cannot miss.
FIELD_LIST_DESCRIPTION_MAX = 140
# Iterable's own API client retries invalidListId after a create for up to 30 s.
FIELD_FRESH_LIST_SECONDS = 30.0
# Iterable's own API client's tests wait up to 60 s for list membership to show.
FIELD_READ_LAG_SECONDS = 60.0
# Estuary's source-iterable-native (README, api.py, PRs 3830/3837/4349) raised its getUsers
# timeout because lists over 200,000 users take more than 5 minutes to answer, and saw 80+
# minutes for lists of a million. 200 members/s is 83 minutes for 1M and 17 minutes for
# 200,000: the same shape, on the slow side of both reports.
FIELD_GET_USERS_MEMBERS_PER_SECOND = 200.0
# Nobody publishes a time to first byte; a few seconds (inferred) keeps a client from
# taking a slow start for a dead server, and makes many small lists cost more than their
# members alone.
FIELD_GET_USERS_FIRST_BYTE_SECONDS = 2.0
# The synchronous user export streams one JSON object per user; nobody publishes its rate.
# Inferred at 10x getUsers (2,000 users/s): clients move to it for big projects.
FIELD_EXPORT_FIRST_BYTE_SECONDS = 2.0
FIELD_EXPORT_MEMBERS_PER_SECOND = 2000.0
# Airbyte's source-iterable cuts exports into date windows because Iterable closes long
# export connections; the length is not published. Inferred: 30 minutes (3.6M users at the
# rate above), while Estuary's 80-minute getUsers answers show getUsers is not cut so.
FIELD_EXPORT_STREAM_SECONDS = 30 * 60.0
# The asynchronous export: nobody publishes its speed. Inferred: 30 s in the queue and
# 5,000 users/s once running (a 1M-user job in under 4 minutes, faster than the synchronous
# export it replaces for large projects). Links expire after 30 minutes (the OpenAPI).
FIELD_EXPORT_JOB_QUEUE_SECONDS = 30.0
FIELD_EXPORT_JOB_MEMBERS_PER_SECOND = 5000.0
FIELD_EXPORT_LINK_SECONDS = 30 * 60.0
PROFILES = ("field",)


def _check_time_scale(time_scale: Any) -> None:
    # Infinity made every duration 0 and every window none: no limits, said as a scale.
    if not (_number(time_scale) and time_scale > 0):
        raise ValueError(f"time scale must be a finite number more than 0; got {time_scale!r}")


def _whole(value: Any) -> bool:
    # bool is an int to Python, but `true` is no count in JSON.
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    # Infinity is no count, rate or duration: `latency_seconds=Infinity` made every answer
    # a traceback (no sleep that long), where None is what turns a knob off.
    return _whole(value) or (isinstance(value, float) and math.isfinite(value))


# The longest duration a knob takes: a year is past any test, and far below where waiting
# or dating by it overflows (time.sleep refuses 1e10 seconds; datetime ends at 9999).
MAX_KNOB_SECONDS = 366 * 24 * 3600.0


@dataclass(frozen=True)
class _Check:
    """A test of a fault setting's value, and what it takes in words, for the refusal:
    `invalid value for fault setting export_file_bytes: 0` did not say what would do."""

    test: Callable[[Any], bool]
    takes: str

    def __call__(self, value: Any) -> bool:
        return self.test(value)


def _seconds(check: _Check, takes: str) -> _Check:
    """`check`, for a duration: also at most MAX_KNOB_SECONDS either way (None passes)."""
    return _Check(
        lambda value: check(value) and (value is None or abs(value) <= MAX_KNOB_SECONDS),
        takes.format(most=f"{MAX_KNOB_SECONDS:,.0f}"),
    )


def _whole_at_least_0(value: Any) -> bool:
    return _whole(value) and value >= 0


_WHOLE_AT_LEAST_0 = _Check(_whole_at_least_0, "a whole number, 0 or more")
_WHOLE_ABOVE_0 = _Check(lambda value: _whole(value) and value > 0, "a whole number, 1 or more")
_NUMBER_AT_LEAST_0 = _Check(lambda value: _number(value) and value >= 0, "a number, 0 or more")
_NUMBER_ABOVE_0 = _Check(lambda value: _number(value) and value > 0, "a number more than 0")
# An offset either way from the machine's clock; NaN or infinity would stamp no time.
_FINITE_NUMBER = _Check(_number, "a number")
_OFF_OR_NUMBER_ABOVE_0 = _Check(
    lambda value: value is None or _NUMBER_ABOVE_0(value), "null (off) or a number more than 0"
)
_FLAG = _Check(lambda value: isinstance(value, bool), "true or false")
_OFF_OR_TEXT = _Check(lambda value: value is None or isinstance(value, str), "null or a string")
_HTTP_ERROR_STATUS = _Check(
    lambda value: _whole(value) and 400 <= value <= 599, "an HTTP error status, 400 to 599"
)


def _one_of(*choices: str) -> _Check:
    return _Check(lambda value: value in choices, f"one of {', '.join(choices)}")


def _list_of(item: _Check) -> _Check:
    return _Check(
        lambda value: isinstance(value, list) and all(item(v) for v in value),
        f"a list, each {item.takes}",
    )


BAD_BODIES = ("html", "truncated", "empty")
GET_USERS_REWRITES = ("bom", "crlf", "cr", "blank_lines")
LIST_NAME_REWRITES = ("trim", "nfc")


def _checks(check: _Check, *names: str) -> dict[str, _Check]:
    return dict.fromkeys(names, check)


# What each fault setting takes (Faults.update refuses any other value). A setting missing
# here takes no value.
_FAULT_CHECKS: dict[str, _Check] = {
    **_checks(
        _WHOLE_AT_LEAST_0,
        "fail_every",
        "fail_status",
        "drop_every",
        "fresh_list_rejects",
        "latency_every",
        "bad_body_every",
        "streams_to_cut",
        "export_jobs_to_restart",
        "export_jobs_to_fail",
    ),
    **_checks(_WHOLE_ABOVE_0, "export_file_bytes", "export_max_bytes", "export_files_per_page"),
    **_checks(
        _seconds(_NUMBER_AT_LEAST_0, "a number of seconds, 0 to {most}"),
        "latency_seconds",
        "fresh_list_seconds",
        "read_lag_seconds",
        "get_users_first_byte_seconds",
        "export_first_byte_seconds",
        "export_job_queue_seconds",
    ),
    "export_link_seconds": _seconds(
        _NUMBER_ABOVE_0, "a number of seconds more than 0, at most {most}"
    ),
    "clock_offset_seconds": _seconds(
        _FINITE_NUMBER, "a number of seconds, -{most} (behind) to {most}"
    ),
    **_checks(
        _seconds(
            _OFF_OR_NUMBER_ABOVE_0, "null (off) or a number of seconds more than 0, at most {most}"
        ),
        "get_users_stream_seconds",
        "export_stream_seconds",
    ),
    **_checks(
        _OFF_OR_NUMBER_ABOVE_0,
        "list_description_max",
        "write_rate_per_second",
        "get_users_members_per_second",
        "export_members_per_second",
        "export_job_members_per_second",
        "events_stream_lines",
    ),
    **_checks(
        _FLAG,
        "retry_after",
        "echo_api_key",
        "echo_request",
        "absent_channel_unsubscribe_is_true",
        "counts_only_answers",
        "type_mismatch_rejects_request",
        "phone_number_e164_only",
        "export_restart_resets_files",
    ),
    "export_job_state_case": _one_of("spec", "lower"),
    "export_excess_jobs": _one_of("reject", "queue"),
    "unknown_user_id_answer": _one_of("empty", "blank", "error"),
    "bad_body": _one_of(*BAD_BODIES),
    "get_users_rewrites": _list_of(_one_of(*GET_USERS_REWRITES)),
    "list_name_rewrites": _list_of(_one_of(*LIST_NAME_REWRITES)),
    "failing_list_ids": _list_of(_Check(_whole, "a whole number")),
    "failing_list_status": _HTTP_ERROR_STATUS,
    "fail_message": _OFF_OR_TEXT,
    "export_words": _OFF_OR_TEXT,
    "script": _list_of(
        _Check(lambda v: _whole(v) and 100 <= v <= 599, "an HTTP status, 100 to 599")
    ),
    "paths": _Check(
        lambda value: value is None or _list_of(_Check(lambda v: isinstance(v, str), ""))(value),
        "null (every path) or a list of paths",
    ),
}


def _check_fault_value(name: str, value: Any) -> None:
    check = _FAULT_CHECKS.get(name)
    if check is None or not check(value):
        takes = f" (it takes {check.takes})" if check is not None else " (it takes no value)"
        raise ValueError(f"invalid value for fault setting {name}: {value!r}{takes}")


class SlidingWindow:
    """At most `max_requests` in any `window` seconds; rejected requests do not count."""

    def __init__(self) -> None:
        self._hits: deque[float] = deque()

    def acquire(self, now: float, rate: tuple[int, float]) -> float | None:
        """Record a request at `now`; None when allowed, else seconds until a slot frees."""
        max_requests, window = rate
        while self._hits and self._hits[0] <= now - window:
            self._hits.popleft()
        if len(self._hits) < max_requests:
            self._hits.append(now)
            return None
        if max_requests <= 0:
            return window
        # The slot frees when the oldest request inside the window leaves it.
        return self._hits[-max_requests] + window - now


class TokenBucket:
    """A steady rate with a burst of about one second's worth."""

    def __init__(self) -> None:
        self._tokens: float | None = None
        self._last = 0.0

    def acquire(self, now: float, rate: float) -> float | None:
        capacity = max(1.0, rate)
        if self._tokens is None:
            self._tokens = capacity
        else:
            self._tokens = min(capacity, self._tokens + (now - self._last) * rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / rate


def retry_after_seconds(wait: float) -> int:
    """Whole seconds until the client may retry, never 0 (0 invites a hot loop)."""
    return max(1, math.ceil(wait))
