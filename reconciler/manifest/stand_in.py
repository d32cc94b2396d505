"""A file that git checked out in place of the content it stands for.

A repository that keeps member exports in Git LFS, git-annex or git-crypt checks out, where
that tool did not run (a CI job whose checkout skipped LFS, a clone without the git-crypt
key), a small file in the right place: a pointer naming the content, or the content
encrypted. Read as members, a pointer CSV is a header of `version https://git-lfs...` and
two rows, which reads as a file without a header row; a pointer Parquet file is "no magic
bytes"; a pointer manifest "a manifest document must be a mapping". None says what to do,
so such a file (a member source, a file a query reads, a manifest) is recognised by its
first bytes and named for what it is, with the step the checkout missed.

Git itself does the same with a symbolic link where core.symlinks is false (Git for
Windows' default, a clone on a file system without links): the link becomes a file
holding its target's path, with no line end. A file holding only a path, one that names
something beside it, is named as such a link.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# Git LFS pointers start with their spec's URL (the second one is the format's first
# name); git-annex pointers of unlocked files with the object's path; git-crypt's files
# with its magic header.
_LFS_VERSIONS = (
    b"version https://git-lfs.github.com/spec/",
    b"version https://hawser.github.com/spec/",
)
_ANNEX_POINTER = b"/annex/objects/"
_GIT_CRYPT = b"\x00GITCRYPT\x00"
# LFS pointers are at most 1024 bytes (its spec), annex pointers a path.
_POINTER_BYTES = 1024
_LFS_SIZE = re.compile(rb"^size (\d+)$", re.MULTILINE)


def stand_in(path: Path, content: Path | None = None) -> str | None:
    """What `path` stands in for, in words that end with the step to fetch it, when it is
    an LFS or git-annex pointer, a git-crypt file or a link checked out as a file; None for
    anything else (or a file that cannot be read: its reader says why). `content`: where
    its bytes are read, when not at `path` itself (a snapshot's copy)."""
    try:
        with (content or path).open("rb") as handle:
            start = handle.read(_POINTER_BYTES + 1)
    except OSError:
        return None
    return stand_in_bytes(start, path)


def stand_in_bytes(start: bytes, path: Path | None = None) -> str | None:
    """stand_in, for a file's first bytes (at least 1025 of them, when it has them); a
    link checked out as a file is told only with the file's `path`."""
    if start.startswith(_GIT_CRYPT):
        return (
            "is encrypted by git-crypt: this checkout has not unlocked it. Run "
            "`git-crypt unlock` (in CI, with the key, after the checkout) before reconciler"
        )
    if len(start) > _POINTER_BYTES:
        return None  # too long for a pointer
    if start.startswith(_LFS_VERSIONS):
        size = _LFS_SIZE.search(start)
        real = f" of a {int(size[1]):,}-byte file" if size else ""
        return (
            f"is a Git LFS pointer{real}, not its content: this checkout did not fetch LFS "
            "files. Run `git lfs pull` (in GitHub Actions, give actions/checkout `lfs: true`)"
        )
    if start.startswith(_ANNEX_POINTER):
        return (
            "is a git-annex pointer, not its content: this checkout did not fetch it. "
            "Run `git annex get` on it first"
        )
    return _link_as_file(start, path) if path is not None else None


def _link_as_file(start: bytes, path: Path) -> str | None:
    """Words for a file that holds nothing but the path of something beside it (git's
    stand-in for a link); None for any other file."""
    if not start or any(byte in start for byte in b"\n\r\0"):
        return None
    try:
        target = start.decode("utf-8")
    except UnicodeDecodeError:
        return None
    beside = os.path.join(path.parent, target)  # an absolute target stands as it is
    if target.strip() != target or not os.path.lexists(beside):
        return None
    if os.path.realpath(beside) == os.path.realpath(path):
        return None  # a file naming itself, such as a CSV whose one line is its own name
    return (
        f"is a symbolic link to {target} that git checked out as a file holding that path "
        "(git's core.symlinks is false: Git for Windows' default, or a file system without "
        "links, such as a Windows drive under WSL). Clone where links work, with "
        "`git -c core.symlinks=true clone`, or commit the file itself in place of the link"
    )
