"""Whether a workflow's steps plan or apply, directly or through the repository's own
composite actions.

A workflow may keep its steps in an action of the repository (`uses:
./.github/actions/reconcile`, whose action.yml runs `reconciler plan`): such a workflow
plans or applies as much as one that runs the command itself, and its paths: filters
count the same (workflow_paths.py). The action files are the repository's, read as
untrusted as the workflows are: through the same reader and limits, none outside the
repository (`./../x`, a symbolic link out), at most MAX_ACTIONS of them and composite
actions nested at most MAX_NESTING deep (GitHub's own limit).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reconciler.errors import Problem, display_path
from reconciler.manifest.repository import real_path

MAX_ACTIONS = 100
MAX_NESTING = 10

# A step that plans or applies: `reconciler plan`, `python -m reconciler apply`, a command
# broken over lines with `\`.
_RUNS_RECONCILER = re.compile(r"\breconciler(?:\s|\\\n)+(?:plan|apply)\b")

# Reads one YAML file of the repository: its first document, or why it was not read.
Reader = Callable[[Path, Path], tuple[Mapping[Any, Any] | None, str]]


class LocalActions:
    """The repository's local actions, each read once, and those that could not be."""

    def __init__(self, repository: Path, read: Reader) -> None:
        self._repository = repository
        self._read = read
        self._plans: dict[Path, bool] = {}
        self.unread: list[Problem] = []

    def steps_run_reconciler(self, steps: Any, depth: int = 0) -> bool:
        """Whether a job's (or a composite action's) `steps` plan or apply."""
        for step in steps if isinstance(steps, list) else ():
            if not isinstance(step, Mapping):
                continue
            run, uses = step.get("run"), step.get("uses")
            if isinstance(run, str) and _RUNS_RECONCILER.search(run):
                return True
            if isinstance(uses, str) and uses.startswith("./") and self._plans_in(uses, depth):
                return True
        return False

    def _plans_in(self, uses: str, depth: int) -> bool:
        directory = real_path(self._repository / uses)
        if directory in self._plans:
            return self._plans[directory]
        self._plans[directory] = False  # while it is read: an action using itself
        shown = display_path(self._repository / uses)
        if not directory.is_relative_to(self._repository):
            self._unread_action(shown, "outside the repository")
            return False
        if depth >= MAX_NESTING or len(self._plans) > MAX_ACTIONS:
            self._unread_action(shown, f"over {MAX_ACTIONS} actions or {MAX_NESTING} nested")
            return False
        # GitHub reads action.yml, or action.yaml when there is none.
        path = next(
            (directory / n for n in ("action.yml", "action.yaml") if (directory / n).exists()),
            None,
        )
        if path is None:
            return False  # no action here: GitHub fails the step
        data, why = self._read(path, self._repository)
        if why:
            self._unread_action(display_path(self._repository / uses / path.name), why)
        runs = data.get("runs") if data is not None else None
        if not isinstance(runs, Mapping) or runs.get("using") != "composite":
            return False
        plans = self.steps_run_reconciler(runs.get("steps"), depth + 1)
        self._plans[directory] = plans
        return plans

    def _unread_action(self, shown: str, why: str) -> None:
        self.unread.append(
            Problem(shown, 0, 0, f"not read to check whether a workflow plans or applies: {why}")
        )
