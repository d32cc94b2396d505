"""Native Windows (not WSL), as far as Linux can show it: a Python whose POSIX-only parts are
gone the way Windows' Python lacks them, for running the real `python -m reconciler` in a
subprocess (the `windows` fixture in tests/conftest.py).

A `sitecustomize.py` put first on PYTHONPATH, which Python imports at start-up, before
reconciler:

- `fcntl`, `pwd`, `grp`, `resource`, `termios` and the like cannot be imported;
- `os` has no owners (getuid, geteuid), no process groups, no pwrite/pread, no fchmod
  (Windows' Python has it from 3.13, reconciler supports 3.11), no statvfs, mkfifo,
  copy_file_range, and no O_NONBLOCK, O_NOFOLLOW, O_DIRECTORY, O_CLOEXEC; it has O_BINARY;
- `os.chmod` takes no file descriptor;
- `signal` has no SIGHUP, SIGKILL, SIGQUIT, SIGPIPE, SIGALRM, SIGUSR1..., and has
  CTRL_C_EVENT (0), CTRL_BREAK_EVENT and SIGBREAK (21, Linux's SIGTTIN, sent to the
  process for Ctrl-Break; by default it ends the process at once);
- `os.kill(pid, 0)` is Windows' GenerateConsoleCtrlEvent(CTRL_C_EVENT, pid): Ctrl-C to the
  whole console, this process included, where pid is a live process (modelled as SIGINT
  to this process), WinError 87 where it is not; any other signal terminates the process;
- `_winapi` answers OpenProcess / WaitForSingleObject / CloseHandle from Linux's processes
  (another user's, which Linux will not signal, is one Windows will not open: access denied);
- every `os.open` made without O_BINARY, which Windows opens in text mode (a written "\\n"
  becomes "\\r\\n", a read stops at Ctrl-Z), is listed in the file TEXT_MODE_LOG.

What stays as it is: `os.name`, `os.sep`, `os.path` and pathlib (Linux's paths: Python
picks them when `os` is imported, before any sitecustomize), the standard library's own
POSIX paths (subprocess, shutil and tempfile are imported before anything is removed, as
each picks its platform's way then; os.uname, os.sendfile and os.WNOHANG stay, which
Linux's ctypes, shutil and subprocess call), file locking and renaming of open files (Windows
refuses to replace or remove a file another handle has open; Linux cannot be made to).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TEXT_MODE_LOG = "text-mode-opens.txt"

SITECUSTOMIZE = r'''
import errno, os, signal, stat, sys, types

# Imported first: each picks its platform's functions as it is imported.
import asyncio, mimetypes, multiprocessing.connection, pathlib, selectors, shutil  # noqa
import socket, subprocess, tempfile, threading  # noqa

for name in ("fcntl", "pwd", "grp", "resource", "termios", "tty", "pty", "syslog", "crypt"):
    sys.modules[name] = None

for name in """getuid geteuid getgid getegid getgroups getpgid getpgrp setsid setpgid killpg
        fork forkpty pwrite pread pwritev preadv fchmod fchown chown lchown lchmod statvfs
        fstatvfs mkfifo mknod copy_file_range posix_fadvise posix_fallocate sync fdatasync
        getloadavg sched_getaffinity sched_setaffinity nice openpty ttyname ctermid
        setuid seteuid setgid initgroups getresuid getresgid memfd_create splice
        O_NONBLOCK O_NOFOLLOW O_DIRECTORY O_CLOEXEC O_TMPFILE O_NOCTTY O_SYNC O_DSYNC
        O_RSYNC O_NDELAY O_ASYNC O_NOATIME O_PATH O_LARGEFILE""".split():
    if hasattr(os, name):
        delattr(os, name)

for name in """SIGHUP SIGKILL SIGQUIT SIGPIPE SIGALRM SIGUSR1 SIGUSR2 SIGCHLD SIGCONT SIGSTOP
        SIGTSTP SIGTTIN SIGTTOU SIGWINCH SIGXCPU SIGPROF SIGVTALRM alarm setitimer getitimer
        pthread_kill pthread_sigmask sigwait sigpending siginterrupt sigtimedwait
        sigwaitinfo""".split():
    if hasattr(signal, name):
        delattr(signal, name)
signal.CTRL_C_EVENT, signal.CTRL_BREAK_EVENT, signal.SIGBREAK = 0, 1, 21
# Linux's 21 is SIGTTIN, which stops a process; Windows' SIGBREAK ends it on the spot with
# STATUS_CONTROL_C_EXIT, nothing cleaned up.
signal.signal(signal.SIGBREAK, lambda signum, frame: os._exit(0xC000013A & 0xFF))

_kill, _open, _chmod = os.kill, os.open, os.chmod


def _exists(pid):
    try:
        _kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _others(pid):
    try:
        _kill(pid, 0)
    except PermissionError:
        return True
    except OSError:
        pass
    return False


def _windows_error(winerror, text):
    exc = OSError(errno.EINVAL, text)
    exc.winerror = winerror
    return exc


def kill(pid, sig):
    if sig in (0, 1):  # GenerateConsoleCtrlEvent(sig, pid)
        if not _exists(pid):
            raise _windows_error(87, "The parameter is incorrect")
        _kill(os.getpid(), signal.SIGINT)  # the console's every process: this one too
        return
    _kill(pid, 9)  # TerminateProcess


def chmod(path, mode, *, dir_fd=None, follow_symlinks=True):
    if isinstance(path, int):
        raise TypeError("chmod: path should be string, bytes or os.PathLike, not int")
    return _chmod(path, mode, dir_fd=dir_fd, follow_symlinks=follow_symlinks)


os.O_BINARY = 0x8000


# tempfile, imported above, adds O_BINARY on Windows itself.
tempfile._bin_openflags |= os.O_BINARY


def open_(path, flags, mode=0o777, *, dir_fd=None):
    fd = _open(path, flags & ~os.O_BINARY, mode, dir_fd=dir_fd)
    # Linux's shutil.rmtree opens directories; Windows' does not.
    if not flags & os.O_BINARY and stat.S_ISREG(os.fstat(fd).st_mode):
        with open(TEXT_MODE_LOG, "a", encoding="utf-8") as log:
            log.write(f"{os.path.abspath(os.fsdecode(path))}\n")
    return fd


os.kill, os.chmod, os.open = kill, chmod, open_

winapi = types.ModuleType("_winapi")


def OpenProcess(access, inherit, pid):
    if not 0 <= pid < 2**32:
        raise OverflowError("Python int too large to convert to C unsigned long")
    if pid == 0 or not _exists(pid):
        raise _windows_error(87, "The parameter is incorrect")
    if _others(pid):  # an elevated process's, a service's: it exists, but is not to be opened
        raise _windows_error(5, "Access is denied")
    return pid


winapi.OpenProcess = OpenProcess
winapi.WaitForSingleObject = lambda handle, ms: 0x102 if _exists(handle) else 0
winapi.CloseHandle = lambda handle: None
sys.modules["_winapi"] = winapi
'''


def install(directory: Path) -> None:
    """Write sitecustomize.py to `directory` (which WindowsPython puts first on PYTHONPATH)."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / TEXT_MODE_LOG
    text = SITECUSTOMIZE.replace("TEXT_MODE_LOG", repr(str(log)))
    (directory / "sitecustomize.py").write_text(text, encoding="utf-8")


@dataclass
class WindowsPython:
    """Runs `python -m reconciler` as if on Windows (see the module's notes)."""

    directory: Path  # holds sitecustomize.py and the text-mode log

    def __post_init__(self) -> None:
        install(self.directory)

    def env(self) -> dict[str, str]:
        """This process's environment (as the tests' fixtures set it), sitecustomize first."""
        checkout = str(Path(__file__).resolve().parents[1])
        return {**os.environ, "PYTHONPATH": os.pathsep.join([str(self.directory), checkout])}

    def run(self, *args: object, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *map(str, args)],
            cwd=cwd,
            env={**self.env(), **env},
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=120,
            check=False,
        )

    def text_mode_opens(self) -> list[str]:
        """The files its runs opened with os.open without O_BINARY."""
        log = self.directory / TEXT_MODE_LOG
        return log.read_text(encoding="utf-8").splitlines() if log.exists() else []
