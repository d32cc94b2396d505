"""Inline members written bare with one of YAML's indicators first: `*` (an alias), `!`
(a tag) or `&` (an anchor).

A userId such as `*vip`, `!user42` or `&a1`, written bare, is no text to YAML: `- *vip`
is an alias of an anchor `&vip` (none is written: a syntax error), `- !user42` the empty
value with the tag `!user42`, and `- &a1` the empty value with the anchor `a1`. Each is
refused, saying to quote it; where the name YAML read may be a member's identity (under
`spec.members.inline`) it is shown as every output shows one: masked unless
--show-members (render/masking.py). Where the API key goes (`apiKey: *abc...`, a key
pasted bare) the name is left out altogether.
"""

from __future__ import annotations

import functools

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import (
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
)

from reconciler.render.masking import source_value

_INLINE = ["spec", "members", "inline"]


def in_inline_members(text: str, line: int, column: int) -> bool:
    """Whether the value that starts at 0-based `line` and `column` of the file `text` is
    below a document's `spec.members.inline`. The file is parsed again, once however many
    values ask (only a file with such a problem is); a value past where it cannot be
    parsed counts as below it, the side on which nothing is shown."""
    marks, _, failed_at = _inline_marks(text)
    return (line, column) in marks or (failed_at is not None and (line, column) >= failed_at)


def in_secret(text: str, line: int, column: int) -> bool:
    """Whether the value that starts at 0-based `line` and `column` of the file `text` is
    where a secret goes: the value of a key `apiKey`, or below it (`apiKey: *abc...` is a
    key written bare, its name no alias's). What YAML read there is never shown, not even
    with --show-members. A value past where the file cannot be parsed counts as one."""
    _, secrets, failed_at = _inline_marks(text)
    return (line, column) in secrets or (failed_at is not None and (line, column) >= failed_at)


_SECRET_KEY = "apiKey"
_Marks = frozenset[tuple[int, int]]


def _below_secret(stack: list[tuple[bool, str | None, bool]]) -> bool:
    """Whether the node read next is the value of a key `apiKey`, or inside it (an
    enclosing mapping's key names the value open in it; the innermost's only once read)."""
    last = len(stack) - 1
    return any(
        mapping and key == _SECRET_KEY and (n < last or not wants_key)
        for n, (mapping, key, wants_key) in enumerate(stack)
    )


@functools.lru_cache(maxsize=2)
def _inline_marks(text: str) -> tuple[_Marks, _Marks, tuple[int, int] | None]:
    """Where each value below `spec.members.inline` starts, where each value where a
    secret goes starts (in_secret), and where parsing `text` failed, if it did."""
    marks: set[tuple[int, int]] = set()
    secrets: set[tuple[int, int]] = set()
    # One entry per open collection: whether a mapping, its key being read, and whether
    # its next node is a key.
    stack: list[tuple[bool, str | None, bool]] = []
    try:
        for event in YAML(typ="safe", pure=True).parse(text):
            if isinstance(event, DocumentStartEvent):
                stack = []
            elif isinstance(event, CollectionEndEvent):
                stack.pop()
            if not isinstance(event, NodeEvent):
                continue
            if [key if mapping else None for mapping, key, _ in stack[:3]] == _INLINE:
                marks.add((event.start_mark.line, event.start_mark.column))
            if _below_secret(stack):
                secrets.add((event.start_mark.line, event.start_mark.column))
            if stack and stack[-1][0]:
                _, key, wants_key = stack[-1]
                if wants_key:
                    written = event.value if isinstance(event, ScalarEvent) else None
                    stack[-1] = (True, written, False)
                else:
                    stack[-1] = (True, key, True)
            if isinstance(event, CollectionStartEvent):
                stack.append((isinstance(event, MappingStartEvent), None, True))
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        failed = (mark.line, mark.column) if mark is not None else (0, 0)
        return frozenset(marks), frozenset(secrets), failed
    return frozenset(marks), frozenset(secrets), None


def masked(name: str) -> str:
    """A name YAML read from an inline member, as a member's identity is shown."""
    return source_value(name)


def alias_message(name: str) -> str:
    """The message for `*name` under inline members, with no anchor `&name` before it."""
    return (
        f"invalid YAML: found undefined alias '{masked(name)}'; a value that starts with * "
        "is an alias to YAML (of an anchor &name): put a member's value that starts with * "
        "in quotes"
    )


SECRET_ALIAS_MESSAGE = (
    "invalid YAML: an alias (*name) where the API key goes, which no anchor (&name) before "
    "it names (its name is left out: it may be the key); a key never goes in a manifest: "
    "write `apiKey: {env: VARIABLE}` or `{file: PATH}`"
)


def tag_message(tag: str, inline: bool, scalar: bool, secret: bool = False) -> str:
    """The message for an unsupported tag: on a value (`scalar`) written with one `!`,
    most likely text (`!user42`) that wants quotes. Where a secret goes, the tag is left
    out (`apiKey: !abc...`: a key written bare)."""
    shown = tag
    local = tag.startswith("!") and not tag.startswith("!!")  # `!!str` is YAML's own
    if inline and local:
        shown = "!" + masked(tag[1:])
    if secret and local:
        return (
            "a tag (!name) where the API key goes is not supported (its name is left out: "
            "it may be the key); a key never goes in a manifest: write "
            "`apiKey: {env: VARIABLE}` or `{file: PATH}`"
        )
    message = f"tag {shown} is not supported here"
    if scalar and local:
        message += "; a value that starts with ! is a tag to YAML: put it in quotes to make it text"
    return message


ANCHOR_MESSAGE = (
    "an anchor (&name) with no value; a value that starts with & is an anchor to YAML, not "
    "text: put a member's value that starts with & in quotes"
)
