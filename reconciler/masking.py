"""Masking of member identifiers in output that may be published.

Plans are posted as pull-request comments, job summaries and CI logs, readable by many and
kept for months; emails and userIds are personal data. Output masks them by default and
shows them only when asked (`--show-members`). The mask keeps enough to recognise a member
you already know (`j***@e***.com`, `usr_***91`) and too little to learn one you don't.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

Show = Callable[[str], str]

_EMAIL_IN_TEXT = re.compile(r"[^\s@'\"<>(),;:]+@[^\s@'\"<>(),;:]+\.[A-Za-z]{2,}")


def mask_identifier(identifier: str) -> str:
    if "@" in identifier:
        return _mask_email(identifier)
    return _mask_user_id(identifier)


def _mask_email(email: str) -> str:
    local, _, domain = email.rpartition("@")
    name, dot, tld = domain.rpartition(".")
    if not dot:
        name, tld = domain, ""
    masked_local = f"{local[:1]}***" if local else "***"
    masked_domain = f"{name[:1]}***" if name else "***"
    return f"{masked_local}@{masked_domain}{'.' + tld if tld else ''}"


def _mask_user_id(user_id: str) -> str:
    if len(user_id) >= 8:
        return f"{user_id[:4]}***{user_id[-2:]}"
    if len(user_id) >= 4:
        return f"{user_id[:1]}***{user_id[-1:]}"
    return "***"


def mask_emails(text: str) -> str:
    """Mask every email-shaped string in free text (tracebacks, third-party messages)."""
    return _EMAIL_IN_TEXT.sub(lambda m: _mask_email(m.group(0)), text)


def _full(identifier: str) -> str:
    return identifier


def shower(show_members: bool) -> Show:
    """How identifiers are shown: in full (local use) or masked (the default)."""
    return _full if show_members else mask_identifier


def mask_value(value: Any, show: Show) -> Any:
    """A field value beside a member: text (names, emails, dates) can be personal data, so
    it is masked whenever identifiers are; numbers, booleans and null are shown."""
    if show is not mask_identifier or value is None or isinstance(value, bool | int | float):
        return value
    raw = value if isinstance(value, str) else json.dumps(value, default=str)
    return f"{raw[:1]}***" if raw else ""


def quoted(show: Show) -> Show:
    return lambda value: repr(show(value))
