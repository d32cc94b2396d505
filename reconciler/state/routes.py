"""How members are read: getUsers per list, or one user export for every list.

Its own module because two readers ask it: state/live.py, and the member engine's
prefetch (members/engine/prefetch.py), which live.py reaches through the member model;
kept in live.py, the two would import each other."""

from __future__ import annotations

from reconciler.iterable import ClientSettings


def choose_member_read(existing_lists: int, settings: ClientSettings) -> str:
    """getUsers costs one call per list at 5 per minute; one user export reads every list at
    once (4 per minute). Beyond the getUsers budget the export saves 12 s per list."""
    if settings.member_reads != "auto":
        return settings.member_reads
    budget = settings.list_reads_per_minute
    return "export" if budget > 0 and existing_lists > budget else "getUsers"
