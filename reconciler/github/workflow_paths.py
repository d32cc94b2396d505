"""Member files that the repository's plan and apply workflows do not watch.

plan.yml and apply.yml start only for changes their `paths:` filters pass (manifests/**
as shipped). An audience reading `csv: ../data/members.csv` outside them: a pull request
that changes only that file got no plan comment, was merged unreviewed, and was not
applied until the next scheduled sync applied it, people removed or added with nobody
having seen a plan. So `validate` (pre-commit, and plan.yml on the pull request that adds
the audience) warns at the manifest line of each file a source reads that a workflow
running `reconciler plan` or `reconciler apply` (itself, or through a composite action of
the repository: local_actions.py) on a pull request or push would not
start for; and once of manifest files it would not start for (manifests moved to
infra/manifests under the shipped filter: no pull request is ever planned).

The workflows are the repository's files, read as untrusted: at most MAX_WORKFLOWS of
them, each at most MAX_WORKFLOW_BYTES, through the manifests' YAML reader (no tags,
bounded aliases and nesting), and none through a symbolic link out of the repository.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.errors import Problem, display_path
from reconciler.github.local_actions import LocalActions
from reconciler.github.path_filters import PathFilter, escape, passes_all
from reconciler.github.run_reads import repository_names
from reconciler.manifest.manifests import Manifests
from reconciler.manifest.repository import find_repository, real_path
from reconciler.manifest.yaml_file import read_yaml_bytes
from reconciler.open_flags import BINARY, NONBLOCK

# Far above any workflow (GitHub's own are a few KB), far below what would slow validate.
MAX_WORKFLOW_BYTES = 1 << 20
MAX_WORKFLOWS = 500

# The events whose runs GitHub filters by the files changed.
_FILTERED_EVENTS = ("pull_request", "pull_request_target", "push")


@dataclass(frozen=True)
class Trigger:
    """One event of a reconciler workflow that only some changed files start."""

    workflow: Path  # the file, absolute
    event: str
    line: int  # of its `paths:` (or `paths-ignore:`) key
    filters: tuple[PathFilter, ...]

    def passes(self, name: str) -> bool:
        return passes_all(self.filters, name)

    def describe(self) -> str:
        """`.github/workflows/plan.yml:11 (pull_request)`, the kind of filter added
        where it is not `paths:`."""
        kinds = ["paths-ignore:" for f in self.filters if f.ignore]
        return f"{display_path(self.workflow)}:{self.line} ({', '.join([self.event, *kinds])})"


@dataclass(frozen=True)
class Workflows:
    triggers: tuple[Trigger, ...] = ()
    # Workflow files not read (a link out of the repository, too large) or that GitHub
    # refuses: warnings.
    unread: tuple[Problem, ...] = ()


def unwatched_reads(manifests: Manifests, root: Path) -> list[Problem]:
    """A warning at each audience's source for each repository file it reads (after a
    read, a DuckDB query's files too) that a plan or apply workflow's filters leave out,
    and one for the manifest files they leave out; none without such workflows."""
    # Imported here: sources load DuckDB and SQLAlchemy.
    from reconciler.sources.registry import source_for

    repository = real_path(find_repository(root))
    workflows = reconciler_workflows(repository)
    problems = list(workflows.unread)
    if not workflows.triggers:
        return problems
    moved = _unwatched_manifests(manifests, repository, workflows.triggers)
    problems.extend(moved)
    # Member files among the manifests left out: that warning's fix is theirs too.
    roots = sorted(repository_names(_directory(manifests), repository)) if moved else []
    said = tuple(f"{root}/" for root in roots)
    for audience in manifests.audiences.values():
        source = source_for(audience)
        names = sorted({n for p in source.files_read() for n in repository_names(p, repository)})
        for name in names:
            if said and name.startswith(said):
                continue
            missed = [t for t in workflows.triggers if not t.passes(name)]
            if missed:
                at = audience.field_location("members", source.field)
                head = f"audience {audience.name!r} reads {name}, which {_where(missed)} leave out"
                problems.append(at.problem(f"{head}: {_effect('it', _folder(name), missed)}"))
    return problems


def _unwatched_manifests(
    manifests: Manifests, repository: Path, triggers: tuple[Trigger, ...]
) -> list[Problem]:
    """One warning, at the first manifest file a filter leaves out (`reconciler plan
    infra/manifests` under the shipped `manifests/**`: no pull request is ever planned)."""
    left_out = [
        (path, name)
        for path in manifests.files
        for name in sorted(repository_names(path, repository))
        if not all(t.passes(name) for t in triggers)
    ]
    if not left_out:
        return []
    path, name = left_out[0]
    missed = [t for t in triggers if not t.passes(name)]
    more = len({p for p, _ in left_out}) - 1
    files = f"manifest files {name} and {more:,} more" if more else f"manifest file {name}"
    roots = sorted(repository_names(_directory(manifests), repository))
    suggested = f"{escape(roots[0])}/**" if roots else _folder(name)
    effect = _effect("them" if more else "it", suggested, missed)
    return [Problem(display_path(path), 1, 0, f"{_where(missed)} leave out {files}: {effect}")]


def _directory(manifests: Manifests) -> Path:
    """The manifests' directory (`validate manifests/vip.yaml`: the file's)."""
    return manifests.root if manifests.root.is_dir() else manifests.root.parent


def _folder(name: str) -> str:
    """The pattern of the directory holding the repository's file `name`."""
    folder = name.rpartition("/")[0]
    return f"{escape(folder)}/**" if folder else escape(name)


