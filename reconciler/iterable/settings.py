"""Client tuning: timeouts, retries, batching and Iterable's published rate limits.

Defaults follow shared/iterable-api.md. Every value can be overridden from the environment
(`RECONCILER_<NAME>`, e.g. RECONCILER_MAX_RETRIES=3), which is how CI, tests and users with
raised limits tune the client without touching manifests.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace
from typing import Any

from reconciler.errors import ConfigError

MEMBER_READS = ("auto", "getUsers", "export")


@dataclass(frozen=True)
class ClientSettings:
    timeout: float = 30.0  # seconds per request (connect, read, write each)
    max_retries: int = 6  # retries after the first attempt, for retryable failures only
    backoff_base: float = 0.5  # first backoff in seconds; doubles each retry, with full jitter
    backoff_cap: float = 30.0  # longest single backoff
    retry_after_cap: float = 120.0  # longest wait we accept from a Retry-After header
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
    # bulkUpdate bodies must stay under 4 MB; 4,000,000 is under it however a MB is counted.
    # Subscribe bodies (members with their mapped fields) are held to the same limit.
    bulk_update_max_bytes: int = 4_000_000
    # A list refuses writes (400 invalidListId) for a while after its create; Iterable's own
    # API client retries that for 30 s. Writes to a list this run created are retried for
    # this many seconds after the create.
    fresh_list_wait: float = 60.0
    # Reads (the list index, getUsers, the export) lag writes by up to about a minute
    # (Iterable's docs; its own client's tests wait 60 s). After a create whose answer was
    # lost, the list index is watched this long before deciding the list was not created;
    # and a plan waits until this long after the last apply to its destination before it
    # reads. 0 turns both off.
    read_lag: float = 60.0
    # How plans read list members: "getUsers" (one call per list, 5/minute), "export" (one
    # user export for every list at once, 4/minute) or "auto" (the one with fewer waits).
    member_reads: str = "auto"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ClientSettings:
        env = os.environ if environ is None else environ
        overrides: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"RECONCILER_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            if f.type == "str":
                if raw not in MEMBER_READS:
                    raise ConfigError(
                        f"RECONCILER_{f.name.upper()} must be one of {', '.join(MEMBER_READS)}; "
                        f"got {raw!r}"
                    )
                overrides[f.name] = raw
                continue
            try:
                value = int(raw) if f.type == "int" else float(raw)
            except ValueError:
                raise ConfigError(
                    f"RECONCILER_{f.name.upper()} must be a number; got {raw!r}"
                ) from None
            if not math.isfinite(value) or value < 0:
                raise ConfigError(
                    f"RECONCILER_{f.name.upper()} must be a finite number, not negative; "
                    f"got {raw!r}"
                )
            overrides[f.name] = value
        settings = replace(cls(), **overrides)
        if settings.batch_size < 1 or settings.batch_size > 1000:
            raise ConfigError("RECONCILER_BATCH_SIZE must be between 1 and 1000")
        if settings.timeout <= 0:
            # 0 would make every socket non-blocking: each request fails at once.
            raise ConfigError("RECONCILER_TIMEOUT must be more than 0 seconds")
        if settings.concurrency < 1:
            raise ConfigError("RECONCILER_CONCURRENCY must be at least 1")
        if not 1024 <= settings.bulk_update_max_bytes <= 4 * 1024 * 1024:
            raise ConfigError("RECONCILER_BULK_UPDATE_MAX_BYTES must be between 1024 and 4194304")
        return settings
