"""Cutting markdown to a size limit without breaking what follows the cut.

Pure, and free of the renderers' dependencies: `reconciler github` uses it on what it posts,
and the plan renderer on the plan."""

from __future__ import annotations


def cut_markdown(text: str, limit: int, note: str) -> str:
    """`text` when it fits in `limit` characters; else its start, cut at a line end, with
    the code blocks and <details> it leaves open closed (or the rest of the page renders
    as code, or folded away), then `note`; at most `limit` characters in all."""
    if len(text) <= limit:
        return text
    budget = limit - len(note) - 2
    while budget > 0:
        cut = text[:budget]
        cut = cut[: cut.rfind("\n")] if "\n" in cut else ""
        closed = cut + _closing(cut)
        if len(closed) <= budget:
            return closed + "\n\n" + note
        budget = len(cut) - 1
    return note[:limit]


def _closing(text: str) -> str:
    # Only what starts a line opens a block: a name quoted inside a line cannot.
    lines = [line.lstrip() for line in text.splitlines()]
    fence = "\n```" if sum(line.startswith("```") for line in lines) % 2 else ""
    opened = sum(line.startswith("<details>") for line in lines)
    closed = sum(line.startswith("</details>") for line in lines)
    return fence + "\n</details>" * max(0, opened - closed)
