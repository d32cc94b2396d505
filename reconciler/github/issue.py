"""One open issue per marker: opened when something needs attention, kept current while it
does, closed when it no longer does (drift checks)."""

from __future__ import annotations

from typing import Any

from reconciler.github.comment import Posted
from reconciler.github.gh import Gh
from reconciler.github.identity import Author
from reconciler.github.message import has_marker


def find_open_issue(gh: Gh, repo: str, marker: str, author: Author) -> dict[str, Any] | None:
    """The oldest open issue (not pull request) by `author` whose body starts with `marker`.

    Filtered by author here, not with the API's `creator=` parameter: the same rule as
    for comments, in one place (Author.wrote)."""
    items = gh.api("GET", f"repos/{repo}/issues?state=open&per_page=100", paginate=True)
    mine = [
        i
        for i in items
        if "pull_request" not in i and has_marker(i.get("body"), marker) and author.wrote(i)
    ]
    return min(mine, key=lambda i: int(i["number"])) if mine else None


def open_or_update_issue(
    gh: Gh, repo: str, marker: str, title: str, body: str, author: Author
) -> Posted:
    found = find_open_issue(gh, repo, marker, author)
    if found is None:
        created = gh.api("POST", f"repos/{repo}/issues", {"title": title, "body": body})
        return Posted("created", int(created["number"]), created.get("html_url"))
    number = int(found["number"])
    if found.get("body") == body and found.get("title") == title:
        return Posted("unchanged", number, found.get("html_url"))
    gh.api("PATCH", f"repos/{repo}/issues/{number}", {"title": title, "body": body})
    return Posted("updated", number, found.get("html_url"))


def close_issue(
    gh: Gh, repo: str, marker: str, author: Author, comment: str | None = None
) -> Posted | None:
    """Close `author`'s open marked issue, saying why in a last comment; None when there is
    none."""
    found = find_open_issue(gh, repo, marker, author)
    if found is None:
        return None
    number = int(found["number"])
    if comment:
        gh.api("POST", f"repos/{repo}/issues/{number}/comments", {"body": comment})
    gh.api(
        "PATCH", f"repos/{repo}/issues/{number}", {"state": "closed", "state_reason": "completed"}
    )
    return Posted("closed", number, found.get("html_url"))
