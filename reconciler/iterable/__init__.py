"""Iterable's HTTP API, as reconciler uses it.

The client (client.py, and httpx with it) is imported when first named here, not with the
package: `validate` reaches modules that use the package's light parts (batching, settings,
names) and never sends a request, and paid for httpx on every run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.iterable.names import CHANNELS_FIELD, REGION_URLS, StreamCut
from reconciler.iterable.results import BatchResult
from reconciler.iterable.settings import ClientSettings

if TYPE_CHECKING:
    from reconciler.iterable.client import ClientStats, IterableClient, ListInfo, project_identity

_IN_CLIENT = frozenset({"ClientStats", "IterableClient", "ListInfo", "project_identity"})


def __getattr__(name: str) -> Any:
    if name in _IN_CLIENT:
        from reconciler.iterable import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CHANNELS_FIELD",
    "REGION_URLS",
    "BatchResult",
    "ClientSettings",
    "ClientStats",
    "IterableClient",
    "ListInfo",
    "StreamCut",
    "project_identity",
]
