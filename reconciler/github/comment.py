"""One pull-request comment per marker, edited in place on every run."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from reconciler.github.gh import Gh
from reconciler.github.identity import Author
from reconciler.github.message import has_marker, marker_line


@dataclass(frozen=True)
class Posted:
    action: Literal["created", "updated", "unchanged", "closed"]
    number: int  # comment id or issue number
    url: str | None


# Opens the warning mark_outdated puts at the top of a comment, so that the next mark
# replaces it instead of stacking another (a push whose run was cancelled by a newer one).
OUTDATED_LINE = "<!-- reconciler-outdated -->"
# The footer `reconciler github comment --commit` writes: which commit the plan is for.
_PLAN_FOR = re.compile(r"Plan for ([0-9a-f]{7,40})\b")


def _own_comment(
    gh: Gh, repo: str, pull_request: int, marker: str, author: Author
) -> dict[str, Any] | None:
    """The oldest comment by `author` starting with `marker`: the one kept up to date."""
    comments = gh.api(
        "GET", f"repos/{repo}/issues/{pull_request}/comments?per_page=100", paginate=True
    )
    mine = [c for c in comments if has_marker(c.get("body"), marker) and author.wrote(c)]
    return min(mine, key=lambda c: int(c["id"])) if mine else None


def upsert_comment(
    gh: Gh, repo: str, pull_request: int, marker: str, body: str, author: Author
) -> Posted:
    """Edit the comment by `author` that starts with `marker`, or create it.

    The oldest such comment is the one kept up to date, so a page never shows two plans
    that disagree about which is current. Comments by anyone else are never edited, even
    when they start with the marker.
    """
    first = _own_comment(gh, repo, pull_request, marker, author)
    if first is None:
        created = gh.api("POST", f"repos/{repo}/issues/{pull_request}/comments", {"body": body})
        return Posted("created", int(created["id"]), created.get("html_url"))
    if first.get("body") == body:
        return Posted("unchanged", int(first["id"]), first.get("html_url"))
    gh.api("PATCH", f"repos/{repo}/issues/comments/{first['id']}", {"body": body})
    return Posted("updated", int(first["id"]), first.get("html_url"))


def planned_commit(body: str) -> str | None:
    """The commit a plan comment's footer names (its first 12 hex digits), if any."""
    found = _PLAN_FOR.findall(body)
    return found[-1] if found else None


def outdated_body(body: str, marker: str, warning: str) -> str:
    """`body` with `warning` at its top, below the marker, in place of an earlier one."""
    head = marker_line(marker) + "\n"
    rest = body[len(head) :] if body.startswith(head) else body.removeprefix(marker_line(marker))
    if rest.startswith(OUTDATED_LINE + "\n"):
        _, _, rest = rest.partition("\n\n")
    return f"{head}{OUTDATED_LINE}\n{warning.strip()}\n\n{rest}"


def mark_outdated(
    gh: Gh, repo: str, pull_request: int, marker: str, commit: str, warning: str, author: Author
) -> Posted | None:
    """Put `warning` at the top of the plan comment while `commit` is being planned.

    A run that stops before it comments (cancelled, timed out, a runner lost) would
    otherwise leave an older commit's plan looking current. Nothing is written when there
    is no comment yet, or when it is `commit`'s own plan (a re-run of the same commit)."""
    first = _own_comment(gh, repo, pull_request, marker, author)
    if first is None:
        return None
    body = first.get("body") or ""
    old = planned_commit(body)
    if old is not None and commit.lower().startswith(old):
        return Posted("unchanged", int(first["id"]), first.get("html_url"))
    new = outdated_body(body, marker, warning)
    if new == body:
        return Posted("unchanged", int(first["id"]), first.get("html_url"))
    gh.api("PATCH", f"repos/{repo}/issues/comments/{first['id']}", {"body": new})
    return Posted("updated", int(first["id"]), first.get("html_url"))
