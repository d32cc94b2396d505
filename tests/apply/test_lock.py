"""The apply lock (reconciler.apply.lock): a lock is taken over only when its holder is
known to be gone, is never left empty, and a state directory it cannot be written in is
said as such, before anything is sent."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.apply import lock
from reconciler.errors import LockedError, ReconcilerError

PROJECT = "0123456789abcdef"

# Start times and boot ids are Linux's /proc: on macOS a lock judged by its text cannot
# tell a reused pid or a reboot (see the tests without /proc at the end).
needs_proc = pytest.mark.skipif(
    lock._started("self") is None or lock._boot_id() is None, reason="reads /proc (Linux)"
)


def _leave(state: Path, **holder: object) -> Path:
    """A lock as another process left it."""
    path = lock.lock_path(state, PROJECT)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": socket.gethostname(), "since": "earlier", **holder}))
    return path


def _take(state: Path) -> None:
    with lock.project_locks(state, {"prod": PROJECT}):
        assert json.loads(lock.lock_path(state, PROJECT).read_text())["pid"] == os.getpid()
    assert not lock.lock_path(state, PROJECT).exists()


def test_a_lock_naming_this_pid_that_this_process_does_not_hold_is_taken_over(tmp_path):
    # A container restarted after a kill runs the next apply at the same pid (pid 1): the
    # pid is alive, and is this very process, which took no lock.
    _leave(tmp_path, pid=os.getpid(), boot=lock._boot_id(), pid_namespace=lock._pid_namespace())
    _take(tmp_path)


def test_a_lock_this_process_holds_refuses_a_second_taking(tmp_path):
    with lock.project_locks(tmp_path, {"prod": PROJECT}):
        with (
            pytest.raises(LockedError, match="another apply is running"),
            lock.project_locks(tmp_path, {"other": PROJECT}),
        ):
            pass
        assert lock.lock_path(tmp_path, PROJECT).exists()


@needs_proc
def test_a_pid_reused_by_another_process_does_not_hold_the_lock(tmp_path):
    # The holder's pid now runs another program, started at another time.
    parent = os.getppid()
    assert lock._started(parent) is not None
    _leave(tmp_path, pid=parent, boot=lock._boot_id(), started="1")
    _take(tmp_path)


def test_a_running_holder_keeps_its_lock(tmp_path):
    parent = os.getppid()
    path = _leave(tmp_path, pid=parent, boot=lock._boot_id(), started=lock._started(parent))
    with pytest.raises(LockedError, match=f"pid {parent}"):
        _take(tmp_path)
    assert path.exists()


@needs_proc
def test_a_lock_from_before_the_machine_restarted_is_taken_over(tmp_path):
    # Its pid runs again after the reboot (here: the test's parent), but not as that holder.
    _leave(tmp_path, pid=os.getppid(), boot="a-boot-that-ended")
    _take(tmp_path)


def test_a_lock_from_another_pid_namespace_is_never_judged_gone(tmp_path):
    # A container sharing the state dir: its pid means nothing here, even when no process
    # has it in this namespace.
    path = _leave(tmp_path, pid=2**22 + 4321, boot=lock._boot_id(), pid_namespace="1")
    with pytest.raises(LockedError, match="another apply is running"):
        _take(tmp_path)
    assert path.exists()


def test_a_holder_that_cannot_be_written_leaves_no_lock_behind(tmp_path):
    # A full disk (here: a file size limit) while the holder is written. An empty lock
    # names no pid that could be judged gone: every later apply was refused.
    script = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from reconciler.apply import lock\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))\n"
        "try:\n"
        "    with lock.project_locks(Path(sys.argv[1]), {'prod': sys.argv[2]}):\n"
        "        print('taken')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), PROJECT],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("ReconcilerError cannot take the apply lock"), out
    assert "Nothing was changed" in out
    assert not lock.lock_path(tmp_path, PROJECT).exists()
    _take(tmp_path)


def test_a_state_dir_the_lock_cannot_be_made_in_is_an_error_not_a_crash(tmp_path):
    (tmp_path / lock.LOCKS_DIR).write_text("a file where the locks directory goes")
    with pytest.raises(ReconcilerError, match="cannot take the apply lock of destination 'prod'"):
        _take(tmp_path)


def test_release_all_removes_the_locks_held(tmp_path):
    # What a second Ctrl-C runs before os._exit, which skips the `finally` that would.
    with lock.project_locks(tmp_path, {"prod": PROJECT, "eu": "fedcba9876543210"}):
        lock.release_all()
        assert list((tmp_path / lock.LOCKS_DIR).glob("*.lock")) == []
        _take(tmp_path)


# -- the kernel's lock: held exactly as long as its holder lives --------------------------


def _holding(state: Path) -> subprocess.Popen[str]:
    """Another process that takes the lock and keeps it until killed."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from reconciler.apply import lock\n"
        "with lock.project_locks(Path(sys.argv[1]), {'prod': sys.argv[2]}):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(state), PROJECT],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


