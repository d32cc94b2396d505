"""Why a connection to a destination's host could not be made, in words: "could not
connect to proxy.corp.example:443" was said alike of a host name that does not resolve (a
typo in baseUrl), a port nothing listens on (an emulator not started) and a host that never
answered (a firewall), which call for different fixes."""

from __future__ import annotations

import errno
import socket

import httpx

# errno values of a host the network has no way to, as the system names them.
_NO_ROUTE = {errno.ENETUNREACH, errno.EHOSTUNREACH}
# getaddrinfo's answers when no DNS server answered (offline, a VPN's resolver down): the
# name may be right, so "check its spelling" would send the user the wrong way.
_NO_ANSWER = {socket.EAI_AGAIN, getattr(socket, "EAI_FAIL", socket.EAI_AGAIN)}


def why_unreachable(exc: BaseException, timeout: float) -> str:
    """ " (<reason>)" for a failed connection, from the system's error under httpx's, or ""
    when it is none of the kinds named. `timeout` is the connect wait (RECONCILER_TIMEOUT)."""
    if isinstance(exc, httpx.ConnectTimeout):
        return f" (no answer within {timeout:g} s, RECONCILER_TIMEOUT: a firewall may drop it)"
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            if current.errno in _NO_ANSWER:
                return " (its host name could not be looked up: no DNS server answered)"
            return " (its host name does not resolve in DNS: check its spelling)"
        if isinstance(current, ConnectionRefusedError):
            return " (connection refused: nothing listens on that port)"
        if isinstance(current, OSError) and current.errno in _NO_ROUTE:
            return " (no network route to that host)"
        current = current.__cause__ or current.__context__
    return ""
