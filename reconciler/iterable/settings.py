"""Client tuning: timeouts, retries, batching and Iterable's published rate limits.

Defaults follow shared/iterable-api.md. Every value can be overridden from the environment
(`RECONCILER_<NAME>`, e.g. RECONCILER_MAX_RETRIES=3), which is how CI, tests and users with
raised limits tune the client without touching manifests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from reconciler.env_numbers import NumberRule, is_unset, read_number
from reconciler.errors import ConfigError, quoted

# The most a request body may hold: Iterable's "4 MB", which may be decimal (RudderStack
# holds bodies to 4,000,000 bytes), so 4,000,000 is under it however a MB is counted.
REQUEST_MAX_BYTES = 4_000_000
MEMBER_READS = ("auto", "getUsers", "export", "asyncExport", "windowedExport")
# What RECONCILER_LOG may ask for besides nothing: "requests", a line on stderr per HTTP
# request (method, path, status, time), for a run that failed or is slow.
LOG_CHOICES = ("requests",)
# The values each text setting may take (the others are numbers).
_CHOICES = {"member_reads": MEMBER_READS, "log": LOG_CHOICES}

# Days the export windows may cover: Iterable's profiles are from 2013 on, and a window
# that would start before year 1 cannot be written as a date (timedelta overflowed).
MAX_EXPORT_WINDOW_DAYS = 36_500
# The smallest pacing rate other than 0 (unpaced): one request in 1,000 windows. A rate
# of 1e-9 a minute made the pause before a second read longer than the operating system
# can wait (an internal OverflowError); a pause of days is no pacing anyone means.
MIN_RATE = 0.001
PACING_RATES = (
    "list_reads_per_minute",
    "lists_per_second",
    "writes_per_second",
    "bulk_updates_per_second",
    "get_fields_per_second",
    "exports_per_minute",
    "user_reads_per_second",
    "forgotten_reads_per_second",
    "campaigns_per_second",
    "export_jobs_per_second",
)


@dataclass(frozen=True)
class ClientSettings:
    timeout: float = 30.0  # seconds per request (connect, read, write each)
    # Seconds a request other than a bulk read may take in all, from its sending to its
    # answer's last byte: `timeout` is per read, so an answer trickling a byte every few
    # seconds never ran out of it (answer_bounds). Never less than `timeout`.
    request_time_limit: float = 300.0
    # Bulk reads (getUsers, user exports, export files) answer slowly: getUsers takes over
    # 5 minutes to start answering for lists above 200,000 users and 80+ minutes for a
    # million (Estuary's connector). Seconds such a read may go without a byte, its first
    # byte included; the other timeouts stay `timeout`.
    bulk_read_timeout: float = 1800.0
    # Bytes a bulk read must bring in each bulk_read_timeout from its first byte on, or be
    # cut and retried (answer_bounds): a byte every few minutes met no timeout. 1 MB in
    # 30 minutes is 22 members a second of getUsers, a tenth of its slowest reported pace
    # (Estuary: a million in 80+ minutes). 0: no floor.
    bulk_read_min_bytes: int = 1_000_000
    # Retries of a bulk read whose answer failed (a stream closed midway, a 5xx). Each one
    # takes a slot of the read's rate budget (getUsers: 5 a minute), so a list that keeps
    # failing is given up on sooner than a write, and left out of the plan.
    bulk_read_retries: int = 3
    # getUsers requests in flight at once: Iterable limits their starts (5 a minute), not
    # how many stream at a time.
    list_read_concurrency: int = 8
    # For choosing the read route (state/routes.py choose_member_read), all inferred: members
    # a second one getUsers streams (Estuary's connector: 80+ minutes for a million), rows a
    # second the user export streams (unpublished; taken as 10 times getUsers, since
    # clients move to it for big projects), seconds before either's first byte, and how
    # long Iterable lets an export connection stream before closing it (Airbyte's
    # connector cuts exports into windows for this; the length is unpublished): an export
    # modelled to take longer is not chosen.
    get_users_rate: float = 200.0
    export_rate: float = 2000.0
    bulk_read_first_byte: float = 2.0
    export_stream_limit: float = 1800.0
    # Divides Iterable's rate-limit windows (a minute, a second) and the read-route model's
    # durations, for benchmarks against the emulator's field profile at the same time
    # scale (bench/large_reads.py). Never set it against Iterable: 1.
    time_scale: float = 1.0
    # The asynchronous export (inferred, unpublished): seconds a job waits in Iterable's
    # queue, users a second it produces once running, and seconds between looks at its
    # files (1 request a second per organisation is the limit).
    export_job_queue: float = 30.0
    export_job_rate: float = 5000.0
    export_poll: float = 5.0
    # Seconds an export job may stay Enqueued or Running before it is given up on
    # (cancelled, and read as a failed job is). 6 hours: the route model's 5,000 users a
    # second read 100M users in 5.6 h, a job may queue behind the organisation's 4
    # running ones, and a GitHub-hosted runner ends a job at 6 h anyway; a job that is
    # alive but never ends (Iterable's queue stuck) otherwise held the plan for ever.
    export_job_wait: float = 21600.0
    # The synchronous export read in date windows (state/windows.py): windows read at once
    # (one minute's export budget), and the days the windows before the oldest cover
    # (profiles updated longer ago share the oldest window).
    export_windows_in_flight: int = 4
    export_window_days: float = 730.0
    max_retries: int = 6  # retries after the first attempt, for retryable failures only
    backoff_base: float = 0.5  # first backoff in seconds; doubles each retry, with full jitter
    backoff_cap: float = 30.0  # longest single backoff
    # Longest wait we accept from a Retry-After header, or take for a full window's slot
    # to free after a 429 without one.
    retry_after_cap: float = 120.0
    batch_size: int = 1000  # members per subscribe/unsubscribe request
    concurrency: int = 4  # concurrent write requests per destination
    # Rate limits, requests per window, per project (Iterable's documented figures).
    list_reads_per_minute: float = 5  # getUsers and lists/{id}/size share this budget
    lists_per_second: float = 100
    writes_per_second: float = 0  # subscribe/unsubscribe: none documented; 0 = unpaced
    bulk_updates_per_second: float = 5  # users/bulkUpdate
    get_fields_per_second: float = 3  # users/getFields
    exports_per_minute: float = 4  # export/data.json
    user_reads_per_second: float = 100  # users/{email} and users/byUserId/{userId}
    forgotten_reads_per_second: float = 3  # users/forgotten and users/forgottenUserIds
    campaigns_per_second: float = 100  # GET /api/campaigns
    export_jobs_per_second: float = 1  # export/start and export/{jobId}/files, per organisation
    # bulkUpdate bodies must stay under 4 MB (REQUEST_MAX_BYTES). Subscribe bodies
    # (members with their mapped fields) are held to the same limit.
    bulk_update_max_bytes: int = REQUEST_MAX_BYTES
    # A list refuses writes (400 invalidListId) for a while after its create; Iterable's own
    # API client retries that for 30 s. Writes to a list this run created are retried for
    # this many seconds after the create.
    fresh_list_wait: float = 60.0
    # Reads (the list index, getUsers, the export) lag writes by up to about a minute
    # (Iterable's docs; its own client's tests wait 60 s). After a create whose answer was
    # lost, the list index is watched this long before deciding the list was not created;
    # an apply that created lists waits up to this long for the index to show them before
    # it sends them members; and a plan waits until this long after the last apply to its
    # destination before it reads. 0 turns these waits off.
    read_lag: float = 60.0
    # Seconds apply's confirmation may wait for its answer before the plan it showed is
    # checked against Iterable again (a person away for an hour while another writer, or
    # a scheduled apply, changed the lists): read again as a saved plan's stale check is,
    # refused when a list changed, and who opted out meanwhile held back. 0: after any wait.
    confirm_wait: float = 300.0
    # How plans read list members: "getUsers" (one call per list, 5/minute, several in
    # flight), "export" (one user export for every list at once, 4/minute), "asyncExport"
    # (one export job), "windowedExport" (the user export in date windows) or "auto" (the
    # one that should finish first, from the lists' sizes: state/routes.py choose_member_read).
    member_reads: str = "auto"
    # RECONCILER_LOG: "" (nothing more than retries and long waits) or "requests" (also a
    # line per request sent, masked as every path in a message is).
    log: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClientSettings:
        env = os.environ if environ is None else environ
        overrides: dict[str, Any] = {}
        for f in fields(cls):
            variable = f"RECONCILER_{f.name.upper()}"
            raw = env.get(variable)
            if raw is None or is_unset(raw):
                continue
            if f.type == "str":
                choices = _CHOICES[f.name]
                chosen = raw.strip() if f.name == "log" else raw
                if chosen not in choices:
                    raise ConfigError(
                        f"{variable} must be {_one_of(f.name, choices)}; got {quoted(raw)}"
                    )
                overrides[f.name] = chosen
                continue
            value = read_number(raw, variable, _rule(f.name, f.type == "int"))
            _check_rate(f.name, value, raw)
            overrides[f.name] = value
        return replace(cls(), **overrides)


# The range of each setting beyond "0 to MAX_VALUE" (env_numbers), and the word for its unit.
_SECONDS = frozenset(
    {
        "timeout",
        "request_time_limit",
        "bulk_read_timeout",
        "bulk_read_first_byte",
        "export_stream_limit",
        "export_job_queue",
        "export_poll",
        "export_job_wait",
        "backoff_base",
        "backoff_cap",
        "retry_after_cap",
        "fresh_list_wait",
        "read_lag",
        "confirm_wait",
    }
)
# 0 would make every socket non-blocking (each request fails at once), or wait for ever.
_ABOVE_0 = frozenset({"timeout", "request_time_limit", "bulk_read_timeout", "export_job_wait"})
_AT_LEAST_1 = frozenset({"concurrency", "export_windows_in_flight", "list_read_concurrency"})
_RULES = {
    "batch_size": NumberRule(whole=True, least=1, most=1000),
    # Iterable's "4MB" may be decimal (RudderStack holds its bodies to 4,000,000 bytes): a
    # body between that and 4 MiB could be refused whole.
    "bulk_update_max_bytes": NumberRule(
        whole=True,
        least=1024,
        most=REQUEST_MAX_BYTES,
        note="Iterable's 4 MB, counted as decimal megabytes",
    ),
    "export_window_days": NumberRule(above=True, most=MAX_EXPORT_WINDOW_DAYS, unit="days"),
    # It divides every window, as a rate multiplies it: its least is a rate's (MIN_RATE).
    "time_scale": NumberRule(least=MIN_RATE),
}


def _one_of(name: str, choices: tuple[str, ...]) -> str:
    """What a text setting may be: 'one of a, b, c', or 'requests or empty' for the log,
    which is off (empty, or unset) by default."""
    if name == "log":
        return f"{' or '.join(choices)} or empty"
    return f"one of {', '.join(choices)}"


def _rule(name: str, whole: bool) -> NumberRule:
    if name in _RULES:
        return _RULES[name]
    return NumberRule(
        whole=whole,
        least=1 if name in _AT_LEAST_1 else 0,
        above=name in _ABOVE_0,
        unit="seconds" if name in _SECONDS else "",
    )


def _check_rate(name: str, value: float, raw: str) -> None:
    """Refuse a pacing rate too small for the waits it leads to, naming the variable,
    rather than fail mid-run with an OverflowError. 0 is "unpaced"."""
    if name in PACING_RATES and 0 < value < MIN_RATE:
        raise ConfigError(
            f"RECONCILER_{name.upper()} must be 0 or at least {MIN_RATE:g}; got {quoted(raw)}"
        )
