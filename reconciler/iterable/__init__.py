"""Iterable's HTTP API, as reconciler uses it."""

from reconciler.iterable.client import (
    CHANNELS_FIELD,
    REGION_URLS,
    ClientStats,
    IterableClient,
    ListInfo,
    StreamCut,
    project_identity,
)
from reconciler.iterable.results import BatchResult
from reconciler.iterable.settings import ClientSettings

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
