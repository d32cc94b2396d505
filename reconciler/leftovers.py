"""Private temporary directories, and the removal of those a killed run left behind.

A run copies member sources (sources/snapshot.py), downloads lists (the DuckDB
workspace), exports a project several destinations name (state/users_file.py) and lets a
query spill into directories of its own, and removes them as it ends, on an error or
Ctrl-C too. A run killed outright (SIGKILL from a cancelled CI job or the OOM killer)
cannot: its copies of members' emails would stay in the temporary directory until the
machine is wiped. So each directory is named after the process that made it, and the
first directory a process makes in a place removes the ones there whose process is gone,
and those earlier versions named for no process (`_EARLIER`).

A temporary directory that fills up is said as such (`no_room`), naming the directory and
the variable that moves it, not as an internal error or a damaged plan file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.errors import ConfigError, ReconcilerError
from reconciler.processes import running

# Where the private directories go (members.engine.settings and sources.snapshot read it).
TEMP_DIR_VARIABLE = "RECONCILER_DUCKDB_TEMP_DIR"
# A write that failed for want of room: a full disk, a quota, a file over the size the
# file system (FAT's 4 GiB) or `ulimit -f` allows.
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

# The kinds of directory `private_directory` makes, reconciler-<kind>-<pid>-<random>: the
# sweep removes only these names, so a kind must be listed here to be made at all.
KINDS = ("source", "workspace", "query", "shared", "export", "rows")
_NAME = re.compile(rf"reconciler-(?:{'|'.join(KINDS)})-(\d+)-[A-Za-z0-9_]+")
# A directory is left alone until nothing in it has changed for this long, even when its
# process looks gone: a run in another PID namespace sharing this directory (containers on
# one host) would look gone too.
IDLE_SECONDS = 3600.0

_swept: set[str] = set()
# The places check_not_shared found safe.
_safe: set[str] = set()
# The directories this process made (their paths). One named for this pid that is not
# among them was made by an earlier process that had the same pid: in a container whose
# command runs as pid 1, every run has the pid the killed one had.
_made: set[str] = set()
_lock = threading.Lock()


def private_directory(kind: str, parent: Path | str | None = None) -> Path:
    """A new directory (mode 0700) under `parent` (made if missing, 0700 too, once the place
    is judged safe; the system's temporary directory when None) named for this process;
    the first one made there removes what dead runs left. Raises OSError as making either
    does, ConfigError for a place another user could take over (check_not_shared), and
    ValueError for a `kind` not in KINDS (one the sweep would never remove)."""
    if kind not in KINDS:
        raise ValueError(f"private directory kind {kind!r} is not in leftovers.KINDS")
    where = temp_parent(parent)
    if where not in _safe:
        # Before anything is made there, `parent` itself included (nothing is, when
        # refused), once per place: the directories above a missing one are judged.
        check_not_shared(where, parent is None)
        _safe.add(where)
    if parent is not None:
        _make_missing(Path(where))
    with _lock:
        first = where not in _swept
        _swept.add(where)
    if first:
        sweep(Path(where))
    made = tempfile.mkdtemp(prefix=f"reconciler-{kind}-{os.getpid()}-", dir=where)
    with _lock:
        _made.add(os.path.abspath(made))
    return Path(made)


def _make_missing(path: Path) -> None:
    """Make `path`'s missing directories, each 0700: made with the umask's mode, under
    `umask 0` (some container images) they would be writable by every user, a place
    check_not_shared refuses, and hold members' data as the directories made in them do.
    One that is there already (another run made it meanwhile) is taken as it is."""
    missing: list[Path] = []
    current = Path(os.path.abspath(path))
    while not current.is_dir() and current.parent != current:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)


# Said when Python finds no temporary directory: a container's read-only root file system
# with no TMPDIR (Python tries TMPDIR, TEMP and TMP, then /tmp, /var/tmp, /usr/tmp and the
# working directory).
NO_TEMP = (
    "no usable temporary directory (TMPDIR, if set, /tmp and /var/tmp are missing or not writable)"
)


def temp_parent(parent: Path | str | None) -> str:
    """Where private directories go: `parent`, or the system's temporary directory. Raises
    OSError (ENOENT, NO_TEMP) where there is none: Python's own FileNotFoundError, reaching
    a source's reader, said its file was "not found". Python's last resort, the working
    directory, counts as none unless TMPDIR (or TEMP, TMP) names it: there, usually the
    repository, copies of members' data left by a killed run are one `git add -A` from a
    commit."""
    if parent is not None:
        return str(parent)
    try:
        where = tempfile.gettempdir()
    except FileNotFoundError:
        raise OSError(errno.ENOENT, NO_TEMP) from None
    named = any(os.environ.get(name) for name in ("TMPDIR", "TEMP", "TMP"))
    fallback = os.path.realpath(where) == os.path.realpath(os.getcwd())
    # Run from /tmp itself, /tmp is the system's own choice, not the last resort.
    if not named and fallback and os.path.realpath(where) not in _system_temp_dirs():
        raise OSError(errno.ENOENT, NO_TEMP)
    return where


def check_not_shared(where: str, system: bool) -> None:
    """Refuse (ConfigError) a temporary directory `where` that another user could take
    over: it, or a directory above it, is writable by others without the sticky bit, or
    belongs to a user other than this one and root. Such a user can rename the private
    directories made there (0700 protects what is in them, not their name) and put one of
    their own in its place, then read the members' data written after. `system`: `where`
    is the system's temporary directory (TMPDIR), else RECONCILER_DUCKDB_TEMP_DIR; the
    system's writable by others without the sticky bit is warned about, not refused."""
    if _own_uid() is None:
        return  # Windows: no POSIX modes or owners to judge by
    # As written, a link in the path is as safe as its owner and the directory holding
    # it; where the links lead, each directory is judged as well.
    written, resolved = os.path.abspath(where), os.path.realpath(where)
    for directory in [*_and_above(written), *_and_above(resolved)]:
        try:
            info = os.lstat(directory)
        except OSError:
            continue  # what cannot be looked at is said by making the directory
        why = _shared_because(info)
        if why is None:
            continue
        place = "it" if directory in (written, resolved) else directory
        if system and why == _EVERY_USER:
            # The system's own: a Kubernetes pod's emptyDir /tmp (read-only root) is 0777
            # without the sticky bit, and holds one user; refusing would stop every run
            # there. Said, once per place; a directory named for reconciler is refused.
            _warn(
                f"{_shared_message(where, place, why, system)}. Used all the same, as the "
                "system's temporary directory"
            )
            return
        raise ConfigError(_shared_message(where, place, why, system))


def _warn(message: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # stderr gone: never the run
        sys.stderr.write(f"warning: {message}\n")
        sys.stderr.flush()


def _and_above(path: str) -> list[str]:
    found = [path]
    while os.path.dirname(found[-1]) != found[-1]:
        found.append(os.path.dirname(found[-1]))
    return found


_EVERY_USER = "is writable by every user and has no sticky bit (as /tmp has)"


def _own_uid() -> int | None:
    """This process's user id; None on Windows, which has none (every file's st_uid is 0)."""
    getuid = getattr(os, "getuid", None)
    return getuid() if getuid is not None else None


def _ours(info: os.stat_result) -> bool:
    """Whether a file with this lstat is this user's. On Windows, without owners to compare,
    every one is: the temporary directory there is the user's own (%LOCALAPPDATA%\\Temp)."""
    uid = _own_uid()
    return uid is None or info.st_uid == uid


def _shared_because(info: os.stat_result) -> str | None:
    """Why a directory (or a link to one) with this lstat is not safe to make private
    directories in. A link's own mode means nothing; its owner can point it elsewhere."""
    mode = info.st_mode
    if not stat.S_ISLNK(mode) and mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        return _EVERY_USER
    if info.st_uid not in (os.geteuid(), 0):
        return f"belongs to another user (uid {info.st_uid})"
    return None


def _shared_message(where: str, place: str, why: str, system: bool) -> str:
    if system:
        named = next((v for v in ("TMPDIR", "TEMP", "TMP") if os.environ.get(v)), None)
        variable = f"{named or 'the system temporary directory'} ({where})"
        fix = f"set {named or TEMP_DIR_VARIABLE} to a directory of your own"
    else:
        variable = f"{TEMP_DIR_VARIABLE} ({where})"
        fix = f"set {TEMP_DIR_VARIABLE} to a directory of your own, or unset it"
    return (
        f"{variable} cannot hold copies of members' data: {place} {why}, so another user "
        "could rename the private directories made there and read what is written after; "
        f"{fix} (mode 0700, or a sticky directory such as /tmp)"
    )


def _system_temp_dirs() -> set[str]:
    """The directories Python tries before the working directory on POSIX (besides
    TMPDIR, TEMP and TMP, which are checked apart), as real paths."""
    if os.name == "nt":
        return set()
    return {os.path.realpath(name) for name in ("/tmp", "/var/tmp", "/usr/tmp")}


def shown_temp(parent: Path | str | None) -> str:
    """The temporary directory `parent` (None: the system's) as a message names it, without
    looking for it again (which raises where there is none)."""
    if parent is not None:
        return str(parent)
    return tempfile.tempdir or "the system's temporary directory"


def made_by(name: str) -> int | None:
    """The pid of the process that made the directory named `name` with
    `private_directory`; None for a name that is not one of its (sweep leaves those)."""
    match = _NAME.fullmatch(name)
    return int(match.group(1)) if match is not None else None


def sweep(parent: Path, now: float | None = None) -> list[Path]:
    """Remove this user's directories under `parent` made by processes that are gone and
    idle for IDLE_SECONDS; returns them. Anything that cannot be judged is kept."""
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        pid = made_by(entry.name)
        earlier = _earlier_contents(entry.name) if pid is None else None
        if pid is None and earlier is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if earlier is not None and not earlier(entry.path):
                continue  # a directory of someone's own that looks alike
        except OSError:
            continue
        if not entry.is_dir(follow_symlinks=False) or not _ours(info):
            continue
        if now - _last_change(Path(entry.path), info.st_mtime) < IDLE_SECONDS:
            continue
        if pid is None:
            pass  # named for no process: the idle hour alone tells a dead run's
        elif pid == os.getpid():
            with _lock:
                if os.path.abspath(entry.path) in _made:
                    continue  # this process's own
        elif running(pid):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed


def sweep_partials(
    target: Path,
    now: float | None = None,
    earlier_suffix: str = "",
    holds_a_start: Callable[[str], bool] | None = None,
) -> list[Path]:
    """Remove what runs killed while writing `target` left beside it: hidden files named
    `.NAME.partial-<pid>-<random>` (as plan/file.py save_plan names them) of processes that
    are gone, untouched for IDLE_SECONDS, and those of the earlier `.NAME.<random>` names
    (then `earlier_suffix`) that hold the start of such a file (`holds_a_start`, by default
    a plan's), untouched as long; returns them. A saved plan, or a sandbox's state, holds
    members' identities, and a hidden file in a repository is easily committed with
    `git add -A`."""
    now = time.time() if now is None else now
    holds_a_start = holds_a_start or _a_plans_start
    pattern = re.compile(rf"\.{re.escape(target.name)}\.partial-(\d+)-[A-Za-z0-9_]+")
    earlier = re.compile(
        rf"\.{re.escape(target.name)}\.{_EARLIER_RANDOM}{re.escape(earlier_suffix)}"
    )
    removed: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None and earlier.fullmatch(entry.name) is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not entry.is_file(follow_symlinks=False) or not _ours(info):
                continue
            if now - info.st_mtime < IDLE_SECONDS:
                continue
            if match is None:
                if not holds_a_start(entry.path):
                    continue  # a file of the person's own that happens to look alike
            # This process writes the plan after the sweep: its pid's partial is an earlier
            # process's that had the same pid.
            elif int(match.group(1)) != os.getpid() and running(int(match.group(1))):
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


# The name save_plan gave a plan's partial file before partials were named for their
# process (b0c428e): `.NAME.` and tempfile.mkstemp's 8 random characters. It holds no pid, so
# only the idle hour and the content (a plan file is gzip) tell it from a person's file.
_EARLIER_RANDOM = "[a-z0-9_]{8}"
_GZIP_MAGIC = b"\x1f\x8b"


def _a_plans_start(path: str) -> bool:
    """Whether the file at `path` can be the start of a saved plan (gzip): empty, as a
    run killed before its first write leaves it, or opening as gzip does."""
    with open(path, "rb") as handle:
        head = handle.read(len(_GZIP_MAGIC))
    return head in (b"", _GZIP_MAGIC)


# The directory import's DuckDB engine wrote a list's CSV in before it was named for its
# target (3792ebe): tempfile.mkdtemp's `.reconciler-import-` and 8 random characters, in
# the --out directory. No run since knows it by its target's name.
_EARLIER_IMPORT = re.compile(r"\.reconciler-import-" + _EARLIER_RANDOM)


def sweep_earlier_import_directories(out_dir: Path, now: float | None = None) -> list[Path]:
    """Remove from `out_dir` the `.reconciler-import-<random>` directories an import of an
    earlier version killed while writing a list (SIGKILL) left there: members' identities in
    the repository, where `git add -A` commits them. Only one of this user's, untouched for
    IDLE_SECONDS (that version's import may still be running) and holding nothing but CSV
    files (what it wrote there), so a directory of the person's own that looks alike stays.
    Returns those removed."""
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(os.scandir(out_dir))
    except OSError:
        return removed
    for entry in entries:
        if _EARLIER_IMPORT.fullmatch(entry.name) is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not entry.is_dir(follow_symlinks=False) or not _ours(info):
                continue
            if not _holds_only(entry.path, ".csv"):
                continue
            if now - _last_change(Path(entry.path), info.st_mtime) < IDLE_SECONDS:
                continue
            shutil.rmtree(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def _holds_only(directory: str, suffix: str) -> bool:
    """Whether `directory` holds nothing but files whose names end in `suffix` (or nothing):
    what an earlier version wrote in a directory of that name, not a person's own."""
    with os.scandir(directory) as inside:
        return all(f.is_file(follow_symlinks=False) and f.name.endswith(suffix) for f in inside)


def _holds_one_file(directory: str) -> bool:
    """Whether `directory` holds one file at most, and nothing else: a source's copy."""
    with os.scandir(directory) as inside:
        found = list(inside)
    return len(found) <= 1 and all(f.is_file(follow_symlinks=False) for f in found)


# DuckDB's spill files: duckdb_temp_storage-0.tmp and duckdb_temp_block-<id>.block in
# 1.x, duckdb_temp_<pid>_<n>_owner and duckdb_temp_<pid>_<n>_storage_<size>-0.tmp in 2.x.
_SPILL_FILE = "duckdb_temp"


def _holds_spill_files(directory: str) -> bool:
    """Whether `directory` holds nothing but DuckDB's spill files (or nothing)."""
    with os.scandir(directory) as inside:
        return all(
            f.is_file(follow_symlinks=False) and f.name.startswith(_SPILL_FILE) for f in inside
        )


# What an earlier version's DuckDB workspace held: the lists it downloaded (.txt), exports
# (.jsonl), rows (.csv), a query's rows (query_N/rows.parquet) and DuckDB's spill files in
# spill/, query_N/ and tempfile's tmp<8 random characters>/ scratch directories.
_WORKSPACE_FILES = (".txt", ".jsonl", ".csv", ".parquet")
_WORKSPACE_DIRECTORIES = re.compile(rf"spill|tmp{_EARLIER_RANDOM}|query_\d+")


def _holds_a_workspace(directory: str) -> bool:
    """Whether `directory` holds nothing but what an earlier version's workspace wrote."""
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            if os.path.islink(os.path.join(root, name)):
                return False
            if not _WORKSPACE_DIRECTORIES.fullmatch(name):
                return False
        for name in files:
            if os.path.islink(os.path.join(root, name)):
                return False
            if not (name.endswith(_WORKSPACE_FILES) or name.startswith(_SPILL_FILE)):
                return False
    return True


# The directories earlier versions made named for no process, before each was a private
# directory named for its process: tempfile's prefix and 8 random characters, in the same
# place as today's (RECONCILER_DUCKDB_TEMP_DIR, or the system's temporary directory), each
# holding members' identities. With no pid to judge by, only one holding nothing but what
# that version wrote there is removed, so a directory of the person's own that looks alike
# stays.
_EARLIER: tuple[tuple[re.Pattern[str], Callable[[str], bool]], ...] = (
    # The whole-project export read in date windows, 0a51f61 to 2e4628e: every user's
    # email in users.jsonl and its windows' users.windowN.jsonl.
    (re.compile("reconciler-export-" + _EARLIER_RANDOM), lambda d: _holds_only(d, ".jsonl")),
    # Consent's profiles read in date windows, 76847c4 to 0a51f61: profiles*.jsonl.
    (re.compile("reconciler-consent-" + _EARLIER_RANDOM), lambda d: _holds_only(d, ".jsonl")),
    # A source file's copy, named as the file, 1ba0b88 to e7545a8.
    (re.compile("reconciler-source-" + _EARLIER_RANDOM), _holds_one_file),
    # A query's spill files, b01a568 to e7545a8.
    (re.compile("reconciler-query-" + _EARLIER_RANDOM), _holds_spill_files),
    # The DuckDB workspace, fee2384 to e7545a8.
    (re.compile("reconciler-" + _EARLIER_RANDOM), _holds_a_workspace),
)


def _earlier_contents(name: str) -> Callable[[str], bool] | None:
    """For a directory named as an earlier version named one (and no other), the check
    that it holds only what that version wrote there; None for any other name."""
    return next((holds for pattern, holds in _EARLIER if pattern.fullmatch(name)), None)


def _last_change(directory: Path, own: float) -> float:
    latest = own
    for root, _dirs, files in os.walk(directory):
        for name in files:
            try:
                latest = max(latest, os.stat(os.path.join(root, name)).st_mtime)
            except OSError:
                continue
        try:
            latest = max(latest, os.stat(root).st_mtime)
        except OSError:
            continue
    return latest


def no_room(exc: BaseException, parent: Path | str | None) -> ReconcilerError | None:
    """What to say for `exc` when it is a write that found no room in the temporary
    directory `parent` (None: the system's); None for any other error. For the steps that
    write only there: reading Iterable into the workspace, a saved plan's member sets."""
    if not isinstance(exc, OSError) or exc.errno not in NO_ROOM:
        return None
    where = shown_temp(parent)
    return ReconcilerError(
        f"cannot write in the temporary directory {where} "
        f"({exc.strerror or os.strerror(exc.errno or 0)}): while it runs, reconciler keeps "
        "there copies of the source files, what it reads from Iterable and DuckDB's "
        f"workspace; free some space there, or set {TEMP_DIR_VARIABLE} to a directory with "
        "more room. Nothing was changed."
    )
