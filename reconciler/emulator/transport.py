"""The emulator as an httpx transport: in-process, no socket (used by `region: sandbox`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx

from reconciler.emulator.emulator import Emulator
from reconciler.emulator.replies import Pacing


class EmulatorTransport(httpx.BaseTransport):
    """`httpx.Client(transport=EmulatorTransport(emulator), base_url="https://sandbox.invalid")`.

    Faults behave as they would over a socket: latency sleeps (and becomes a ReadTimeout
    when it exceeds the client's read timeout), and a dropped response raises
    RemoteProtocolError after the write has been applied.
    """

    def __init__(self, emulator: Emulator, *, sleep: Callable[[float], None] = time.sleep):
        self.emulator = emulator
        self._sleep = sleep

    def close(self) -> None:
        # The client is done: what the emulator left unsaved (a large state is not saved
        # after every request) goes to its state file now.
        self.emulator.flush()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        answer = self.emulator.handle(request)
        if answer.latency_seconds > 0:
            timeouts = request.extensions.get("timeout", {})
            read_timeout = timeouts.get("read") if isinstance(timeouts, dict) else None
            if read_timeout is not None and answer.latency_seconds > read_timeout:
                self._sleep(read_timeout)
                raise httpx.ReadTimeout("timed out waiting for the emulator", request=request)
            self._sleep(answer.latency_seconds)
        pacing = answer.pacing
        if pacing is not None and not answer.drop:
            if pacing.first_byte_seconds > 0:
                self._sleep(pacing.first_byte_seconds)
            if pacing.cut_after_lines is not None and pacing.cut_after_lines < 0:
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                )
            return httpx.Response(
                answer.status,
                headers=answer.headers,
                stream=_PacedStream(answer.body, pacing, self._sleep),
                request=request,
            )
        if answer.drop:
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body", request=request
            )
        return httpx.Response(
            answer.status, headers=answer.headers, content=answer.body, request=request
        )


class _PacedStream(httpx.SyncByteStream):
    """A line-per-member body yielded at the paced rate, ending in an error where cut."""

    def __init__(self, body: bytes, pacing: Pacing, sleep: Callable[[float], None]):
        self._body = body
        self._pacing = pacing
        self._sleep = sleep

    def __iter__(self) -> Iterator[bytes]:
        elapsed = 0.0
        for due, piece in self._pacing.pieces(self._body):
            if due > elapsed:
                self._sleep(due - elapsed)
                elapsed = due
            yield piece
        if self._pacing.cut_after_lines is not None:
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body "
                "(incomplete chunked read)"
            )
