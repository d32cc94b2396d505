"""One apply per Iterable project at a time on one machine: a lock file under the state dir.

Two applies interleaving against one list could each unsubscribe what the other just
subscribed, or both create a list the other is creating. The lock is keyed by what
identifies the Iterable project (its base URL and API key, as one SHA-256 digest:
`IterableClient.project_id`), not by a destination's name, which two manifests or two
checkouts may spell differently. The state dir is found from the manifests' repository, not
the working directory (cli._state_dir), so applies started from different directories of
one checkout meet at the same lock.

Nothing here reaches another machine or another checkout: across those (CI runners), the
workflows' concurrency group serialises applies.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from reconciler.errors import LockedError

LOCKS_DIR = "locks"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_path(state_dir: Path, project_id: str) -> Path:
    """The lock file of one Iterable project. Its name is a digest of the key (with the
    base URL): a SHA-256 of a high-entropy key reveals nothing of it, but it is never
    printed all the same."""
    return state_dir / LOCKS_DIR / f"project-{project_id}.lock"


@contextmanager
def project_locks(state_dir: Path, projects: Mapping[str, str]) -> Iterator[None]:
    """Hold the lock of every project in `projects` (destination name -> project id);
    destinations that share a project share its lock."""
    names: dict[str, list[str]] = {}
    for destination, project_id in projects.items():
        names.setdefault(project_id, []).append(destination)
    held: list[Path] = []
    try:
        for project_id in sorted(names):
            held.append(_acquire(lock_path(state_dir, project_id), sorted(names[project_id])))
        yield
    finally:
        for path in held:
            path.unlink(missing_ok=True)


def _acquire(path: Path, destinations: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
        "destinations": destinations,
    }
    named = ", ".join(repr(d) for d in destinations)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            try:
                other = json.loads(path.read_text())
            except (OSError, ValueError):
                other = {}
            other = other if isinstance(other, dict) else {}
            same_host = other.get("host") == holder["host"]
            pid = other.get("pid")
            if same_host and isinstance(pid, int) and not _alive(pid):
                path.unlink(missing_ok=True)  # left by a process that died: take it over
                continue
            raise LockedError(
                f"another apply is running against the Iterable project of destination "
                f"{named} (pid {pid} on {other.get('host', '?')} since "
                f"{other.get('since', '?')}); wait for it, or, if that process is gone, "
                f"remove the lock file naming {named} in {path.parent}"
            ) from None
        with os.fdopen(fd, "w") as handle:
            json.dump(holder, handle)
        return path
    raise LockedError(f"could not take the lock of destination {named} in {path.parent}")
