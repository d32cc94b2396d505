"""A full disk, as the kernel makes one: RLIMIT_FSIZE caps how large this process may
make any one file, and a write past it fails with EFBIG (Python ignores SIGXFSZ), as a
write to a full disk fails with ENOSPC."""

from __future__ import annotations

import resource
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """No file this process writes grows past `limit` bytes, until the block ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
