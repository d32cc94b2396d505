"""Who reconciler posts as, so it only ever edits or closes what it wrote itself.

A hidden marker alone is no proof of authorship: anyone who can comment can start a comment
with `<!-- reconciler-plan -->`, and the bot would then rewrite and later close *their*
comment or issue. So a comment or issue is reconciler's only when its marker is there AND
its author is the token's own account.

Which account that is depends on the token:
- a person's token (`gh auth login`, a PAT): `GET /user` answers with their login;
- an installation token (the workflows' GITHUB_TOKEN, a GitHub App's token): `GET /user`
  is refused ("Resource not accessible by integration"), but GraphQL's `viewer` answers
  with the app's bot name (`github-actions`), which REST shows as `github-actions[bot]`,
  with `user.type` "Bot".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.github.gh import Gh, GhError, GhUnreached

# The account GITHUB_TOKEN acts as; used when a workflow's token cannot name itself.
ACTIONS_BOT = "github-actions[bot]"
_BOT_SUFFIX = "[bot]"


@dataclass(frozen=True)
class Author:
    login: str  # as REST shows it on comments and issues: "octocat", "github-actions[bot]"

    @property
    def is_bot(self) -> bool:
        return self.login.lower().endswith(_BOT_SUFFIX)

    def wrote(self, item: dict[str, Any]) -> bool:
        """Whether `item` (a REST comment or issue) was written by this account."""
        user = item.get("user") or {}
        login = str(user.get("login") or "")
        if login.lower() != self.login.lower():
            return False
        # A person cannot register a login ending in [bot]; still, check the type where
        # GitHub gives it, so a bot identity never matches a person's comment.
        kind = user.get("type")
        return kind is None or (kind == "Bot") == self.is_bot


def own_author(gh: Gh, explicit: str | None = None) -> Author:
    """The account behind gh's token (or `explicit`, when the caller knows it)."""
    if explicit:
        return Author(explicit.strip())
    try:
        me = gh.api("GET", "user")
        if isinstance(me, dict) and me.get("login"):
            return Author(str(me["login"]))
    except GhUnreached:
        raise  # no answer (a hang, no gh): GraphQL would wait as long again for nothing
    except GhError:
        pass  # an installation token: ask GraphQL below
    try:
        answer = gh.api("POST", "graphql", {"query": "query { viewer { login } }"})
        login = str(((answer or {}).get("data") or {}).get("viewer", {}).get("login") or "")
    except (GhError, AttributeError):
        login = ""
    if login:
        # Only installation tokens get here (GET /user answered for every other kind), and
        # they always act as an app, whose REST login carries the [bot] suffix.
        return Author(login if login.lower().endswith(_BOT_SUFFIX) else login + _BOT_SUFFIX)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        return Author(ACTIONS_BOT)
    raise ReconcilerError(
        "cannot tell which GitHub account the token belongs to (gh api user and gh api "
        "graphql both failed): pass --author LOGIN"
    )
