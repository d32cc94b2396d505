"""Bounds on an answer as its bytes arrive. httpx's timeouts are per read: a server (or a
proxy between) that sends one byte every few seconds, or a body that never ends, met
none of them, and `plan` waited for ever (GET /api/lists trickled a byte a second: still
waiting when `timeout 40` ended it) or read into memory until the machine ran out (an
endless 200 to GET /api/lists took 2 GB in 12 s).

An answer read whole (JSON) gets a time for all of it and a most it may hold, as sent and
as decoded; a bulk read (getUsers, an export: large and slow by design) is held to its
progress instead. httpx decodes a Content-Encoding (gzip, deflate; sent or not asked for)
a piece as it arrives: a few MB of gzip can hold many GB, and gzip over gzip a GB in one
64 KB piece, so the answer is decoded here, one coding at a time, from small pieces."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx

from reconciler.iterable.settings import ClientSettings

# The most bytes an answer read whole into memory (JSON: the list index, fields, a user, an
# error) may hold, as sent and as decoded: far beyond any of Iterable's (the list index of a
# project with a million lists is about 200 MB), and short of what parsing it takes down a
# runner.
ANSWER_MAX_BYTES = 256_000_000


class AnswerOverrun(Exception):
    """An answer past its bound: `reason` says which, for the retry line and the error."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def bound_answer(
    response: httpx.Response, started: float, settings: ClientSettings, whole: bool
) -> None:
    """Hold `response`, its headers in, to its bounds as its body is read: an answer read
    `whole` to time_limit(settings) seconds from `started` (time.monotonic) and
    ANSWER_MAX_BYTES; any refusal (not 2xx) too, a bulk read's timed from now (a getUsers
    may wait minutes for its headers); any other answer (a bulk read's, an export's) to
    its progress (PacedStream)."""
    now, limit = time.monotonic(), time_limit(settings)
    if whole and now > started + limit:  # its headers came a byte at a time
        raise AnswerOverrun(too_slow(limit, settings))
    stream = response.stream
    if not isinstance(stream, httpx.SyncByteStream):
        return
    if whole or not response.is_success:
        deadline = (started if whole else now) + limit
        why = too_slow(limit, settings)
        bounded = BoundedStream(stream, clock=time.monotonic, deadline=deadline, why=why)
        decoded = decode(response, bounded)
        if decoded is not bounded:
            decoded = BoundedStream(
                decoded, clock=time.monotonic, deadline=deadline, why=why, decoded=True
            )
        response.stream = decoded
        return
    if settings.bulk_read_min_bytes:
        stream = PacedStream(
            stream,
            clock=time.monotonic,
            window=settings.bulk_read_timeout,
            least=settings.bulk_read_min_bytes,
        )
    response.stream = decode(response, stream)


# Bytes of an answer as sent given to a decoder at once: deflate's most (1,032 to 1) makes
# at most 17 MB of them, and each coding of several is decoded from pieces as small.
DECODE_PIECE = 16_384


def decode(response: httpx.Response, stream: httpx.SyncByteStream) -> httpx.SyncByteStream:
    """`stream` (`response`'s body as sent) decoded as its Content-Encoding says, which is
    then taken off `response` so that httpx does not decode it again; `stream` itself when
    it names no coding. Each coding is decoded by httpx, as before, and one it cannot
    decode (br without brotli installed) is passed on as sent, as httpx did."""
    codings = [
        coding.strip().lower()
        for coding in response.headers.get_list("content-encoding", split_commas=True)
    ]
    codings = [coding for coding in codings if coding not in ("", "identity")]
    if not codings:
        return stream
    del response.headers["content-encoding"]
    for coding in reversed(codings):  # the last applied is the first undone
        stream = _Decoded(stream, coding)
    return stream


