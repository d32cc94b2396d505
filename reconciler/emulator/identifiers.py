"""How the emulator judges emails and userIds, as strictly as Iterable does.

Kept inside the emulator on purpose: if the client and the emulator shared one validator,
a bug in it would be invisible to every test.
"""

from __future__ import annotations

import re

# A deliberately conservative reading of RFC 5322 (dot-atom local part, LDH domain labels,
# alphabetic TLD). Iterable rejects addresses a permissive parser would take; being stricter
# here than there is safer than the reverse for a stand-in used to test a client.
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
_EMAIL = re.compile(rf"{_LOCAL}@{_DOMAIN}", re.ASCII)

MAX_EMAIL_LENGTH = 254
MAX_LOCAL_LENGTH = 64
# Iterable: "empty, too long, or containing non-ASCII or non-printable characters or a
# trailing space" (FailedUserUpdates.invalidUserIds in the OpenAPI); 52 is the documented cap.
MAX_USER_ID_LENGTH = 52

PLACEHOLDER_DOMAIN = "placeholder.email"


def is_valid_email(email: str) -> bool:
    """True when Iterable would accept `email` (surrounding whitespace is not trimmed)."""
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(email):
        return False
    return len(email.partition("@")[0]) <= MAX_LOCAL_LENGTH


def normalize_email(email: str) -> str:
    """The stored form: Iterable keeps emails lowercase and compares them that way."""
    return email.lower()


def is_valid_user_id(user_id: str) -> bool:
    """True for 1..52 printable ASCII characters without a trailing space."""
    if not 0 < len(user_id) <= MAX_USER_ID_LENGTH or user_id.endswith(" "):
        return False
    return all(0x20 <= ord(ch) <= 0x7E for ch in user_id)
