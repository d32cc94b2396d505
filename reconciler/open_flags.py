"""Flags of os.open that only some systems have, as 0 where they mean nothing.

Python's open() chooses its flags for each system itself; os.open takes them as given,
so code that calls it names these rather than os's own, which Windows lacks (O_NONBLOCK)
or needs (O_BINARY).
"""

from __future__ import annotations

import os

# Windows opens a descriptor in text mode unless told otherwise: each "\n" written becomes
# "\r\n", and a read stops at the first Ctrl-Z byte. Elsewhere bytes are bytes.
BINARY: int = getattr(os, "O_BINARY", 0)

# POSIX: open a FIFO without waiting for a writer to come. Windows has no FIFOs among its
# files (its named pipes live under \\.\pipe\ and fail to open when none waits), so there
# is nothing to wait for.
NONBLOCK: int = getattr(os, "O_NONBLOCK", 0)