@pytest.mark.skipif(lock.fcntl is None, reason="flock is POSIX")
def test_a_live_holder_keeps_its_lock_whatever_its_pid_looks_like_here(tmp_path):
    # A container sharing the state dir has its own pids: its holder's pid may be one no
    # process has here. The kernel's lock still says it is held, until its holder dies.
    holder = _holding(tmp_path)
    try:
        path = lock.lock_path(tmp_path, PROJECT)
        text = json.loads(path.read_text())
        assert text["pid"] == holder.pid and text["flock"] is True
        path.write_text(json.dumps({**text, "pid": 2**22 + 4321}))
        with pytest.raises(LockedError, match="another apply is running") as refused:
            _take(tmp_path)
        # Removing the file would only let two applies run at once: not suggested.
        assert "released when that process ends" in str(refused.value)
        assert "remove the lock file" not in str(refused.value)
    finally:
        holder.kill()  # SIGKILL: nothing of the holder's runs, its lock goes with it
        holder.wait()
    assert lock.lock_path(tmp_path, PROJECT).exists()
    _take(tmp_path)


@pytest.mark.skipif(lock.fcntl is None, reason="flock is POSIX")
def test_a_lock_no_process_holds_is_taken_over_though_its_pid_runs(tmp_path):
    # Its holder was killed; its pid now runs something else (here: the test's parent).
    _leave(tmp_path, pid=os.getppid(), boot=lock._boot_id(), flock=True)
    _take(tmp_path)


def test_without_flock_locks_are_written_whole_and_judged_by_their_text(tmp_path, monkeypatch):
    # Where there is no flock (not POSIX) the text is all there is to judge.
    monkeypatch.setattr(lock, "fcntl", None)
    with lock.project_locks(tmp_path, {"prod": PROJECT}):
        text = json.loads(lock.lock_path(tmp_path, PROJECT).read_text())
        assert text["pid"] == os.getpid() and text["flock"] is False
        with pytest.raises(LockedError, match="remove the lock file"):
            _take(tmp_path)
    assert [p.name for p in (tmp_path / lock.LOCKS_DIR).iterdir()] == []  # no temporary left
    _leave(tmp_path, pid=2**22 + 4321, boot=lock._boot_id())  # its process is gone
    _take(tmp_path)


@pytest.mark.parametrize(
    "code", [errno.EINVAL, errno.EACCES, errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.ENOSYS]
)
def test_a_state_dir_without_hard_links_takes_the_lock_whatever_the_link_fails_with(
    tmp_path, monkeypatch, code
):
    # Windows' FAT and some network shares refuse a hard link with EINVAL (or EACCES):
    # every apply there failed with "cannot take the apply lock ...: Invalid argument; the
    # state directory must be writable", though it was.
    def refused(source: object, target: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(lock, "fcntl", None)
    monkeypatch.setattr(os, "link", refused)
    with lock.project_locks(tmp_path, {"prod": PROJECT}):
        text = json.loads(lock.lock_path(tmp_path, PROJECT).read_text())
        assert text["pid"] == os.getpid() and text["flock"] is False
        with pytest.raises(LockedError, match="remove the lock file"):
            _take(tmp_path)
    assert [p.name for p in (tmp_path / lock.LOCKS_DIR).iterdir()] == []  # no temporary left


def test_a_lock_file_of_json_nested_too_deep_is_judged_as_unreadable_text(tmp_path):
    # Found by fuzzing: its text raised RecursionError, not ValueError, so an apply over a
    # damaged lock no process held ended in an internal error instead of taking it over.
    path = lock.lock_path(tmp_path, PROJECT)
    path.parent.mkdir(parents=True)
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert lock._holder_of(path) == {}
    _take(tmp_path)


class _FlockRefused:
    """fcntl as a file system without flock shows it: NFS mounted without a lock daemon
    (ENOLCK), an SMB share on macOS (ENOTSUP), some FUSE file systems (ENOSYS)."""

    LOCK_EX, LOCK_NB = (lock.fcntl.LOCK_EX, lock.fcntl.LOCK_NB) if lock.fcntl else (2, 4)

    def __init__(self, code: int):
        self.code = code

    def flock(self, fd: int, operation: int) -> None:
        raise OSError(self.code, os.strerror(self.code))


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS])
def test_a_state_dir_refusing_flock_falls_back_to_locks_judged_by_their_text(
    tmp_path, monkeypatch, code
):
    # Such a state directory made every apply fail with 'the state directory must be
    # writable', though it is: a lock there is judged by its text, as where no flock exists.
    monkeypatch.setattr(lock, "fcntl", _FlockRefused(code))
    with lock.project_locks(tmp_path, {"prod": PROJECT}):
        text = json.loads(lock.lock_path(tmp_path, PROJECT).read_text())
        assert text["pid"] == os.getpid() and text["flock"] is False
        with pytest.raises(LockedError, match="remove the lock file"):
            _take(tmp_path)
    assert [p.name for p in (tmp_path / lock.LOCKS_DIR).iterdir()] == []  # nothing left
    _leave(tmp_path, pid=2**22 + 4321, boot=lock._boot_id())  # its process is gone
    _take(tmp_path)


