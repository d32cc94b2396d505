"""The only code that knows Iterable's URLs.

Layers, inside out: `_send` (one HTTP exchange, judged on status), `_request` (pacing per
rate-limit bucket, retries with backoff and jitter, Retry-After), and the endpoint methods.
The API key lives in the httpx client's default headers and nowhere else: no exception,
log line or repr built here includes request headers.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from reconciler.errors import AuthError, IterableError, ListInUseError, RetryExhaustedError
from reconciler.iterable.ratelimit import SlidingWindow
from reconciler.iterable.results import BatchResult, parse_bulk_response
from reconciler.iterable.settings import ClientSettings

REGION_URLS = {"us": "https://api.iterable.com", "eu": "https://api.eu.iterable.com"}
RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class ListInfo:
    id: int
    name: str
    description: str | None
    list_type: str
    created_at: int | None


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0  # 429s received
    writes: int = 0  # requests that change state in Iterable


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(reason)


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
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Api-Key": api_key, "User-Agent": "reconciler"},
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=self.settings.concurrency + 2),
        )
        s = self.settings
        self._buckets = {
            "list_reads": SlidingWindow(s.list_reads_per_minute, 60.0, clock, sleep),
            "lists": SlidingWindow(s.lists_per_second, 1.0, clock, sleep),
            "writes": SlidingWindow(s.writes_per_second, 1.0, clock, sleep),
            "none": SlidingWindow(0, 1.0, clock, sleep),
        }
        self.stats = ClientStats()

    def __repr__(self) -> str:  # never show the key
        return f"IterableClient({self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> IterableClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def rate_limit_wait_seconds(self) -> float:
        return sum(b.waited for b in self._buckets.values())

    # -- lists ---------------------------------------------------------------------------

    def get_lists(self) -> list[ListInfo]:
        body = self._json("GET", "/api/lists", bucket="lists")
        lists = body.get("lists") if isinstance(body, dict) else None
        if not isinstance(lists, list):
            raise IterableError("GET /api/lists: response has no 'lists' array")
        out = []
        for item in lists:
            out.append(
                ListInfo(
                    id=int(item["id"]),
                    name=str(item["name"]),
                    description=item.get("description"),
                    list_type=str(item.get("listType", "Standard")),
                    created_at=item.get("createdAt"),
                )
            )
        return out

    def create_list(self, name: str, description: str | None = None) -> int:
        payload: dict[str, Any] = {"name": name}
        if description:
            payload["description"] = description
        try:
            body = self._json("POST", "/api/lists", bucket="lists", json=payload, idempotent=False)
        except _CreateUncertain:
            # The request may have reached Iterable before the connection failed. Creating
            # again could leave two lists with one name, so look before retrying.
            existing = [x for x in self.get_lists() if x.name == name]
            if len(existing) == 1:
                return existing[0].id
            body = self._json("POST", "/api/lists", bucket="lists", json=payload)
        list_id = body.get("listId") if isinstance(body, dict) else None
        if not isinstance(list_id, int):
            raise IterableError("POST /api/lists: response has no listId")
        return list_id

    def delete_list(self, list_id: int) -> None:
        self._json("DELETE", f"/api/lists/{list_id}", bucket="lists")

    def iter_list_members(self, list_id: int, prefer_user_id: bool) -> Iterator[str]:
        """Stream getUsers: one identifier per line. The body can be millions of lines."""
        params = {"listId": str(list_id), "preferUserId": "true" if prefer_user_id else "false"}
        lines: list[str] = []

        def consume(response: httpx.Response) -> None:
            lines.clear()
            pending = ""
            for chunk in response.iter_text():
                pending += chunk
                *complete, pending = pending.split("\n")
                lines.extend(x.strip() for x in complete if x.strip())
            if pending.strip():
                lines.append(pending.strip())

        self._request(
            "GET",
            "/api/lists/getUsers",
            bucket="list_reads",
            params=params,
            stream_consumer=consume,
        )
        yield from lines

    # -- membership writes ---------------------------------------------------------------

    def subscribe(
        self,
        list_id: int,
        subscribers: list[dict[str, Any]],
        *,
        update_existing_users_only: bool = False,
        list_just_created: bool = False,
    ) -> BatchResult:
        payload: dict[str, Any] = {"listId": list_id, "subscribers": subscribers}
        if update_existing_users_only:
            payload["updateExistingUsersOnly"] = True
        attempts = 4 if list_just_created else 1
        for attempt in range(attempts):
            try:
                return self._bulk("/api/lists/subscribe", payload, len(subscribers))
            except IterableError as exc:
                # A list created seconds ago can briefly reject subscribes as invalidListId.
                fresh = exc.status == 400 and "invalidListId" in str(exc)
                if not fresh or attempt == attempts - 1:
                    raise
                self._sleep(self._backoff(attempt + 1))
        raise AssertionError("unreachable")

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
        # Sent only when true: consent is lost, so it never goes out by default.
        if channel_unsubscribe:
            payload["channelUnsubscribe"] = True
        return self._bulk("/api/lists/unsubscribe", payload, len(subscribers))

    def _bulk(self, path: str, payload: dict[str, Any], count: int) -> BatchResult:
        body = self._json("POST", path, bucket="writes", json=payload)
        if not isinstance(body, dict):
            raise IterableError(f"POST {path}: response is not a JSON object", endpoint=path)
        success, failed = parse_bulk_response(body)
        return BatchResult(sent=count, success_count=success, failed=failed, requests=1)

    # -- transport -----------------------------------------------------------------------

    def _json(
        self, method: str, path: str, *, bucket: str, idempotent: bool = True, **kwargs: Any
    ) -> Any:
        response_text = self._request(method, path, bucket=bucket, idempotent=idempotent, **kwargs)
        try:
            return json.loads(response_text) if response_text else {}
        except json.JSONDecodeError:
            raise IterableError(
                f"{method} {path}: Iterable answered with a body that is not JSON",
                endpoint=path,
            ) from None

    def _request(
        self,
        method: str,
        path: str,
        *,
        bucket: str,
        idempotent: bool = True,
        stream_consumer: Callable[[httpx.Response], None] | None = None,
        **kwargs: Any,
    ) -> str:
        limiter = self._buckets[bucket]
        attempt = 0
        while True:
            limiter.acquire()
            try:
                return self._send_once(method, path, stream_consumer, **kwargs)
            except _Retryable as exc:
                if (
                    not idempotent
                    and exc.retry_after is None
                    and exc.reason.startswith("connection")
                ):
                    raise _CreateUncertain(exc.reason) from None
                if attempt >= self.settings.max_retries:
                    raise RetryExhaustedError(
                        f"{method} {path}: gave up after {attempt + 1} attempts; "
                        f"last failure: {exc.reason}",
                        endpoint=path,
                    ) from None
                attempt += 1
                self.stats.retries += 1
                if exc.retry_after is not None:
                    wait = min(exc.retry_after, self.settings.retry_after_cap)
                    limiter.push_back(wait)
                else:
                    wait = self._backoff(attempt)
                self._sleep(wait)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.settings.backoff_cap, self.settings.backoff_base * 2 ** (attempt - 1))
        return self._rng.uniform(ceiling / 2, ceiling)

    def _send_once(
        self,
        method: str,
        path: str,
        stream_consumer: Callable[[httpx.Response], None] | None,
        **kwargs: Any,
    ) -> str:
        self.stats.requests += 1
        if method != "GET":
            self.stats.writes += 1
        try:
            with self._http.stream(method, path, **kwargs) as response:
                if response.status_code == 200 and stream_consumer is not None:
                    stream_consumer(response)
                    return ""
                response.read()
        except httpx.TimeoutException:
            raise _Retryable("connection timed out") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"connection failed ({type(exc).__name__})") from None
        return self._judge(method, path, response)

    def _judge(self, method: str, path: str, response: httpx.Response) -> str:
        status = response.status_code
        text = response.text
        if 200 <= status < 300:
            return text
        if status in RETRYABLE_STATUS:
            retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            if status == 429:
                self.stats.rate_limited += 1
            raise _Retryable(f"HTTP {status}", retry_after)
        msg, code = _error_fields(text)
        where = f"{method} {path}"
        if status == 401:
            raise AuthError(
                f"{where}: Iterable rejected the API key (401 {code or 'BadApiKey'}); check "
                "the destination's apiKey variable or file",
                status=status,
                code=code,
                endpoint=path,
            )
        if status == 409:
            raise ListInUseError(
                f"{where}: the list is in use by a campaign or journey (409); detach it in "
                "Iterable first",
                status=status,
                code=code,
                endpoint=path,
            )
        detail = msg or (text[:200] if "json" in response.headers.get("content-type", "") else "")
        raise IterableError(
            f"{where}: HTTP {status}"
            + (f" {code}" if code else "")
            + (f": {detail}" if detail else ""),
            status=status,
            code=code,
            endpoint=path,
        )


class _CreateUncertain(Exception):
    """A non-idempotent request failed in transit; it may or may not have happened."""


def _retry_after_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare enough to fall back to our own backoff


def _error_fields(text: str) -> tuple[str | None, str | None]:
    try:
        body = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return None, None
    if not isinstance(body, dict):
        return None, None
    msg, code = body.get("msg"), body.get("code")
    return (msg if isinstance(msg, str) else None), (code if isinstance(code, str) else None)
