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

The lock is the kernel's: an exclusive flock(2) on the lock file, held for the whole apply
and dropped by the kernel when the process ends, however it ends (SIGKILL, a second Ctrl-C's
os._exit, a crash). So a lock is stale exactly when no process holds it, whatever its pid
means here: a container sharing the state dir with its own PID namespace, a restarted
container whose apply has the pid the killed one had. The file's text (pid, host, start
time) is only for the message that names the holder.

Without flock (not POSIX, or a state directory on a file system that refuses it: NFS
mounted without a lock daemon, an SMB share on macOS, some FUSE file systems), or facing a
lock file an older reconciler wrote (no flock of its own), a lock is judged by its text:
stale only when its holder is known to be gone (same host and boot, same PID namespace,
and the pid either not running or running a process that started at another time).
Anything that cannot be judged counts as held.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.errors import LockedError, ReconcilerError
from reconciler.open_flags import BINARY
from reconciler.owner_only import owner_only_directories
from reconciler.processes import running

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: locks are judged by their text
    fcntl = None  # type: ignore[assignment]

LOCKS_DIR = "locks"

# The lock files this process holds (with the descriptor holding each one's flock): a lock
# naming this pid that is not among them was left by an earlier process that had the same
# pid (pid 1 of a restarted container).
_held: dict[Path, int | None] = {}


# Where Linux tells of boots, PID namespaces and process start times. macOS and the BSDs
# have no /proc: every one of those is then unknown (None), and a lock judged by its text is
# gone only when no process has its pid (tests point this at an empty directory).
PROC = "/proc"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return None


def _boot_id() -> str | None:
    """Which boot of the machine (Linux); None elsewhere."""
    return _read(f"{PROC}/sys/kernel/random/boot_id")


def _pid_namespace() -> str | None:
    """Which PID namespace this process sees pids in (Linux); None elsewhere."""
    try:
        return str(os.stat(f"{PROC}/self/ns/pid").st_ino)
    except OSError:
        return None


def _started(pid: int | str) -> str | None:
    """When process `pid` started, in clock ticks since boot (Linux); None elsewhere."""
    stat = _read(f"{PROC}/{pid}/stat")
    if not stat or ")" not in stat:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None  # field 22 of proc(5)


def _holder(destinations: list[str], flock: bool) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "boot": _boot_id(),
        "pid_namespace": _pid_namespace(),
        "started": _started("self"),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
        "destinations": destinations,
        # Held by flock: no process holding it is the whole test of staleness.
        "flock": flock,
    }


def _gone(other: dict[str, Any], path: Path) -> bool:
    """True only when the process that wrote `other` is known to have ended."""
    pid = other.get("pid")
    if other.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    boot = _boot_id()
    if other.get("boot") is not None and boot is not None and other["boot"] != boot:
        return True  # the machine restarted since: every process of that boot has ended
    if other.get("pid_namespace", _pid_namespace()) != _pid_namespace():
        return False  # another container's pid: not one this process can look up
    if pid == os.getpid():
        return path not in _held
    if not running(pid):
        return True
    started = other.get("started")
    return started is not None and _started(pid) not in (None, started)


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
            _release(path)


def release_all() -> None:
    """Remove every lock this process holds: for a process about to end with os._exit (a
    second Ctrl-C), which runs no `finally`."""
    for path in list(_held):
        _release(path)


def _release(path: Path) -> None:
    fd = _held.pop(path, None)
    try:
        # Removed while still held: a process that opened it meanwhile finds, once it
        # gets the flock, that the file is no longer the lock (see _take_flock).
        path.unlink(missing_ok=True)
    finally:
        if fd is not None:
            os.close(fd)


def _acquire(path: Path, destinations: list[str]) -> Path:
    named = ", ".join(repr(d) for d in destinations)
    try:
        return _take(path, destinations, named)
    except OSError as exc:
        # Nothing has been sent yet: say so, rather than as an internal error.
        raise ReconcilerError(
            f"cannot take the apply lock of destination {named} in {path.parent}: "
            f"{exc.strerror or type(exc).__name__}; the state directory must be writable "
            "(--state-dir or RECONCILER_STATE_DIR choose another). Nothing was changed."
        ) from None


