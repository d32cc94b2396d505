"""What manifests may point at: manifest files inside the manifest directory, member
sources inside the repository.

A manifest change is reviewed in git. A symbolic link out of the manifest directory, or a
member source outside the repository (`csv: ../../../home/ci/.ssh/id_rsa`, an absolute path
elsewhere, a link out), would apply something no reviewer saw, and would let a manifest read
any file the CI runner can.

The repository is the git work tree holding the manifest directory: the nearest directory
upwards with a `.git` entry (a directory, or the file a worktree or submodule has). Without
git it is the manifest directory's parent, the directory that holds `manifests/` in the
usual layout. The manifest directory is the path given to the command, or the directory of
the file given. Paths are compared after resolving symbolic links.
"""

from __future__ import annotations

from pathlib import Path

# MembersSpec fields that name a file, relative to the manifest's directory.
SOURCE_PATH_FIELDS = ("csv", "parquet", "database")
IN_MEMORY = ":memory:"  # DuckDB's name for no file at all


def manifest_directory(root: Path) -> Path:
    return root if root.is_dir() else root.parent


def find_repository(root: Path) -> Path:
    """The repository that holds the manifests at `root` (see the module docstring)."""
    directory = manifest_directory(root).resolve()
    for candidate in (directory, *directory.parents):
        if (candidate / ".git").exists():
            return candidate
    return directory.parent


def is_inside(path: Path, directory: Path) -> bool:
    """Whether `path`, with every symbolic link resolved, lies in `directory`."""
    return path.resolve().is_relative_to(directory.resolve())
