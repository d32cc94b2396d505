"""What the HTTP client takes from the process environment (httpx's trust_env): the
certificate authorities SSL_CERT_FILE or SSL_CERT_DIR name, and the proxies HTTP_PROXY,
HTTPS_PROXY and ALL_PROXY name. A wrong one is the user's setting, said as such and naming
the variable, not an internal error.

A proxy URL may hold a password (http://user:secret@proxy:3128): no message quotes it."""

from __future__ import annotations

import os
import re
import ssl
from typing import Any

import httpx

from reconciler.errors import ConfigError

PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")


def tls_context() -> ssl.SSLContext:
    """httpx's default TLS context (certifi's CAs, or those SSL_CERT_FILE / SSL_CERT_DIR
    name). SSL_CERT_FILE naming a missing file ended every command in "internal error:
    FileNotFoundError", naming neither the file nor the variable."""
    try:
        return httpx.create_ssl_context()
    except (OSError, ssl.SSLError) as exc:
        # httpx reads SSL_CERT_FILE first, then SSL_CERT_DIR (their values are paths).
        variable = "SSL_CERT_FILE" if os.environ.get("SSL_CERT_FILE") else "SSL_CERT_DIR"
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise ConfigError(
            f"cannot load the certificate authorities {variable} names "
            f"({os.environ.get(variable, '')}): {reason}; correct {variable} or unset it"
        ) from None


def http_client(**options: Any) -> httpx.Client:
    """An httpx.Client; a proxy set in the environment that cannot be used (not a URL, or
    SOCKS without httpx's socks extra) is a ConfigError naming the variables, where it was
    an internal InvalidURL or ImportError that could quote part of the proxy's URL."""
    try:
        return httpx.Client(**options)
    except ImportError:
        raise ConfigError(
            f"the proxy set in the environment ({proxy_variables()}) is a SOCKS proxy, "
            "which needs httpx's socks extra (pip install 'httpx[socks]'); or unset it"
        ) from None
    except (httpx.InvalidURL, ValueError):
        raise ConfigError(
            f"the proxy set in the environment ({proxy_variables()}) is not a URL such as "
            "http://proxy.example:3128; correct it or unset it"
        ) from None


def proxy_variables() -> str:
    """The proxy variables set, as httpx reads them (either case), e.g. "HTTPS_PROXY"."""
    named = [
        name
        for variable in PROXY_VARIABLES
        for name in (variable, variable.lower())
        if os.environ.get(name)
    ]
    return ", ".join(named) or ", ".join(PROXY_VARIABLES)


def through_proxy(client: httpx.Client) -> str:
    """ " through the proxy ... " when the environment sends `client`'s base URL through a
    proxy, else "": "could not connect to 127.0.0.1:8080" sent the user to a server that
    was never tried when it was the proxy (HTTPS_PROXY, not excepted by NO_PROXY) that
    refused. Names the variables, never the proxy's URL (it may hold a password)."""
    # httpx picks a transport per URL from the proxy variables and NO_PROXY; the default
    # one is the direct connection. Private to httpx: a release that renames them only
    # loses this hint, not the error it is added to.
    try:
        direct = client._transport_for_url(client.base_url) is client._transport
    except AttributeError:
        return ""
    if direct:
        return ""
    return f" through the proxy {proxy_variables()} names (NO_PROXY lists hosts to reach directly)"


def proxy_refusal(exc: httpx.ProxyError, where: str) -> tuple[str, bool]:
    """What the environment's proxy answered to the CONNECT for `where` (host:port), and
    whether trying again may help: 'connection failed (ProxyError)', retried six times,
    said nothing of a proxy asking for a password or refusing the host. Only the
    status is taken from the answer; its reason phrase is the proxy's own text."""
    found = re.match(r"(\d{3}) ", str(exc))
    through = f"the proxy {proxy_variables()} names"
    if found is None:
        return f"{through} failed connecting to {where}", True
    status = int(found.group(1))
    said = f"{through} answered HTTP {status} to connecting to {where}"
    if status >= 500:
        return said, True  # it could not reach the host, for now
    return f"{said}{proxy_hint(status)}", False


def proxy_hint(status: int) -> str:
    """Why a proxy refused (its 407 or other 4xx), and what to do."""
    if status == 407:
        return (
            ": it asks for a user name and password, or refuses those it was given "
            "(they go in the variable's URL, before the proxy's host)"
        )
    return ": it does not allow that host (ask its administrators, or list the host in NO_PROXY)"