def _take(path: Path, destinations: list[str], named: str) -> Path:
    owner_only_directories(path.parent.parent, path.parent)  # the state dir, its locks
    if fcntl is not None and _flock_works(path.parent):
        return _take_flock(path, destinations, named)
    # The holder is written to a file of its own first and linked into place whole: a lock
    # is never seen empty or half-written, which would name no holder that could be judged
    # gone (a kill or a full disk between creating the file and writing it left one).
    text = json.dumps(_holder(destinations, flock=False))
    fd, temporary = tempfile.mkstemp(prefix=".lock-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        for _ in range(2):
            try:
                _link(temporary, path, text)
            except FileExistsError:
                other = _holder_of(path)
                if _gone(other, path):
                    path.unlink(missing_ok=True)  # left by a process that ended: take it over
                    continue
                raise _locked(other, named, path) from None
            _held[path] = None
            return path
    finally:
        os.unlink(temporary)
    raise LockedError(f"could not take the lock of destination {named} in {path.parent}")


# What flock fails with on a file system that has no locks (NFS without its lock daemon,
# SMB on macOS, FUSE): not a reason to refuse every apply there.
_NO_FLOCK = {errno.ENOLCK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}


def _flock_works(directory: Path) -> bool:
    """Whether the file system of `directory` grants flock, tried on a file of this
    process's own: tried on the lock file itself, a refusal would leave that file behind
    empty, naming no holder. Raises OSError for any other failure."""
    fd, probe = tempfile.mkstemp(prefix=".flock-", dir=directory)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _NO_FLOCK:
            return False
        raise
    finally:
        os.close(fd)
        os.unlink(probe)
    return True


def _take_flock(path: Path, destinations: list[str], named: str) -> Path:
    for _ in range(3):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | BINARY, 0o600)
        ours = False  # the flock of the file at `path` is this process's
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise _locked(_holder_of(path), named, path, alive=True) from None
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None
            if current != os.fstat(fd).st_ino:
                os.close(fd)  # released and removed by its holder since we opened it
                continue
            ours = True
            other = _holder_of(path)
            if other.get("pid") is not None and not other.get("flock") and not _gone(other, path):
                # Written by a reconciler that did not flock: judged by its text.
                raise _locked(other, named, path)
            # Ours. The text is for messages only: a full disk here fails the apply
            # before anything is sent, and leaves nothing another run would mistake.
            os.ftruncate(fd, 0)
            text = json.dumps(_holder(destinations, flock=True)).encode()
            if os.pwrite(fd, text, 0) != len(text):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except BaseException as exc:
            if ours and not isinstance(exc, LockedError):
                path.unlink(missing_ok=True)  # a holder half-written: not left for the next run
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        _held[path] = fd
        return path
    raise LockedError(f"could not take the lock of destination {named} in {path.parent}")


def _locked(other: dict[str, Any], named: str, path: Path, *, alive: bool = False) -> LockedError:
    """`alive`: the kernel says the holder's process lives, so removing the file would only
    let two applies run at once."""
    advice = (
        "wait for it: the lock is released when that process ends"
        if alive
        else f"wait for it, or, if that process is gone, remove the lock file naming {named} "
        f"in {path.parent}"
    )
    return LockedError(
        f"another apply is running against the Iterable project of destination "
        f"{named} (pid {other.get('pid')} on {other.get('host', '?')} since "
        f"{other.get('since', '?')}); {advice}"
    )


def _link(temporary: str, path: Path, text: str) -> None:
    """Put the written holder at `path`, failing with FileExistsError if a lock is there.
    A file system without hard links gets the file created exclusively and then written.

    Any other failure of the link counts as no hard links here: the temporary file was just
    made in this directory, so it is writable, and file systems refuse links in many ways
    (Linux's vfat EPERM, FUSE exFAT ENOSYS, SMB ENOTSUP, Windows' FAT and some network
    shares EINVAL or EACCES). A listed few made the rest fail every apply with "the state
    directory must be writable", though it was; where the directory truly cannot take the
    lock, the exclusive create below fails and says why."""
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise
    except OSError:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | BINARY, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError:
            path.unlink(missing_ok=True)  # never leave a lock that names no holder
            raise


def _holder_of(path: Path) -> dict[str, Any]:
    try:
        other = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # nested too deep for the parser: damaged
        return {}
    return other if isinstance(other, dict) else {}