class _Decoded(httpx.SyncByteStream):
    """`stream` with one `coding` undone, fed to httpx's decoder DECODE_PIECE bytes at a
    time, so that no one piece can expand past what that many bytes make."""

    def __init__(self, stream: httpx.SyncByteStream, coding: str) -> None:
        self._stream = stream
        self._coding = coding

    def __iter__(self) -> Iterator[bytes]:
        layer = httpx.Response(
            200, headers={"content-encoding": self._coding}, stream=_Pieces(self._stream)
        )
        yield from layer.iter_bytes()

    def close(self) -> None:
        self._stream.close()


class _Pieces(httpx.SyncByteStream):
    """`stream`'s bytes in pieces of at most DECODE_PIECE; closed by its _Decoded."""

    def __init__(self, stream: httpx.SyncByteStream) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            for at in range(0, len(chunk), DECODE_PIECE):
                yield chunk[at : at + DECODE_PIECE]


class BoundedStream(httpx.SyncByteStream):
    """`stream` (an answer's body as it arrives, or as it is `decoded`), raising
    AnswerOverrun once `clock()` passes `deadline` or more than `most` bytes came."""

    def __init__(
        self,
        stream: httpx.SyncByteStream,
        *,
        clock: Callable[[], float],
        deadline: float,
        why: str,
        most: int | None = None,
        decoded: bool = False,
    ) -> None:
        self._stream = stream
        self._decoded = decoded
        self._clock = clock
        self._deadline = deadline
        self._why = why
        self._most = ANSWER_MAX_BYTES if most is None else most

    def __iter__(self) -> Iterator[bytes]:
        seen = 0
        for chunk in self._stream:
            seen += len(chunk)
            if seen > self._most:
                decoded = " once decompressed" if self._decoded else ""
                raise AnswerOverrun(
                    f"an answer of more than {self._most:,} bytes{decoded}, far more than "
                    "Iterable answers this request with"
                )
            if self._clock() > self._deadline:
                raise AnswerOverrun(self._why)
            yield chunk

    def close(self) -> None:
        self._stream.close()


class PacedStream(httpx.SyncByteStream):
    """`stream` (a bulk read's body as it arrives), raising AnswerOverrun when, from its
    first byte on, `window` seconds bring fewer than `least` bytes: a read trickling a
    byte every few minutes met no byte timeout, and a large read must not be bounded by
    its whole time. Checked as each piece arrives, so a read that ends is never cut."""

    def __init__(
        self,
        stream: httpx.SyncByteStream,
        *,
        clock: Callable[[], float],
        window: float,
        least: int,
    ) -> None:
        self._stream = stream
        self._clock = clock
        self._window = window
        self._least = least

    def __iter__(self) -> Iterator[bytes]:
        began: float | None = None  # when the window began: at the first byte, then anew
        got = 0  # bytes in the window
        for chunk in self._stream:
            now = self._clock()
            if began is None:
                began = now
            elif now - began >= self._window:
                if got < self._least:
                    raise AnswerOverrun(
                        f"too slow: {got:,} bytes of the answer in {now - began:,.1f} s, "
                        f"fewer than RECONCILER_BULK_READ_MIN_BYTES ({self._least:,}) in "
                        f"RECONCILER_BULK_READ_TIMEOUT ({self._window:g} s)"
                    )
                began, got = now, 0
            got += len(chunk)
            yield chunk

    def close(self) -> None:
        self._stream.close()


def time_limit(settings: ClientSettings) -> float:
    """Seconds an answer read whole may take in all: request_time_limit, or the one wait
    for a byte a user allowed (RECONCILER_TIMEOUT=600, for a slow proxy) when longer. A
    write Iterable answered 400 s on was cut at 300 s, the answer thrown away, and sent
    again."""
    return max(settings.request_time_limit, settings.timeout)


def too_slow(limit: float, settings: ClientSettings) -> str:
    """The reason of an answer still arriving at its deadline, naming what set it."""
    named = (
        "RECONCILER_REQUEST_TIME_LIMIT"
        if limit == settings.request_time_limit
        else "RECONCILER_TIMEOUT, above RECONCILER_REQUEST_TIME_LIMIT"
    )
    return f"timed out: the answer was still arriving after {limit:g} s ({named})"
