"""Placeholder emails: what an email-based project gives a profile made from a userId alone.

A subscribe or update with `preferUserId: true` (Segment's Iterable Lists destination
sends every member so) creates an unknown userId's profile with an email Iterable makes up
at the `placeholder.email` domain, and getUsers names the member by it. Once the app
learns the person's address it moves the profile there (`POST /api/users/updateEmail`),
and the placeholder names nobody. A member file written by `import` with that placeholder
alone would then have the plan remove the person, by her real email, and subscribe the
placeholder: a second profile, one Iterable never emails. So `import` writes each such
member's userId beside the placeholder, which the plan follows to the profile
(state/changed_emails.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from reconciler.iterable import IterableClient
from reconciler.iterable.client import member_line
from reconciler.members.identity import Member
from reconciler.state.live import read_field_values

DOMAIN = "@placeholder.email"


def is_placeholder(email: str) -> bool:
    return email.lower().endswith(DOMAIN)


def placeholders_in(downloads: Iterable[Path]) -> list[str]:
    """The placeholder emails among these getUsers answers (one identifier per line)."""
    found: set[str] = set()
    for path in downloads:
        with path.open(encoding="utf-8", errors="replace", newline="") as handle:
            for line in handle:
                identifier = member_line(line.removesuffix("\n"))
                if is_placeholder(identifier):
                    found.add(identifier)
    return sorted(found)


def user_ids_of(client: IterableClient, emails: list[str]) -> tuple[Mapping[str, str], str | None]:
    """The userId of each of these placeholder emails' profiles that has one: per-user
    reads, or one export where that costs less (as mapped fields are read); and that read,
    in words (None: none was needed), as a plan says what it read besides the members."""
    if not emails:
        return {}, None
    members = [Member(e, "email", email=e) for e in emails]
    live = read_field_values(
        client, members, ["userId"], "email", what="userIds of placeholder emails"
    )
    out: dict[str, str] = {}
    for email in emails:
        user_id = (live.values.get(email) or {}).get("userId")
        if isinstance(user_id, str) and user_id:
            out[email] = user_id
    whose = (
        "1 placeholder email's profile"
        if len(emails) == 1
        else f"{len(emails):,} placeholder emails' profiles"
    )
    said = (
        f"the userIds of {whose} read ({live.read.describe(users=False)}), to write them "
        "beside the placeholders"
    )
    return out, said
