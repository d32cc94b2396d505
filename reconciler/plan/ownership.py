"""Which lists reconciler owns: the ones it created, marked in their description.

Only marked lists are ever candidates for deletion (`prune: true`); a list someone made by
hand in Iterable is never deleted, whatever its name.
"""

from __future__ import annotations

import re

MARKER = "managed-by: reconciler"
# The marker as written since lists also name their audience: a changed listName can then
# be told from a new audience (Iterable cannot rename lists, so it is a new list).
_MARKED = re.compile(
    r"\s*\[" + re.escape(MARKER) + r"(?:; audience: ([^\];]*))?(?:; run [0-9a-f]+)?\]"
)


def mark(description: str | None, audience: str | None = None, run: str | None = None) -> str:
    """The description a created list carries. `audience` names the audience it was made
    for (a changed listName is then told from a new audience); `run` identifies the apply
    that created it, so that after a create whose answer was lost, the list that shows up
    later is recognised as this run's own rather than someone else's of the same name."""
    parts = [MARKER]
    if audience:
        parts.append(f"audience: {audience}")
    if run:
        parts.append(f"run {run}")
    tag = "[" + "; ".join(parts) + "]"
    return f"{description} {tag}" if description else tag


def is_managed(description: str | None) -> bool:
    return bool(description) and MARKER in (description or "")


def marked_audience(description: str | None) -> str | None:
    """The audience a managed list was created for, when its marker names one."""
    found = _MARKED.search(description or "")
    return found.group(1) if found else None


def unmarked(description: str | None) -> str | None:
    """A list's description as its manifest wrote it, without the marker."""
    text = _MARKED.sub("", description or "").strip()
    return text or None
