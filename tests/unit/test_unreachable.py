"""How a connection that could not be made is said (iterable/unreachable.py); refused
ports and names that do not resolve are also shown over real sockets in test_faults.py."""

from __future__ import annotations

import socket

import httpx

from reconciler.iterable.unreachable import why_unreachable


def _raised_from(cause: BaseException) -> httpx.ConnectError:
    """An httpx error raised while handling `cause`, as httpx chains the system's error."""
    try:
        try:
            raise cause
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from exc
    except httpx.ConnectError as error:
        return error


def test_each_kind_of_failure_is_named() -> None:
    assert why_unreachable(httpx.ConnectTimeout("timed out"), 30) == (
        " (no answer within 30 s, RECONCILER_TIMEOUT: a firewall may drop it)"
    )
    refused = _raised_from(ConnectionRefusedError(111, "Connection refused"))
    assert why_unreachable(refused, 30) == " (connection refused: nothing listens on that port)"
    unresolved = _raised_from(socket.gaierror(-2, "Name or service not known"))
    assert why_unreachable(unresolved, 30).startswith(" (its host name does not resolve")
    # No DNS server answered (offline, a resolver down): the name may well be right.
    no_answer = _raised_from(socket.gaierror(socket.EAI_AGAIN, "Temporary failure"))
    assert why_unreachable(no_answer, 30) == (
        " (its host name could not be looked up: no DNS server answered)"
    )
    # Anything else keeps "could not connect to HOST:PORT" as it was.
    assert why_unreachable(_raised_from(OSError(5, "Input/output error")), 30) == ""
