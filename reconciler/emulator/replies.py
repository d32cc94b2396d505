"""What the emulator answers, before a transport or server turns it into HTTP."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"
# What the OpenAPI says export/data.json produces: newline-delimited JSON.
JSON_STREAM_TYPE = "application/x-json-stream"
# A paced body goes out in pieces this far apart (seconds): often enough that a client sees
# a steady rate, rarely enough that a fast rate does not cost a write per line.
PACE_TICK = 0.05

# Iterable's edge answers unknown routes with a page like this, not with JSON, so a client
# that assumes every error body is JSON breaks here first.
NOT_FOUND_HTML = (
    b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
    b"<center><h1>404 Not Found</h1></center>\r\n</body>\r\n</html>\r\n"
)
BAD_GATEWAY_HTML = (
    b"<html>\r\n<head><title>{status} Gateway Error</title></head>\r\n<body>\r\n"
    b"<center><h1>{status} Gateway Error</h1></center>\r\n</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class Pacing:
    """How a line-per-member answer goes out over time (Faults' read-speed knobs)."""

    first_byte_seconds: float = 0.0
    """Wait this long before the status line."""
    lines_per_second: float | None = None
    """Send the body's lines at this rate; None: all at once."""
    cut_after_lines: int | None = None
    """Close the connection after this many whole lines and half of the next (if any),
    without ending the chunked body; None: send it all. Below 0: close before the status
    line."""

    def body_end(self, body: bytes) -> int:
        """How much of `body` goes out: all of it, or up to the middle of the line after
        the cut (a cut rarely falls between two members)."""
        if self.cut_after_lines is None:
            return len(body)
        position = _after_lines(body, max(0, self.cut_after_lines))
        next_end = body.find(b"\n", position)
        return position + ((next_end if next_end >= 0 else len(body)) - position) // 2

    def pieces(self, body: bytes, tick: float = PACE_TICK) -> Iterator[tuple[float, bytes]]:
        """(seconds after the first byte when it is due, piece) for what goes out: whole
        lines, about `tick` seconds' worth each, at the paced rate."""
        end = self.body_end(body)
        rate = self.lines_per_second
        if rate is None:
            if end:
                yield 0.0, body[:end]
            return
        per_piece = max(1, math.ceil(rate * tick))
        # Pieces are found by their average size and counted in C: lists run to millions
        # of lines, and a Python step per line would cost seconds at a high time scale.
        average = max(1, end // max(1, body.count(b"\n", 0, end)))
        position = 0
        lines = 0
        while position < end:
            guess = min(end, position + per_piece * average)
            newline = body.find(b"\n", max(position, guess - 1), end)
            piece_end = end if newline < 0 else newline + 1
            lines += body.count(b"\n", position, piece_end)
            yield lines / rate, body[position:piece_end]
            position = piece_end


def _after_lines(body: bytes, count: int) -> int:
    """The offset just after the first `count` lines of `body` (its end if fewer)."""
    block = 1 << 20
    position = 0
    remaining = count
    while remaining > 0 and position < len(body):
        stop = min(len(body), position + block)
        in_block = body.count(b"\n", position, stop)
        if in_block < remaining:
            remaining -= in_block
            position = stop
            continue
        for _ in range(remaining):
            position = body.find(b"\n", position, stop) + 1
        return position
    return position if remaining == 0 else len(body)


@dataclass
class EmulatorResponse:
    """An answer plus the fault instructions for the layer that sends it."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    drop: bool = False
    """Send the headers and part of the body, then close the connection."""
    latency_seconds: float = 0.0
    """Wait this long before answering."""
    pacing: Pacing | None = None
    """Stream the body line by line (chunked), slowly or cut short; None: send it whole."""
    fault: str | None = None
    """The knob that shaped this answer inside an endpoint (the request log shows it)."""
    deferred: Callable[[], Callable[[], None]] | None = None
    """Slow work the endpoint left to be done outside the emulator's lock (building a large
    export from a snapshot taken under it): run before the answer is sent, so other
    requests go on meanwhile; what it returns is run under the lock again, to publish it."""

    def json(self) -> Any:
        return json.loads(self.body)


def json_reply(
    status: int, payload: Any, headers: dict[str, str] | None = None
) -> EmulatorResponse:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return EmulatorResponse(status, {"Content-Type": JSON_TYPE, **(headers or {})}, body)


def api_error(
    status: int, code: str, msg: str, headers: dict[str, str] | None = None
) -> EmulatorResponse:
    """Iterable's error body: {"msg", "code", "params"}; params is null in practice."""
    return json_reply(status, {"msg": msg, "code": code, "params": None}, headers)


def success(msg: str = "") -> EmulatorResponse:
    """IterableApiResponse for a plain success."""
    return json_reply(200, {"msg": msg, "code": "Success", "params": None})


def text_reply(status: int, text: str, content_type: str = TEXT_TYPE) -> EmulatorResponse:
    return EmulatorResponse(status, {"Content-Type": content_type}, text.encode("utf-8"))


def not_found_page() -> EmulatorResponse:
    return EmulatorResponse(404, {"Content-Type": HTML_TYPE}, NOT_FOUND_HTML)


def invalid_list_id(list_id: object) -> EmulatorResponse:
    # Iterable's quirk, kept on purpose: HTTP 400 with "code": "Success". Clients must
    # decide on the status, never on the code.
    return api_error(400, "Success", f"error.lists.invalidListId({list_id})")


def bad_params(msg: str) -> EmulatorResponse:
    return api_error(400, "BadParams", msg)


def rate_limited(retry_after: int | None) -> EmulatorResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return api_error(429, "RateLimitExceeded", "Rate limit exceeded for this endpoint", headers)


def fault_reply(
    status: int, retry_after: int | None, message: str | None = None
) -> EmulatorResponse:
    """The body an injected failure answers with; `message` its msg (Faults.fail_message)."""
    if status == 429:
        return rate_limited(retry_after)
    if status in (502, 504):
        body = BAD_GATEWAY_HTML.replace(b"{status}", str(status).encode())
        return EmulatorResponse(status, {"Content-Type": HTML_TYPE}, body)
    if status == 503:
        # The OpenAPI documents 503 on the list readers as "Request timeout. Try again later."
        return api_error(503, "GenericError", "Request timeout. Try again later.")
    return api_error(status, "GenericError", message or f"Injected failure (HTTP {status})")


# What a captive portal or a proxy in the wrong place answers with a 200.
PORTAL_HTML = (
    b"<!DOCTYPE html>\r\n<html><head><title>Sign in to continue</title></head>\r\n"
    b"<body><h1>Sign in to continue</h1></body></html>\r\n"
)


def garbled_reply(real: EmulatorResponse, kind: str) -> EmulatorResponse:
    """A 200 whose body is not the answer `real` carried (Faults.bad_body)."""
    if kind == "html":
        return EmulatorResponse(200, {"Content-Type": HTML_TYPE}, PORTAL_HTML)
    if kind == "truncated":
        if not real.headers.get("Content-Type", "").startswith(JSON_TYPE):
            # A line-per-member text cut at a matching Content-Length is indistinguishable
            # from a shorter list, for any client; only JSON can be seen to be cut.
            return real
        return EmulatorResponse(200, dict(real.headers), real.body[: len(real.body) // 2])
    return EmulatorResponse(200, {"Content-Type": real.headers.get("Content-Type", JSON_TYPE)})


def quoting_request(response: EmulatorResponse, target: str, body: bytes) -> EmulatorResponse:
    """`response`, a JSON error, quoting the request (`target`: method and path) and its
    body back (Faults.echo_request)."""
    try:
        answer = json.loads(response.body)
    except ValueError:
        return response
    if not isinstance(answer, dict):
        return response
    request = f"{target} {body.decode('utf-8', 'replace')}".rstrip()
    answer["msg"] = f"{answer.get('msg') or ''} (request: {request})"
    quoted = json_reply(response.status, answer, response.headers)
    quoted.latency_seconds, quoted.drop = response.latency_seconds, response.drop
    return quoted


def echoing(response: EmulatorResponse, api_key: str) -> EmulatorResponse:
    """`response` quoting the request's key back (Faults.echo_api_key)."""
    if not response.headers.get("Content-Type", "").startswith(JSON_TYPE):
        return response
    try:
        body = json.loads(response.body)
    except ValueError:
        return response
    if not isinstance(body, dict):
        return response
    if response.status >= 400:
        body["msg"] = f"{body.get('msg') or ''} (request Api-Key: {api_key})"
        params = body.get("params")
        errors = params.get("validationErrors") if isinstance(params, dict) else None
        if isinstance(errors, dict):
            # A type refusal names fields by the request's own text.
            errors[f"index:::{api_key}"] = {"expectedType": "string"}
    elif isinstance(body.get("successCount"), int):
        failed = body.get("failedUpdates")
        failed = failed if isinstance(failed, dict) else {}
        failed["invalidEmails"] = [*failed.get("invalidEmails", []), api_key]
        body["failedUpdates"] = failed
        body["filteredOutFields"] = [*body.get("filteredOutFields", []), api_key]
    else:
        return response
    echoed = json_reply(response.status, body, response.headers)
    echoed.latency_seconds, echoed.drop = response.latency_seconds, response.drop
    return echoed