def test_another_flock_error_is_still_said_as_the_state_dir_s(tmp_path, monkeypatch):
    monkeypatch.setattr(lock, "fcntl", _FlockRefused(errno.EIO))
    with pytest.raises(ReconcilerError, match="cannot take the apply lock"):
        _take(tmp_path)


# -- a machine without /proc (macOS, the BSDs) ---------------------------------------------


@pytest.fixture
def no_proc(tmp_path, monkeypatch) -> Path:
    """/proc as macOS has it: not there. Returns a state directory."""
    monkeypatch.setattr(lock, "PROC", str(tmp_path / "no-proc"))
    assert (lock._boot_id(), lock._pid_namespace(), lock._started("self")) == (None,) * 3
    state = tmp_path / "state"
    state.mkdir()
    return state


@pytest.mark.skipif(lock.fcntl is None, reason="flock is POSIX")
def test_without_proc_flock_alone_says_whether_a_lock_is_held(no_proc):
    holder = _holding(no_proc)
    try:
        with pytest.raises(LockedError, match="released when that process ends"):
            _take(no_proc)
    finally:
        holder.kill()  # a crashed apply: its lock file stays, its flock goes
        holder.wait()
    assert lock.lock_path(no_proc, PROJECT).exists()
    _take(no_proc)


def test_without_proc_or_flock_a_lock_is_gone_only_when_its_pid_is(no_proc, monkeypatch):
    # macOS with its state directory on an SMB share: no start times to tell a reused pid
    # from its holder, nor boots apart, so a running pid holds the lock (the message says
    # to remove it if that process is not the apply), and a pid no process has does not.
    monkeypatch.setattr(lock, "fcntl", None)
    with lock.project_locks(no_proc, {"prod": PROJECT}):
        text = json.loads(lock.lock_path(no_proc, PROJECT).read_text())
        assert text["pid"] == os.getpid() and text["boot"] is None and text["started"] is None
        with pytest.raises(LockedError, match="remove the lock file"):
            _take(no_proc)
    _leave(no_proc, pid=os.getppid(), boot=None, pid_namespace=None, started=None)
    with pytest.raises(LockedError, match="remove the lock file"):
        _take(no_proc)
    _leave(no_proc, pid=2**22 + 4321, boot=None, pid_namespace=None, started=None)
    _take(no_proc)
    # A lock this process left at its own pid without holding it (pid 1 of a container).
    _leave(no_proc, pid=os.getpid(), boot=None, pid_namespace=None, started=None)
    _take(no_proc)


class _HolderLeavesMidway:
    """fcntl as another apply's ending looks between opening the lock file and locking it:
    the holder releases and removes the file, and a third apply makes a new one and holds
    it (a second open file of this process: flock's locks are per open file, so it
    conflicts as another process's would)."""

    def __init__(self, path: Path):
        assert lock.fcntl is not None
        self.real = lock.fcntl
        self.LOCK_EX, self.LOCK_NB = self.real.LOCK_EX, self.real.LOCK_NB
        self.path = path
        self.other: int | None = None

    def flock(self, fd: int, operation: int) -> None:
        first = self.other is None and self.path.exists()
        if first and os.fstat(fd).st_ino == os.stat(self.path).st_ino:
            self.path.unlink()
            self.other = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self.real.flock(self.other, self.LOCK_EX | self.LOCK_NB)
            os.write(self.other, json.dumps({"pid": os.getpid(), "flock": True}).encode())
        self.real.flock(fd, operation)


@pytest.mark.skipif(lock.fcntl is None, reason="flock")
def test_a_lock_file_removed_and_made_again_before_it_is_locked_is_not_taken(tmp_path, monkeypatch):
    # Locking the removed file would leave two applies running, each holding "the" lock.
    path = lock.lock_path(tmp_path, PROJECT)
    midway = _HolderLeavesMidway(path)
    monkeypatch.setattr(lock, "fcntl", midway)
    try:
        released = "the lock is released when that process ends"
        with (
            pytest.raises(LockedError, match=released),
            lock.project_locks(tmp_path, {"prod": PROJECT}),
        ):
            pass
        assert midway.other is not None
    finally:
        if midway.other is not None:
            os.close(midway.other)
