"""Directories of reconciler's own state (the state directory, its journals and locks, the
sandbox's emulated Iterable): owner-only (0700) whatever the process umask. Their files
are owner-only already; under umask 000 (a container's, a service's) the directories were
made 0777, so anyone on the machine could list them and plant or replace a journal or a
lock in them."""

from __future__ import annotations

import os
from pathlib import Path

# Whether a mode keeps other users out of a file: POSIX's modes do. On Windows a mode only
# sets or clears the read-only flag, and a file is as private as its folder's access list.
MODES_KEEP_OTHERS_OUT: bool = hasattr(os, "getuid")


def owner_only_directories(*directories: Path) -> None:
    """Make each of `directories` that is missing, in order (a parent before its child),
    mode 0700. Directories above the first are the user's (`--state-dir a/b` makes `a` as
    `mkdir -p` would); one that exists is left as it is: a state directory named by hand
    may be shared on purpose. Raises OSError as mkdir does (FileExistsError for a file)."""
    directories[0].parent.mkdir(parents=True, exist_ok=True)
    for directory in directories:
        # The mode is masked by the umask, which can only take bits away from 0700.
        directory.mkdir(mode=0o700, exist_ok=True)


def chmod_open_file(fd: int, path: Path | str, mode: int) -> None:
    """Set the mode of the file open as `fd` at `path`: through the descriptor where the
    system can (nothing can put another file at `path` in between), else by its path.
    Windows' os.chmod takes no descriptor and its Python has no os.fchmod before 3.13;
    there a mode only sets or clears the file's read-only flag."""
    if os.chmod in os.supports_fd:
        os.chmod(fd, mode)
    else:
        os.chmod(path, mode)
