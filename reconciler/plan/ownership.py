"""Which lists reconciler owns: the ones it created, marked in their description.

Only marked lists are ever candidates for deletion (`prune: true`); a list someone made by
hand in Iterable is never deleted, whatever its name.
"""

from __future__ import annotations

MARKER = "managed-by: reconciler"


def mark(description: str | None) -> str:
    return f"{description} [{MARKER}]" if description else f"[{MARKER}]"


def is_managed(description: str | None) -> bool:
    return bool(description) and MARKER in (description or "")
