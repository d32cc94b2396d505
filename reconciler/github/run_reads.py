"""Which of the repository's files a run of the manifests reads, by GitHub's names for them.

A re-run of an older apply or sync reads its own commit's member files as well as its
manifests. A commit after it that changed only a member file outside the manifests'
directory (`csv: ../data/members.csv`, with people removed) did not count as newer, and
the re-run applied the older file: the people removed were subscribed again. So
`check-current` loads the run's manifests from its checkout, as `validate` does (no query
runs), and asks each audience's source what it reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.manifest.loader import load_manifests
from reconciler.manifest.repository import find_repository, real_path


@dataclass(frozen=True)
class RunReads:
    """The files a run reads besides its manifests, by their names in the repository."""

    files: frozenset[str]
    # Why any of the repository's files may be read (a DuckDB query, manifests that do
    # not load here), "" when the files are known.
    anything: str = ""

    def counts(self, name: str) -> bool:
        """Whether a change to the repository's file `name` changes what the run reads."""
        return name in self.files or (bool(self.anything) and not unrelated(name))


def unrelated(name: str) -> bool:
    """Files no run reads as members, even when a query might read any file: the
    workflows and Markdown text. Counted otherwise, every README edit would stop
    re-runs of repositories whose audiences use queries."""
    return name.startswith(".github/") or name.lower().endswith(".md")


def run_reads(directory: str) -> RunReads:
    """What the manifests in `directory` (from the working directory, the checkout's root
    in the workflows) read from the repository. When that cannot be told, any file may be
    theirs: counting a change too many stops a re-run, one too few re-subscribes people."""
    local = Path(directory or ".")
    shown = f"{directory}/" if directory else "the repository"
    if not local.is_dir():
        return RunReads(
            frozenset(),
            f"{shown} is not in the working directory, so which files its manifests read "
            "is unknown (run this from the checkout's root)",
        )
    try:
        manifests = load_manifests(local)
    except ReconcilerError:
        return RunReads(
            frozenset(),
            f"the manifests in {shown} do not load (see `reconciler validate {directory or '.'}`), "
            "so which files they read is unknown",
        )
    # Imported here: sources load DuckDB and SQLAlchemy.
    from reconciler.sources.registry import source_for

    repository = real_path(find_repository(local))
    files: set[str] = set()
    anything = ""
    for audience in manifests.audiences.values():
        source = source_for(audience)
        if source.reads_unnamed_files and not anything:
            anything = (
                f"the query of audience {audience.name!r} at {source.declared_at} may read "
                "any of the repository's files"
            )
        for path in source.named_reads():
            files.update(repository_names(path, repository))
    return RunReads(frozenset(files), anything)


def repository_names(path: Path, repository: Path) -> set[str]:
    """`path`'s name in the repository, and its target's where it is a symbolic link (a
    change to either changes what is read); none for a path outside it."""
    absolute = Path(os.path.abspath(path))
    names = set()
    for candidate in (real_path(absolute.parent) / absolute.name, real_path(absolute)):
        if candidate.is_relative_to(repository) and candidate != repository:
            names.add(candidate.relative_to(repository).as_posix())
    return names
