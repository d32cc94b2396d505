"""The message for Iterable's 401: a key it does not know, or one of a type too narrow.

A key Iterable knows but whose type may not call an endpoint (a Mobile or JavaScript key,
a read-only key's write), or one disabled, is answered 401 BadApiKey "Disabled API key or
insufficient privileges" with params naming the key's type (apiKeyType) and its last 8
characters (apiKeyIdentifier, never shown: part of the key). Told only to check the key
and its region, a user looked at a key that was right, in the right data center, whose
plan had just read the project."""

from __future__ import annotations

import re
from typing import Any

# A type is a word or two (Mobile, JavaScript, ...); anything else is not shown.
_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9 _-]{0,39}")


def key_type(body: Any) -> str | None:
    """The key's type an error body names in params.apiKeyType, when it is a plain word."""
    params = body.get("params") if isinstance(body, dict) else None
    named = params.get("apiKeyType") if isinstance(params, dict) else None
    if isinstance(named, str) and _TYPE.fullmatch(named):
        return named
    return None


def refused_key(where: str, code: str | None, body: Any, region_hint: str) -> str:
    """What to say of a 401 answer to `where` (METHOD path)."""
    named = key_type(body)
    if named is None:
        return (
            f"{where}: Iterable rejected the API key (401 {code or 'BadApiKey'}); check "
            f"the destination's apiKey variable or file{region_hint}"
        )
    # Iterable knew the key here, so its region is right: the type or its state is not.
    return (
        f"{where}: Iterable refused the destination's API key, a {named} key "
        f"(401 {code or 'BadApiKey'}: disabled, or of a type that may not make this "
        "request); reconciler reads and writes lists and user fields, which takes an "
        "enabled server-side key of the project: create one in Iterable (Integrations > "
        "API Keys, type Server-side) and set it where the destination's apiKey points"
    )
