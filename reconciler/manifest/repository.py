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

import os
import shutil
import subprocess
from collections.abc import Collection
from pathlib import Path


def manifest_directory(root: Path) -> Path:
    return root if root.is_dir() else root.parent


def real_path(path: Path) -> Path:
    """`path`, absolute, with every symbolic link resolved, as `Path.resolve()` gives it,
    except that a loop of links (`a.yaml -> a.yaml`) is left as it stands, as Python 3.13
    leaves it: 3.11's `resolve()` raises RuntimeError there, which ended validate, plan and
    apply in an internal error. Opening the path then fails (ELOOP) where it is named."""
    return Path(os.path.realpath(path))


def find_repository(root: Path) -> Path:
    """The repository that holds the manifests at `root` (see the module docstring)."""
    directory = real_path(manifest_directory(root))
    for candidate in (directory, *directory.parents):
        if (candidate / ".git").exists():
            return candidate
    return directory.parent


def is_inside(path: Path, directory: Path) -> bool:
    """Whether `path`, with every symbolic link resolved, lies in `directory`."""
    return real_path(path).is_relative_to(real_path(directory))


# Entries of the repository that a query must not read: git's own files (the remote's
# credentials, hooks) and reconciler's local state (plans and journals of every audience).
PRIVATE_ENTRIES = (".git", ".reconciler")

# Repositories searched for links leading out, once per process (see readable_paths),
# with the names at their top that git tracks (None: everything there is readable).
_checked_links: dict[Path, frozenset[str] | None] = {}


class LinkOutOfRepository(Exception):
    """A symbolic link in the repository leads outside it (or into PRIVATE_ENTRIES), or
    is a link to a directory that `..` after it would climb out of (see _check_links)."""

    def __init__(self, link: Path, target: Path, why: str = ""):
        super().__init__(f"{link} -> {target}")
        self.link, self.target = link, target
        self.why = why or "outside it (or into .git or .reconciler)"


