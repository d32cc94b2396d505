"""Which lists reconciler owns: the ones it created, marked in their description.

Only marked lists are ever candidates for deletion (`prune: true`); a list someone made by
hand in Iterable is never deleted, whatever its name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

MARKER = "managed-by: reconciler"
# Iterable's list description holds at most 140 characters (support article 115000770906,
# "The list description field has a max character count of 140"); what the API does with
# more is not published (refuse the create, or cut the marker off the end), so a created
# list's description, marker included, is kept within it. Counted in UTF-16 units, as
# Java (Iterable's language) counts a string's length: an emoji is two of them, so a limit
# counted in code points would let a description of emoji run to twice the limit.
MAX_DESCRIPTION = 140
_CUT = "…"
# The longest run token mark() is given (the apply's secrets.token_hex(4)).
_RUN_ROOM = len("; run ") + 8
# The marker as written since lists also name their audience: a changed listName can then
# be told from a new audience (Iterable cannot rename lists, so it is a new list).
# A list created while Iterable held lists made for audiences no manifest declares any
# more (a renamed key) names them too ("after"): who left them themselves is held back from
# it on every plan, not only the one that creates it (plan/former.py).
_MARKED = re.compile(
    r"\s*\[" + re.escape(MARKER) + r"(?:; audience: ([^\];]*))?(?:; after ([0-9,]+))?"
    r"(?:; run [0-9a-f]+)?\]"
)
_AFTER = "; after "


def mark(
    description: str | None,
    audience: str | None = None,
    run: str | None = None,
    after: Sequence[int] = (),
) -> str:
    """The description a created list carries. `audience` names the audience it was made
    for (a changed listName is then told from a new audience); `after`, the lists whose
    departures it is held to (carried_ids: those that fit); `run` identifies the apply
    that created it, so that after a create whose answer was lost, the list that shows up
    later is recognised as this run's own rather than someone else's of the same name."""
    parts = [MARKER]
    if audience:
        parts.append(f"audience: {_fitted_audience(audience)}")
    carried = carried_ids(audience, after)
    if carried:
        parts.append(f"after {','.join(str(i) for i in carried)}")
    if run:
        parts.append(f"run {run}")
    tag = "[" + "; ".join(parts) + "]"
    text = fitted_description(description, audience, carried)
    return f"{text} {tag}" if text else tag


def carried_ids(audience: str | None, after: Sequence[int]) -> tuple[int, ...]:
    """Those of `after` (lowest first) the marker has room for beside the audience and a
    run token: its description's text is cut first, consent before prose."""
    room = MAX_DESCRIPTION - _tag_room(audience) - len(_AFTER) + 1  # the first has no comma
    carried: list[int] = []
    for list_id in sorted(set(after)):
        room -= len(str(list_id)) + 1
        if room < 0:
            break
        carried.append(list_id)
    return tuple(carried)


def marked_after(description: str | None) -> tuple[int, ...]:
    """The lists a managed list's marker says it was created after (mark's `after`)."""
    found = _MARKED.search(description or "")
    if found is None or not found.group(2):
        return ()
    return tuple(int(x) for x in found.group(2).split(",") if x)


def _tag_room(audience: str | None, carried: Sequence[int] = ()) -> int:
    """The characters the marker takes, with room for a run token."""
    tag = len("[" + MARKER + "]") + _RUN_ROOM
    if carried:
        tag += len(_AFTER) + len(",".join(str(i) for i in carried))
    return tag + (len("; audience: ") + len(_fitted_audience(audience)) if audience else 0)


def _fitted_audience(audience: str) -> str:
    """The audience as the marker names it: when the marker would not fit in a
    description otherwise (audience names run to 200 characters), its start, "…" and 8
    hex digits of its hash, which still tell two long names with one start apart."""
    room = MAX_DESCRIPTION - len("[" + MARKER + "; audience: ]") - _RUN_ROOM
    if len(audience) <= room:
        return audience
    digest = hashlib.sha256(audience.encode("utf-8")).hexdigest()[:8]
    return audience[: room - 1 - len(digest)] + _CUT + digest


def fitted_description(
    description: str | None, audience: str | None = None, carried: Sequence[int] = ()
) -> str | None:
    """The manifest's description as a created list carries it beside the marker: cut
    (ending in …) so that both fit in Iterable's 140 characters."""
    if not description:
        return None
    room = MAX_DESCRIPTION - _tag_room(audience, carried) - 1  # the space before the marker
    if utf16_length(description) <= room:
        return description
    return _cut_to(description, room - 1) + _CUT if room > 1 else None


def utf16_length(text: str) -> int:
    """A string's length as Java counts it: characters beyond U+FFFF count twice."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _cut_to(text: str, units: int) -> str:
    """The longest start of `text` of at most `units` UTF-16 units (whole characters)."""
    used = 0
    for end, ch in enumerate(text):
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > units:
            return text[:end]
    return text


def same_description(
    current: str | None, wanted: str | None, audience: str | None, carried: Sequence[int] = ()
) -> bool:
    """Whether a list's description (without the marker) is the manifest's, as written or
    as a created list carries it (cut to fit beside the marker's `carried` lists)."""
    return current == wanted or current == fitted_description(wanted, audience, carried)


def marks_audience(description: str | None, audience: str) -> bool:
    """Whether a managed list's marker names `audience` (as written, or cut to fit)."""
    return marked_audience(description) in (audience, _fitted_audience(audience))


def audience_marks(audiences: Iterable[str]) -> set[str]:
    """How markers may name these audiences: as written, and as cut to fit."""
    return {form for name in audiences for form in (name, _fitted_audience(name))}


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
