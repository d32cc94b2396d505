"""Whether a run's commit still holds the newest manifests of its branch.

GitHub re-runs a workflow run with its first run's commit (GITHUB_SHA). Re-running an
older apply (the README's answer to a stale plan) after a newer merge would plan and apply
the older manifests, undoing that merge; a sync re-run likewise. So the workflows that
apply ask first whether the manifests, or a file they read (run_reads.py), changed on the
branch since the run's commit: commits that touch neither (a README change) do not count.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from urllib.parse import quote

from reconciler.errors import ReconcilerError
from reconciler.github.gh import Gh

# GitHub's compare answer lists at most this many files; a full list may hide more.
COMPARE_FILE_LIMIT = 300


@dataclass(frozen=True)
class Newer:
    commits: int  # commits on the branch since the run's commit
    changed: tuple[str, ...]  # files under the path they changed (maybe not all)
    others: tuple[str, ...] = ()  # the other files they changed (maybe not all)
    unknown: bool = False  # too many files changed to tell


_DRIVE = re.compile(r"^[A-Za-z]:")


def repository_path(path: str) -> str:
    """`--path` as GitHub names the files under it: relative to the repository's root,
    with '/' ("" for the whole repository). `manifests\\` (a Windows habit) or
    `./manifests` matched none of GitHub's names, so every newer change went unseen and a
    re-run applied the older manifests; a path outside the repository is refused."""
    given = path
    path = path.replace("\\", "/")
    if path.startswith("/") or _DRIVE.match(path):
        raise ReconcilerError(
            f"--path {given}: give the manifests' directory relative to the repository's "
            "root, as GitHub names its files (e.g. manifests)"
        )
    normal = posixpath.normpath(path) if path else "."
    if normal == ".." or normal.startswith("../"):
        raise ReconcilerError(
            f"--path {given} is outside the repository; give the manifests' directory "
            "relative to the repository's root (e.g. manifests)"
        )
    return "" if normal == "." else normal


def newer_changes(gh: Gh, repo: str, commit: str, branch: str, path: str) -> Newer:
    """What the branch changed under `path` (as `repository_path` gives it), and
    elsewhere, since `commit`."""
    answer = gh.api("GET", f"repos/{repo}/compare/{quote(commit)}...{quote(branch, safe='/')}")
    commits = int(answer.get("ahead_by") or 0)
    if commits == 0:
        return Newer(0, ())
    files = answer.get("files") or []
    prefix = f"{path}/" if path else ""
    names = [
        name
        for f in files
        for name in (f.get("filename"), f.get("previous_filename"))
        if isinstance(name, str)
    ]
    changed = tuple(name for name in names if name.startswith(prefix))
    others = tuple(name for name in names if not name.startswith(prefix))
    return Newer(commits, changed, others, unknown=len(files) >= COMPARE_FILE_LIMIT)
