"""github/local_actions.py on its own: which composite actions of a repository plan or
apply, read through a reader the test supplies (workflow_paths.py gives the real one)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.github.local_actions import MAX_NESTING, LocalActions


def _reader(reads: list[Path]):
    def read(path: Path, repository: Path) -> tuple[Mapping[Any, Any] | None, str]:
        reads.append(path)
        return YAML(typ="safe").load(path.read_text()), ""

    return read


def _action(repository: Path, name: str, steps: str, file: str = "action.yml") -> None:
    directory = repository / ".github" / "actions" / name
    directory.mkdir(parents=True)
    (directory / file).write_text(f"runs:\n  using: composite\n  steps:\n{steps}")


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    return root.resolve()


def test_a_step_running_reconciler_plans_whether_written_directly_or_in_an_action(
    repository: Path,
) -> None:
    _action(repository, "reconcile", "    - run: |\n        reconciler \\\n          plan m\n")
    _action(repository, "lint", "    - run: ruff check .\n", file="action.yaml")
    reads: list[Path] = []
    actions = LocalActions(repository, _reader(reads))

    assert actions.steps_run_reconciler([{"run": "python -m reconciler apply m --yes"}])
    assert actions.steps_run_reconciler([{"uses": "./.github/actions/reconcile"}])
    assert not actions.steps_run_reconciler([{"uses": "./.github/actions/lint"}])
    assert not actions.steps_run_reconciler([{"run": "reconciler validate m"}, "not a step"])
    assert not actions.steps_run_reconciler([{"uses": "./.github/actions/missing"}])
    # Each action is read once, however many steps use it.
    assert actions.steps_run_reconciler([{"uses": "./.github/actions/reconcile"}])
    assert [p.parent.name for p in reads] == ["reconcile", "lint"]
    assert actions.unread == []


def test_an_action_outside_the_repository_is_not_read_and_is_said(repository: Path) -> None:
    outside = repository.parent / "outside"
    outside.mkdir()
    (outside / "action.yml").write_text(
        "runs:\n  using: composite\n  steps:\n    - run: reconciler plan m\n"
    )
    reads: list[Path] = []
    actions = LocalActions(repository, _reader(reads))

    assert not actions.steps_run_reconciler([{"uses": "./../outside"}])
    assert reads == []
    assert [p.message for p in actions.unread] == [
        "not read to check whether a workflow plans or applies: outside the repository"
    ]


def test_actions_using_each_other_end_and_nesting_is_bounded(repository: Path) -> None:
    _action(repository, "a", "    - uses: ./.github/actions/b\n")
    _action(repository, "b", "    - uses: ./.github/actions/a\n")
    for depth in range(MAX_NESTING + 1):
        after = f"./.github/actions/n{depth + 1}"
        step = f"    - uses: {after}\n" if depth < MAX_NESTING else "    - run: reconciler plan m\n"
        _action(repository, f"n{depth}", step)
    actions = LocalActions(repository, _reader([]))

    assert not actions.steps_run_reconciler([{"uses": "./.github/actions/a"}])
    # The plan is one action too deep for GitHub (and for the check), which says so.
    assert not actions.steps_run_reconciler([{"uses": "./.github/actions/n0"}])
    assert any("nested" in p.message for p in actions.unread)


def test_an_action_the_reader_refuses_is_said_with_its_reason(repository: Path) -> None:
    _action(repository, "big", "    - run: reconciler plan m\n")

    def refuse(path: Path, repository: Path) -> tuple[Mapping[Any, Any] | None, str]:
        return None, "larger than 1,000,000 bytes"

    actions = LocalActions(repository, refuse)
    assert not actions.steps_run_reconciler([{"uses": "./.github/actions/big"}])
    assert [(p.file, p.message) for p in actions.unread] == [
        (
            str(repository / ".github/actions/big/action.yml"),
            "not read to check whether a workflow plans or applies: larger than 1,000,000 bytes",
        )
    ]
