"""Publish plans where a team reviews them on GitHub: one pull-request comment that is
updated in place, and one issue for drift, each found again by a hidden marker and its
author: only what the token's own account wrote is ever edited or closed.

GitHub is reached through the `gh` CLI (`gh api`): it is on every GitHub-hosted runner,
takes its token from GH_TOKEN, and knows GitHub Enterprise hosts, so no token handling
lives here. Used by `reconciler github ...` in the shipped workflows, and from a laptop
with `gh auth login` alike.
"""

from reconciler.github.comment import upsert_comment
from reconciler.github.gh import Gh, GhError
from reconciler.github.identity import Author, own_author
from reconciler.github.issue import close_issue, open_or_update_issue
from reconciler.github.message import has_marker, marked_body, marker_line

__all__ = [
    "Author",
    "Gh",
    "GhError",
    "close_issue",
    "has_marker",
    "marked_body",
    "marker_line",
    "open_or_update_issue",
    "own_author",
    "upsert_comment",
]
