"""The text of what reconciler posts: a hidden marker first, the body, a footer, and a
size that GitHub accepts."""

from __future__ import annotations

import re

from reconciler.errors import ReconcilerError
from reconciler.render.cut import cut_markdown

# GitHub refuses comment and issue bodies over 65,536 characters; leave room for the
# marker, the truncation note and the footer.
MAX_BODY = 60_000
_MARKER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def marker_line(marker: str) -> str:
    """`<!-- reconciler-plan -->`: invisible on GitHub, found again on the next run."""
    if not _MARKER_NAME.match(marker):
        raise ReconcilerError(f"marker {marker!r}: use lowercase letters, digits and '-'")
    return f"<!-- {marker} -->"


def has_marker(body: str | None, marker: str) -> bool:
    # At the very start only: a reply quoting the comment starts with '>', and a person
    # pasting the marker somewhere else is not reconciler's comment.
    return (body or "").startswith(marker_line(marker))


def marked_body(marker: str, text: str, footer: str | None = None, *, full_at: str = "") -> str:
    """The marker line, `text` (cut to fit, saying so and where the rest is) and a footer."""
    note = (
        "_The plan is too long for a comment and was cut here"
        + (f"; the job summary of {full_at} holds more of it" if full_at else "")
        + "._"
    )
    body = cut_markdown(text.rstrip("\n"), MAX_BODY, note)
    parts = [marker_line(marker), body]
    if footer:
        parts.append(f"<sub>{footer}</sub>")
    return "\n".join(parts[:1]) + "\n" + "\n\n".join(parts[1:]) + "\n"
