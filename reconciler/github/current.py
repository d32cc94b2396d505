"""Whether a run's commit still holds the newest manifests of its branch.

GitHub re-runs a workflow run with its first run's commit (GITHUB_SHA). Re-running an
older apply (the README's answer to a stale plan) after a newer merge would plan and apply
the older manifests, undoing that merge; a sync re-run likewise. So the workflows that
apply ask first whether the manifests changed on the branch since the run's commit:
commits that touch nothing under the manifests (a README change) do not count.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from reconciler.github.gh import Gh

# GitHub's compare answer lists at most this many files; a full list may hide more.
COMPARE_FILE_LIMIT = 300


@dataclass(frozen=True)
class Newer:
    commits: int  # commits on the branch since the run's commit
    changed: tuple[str, ...]  # files under the path they changed (maybe not all)
    unknown: bool = False  # too many files changed to tell


def newer_changes(gh: Gh, repo: str, commit: str, branch: str, path: str) -> Newer:
    """What the branch changed under `path` since `commit`."""
    answer = gh.api("GET", f"repos/{repo}/compare/{quote(commit)}...{quote(branch, safe='/')}")
    commits = int(answer.get("ahead_by") or 0)
    if commits == 0:
        return Newer(0, ())
    files = answer.get("files") or []
    prefix = path.strip("/") + "/"
    changed = tuple(
        name
        for f in files
        for name in (f.get("filename"), f.get("previous_filename"))
        if isinstance(name, str) and name.startswith(prefix)
    )
    return Newer(commits, changed, unknown=len(files) >= COMPARE_FILE_LIMIT)