def readable_paths(
    repository: Path, base_dir: Path | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What a manifest's query may read: the repository's directories and files except
    PRIVATE_ENTRIES, as (directories, files) for DuckDB's allowed_directories and
    allowed_paths.

    DuckDB looks for a relative path in the working directory before `base_dir` (its
    file_search_path), and refuses the whole read when that first place is not allowed,
    even if nothing is there. So the names in `base_dir` are allowed in the working
    directory too, where that is inside the repository (and not private): a query's
    relative paths then work from wherever in the repository reconciler runs.

    DuckDB compares paths as text, so a symbolic link in the repository would carry a read
    anywhere; the repository is searched for links leading out (_check_links, once per
    process) and LinkOutOfRepository is raised for the first one found.

    In a git work tree, only the top-level files and directories git tracks are readable:
    a CI job's checkout holds files no pull request brought, such as the credentials
    google-github-actions/auth writes to the top of it (gha-creds-*.json), a key file a
    step wrote or a `.venv`, and a query could print any of them (`error(content)`)."""
    repository = real_path(repository)
    if repository not in _checked_links:
        _checked_links[repository] = _check_links(repository)
    tracked = _checked_links[repository]
    directories: set[str] = set()
    files: set[str] = set()

    def allow(path: Path, is_dir: bool, absent: bool = False) -> None:
        """`absent`: a place in the working directory where nothing is, allowed under a
        top-level name git does not track too, so that DuckDB, finding nothing there,
        goes on to look beside the manifest (a name that is there stays unreadable)."""
        if path == repository or not path.is_relative_to(repository):
            return
        top = path.relative_to(repository).parts[0]
        if top in PRIVATE_ENTRIES or (tracked is not None and top not in tracked and not absent):
            return
        if is_dir:
            directories.add(f"{path}/")
        else:
            files.add(str(path))

    for entry in repository.iterdir():
        allow(entry, entry.is_dir())
    if base_dir is not None and base_dir.is_dir():
        _allow_beside(repository, tracked, base_dir, directories, files)
    return tuple(sorted(directories)), tuple(sorted(files))


def _allow_beside(
    repository: Path,
    tracked: frozenset[str] | None,
    base_dir: Path,
    directories: set[str],
    files: set[str],
) -> None:
    """readable_paths' names in `base_dir`, allowed in the working directory, as its
    `allow` would allow each. Every query asks, and a manifest directory may hold a
    thousand audiences' files: the place under the repository is worked out once, and
    what is in the working directory is one listing of it, not a path made, compared and
    looked up for each name (20 ms a query there, a quadratic 20 s for 1,000 queries)."""
    cwd = real_path(Path.cwd())
    if cwd != repository and not cwd.is_relative_to(repository):
        return
    below = cwd.relative_to(repository).parts[:1]  # the top-level name cwd is under
    try:
        there: Collection[str] | None = frozenset(os.listdir(cwd))
    except OSError:
        there = None  # unlistable: each name looked up, as readable_paths did
    with os.scandir(base_dir) as entries:
        for entry in entries:
            top = below[0] if below else entry.name
            place = os.path.join(cwd, entry.name)
            absent = entry.name not in there if there is not None else not os.path.lexists(place)
            if top in PRIVATE_ENTRIES or (
                tracked is not None and top not in tracked and not absent
            ):
                continue
            if _is_dir(entry):
                directories.add(f"{place}/")
            else:
                files.add(place)


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """Whether an entry is a directory or a link to one, as `Path.is_dir` tells: a link
    that cannot be followed (a loop, `a.yaml -> a.yaml`) is not one."""
    try:
        return entry.is_dir()
    except OSError:
        return False


# A repository without git is walked for links, up to this many entries.
MAX_WALKED_ENTRIES = 50_000


def _check_links(repository: Path) -> frozenset[str] | None:
    """Raise LinkOutOfRepository for a symbolic link in the repository leading out. In a
    git work tree the links git tracks are checked (a pull request can only bring tracked
    files, and `git ls-files` is quick in any repository); otherwise the directory is
    walked, and one too large to walk is refused rather than half checked. Returns the
    names at the repository's top that git tracks, or None without git."""
    listed = _tracked(repository) if (repository / ".git").exists() else None
    tops = None
    if listed is None:
        links = _walked_links(repository)
    else:
        links, tops = listed
    private = [repository / name for name in PRIVATE_ENTRIES]
    for path in links:
        if not path.is_symlink():
            continue
        target = real_path(path)
        if not target.is_relative_to(repository) or any(target.is_relative_to(p) for p in private):
            raise LinkOutOfRepository(path, target)
        # DuckDB checks a path against allowed_directories after removing `..` from its
        # text, but the file system follows the link first: with `data/a/b/l -> .` (the
        # repository), `data/a/b/l/../../../etc/passwd` is `data/etc/passwd` to the check
        # and /etc/passwd to the kernel. A link to a directory below its own is safe (the
        # kernel then lands below where the text says); any other is refused.
        directory = real_path(path.parent)
        if target.is_dir() and (target == directory or not target.is_relative_to(directory)):
            raise LinkOutOfRepository(
                path,
                target,
                "a directory not below the link's own directory: DuckDB removes `..` from a "
                "path's text before the file system follows the link, so `link/../..` could "
                "leave the repository",
            )
    return tops


def _tracked(repository: Path) -> tuple[list[Path], frozenset[str]] | None:
    """The symbolic links git tracks (mode 120000) and the names at the top of the paths it
    tracks, or None when git cannot say."""
    git = shutil.which("git")
    if git is None:
        return None
    # Without the variables a git hook sets for its own repository: in a repository
    # nested inside the hook's, they made ls-files list the outer one's index.
    environment = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_VARIABLES}
    try:
        listed = subprocess.run(
            [git, "-C", str(repository), "ls-files", "--stage", "-z"],
            capture_output=True,
            check=True,
            env=environment,
            timeout=120,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    links = []
    tops = set()
    for entry in listed.split(b"\0"):
        mode, _, rest = entry.partition(b" ")
        name = os.fsdecode(rest.partition(b"\t")[2])
        if name:
            tops.add(name.split("/", 1)[0])
        if mode == b"120000":
            links.append(repository / name)
    return links, frozenset(tops)


def _walked_links(repository: Path) -> list[Path]:
    links: list[Path] = []
    seen = 0
    for directory, subdirectories, filenames in os.walk(repository):
        if directory == str(repository):
            subdirectories[:] = [d for d in subdirectories if d not in PRIVATE_ENTRIES]
        seen += len(subdirectories) + len(filenames)
        if seen > MAX_WALKED_ENTRIES:
            raise RepositoryTooLarge(repository)
        links.extend(
            Path(directory, name)
            for name in (*subdirectories, *filenames)
            if Path(directory, name).is_symlink()
        )
    return links


class RepositoryTooLarge(Exception):
    """A directory taken as the repository (no git) is too large to check for links."""

    def __init__(self, repository: Path):
        super().__init__(str(repository))
        self.repository = repository


# Variables that point git at another repository than the one holding a path: a git hook
# running reconciler has them set for its own repository.
_GIT_LOCATION_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR")


def git_would_commit(path: Path) -> bool:
    """Whether `path` lies in a git work tree where git does not ignore it, so `git add -A`
    there would commit it. One `git check-ignore` call (exit 0: ignored, 1: not, or
    tracked; anything else: no work tree, or no answer). False whenever git cannot say:
    no git, not a repository, one owned by another user (safe.directory)."""
    git = shutil.which("git")
    if git is None:
        return False
    real = real_path(path)
    environment = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_VARIABLES}
    # No fsmonitor: a repository's config could name a program for it, and the file may
    # be in any directory, not only the manifests' repository.
    command = [git, "-c", "core.fsmonitor=false", "-C", str(real.parent), "check-ignore"]
    try:
        done = subprocess.run(
            [*command, "-q", "--", real.name],
            capture_output=True,
            env=environment,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 1


def gitignore_pattern(name: str) -> str:
    """A .gitignore line matching the file `name` (a name in any directory), its special
    characters escaped."""
    escaped = "".join(f"\\{c}" if c in "*?[\\" else c for c in name)
    if escaped.startswith(("#", "!")):
        escaped = "\\" + escaped
    if escaped.endswith(" "):
        escaped = escaped[:-1] + "\\ "
    return escaped