def _where(missed: list[Trigger]) -> str:
    return "the filters of " + " and ".join(t.describe() for t in missed)


def _effect(it: str, suggested: str, missed: list[Trigger]) -> str:
    """What a change to only the files left out does not start, and the fix."""
    pull = any(t.event.startswith("pull_request") for t in missed)
    push = any(t.event == "push" for t in missed)
    if pull and push:
        effect = (
            f"a pull request that changes only {it} gets no plan, and its merge is not "
            "applied (a scheduled sync, if any, applies it unreviewed)"
        )
    elif pull:
        effect = (
            f"a pull request that changes only {it} gets no plan, so its merge applies a "
            "change nobody saw planned"
        )
    else:
        effect = f"a merge that changes only {it} is not applied (until a scheduled sync, if any)"
    fixes = []
    if any(not f.ignore for t in missed for f in t.filters):
        fixes.append(f'add "{suggested}" at the end of each of those paths:')
    if any(f.ignore for t in missed for f in t.filters):
        fixes.append(f"take {it} out of the paths-ignore:")
    return f"{effect}; {' and '.join(fixes)}"


def reconciler_workflows(repository: Path) -> Workflows:
    """The filtered events of the workflows in `repository`/.github/workflows that plan
    or apply (or call a workflow there that does)."""
    directory = repository / ".github" / "workflows"
    if not directory.is_dir():
        return Workflows()
    shown = display_path(directory)
    if not _inside(directory, repository):
        return Workflows(unread=(_unread(shown, "is a symbolic link out of the repository"),))
    try:
        entries = sorted(
            e.name for e in os.scandir(directory) if e.name.endswith((".yml", ".yaml"))
        )
    except OSError as exc:
        return Workflows(unread=(_unread(shown, f"cannot be listed: {exc.strerror}"),))
    unread: list[Problem] = []
    documents: dict[str, Mapping[Any, Any]] = {}
    for name in entries[:MAX_WORKFLOWS]:
        data, why = _read_workflow(directory / name, repository)
        if why:
            unread.append(_unread(display_path(directory / name), why))
        elif data is not None:
            documents[name] = data
    if len(entries) > MAX_WORKFLOWS:
        unread.append(
            _unread(shown, f"holds {len(entries):,} workflows; the first {MAX_WORKFLOWS} were read")
        )
    actions = LocalActions(repository, _read_workflow)
    planning = {name for name, data in documents.items() if _runs_reconciler(data, actions)}
    unread.extend(actions.unread)
    # A workflow whose job calls one of them (`uses: ./.github/workflows/plan-job.yml`)
    # starts it: its own filters are the ones that count.
    planning |= {name for name, data in documents.items() if _calls(data) & planning}
    triggers = []
    for name in sorted(planning):
        refused = _refused(directory / name, documents[name])
        if refused is not None:
            unread.append(refused)  # it never runs: its filters leave out nothing
        else:
            triggers.extend(_triggers(directory / name, documents[name]))
    return Workflows(tuple(triggers), tuple(unread))


