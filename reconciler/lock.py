"""One apply per destination at a time on one machine: a lock file under the state dir.

Two applies interleaving against one list could each unsubscribe what the other just
subscribed. Across machines (CI), a workflow concurrency group does this job.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from reconciler.errors import LockedError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def destination_locks(state_dir: Path, destinations: list[str]) -> Iterator[None]:
    held: list[Path] = []
    try:
        for name in sorted(destinations):
            held.append(_acquire(state_dir / "locks" / f"{name}.lock", name))
        yield
    finally:
        for path in held:
            path.unlink(missing_ok=True)


def _acquire(path: Path, destination: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                other = json.loads(path.read_text())
            except (OSError, ValueError):
                other = {}
            same_host = other.get("host") == holder["host"]
            pid = other.get("pid")
            if same_host and isinstance(pid, int) and not _alive(pid):
                path.unlink(missing_ok=True)  # left by a process that died: take it over
                continue
            raise LockedError(
                f"another apply is running against destination {destination!r} "
                f"(pid {pid} on {other.get('host', '?')} since {other.get('since', '?')}); "
                f"wait for it, or remove {path} if that process is gone"
            ) from None
        with os.fdopen(fd, "w") as handle:
            json.dump(holder, handle)
        return path
    raise LockedError(f"could not take the lock {path}")
