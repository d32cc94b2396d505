"""The memory a manifest's SQLite query (`url: sqlite:///...`) may use.

A manifest is untrusted and `validate` runs its query in CI. SQLite had only the time
limit: a recursive CTE doubling a string took gigabytes before SQLite's 1 GB string limit
stopped it, and a large ORDER BY or DISTINCT wrote its sort to temporary files (deleted as
they are opened, so nothing can watch their size) for the five minutes. Now a query's sorts
and temporary tables stay in memory (`temp_store = MEMORY`), and SQLite's allocations are
held to what a DuckDB query may use (a share of RECONCILER_MEMORY_LIMIT), past which the
query fails with SQLITE_NOMEM (Python's MemoryError).

SQLite's heap limit is the process's, not a connection's: it is set while any query runs
under it (several audiences' queries share it, as they share the machine) and put back as
it was once the last one ends, so SQLite elsewhere in the process is not held to it. The
PRAGMA can only lower it; putting it back takes sqlite3_hard_heap_limit64 itself, through
ctypes, where the sqlite3 module's library exports it (a build that does not keeps the
limit for the rest of the process: the same one, as RECONCILER_MEMORY_LIMIT does not change
within a command).
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_lock = threading.Lock()
_running = 0
_before = 0  # the process's limit when the first query started (0: none)


@contextmanager
def heap_limit(limit: int) -> Iterator[None]:
    """SQLite's allocations held to `limit` bytes (or a lower limit already set) while
    this and any other query under it run."""
    global _running, _before
    with _lock:
        if _running == 0:
            _before = _set_limit(None)
            _set_limit(min(limit, _before) if _before > 0 else limit)
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _running == 0:
                _put_back(_before)


def keep_temporary_in_memory(dbapi_connection: Any) -> None:
    """Sorts and temporary tables in memory, where the heap limit holds them, not in files
    on the disk, where nothing does (a connect event; before the authorizer, which refuses
    PRAGMA to the query)."""
    dbapi_connection.execute("PRAGMA temp_store = MEMORY")


def _set_limit(limit: int | None) -> int:
    """Set the process's hard heap limit (None: leave it); the limit it was."""
    with contextlib.closing(sqlite3.connect(":memory:")) as connection:
        (before,) = connection.execute("PRAGMA hard_heap_limit").fetchone()
        if limit is not None:
            connection.execute(f"PRAGMA hard_heap_limit = {int(limit)}")
    return int(before)


def _put_back(limit: int) -> None:
    setter = _heap_limit_setter()
    if setter is not None:
        setter(limit)


@functools.cache
def _heap_limit_setter() -> Callable[[int], int] | None:
    """sqlite3_hard_heap_limit64 of the library the sqlite3 module uses, if it is found
    and it is that library's (setting it changes what the PRAGMA reads); else None."""
    import ctypes  # here: only a SQLite query needs it, and not at start-up

    try:
        # The module's own file (SQLite linked into it, or a library it loads); None,
        # for a module built into the interpreter, is the interpreter's.
        function = ctypes.CDLL(_module_file())["sqlite3_hard_heap_limit64"]
    except (OSError, AttributeError, TypeError):
        return None
    function.restype = ctypes.c_int64
    function.argtypes = [ctypes.c_int64]
    before = _set_limit(None)
    probe = before - 1 if before > 1 else 1 << 40
    function(probe)
    if _set_limit(None) != probe:
        return None  # another copy of SQLite than the module's
    function(before)
    return lambda limit: int(function(limit))


def _module_file() -> str | None:
    import _sqlite3

    return getattr(_sqlite3, "__file__", None)
