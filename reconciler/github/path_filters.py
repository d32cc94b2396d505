"""GitHub's `paths:` and `paths-ignore:` filters, as a workflow's `on:` event reads them.

GitHub starts a pull request's or a push's workflow only when a changed file passes the
event's filter. A member file outside the filters of the plan and apply workflows
(`csv: ../data/members.csv` under `paths: [manifests/**]`) is changed with no plan shown
and nothing applied, until a scheduled sync applies it unreviewed; workflow_paths.py warns
of it, and this module says which files a filter passes, by GitHub's filter pattern
cheat sheet: `*` any run of characters but `/`, `**` any run (`**/` any directories,
none too), `?` and `+` zero-or-one and one-or-more of the character before, `[a-z0-9]`
one character listed, `\\` takes the next character as it is, and a leading `!`
excludes what the patterns before it included (the last pattern to match decides).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

# Characters that mean something in a pattern: a file name holding one is written with `\`.
_SPECIAL = frozenset("*?+[]!\\")


@dataclass(frozen=True)
class PathFilter:
    """One event's filter: its patterns, in order, and whether they are `paths-ignore`."""

    patterns: tuple[str, ...]
    ignore: bool = False

    def passes(self, name: str) -> bool:
        """Whether a change to `name` alone (relative to the repository's root, with `/`)
        starts the workflow."""
        if self.ignore:
            # GitHub documents `!` for `paths` only; whether it re-includes a file in
            # `paths-ignore` is not said, so a file any pattern there ignores counts as
            # ignored: a warning too many, never a silent pull request without a plan.
            return not any(
                not p.startswith("!") and _regex(p).fullmatch(name) for p in self.patterns
            )
        passed = False
        for pattern in self.patterns:
            negative = pattern.startswith("!")
            if _regex(pattern.removeprefix("!") if negative else pattern).fullmatch(name):
                passed = not negative
        return passed


def passes_all(filters: Sequence[PathFilter], name: str) -> bool:
    return all(f.passes(name) for f in filters)


def escape(name: str) -> str:
    """`name` as a pattern that matches it alone."""
    return "".join(f"\\{c}" if c in _SPECIAL else c for c in name)


@lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str]:
    """The regular expression of one pattern (without its leading `!`). A pattern GitHub
    would refuse (an unclosed `[`) matches its characters as they are: the workflow does
    not run then, and a warning too many is the safe side."""
    tokens: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            tokens.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            tokens.append(".*")
            i += 2
        elif c == "*":
            tokens.append("[^/]*")
            i += 1
        elif c in "?+" and tokens:
            # Of the token before: a group, so that it applies to that one whole.
            tokens[-1] = f"(?:{tokens[-1]}){c}"
            i += 1
        elif c == "[" and pattern.find("]", i + 2) > 0:
            end = pattern.index("]", i + 2)
            inside = pattern[i + 1 : end]
            tokens.append("[" + "".join(ch if ch == "-" else re.escape(ch) for ch in inside) + "]")
            i = end + 1
        elif c == "\\" and i + 1 < len(pattern):
            tokens.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            tokens.append(re.escape(c))
            i += 1
    return re.compile("".join(tokens), re.DOTALL)
