"""Bounds on an answer as its bytes arrive. httpx's timeouts are per read: a server (or a
proxy between) that sends one byte every few seconds, or a body that never ends, met
none of them, and `plan` waited for ever (GET /api/lists trickled a byte a second: still
waiting when CI's job limit ended it) or read into memory until the machine ran out (an
endless 200 to GET /api/lists took 2 GB in 12 s).

An answer read whole (JSON) gets a time for all of it and a most it may hold; a bulk read
(getUsers, an export: large and slow by design) is held to its progress instead."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx

# The most bytes an answer read whole into memory (JSON: the list index, fields, a user, an
# error) may hold as sent: far beyond any of Iterable's (the list index of a project with a
# million lists is about 200 MB), and short of what parsing it takes down a runner.
ANSWER_MAX_BYTES = 256_000_000


class AnswerOverrun(Exception):
    """An answer past its bound: `reason` says which, for the retry line and the error."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def bound_answer(response: httpx.Response, started: float, limit: float, whole: bool) -> None:
    """Hold `response`, its headers in, to its bounds as its body is read: an answer read
    `whole` to `limit` seconds from `started` (time.monotonic) and ANSWER_MAX_BYTES; any
    refusal (not 2xx) too, a bulk read's timed from now (a getUsers may wait minutes for
    its headers)."""
    now = time.monotonic()
    if whole and now > started + limit:  # its headers came a byte at a time
        raise AnswerOverrun(too_slow(limit))
    read_whole = whole or not response.is_success
    if read_whole and isinstance(response.stream, httpx.SyncByteStream):
        deadline = (started if whole else now) + limit
        response.stream = BoundedStream(
            response.stream, clock=time.monotonic, deadline=deadline, limit=limit
        )


class BoundedStream(httpx.SyncByteStream):
    """`stream` (an answer's body as it arrives), raising AnswerOverrun once `clock()`
    passes `deadline` or more than `most` bytes came."""

    def __init__(
        self,
        stream: httpx.SyncByteStream,
        *,
        clock: Callable[[], float],
        deadline: float,
        limit: float,
        most: int | None = None,
    ) -> None:
        self._stream = stream
        self._clock = clock
        self._deadline = deadline
        self._limit = limit
        self._most = ANSWER_MAX_BYTES if most is None else most

    def __iter__(self) -> Iterator[bytes]:
        seen = 0
        for chunk in self._stream:
            seen += len(chunk)
            if seen > self._most:
                raise AnswerOverrun(
                    f"an answer of more than {self._most:,} bytes, far more than Iterable "
                    "answers this request with"
                )
            if self._clock() > self._deadline:
                raise AnswerOverrun(too_slow(self._limit))
            yield chunk

    def close(self) -> None:
        self._stream.close()


def too_slow(limit: float) -> str:
    """The reason of an answer still arriving at its deadline."""
    return (
        f"timed out: the answer was still arriving after {limit:g} s "
        "(RECONCILER_REQUEST_TIME_LIMIT)"
    )
