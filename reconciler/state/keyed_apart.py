"""Destinations that reach one Iterable project with different API keys.

Which destinations name one project is judged by host and key (IterableClient.project_id),
since nothing else is known before Iterable is read. But a project has as many keys as its
admins make, and a team giving each destination a key of its own (one per team, revoked
apart) makes no mistake: each destination then took the others' lists for lists no
manifest declares, so one with `prune: true` deleted them on every apply and the other
created them again (new ids, campaigns and journeys cut off, and who had left them
themselves added back). Iterable's list ids are unique across projects (as the emulator's
ListIdSequence models them), so two list indexes that share an id are one project's; were
two projects ever to share one, the cost is lists spared from prune, the safe side."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reconciler.errors import IterableError
from reconciler.iterable import IterableClient
from reconciler.plan.ownership import is_managed


class KeyedApart:
    """For each planned destination, the list names that the manifests' destinations of
    another key declare in the same project. `declared_of(name)`: the list names every
    audience of destination `name` declares."""

    def __init__(
        self,
        clients: Mapping[str, IterableClient],
        declared_of: Callable[[str], set[str]],
    ):
        self._clients = clients
        self._declared_of = declared_of
        self._indexes: dict[str, frozenset[int] | None] = {}

    def declared(self, name: str, all_lists: Sequence[Any], declared: set[str]) -> set[str]:
        """`declared` (destination `name`'s project as its key reaches it) with the list
        names of every destination whose key differs and whose list index shares a list
        id with `all_lists`. Their indexes are read (one GET /api/lists each, once per
        plan) only when `all_lists` has a list made by reconciler that `declared` lacks:
        the only lists whose fate (prune, a note) the others' audiences change. An index
        that cannot be read counts as the same project's: sparing a list is undone by
        the next plan, deleting one is not."""
        if not any(
            x.list_type == "Standard" and is_managed(x.description) and x.name not in declared
            for x in all_lists
        ):
            return declared
        ours = self._clients[name].project_id
        ids = {x.id for x in all_lists}
        out = set(declared)
        for other, client in self._clients.items():
            if client.project_id == ours:
                continue
            index = self._index(other, client)
            if index is None or index & ids:
                out |= self._declared_of(other)
        return out

    def _index(self, name: str, client: IterableClient) -> frozenset[int] | None:
        if name not in self._indexes:
            try:
                self._indexes[name] = frozenset(x.id for x in client.get_lists())
            except IterableError:
                self._indexes[name] = None
        return self._indexes[name]
