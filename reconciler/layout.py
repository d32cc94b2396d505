"""Characters that change the layout of text around them: one test for a manifest's names
(refused by validate) and for the markdown that quotes them (escaped)."""

from __future__ import annotations

import unicodedata

# Bidirectional overrides and isolates: they reorder how the text after them is shown.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def breaks_layout(ch: str) -> bool:
    """A control character (a newline, a tab, an escape), a line or paragraph separator, or
    a bidirectional override. Other format characters are left alone: a joiner is part of
    many emoji."""
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI_CONTROLS
