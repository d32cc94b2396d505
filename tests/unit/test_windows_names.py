"""What Windows' Python lacks, kept out of reconciler's code paths there: no CI runs on
Windows, so a new `os.getuid()` or `os.open` without O_BINARY would break it unseen (the
end-to-end runs in tests/integration/test_windows.py show only the paths they take). Each
use below is guarded where it stands; a new one must be too, and be listed here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.package_source import package_files, parsed

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "reconciler"

# Names of os and signal that Windows' Python (3.11-3.13) lacks, or that mean something
# else there (os.kill: signal 0 is CTRL_C_EVENT, any other ends the process).
OS_NAMES = frozenset(
    re.findall(
        r"\S+",
        """getuid geteuid getgid getegid getgroups getpgid getpgrp setsid setpgid killpg fork
        forkpty pwrite pread pwritev preadv fchmod fchown chown lchown statvfs fstatvfs mkfifo
        mknod copy_file_range posix_fadvise posix_fallocate sync fdatasync uname getloadavg
        sched_getaffinity nice openpty ttyname setuid seteuid setgid memfd_create splice
        sendfile pipe2 wait3 wait4 WNOHANG O_NONBLOCK O_NOFOLLOW O_DIRECTORY O_CLOEXEC
        O_TMPFILE O_NOCTTY O_SYNC O_DSYNC O_NDELAY O_NOATIME O_PATH kill""",
    )
)
SIGNAL_NAMES = frozenset(
    re.findall(
        r"\S+",
        """SIGHUP SIGKILL SIGQUIT SIGPIPE SIGALRM SIGUSR1 SIGUSR2 SIGCHLD SIGCONT SIGSTOP
        SIGTSTP SIGWINCH alarm setitimer pthread_kill pthread_sigmask sigwait siginterrupt""",
    )
)
MODULES = frozenset({"fcntl", "pwd", "grp", "resource", "termios", "tty", "pty", "posix"})

# Each use, and what keeps it off Windows' paths.
GUARDED = {
    ("apply/lock.py", "import fcntl"): "in try/except ImportError; used only once imported",
    ("apply/lock.py", "os.pwrite"): "on the flock path alone, which needs fcntl",
    ("leftovers.py", "os.geteuid"): "reached only once _own_uid() found os.getuid",
    ("processes.py", "os.kill"): "where there is no _winapi; Windows is asked through it",
    ("sources/snapshot.py", "os.copy_file_range"): "behind hasattr (macOS lacks it too)",
    ("threads.py", "signal.pthread_sigmask"): "behind hasattr: Windows has no per-thread masks",
}

# os.open without open_flags.BINARY: a text-mode file on Windows. Only where no bytes go.
TEXT_MODE_OPENS = {
    "cli/stdout.py": "os.devnull, to discard what a closed stdout holds",
    "emulator/store.py": "a directory, opened to fsync it (Windows refuses, said as OSError)",
}


def _sources() -> list[tuple[str, ast.AST]]:
    return [(path.relative_to(PACKAGE).as_posix(), parsed(path)) for path in package_files()]


def _uses(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner, name = node.value.id, node.attr
            if (owner == "os" and name in OS_NAMES) or (owner == "signal" and name in SIGNAL_NAMES):
                found.add(f"{owner}.{name}")
        elif isinstance(node, ast.Import):
            found |= {f"import {a.name}" for a in node.names if a.name in MODULES}
        elif isinstance(node, ast.ImportFrom) and (node.module or "") in MODULES:
            found.add(f"import {node.module}")
    return found


def test_what_windows_lacks_is_used_only_where_guarded():
    used = {(name, use) for name, tree in _sources() for use in _uses(tree)}
    assert used == set(GUARDED)


def _opens_as_text(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and (node.func.value.id, node.func.attr) == ("os", "open")
        ):
            continue
        flags = node.args[1] if len(node.args) > 1 else None
        if flags is None or "BINARY" not in ast.unparse(flags):
            return True
    return False


def test_files_are_opened_as_bytes():
    text_mode = {name for name, tree in _sources() if _opens_as_text(tree)}
    assert text_mode == set(TEXT_MODE_OPENS)