def _refused(path: Path, data: Mapping[Any, Any]) -> Problem | None:
    """A warning when GitHub refuses the workflow for an event with both `paths:` and
    `paths-ignore:` ("you may only define one of `paths` and `paths-ignore` for a single
    event", an invalid workflow file): it never runs, for any event."""
    for event, config in _events(data):
        if "paths" in config and "paths-ignore" in config:
            return Problem(
                display_path(path),
                _key_line(config, "paths-ignore"),
                0,
                f"GitHub refuses this workflow, which so never plans or applies: {event} has "
                "both paths: and paths-ignore:, where it takes only one; keep paths: (a "
                "pattern starting with ! there leaves files out)",
            )
    return None


def _events(data: Mapping[Any, Any]) -> list[tuple[str, Mapping[Any, Any]]]:
    """The filtered events the workflow's `on:` configures, with their settings."""
    # `on` is text in YAML 1.2, as GitHub reads it; a `%YAML 1.1` file makes it true.
    on = data.get("on", data.get(True))
    if not isinstance(on, Mapping):
        return []  # `on: push`, `on: [push, pull_request]`: every change starts it
    return [
        (event, on[event])
        for event in _FILTERED_EVENTS
        if event in on and isinstance(on[event], Mapping)
    ]


def _unread(shown: str, why: str) -> Problem:
    return Problem(
        shown, 0, 0, f"not read to check which member files its paths: filters leave out: {why}"
    )


def _inside(path: Path, repository: Path) -> bool:
    return real_path(path).is_relative_to(repository)


def _read_workflow(path: Path, repository: Path) -> tuple[Mapping[Any, Any] | None, str]:
    """The workflow's first document, or why it was not read ("" with None: not a
    workflow GitHub would run, such as invalid YAML)."""
    real = real_path(path)
    if not real.is_relative_to(repository):
        return None, "a symbolic link out of the repository"
    try:
        # The path checked, not the link again; not blocking on a FIFO put where a
        # workflow is expected.
        descriptor = os.open(real, os.O_RDONLY | BINARY | NONBLOCK)
    except OSError as exc:
        return None, f"cannot be opened: {exc.strerror}"
    with os.fdopen(descriptor, "rb") as file:
        status = os.fstat(file.fileno())
        if not stat.S_ISREG(status.st_mode):
            return None, "not a regular file"
        raw = file.read(MAX_WORKFLOW_BYTES + 1)
    if len(raw) > MAX_WORKFLOW_BYTES:
        return None, f"larger than {MAX_WORKFLOW_BYTES // 1024:,} KiB"
    documents, problems = read_yaml_bytes(raw, path, display_path(path))
    if problems or not documents or not isinstance(documents[0].data, Mapping):
        return None, ""
    return documents[0].data, ""


def _jobs(data: Mapping[Any, Any]) -> list[Mapping[Any, Any]]:
    jobs = data.get("jobs")
    if not isinstance(jobs, Mapping):
        return []
    return [job for job in jobs.values() if isinstance(job, Mapping)]


def _runs_reconciler(data: Mapping[Any, Any], actions: LocalActions) -> bool:
    return any(actions.steps_run_reconciler(job.get("steps")) for job in _jobs(data))


def _calls(data: Mapping[Any, Any]) -> set[str]:
    """The names of the workflows in this directory that its jobs call."""
    called = set()
    for job in _jobs(data):
        uses = job.get("uses")
        if isinstance(uses, str) and uses.startswith("./.github/workflows/"):
            called.add(uses.removeprefix("./.github/workflows/"))
    return called


def _triggers(path: Path, data: Mapping[Any, Any]) -> list[Trigger]:
    triggers = []
    for event, config in _events(data):
        filters = []
        line = 0
        for key in ("paths", "paths-ignore"):
            if key not in config:
                continue
            filters.append(PathFilter(_patterns(config[key]), ignore=key == "paths-ignore"))
            if not line:
                line = _key_line(config, key)
        if filters:
            triggers.append(Trigger(path, event, line, tuple(filters)))
    return triggers


def _patterns(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    # A number is a pattern GitHub reads as its text; a list or mapping is none.
    kept = (p for p in items if isinstance(p, str | int | float) and not isinstance(p, bool))
    return tuple(str(p) for p in kept)


def _key_line(mapping: Any, key: str) -> int:
    """The 1-based line `key` is written on in a ruamel mapping (0 when not known)."""
    try:
        return int(mapping.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, TypeError):
        return 0
