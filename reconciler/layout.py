"""Characters that change the layout of text around them: one test for a manifest's names
(refused by validate) and for the markdown that quotes them (escaped); and the characters a
reader cannot see, escaped wherever output shows text that Iterable holds."""

from __future__ import annotations

import unicodedata

# Bidirectional overrides and isolates: they reorder how the text after them is shown.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# The zero-width joiner: part of many emoji (a family, a flag with a rainbow), so shown.
_JOINER = "\u200d"
# `breaks_layout` as a regular-expression character class in JSON Schema's dialect (and
# Python's): controls (Cc), the line and paragraph separators (Zl, Zp) and the
# bidirectional controls above, so an editor refuses the names validate refuses.
LAYOUT_BREAKING_CLASS = "\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069"


def breaks_layout(ch: str) -> bool:
    """A control character (a newline, a tab, an escape), a line or paragraph separator, or
    a bidirectional override. Other format characters are left alone: a joiner is part of
    many emoji."""
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI_CONTROLS


def unseen(ch: str) -> bool:
    """What `breaks_layout`, or a format character other than the emoji joiner: a zero-width
    space, a byte-order mark, a soft hyphen, a direction mark. A list name in Iterable that
    holds one reads as another name ("Gone" for "Gone\\u200b")."""
    return breaks_layout(ch) or (unicodedata.category(ch) == "Cf" and ch != _JOINER)


def one_line(text: str) -> str:
    """`text` with what `unseen` finds as escapes (a newline as `\\n`, a zero-width space as
    `\\u200b`): it stays on its line, where it cannot start a line of its own (a forged
    "no changes", a `::` workflow command in a CI log, the end of a markdown table row or
    code block), overwrite its line (a carriage return, a terminal's escape sequences),
    reorder what follows it, or pass for another name; nor can a tower of combining marks
    (more than MARKS_SHOWN in a row) be drawn over the lines around it."""
    if text.isascii() and text.isprintable():
        return text  # the common case, without a look at each character
    out = []
    marks = 0  # combining marks in a row so far
    for ch in text:
        marks = marks + 1 if unicodedata.category(ch) in _COMBINING else 0
        escaped = unseen(ch) or marks > MARKS_SHOWN
        out.append(ch.encode("unicode_escape").decode("ascii") if escaped else ch)
    return "".join(out)


# Combining marks (accents, enclosing circles) stack on the character before them. Scripts
# put a few on one letter (Vietnamese two, Thai three, pointed Hebrew four); past that a
# name is a tower drawn over the lines above and below it (a pull-request comment's rows
# around a list's, hiding what they say), so each further mark shows as its escape.
MARKS_SHOWN = 4
_COMBINING = ("Mn", "Me")


def yaml_quoted(text: str) -> str:
    """`text` as a YAML double-quoted scalar in which what `unseen` finds is an escape
    (`"Gone\\u200b"`): how a manifest writes a name holding such a character so that it
    shows in the file, as YAML reads it back."""
    body = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{one_line(body)}"'
