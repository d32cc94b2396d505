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
    room = limit - len(note) - 2
    # Room kept for the closing lines. The cut that did not fit left them less room than
    # they need, so the next cut keeps that much more: the room grows by a closing's length
    # (the old loop gave up one character, then the line before it, and lines shorter than
    # the closing never made room: a long code block of short lines was dropped whole, in
    # seconds, one line a pass).
    reserve = 0
    while reserve < room:
        end = text.rfind("\n", 0, room - reserve + 1)
        cut = text[:end] if end > 0 else ""
        closing = _closing(cut)
        if len(cut) + len(closing) <= room:
            return cut + closing + "\n\n" + note
        # len(cut) <= room - reserve, so len(closing) > reserve: the reserve only grows.
        reserve = len(closing)
    return note[:limit]


def _closing(text: str) -> str:
    # Only what starts a line opens a block: a name quoted inside a line cannot.
    lines = [line.lstrip() for line in text.splitlines()]
    fence = "\n```" if sum(line.startswith("```") for line in lines) % 2 else ""
    opened = sum(line.startswith("<details>") for line in lines)
    closed = sum(line.startswith("</details>") for line in lines)
    return fence + "\n</details>" * max(0, opened - closed)
