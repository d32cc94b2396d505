"""An audience's former lists: the lists whose departures a plan holds back from its list.

Consent follows the audience, not the list's name: who left an audience's earlier list by
their own action must not be put on the list it has now (state/consent.py reads their
departures). The rule is defined once, here, for both sides that apply it: plan
(planning.with_former_lists) holds those departures back, and import
(adopt._candidates) refuses to adopt such a list, since declared it would hold no one
back any more.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from reconciler.plan.ownership import audience_marks, marked_after, marked_audience


def lists_by_marked_audience(all_lists: Sequence[Any]) -> dict[str, list[tuple[int, Any]]]:
    """Lists whose marker names an audience, by that name (as the marker writes it), each
    with its place among `all_lists`."""
    marked: dict[str, list[tuple[int, Any]]] = {}
    for position, old in enumerate(all_lists):
        audience = marked_audience(old.description)
        if audience is not None:
            marked.setdefault(audience, []).append((position, old))
    return marked


def made_for(marked: Mapping[str, list[tuple[int, Any]]], audience: str) -> list[Any]:
    """The lists whose marker names `audience`, as written or cut to fit (marks_audience),
    in their order among all lists."""
    found = {
        position: old
        for form in audience_marks([audience])
        for position, old in marked.get(form, ())
    }
    return [found[position] for position in sorted(found)]


def unnamed_lists_by_name(all_lists: Sequence[Any]) -> dict[str, list[Any]]:
    """Standard lists whose description names no audience (no marker: made by Segment's
    Iterable Lists destination, or by hand, and adopted by `reconciler import`; or an
    older reconciler's `[managed-by: reconciler]`), by their exact name. Such a list named
    by an audience's key is the list that audience managed until it set a listName: the
    import writes no listName for it, and Segment names its lists by the audience key.
    Its marker cannot be added afterwards (Iterable's API cannot change a description), so
    the name is the only link; taking it for the audience's errs towards holding back who
    left it themselves, never towards re-adding them."""
    by_name: dict[str, list[Any]] = {}
    for old in all_lists:
        if old.list_type == "Standard" and marked_audience(old.description) is None:
            by_name.setdefault(old.name, []).append(old)
    return by_name


class FormerLists:
    """The former lists of any audience of one Iterable project, from all its lists
    (indexed once: a plan asks for each of thousands of audiences)."""

    def __init__(self, all_lists: Sequence[Any]) -> None:
        self._marked = lists_by_marked_audience(all_lists)
        self._by_key = unnamed_lists_by_name(all_lists)
        self._after = {old.id: marked_after(old.description) for old in all_lists}
        self._names = {old.id: old.name for old in all_lists}

    def __bool__(self) -> bool:
        """Whether any audience can have a former list here (a marker names an audience,
        or a Standard list has none)."""
        return bool(self._marked or self._by_key)

    def of(self, audience: str, own: Collection[int], planned: Collection[str]) -> set[int]:
        """The former lists of `audience`, whose list is any of `own` (ids; none before its
        plan creates it), while the lists named `planned` are declared by some manifest of
        the project (a declared list is its own audience's, never a former one):

        - made for the audience under another name (its marker names the audience: a
          changed listName, or a rename in Iterable's web app);
        - named by its key without an audience's marker (adopted by `reconciler import`,
          as Segment names its lists, before the audience was given a listName);
        - named in its list's marker as one it was created after (a renamed key's old
          list), even when deleted since: its events still name it."""
        olds = made_for(self._marked, audience) + self._by_key.get(audience, [])
        found = {old.id for old in olds if old.name not in planned and old.id not in own}
        for list_id in own:
            found.update(
                i for i in self._after.get(list_id, ()) if self._names.get(i) not in planned
            )
        return found
