"""One pull-request comment per marker, edited in place on every run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reconciler.github.gh import Gh
from reconciler.github.identity import Author
from reconciler.github.message import has_marker


@dataclass(frozen=True)
class Posted:
    action: Literal["created", "updated", "unchanged", "closed"]
    number: int  # comment id or issue number
    url: str | None


def upsert_comment(
    gh: Gh, repo: str, pull_request: int, marker: str, body: str, author: Author
) -> Posted:
    """Edit the comment by `author` that starts with `marker`, or create it.

    The oldest such comment is the one kept up to date, so a page never shows two plans
    that disagree about which is current. Comments by anyone else are never edited, even
    when they start with the marker.
    """
    comments = gh.api(
        "GET", f"repos/{repo}/issues/{pull_request}/comments?per_page=100", paginate=True
    )
    mine = [c for c in comments if has_marker(c.get("body"), marker) and author.wrote(c)]
    if not mine:
        created = gh.api("POST", f"repos/{repo}/issues/{pull_request}/comments", {"body": body})
        return Posted("created", int(created["id"]), created.get("html_url"))
    first = min(mine, key=lambda c: int(c["id"]))
    if first.get("body") == body:
        return Posted("unchanged", int(first["id"]), first.get("html_url"))
    gh.api("PATCH", f"repos/{repo}/issues/comments/{first['id']}", {"body": body})
    return Posted("updated", int(first["id"]), first.get("html_url"))
