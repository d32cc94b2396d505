"""A PostgreSQL error's `LINE n:` excerpt drawn from the manifest's query, not from the
statement reconciler sent around it.

libpq draws the excerpt from the statement it sent and the server's error position, so a
query that reconciler wraps (to learn its columns) had its first line shown inside the
wrapper, the caret under text the user never wrote."""

from __future__ import annotations

import re
from typing import Any

# libpq's excerpt: the line, then the caret on a line of its own.
_EXCERPT = re.compile(r"^LINE \d+: .*\n\s*\^\s*$", re.MULTILINE)
_WIDTH = 60  # libpq cuts a longer line to about this many characters around the caret


def statement_position(exc: Any) -> int | None:
    """The 1-based character position the server gave for the error (psycopg 3 and
    psycopg2 both carry it in `diag`), or None."""
    diag = getattr(exc, "diag", None)
    position = getattr(diag, "statement_position", None)
    try:
        return int(position) if position is not None else None
    except (TypeError, ValueError):
        return None


def excerpt(query: str, offset: int) -> str:
    """libpq's two lines for the character at `offset` (0-based) of `query`."""
    line_no = query.count("\n", 0, offset) + 1
    start = query.rfind("\n", 0, offset) + 1
    end = query.find("\n", offset)
    line = query[start : end if end != -1 else len(query)].replace("\t", " ")
    column = offset - start
    shown = line
    if len(line) > _WIDTH:
        left = max(0, min(column - _WIDTH // 2, len(line) - _WIDTH))
        shown = line[left : left + _WIDTH]
        column -= left
        if left:
            shown, column = "..." + shown, column + 3
        if left + _WIDTH < len(line):
            shown += "..."
    label = f"LINE {line_no}: "
    return f"{label}{shown}\n{' ' * (len(label) + column)}^"


def in_query(message: str, position: int | None, prefix: int, query: str) -> str:
    """`message` with its excerpt drawn from `query`, sent after `prefix` characters of
    reconciler's own; without an excerpt of the query (the error is in reconciler's part,
    or the server gave no position), as it was, or without the excerpt."""
    if position is None or not _EXCERPT.search(message):
        return message
    offset = position - 1 - prefix
    if not 0 <= offset < len(query):
        return _EXCERPT.sub("", message).rstrip("\n")
    return _EXCERPT.sub(lambda _: excerpt(query, offset), message, count=1)
