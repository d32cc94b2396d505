"""What of Iterable's API other modules name without talking to it: the regions' URLs, a
profile's channel-unsubscribes field, the error of a bulk answer cut midway.

Apart from client.py, which imports httpx: `validate` reaches the modules that name these
(the member engine, the routes and windows of reads), and never sends a request.
"""

from __future__ import annotations

from reconciler.errors import LiveStateError

REGION_URLS = {"us": "https://api.iterable.com", "eu": "https://api.eu.iterable.com"}
# A profile's channel unsubscribes (Iterable's user field): what the consent guard reads,
# asked of every export of the members that can carry it (state/consent.py).
CHANNELS_FIELD = "unsubscribedChannelIds"


class StreamCut(LiveStateError):
    """A bulk answer that started (200) and then died midway: raised, not retried, by
    reads that would rather read less again (a date window of the export, halved)."""
