"""Splitting a bulkUpdate (or a subscribe) into requests Iterable accepts: at most
`max_users` users and at most `max_bytes` bytes of body each (Iterable: "Max size of
request body: 4MB").

Sizes are measured, not estimated: every user is encoded with the same encoder that sends
the request, and a request's body is exactly its users' encodings joined by commas inside
`{"users":[...]}` (or subscribe's envelope). Packing is one greedy pass in the users' order:
each request as full as both limits allow, so a list's adds take the fewest requests any
split in that order can (cutting by count first and then by size again would leave a
short request behind each cut), and the same users always make the same requests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
_ENVELOPE = len(b'{"users":[]}')


def encode(value: Any) -> bytes:
    """The bytes that go on the wire for a JSON value (compact, UTF-8, no NaN)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


@dataclass
class Packed:
    requests: list[list[dict[str, Any]]] = field(default_factory=list)
    too_large: list[dict[str, Any]] = field(default_factory=list)  # alone over max_bytes


def pack_users(
    users: Sequence[dict[str, Any]], *, max_users: int, max_bytes: int, envelope: int = _ENVELOPE
) -> Packed:
    """Greedy, in order: a request is closed when the next user would break either limit.
    `envelope` is the size of the body with an empty array (subscribe's differs)."""
    packed = Packed()
    packed.requests.extend(
        pack_lazily(
            users,
            max_users=max_users,
            max_bytes=max_bytes,
            envelope=envelope,
            too_large=packed.too_large.append,
        )
    )
    return packed


def pack_lazily(
    items: Iterable[T],
    *,
    max_users: int,
    max_bytes: int,
    too_large: Callable[[T], None],
    envelope: int = _ENVELOPE,
    payload: Callable[[T], Any] = lambda item: item,
) -> Iterator[list[T]]:
    """pack_users a request at a time, for users read a batch at a time (a plan's field
    updates or a list's adds may be millions); users alone over `max_bytes` go to
    `too_large`. `payload(item)` is what goes on the wire for an item (the item itself by
    default): the executor packs members and sends their payloads. One encoding per item,
    the only work beyond a sum: linear in the users."""
    current: list[T] = []
    size = envelope
    for item in items:
        user_size = len(encode(payload(item)))
        if envelope + user_size > max_bytes:
            too_large(item)
            continue
        extra = user_size + (1 if current else 0)  # the comma between users
        if current and (len(current) >= max_users or size + extra > max_bytes):
            yield current
            current, size, extra = [], envelope, user_size
        current.append(item)
        size += extra
    if current:
        yield current
