"""`validate` warns of member files the plan and apply workflows' `paths:` filters leave
out (reconciler.github.workflow_paths): in a git repository holding the workflows this
repository ships, a pull request changing only `data/members.csv` would get no plan and
its merge would not be applied, until a scheduled sync applied it unreviewed. Real
workflow files, read as untrusted: links out of the repository, oversized files, alias
bombs and FIFOs are not read, and say so."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.github import workflow_paths

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / ".github" / "workflows"

DESTINATION = """\
apiVersion: reconciler/v1
kind: Destination
metadata: {name: prod}
spec:
  region: sandbox
  projectType: hybrid
"""
# The members' field is on line 8, its value at column 10.
AUDIENCE = """\
apiVersion: reconciler/v1
kind: Audience
metadata:
  name: vip
spec:
  destination: prod
  members:
    {field}: {value}
"""
CSV = "../data/members.csv"


def _repository(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    members: tuple[str, str] = ("csv", CSV),
    workflows: tuple[str, ...] = ("plan.yml", "apply.yml", "sync.yml"),
) -> Path:
    """A git repository (the working directory) whose audience 'vip' reads `members`,
    with data/members.csv and data/other.csv, and the shipped `workflows`."""
    repo = tmp_path / "repo"
    (repo / "manifests").mkdir(parents=True)
    (repo / "data").mkdir()
    (repo / ".github" / "workflows").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for name in workflows:
        shutil.copy(SHIPPED / name, repo / ".github" / "workflows" / name)
    for name in ("members.csv", "other.csv"):
        (repo / "data" / name).write_text("email\na@example.com\n")
    (repo / "manifests" / "prod.yaml").write_text(DESTINATION)
    field, value = members
    (repo / "manifests" / "vip.yaml").write_text(AUDIENCE.format(field=field, value=value))
    # A DuckDB query reads only what git tracks at the repository's top.
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    monkeypatch.chdir(repo)
    return repo


def _validate() -> tuple[int, str]:
    result = CliRunner().invoke(app, ["validate", "manifests"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout + result.stderr


def _paths_line(workflow: Path) -> int:
    """The line of the workflow's (first) `paths:` key."""
    lines = workflow.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.strip() == "paths:")


def _add_pattern(workflow: Path, *patterns: str) -> None:
    """`patterns` after the shipped `manifests/**` of the workflow's paths: filter."""
    text = workflow.read_text()
    added = "".join(f'\n      - "{p}"' for p in patterns)
    workflow.write_text(text.replace('      - "manifests/**"', '      - "manifests/**"' + added))


def _warnings(output: str) -> list[str]:
    return [line for line in output.splitlines() if "paths" in line and "warning" in line]


def test_a_member_file_outside_the_shipped_filters_is_warned_of_at_its_manifest_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repository(tmp_path, monkeypatch)
    plan_line = _paths_line(repo / ".github/workflows/plan.yml")
    apply_line = _paths_line(repo / ".github/workflows/apply.yml")

    code, output = _validate()

    assert code == 0, output
    assert _warnings(output) == [
        "warning: manifests/vip.yaml:8:10: audience 'vip' reads data/members.csv, which the "
        f"filters of .github/workflows/apply.yml:{apply_line} (push) and "
        f".github/workflows/plan.yml:{plan_line} (pull_request) leave out: a pull request "
        "that changes only it gets no plan, and its merge is not applied (a scheduled sync, "
        'if any, applies it unreviewed); add "data/**" at the end of each of those paths:'
    ]
    assert "OK: 1 destination, 1 audience, 1 member in 2 manifest files." in output


def test_on_a_runner_the_warning_is_an_annotation_on_the_manifest_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.test_github_annotations import run

    repo = _repository(tmp_path, monkeypatch)

    done = run(repo, "validate", "manifests")

    assert done.returncode == 0, done.stderr
    annotations = [line for line in done.stderr.splitlines() if line.startswith("::")]
    assert len(annotations) == 1, done.stderr
    assert annotations[0].startswith(
        "::warning file=manifests/vip.yaml,line=8,col=10,title=reconciler validate::"
        "audience 'vip' reads data/members.csv, which the filters of "
    )


def test_no_warning_once_the_filters_cover_the_file_or_without_reconciler_s_workflows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repository(tmp_path, monkeypatch)
    for name in ("plan.yml", "apply.yml"):
        _add_pattern(repo / ".github/workflows" / name, "data/**")
    covered = _validate()
    # Workflows that neither plan nor apply (ci.yml runs the tests, on paths of its own)
    # start no plan: their filters are not the ones that count.
    shutil.rmtree(repo / ".github/workflows")
    (repo / ".github/workflows").mkdir()
    shutil.copy(SHIPPED / "ci.yml", repo / ".github/workflows/ci.yml")
    other = _validate()
    shutil.rmtree(repo / ".github")
    none = _validate()

    for code, output in (covered, other, none):
        assert code == 0 and _warnings(output) == [], output


def test_a_file_inside_the_manifests_directory_is_covered_by_manifests_glob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repository(tmp_path, monkeypatch, ("csv", "vip.csv"))
    (repo / "manifests/vip.csv").write_text("email\na@example.com\n")

    code, output = _validate()

    assert code == 0 and _warnings(output) == [], output


def test_a_later_negative_pattern_leaves_the_file_out_and_a_later_positive_one_takes_it_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repository(tmp_path, monkeypatch, workflows=("plan.yml",))
    plan = repo / ".github/workflows/plan.yml"
    shipped = plan.read_text()
    _add_pattern(plan, "data/**", "!data/members.csv")
    excluded = _validate()
    plan.write_text(shipped)
    _add_pattern(plan, "data/**", "!data/members.csv", "data/members.*")
    taken_back = _validate()

    assert [w.split(", which")[0] for w in _warnings(excluded[1])] == [
        "warning: manifests/vip.yaml:8:10: audience 'vip' reads data/members.csv"
    ]
    assert "plan.yml" in excluded[1] and "(pull_request)" in excluded[1]
    assert _warnings(taken_back[1]) == []


def test_paths_ignore_and_a_workflow_calling_one_that_plans_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repository(tmp_path, monkeypatch, workflows=())
    workflows = repo / ".github/workflows"
    (workflows / "plan-job.yml").write_text(
        "on: workflow_call\njobs:\n  plan:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: |\n          reconciler \\\n            plan manifests\n"
    )
    # Line 5: paths-ignore.
    (workflows / "pr.yml").write_text(
        "name: pr\non:\n  pull_request:\n    branches: [main]\n    paths-ignore:\n"
        "      - 'data/**'\n      - '!data/members.csv'\n"
        "jobs:\n  plan:\n    uses: ./.github/workflows/plan-job.yml\n"
    )

    code, output = _validate()

    assert code == 0, output
    assert _warnings(output) == [
        "warning: manifests/vip.yaml:8:10: audience 'vip' reads data/members.csv, which the "
        "filters of .github/workflows/pr.yml:5 (pull_request, paths-ignore:) leave out: a pull "
        "request that changes only it gets no plan, so its merge applies a change nobody saw "
        "planned; take it out of the paths-ignore:"
    ]


def _composite(directory: Path, *steps: str, name: str = "action.yml") -> None:
    """A composite action at `directory` whose steps are `steps` (YAML flow mappings)."""
    directory.mkdir(parents=True, exist_ok=True)
    listed = "".join(f"    - {step}\n" for step in steps)
    (directory / name).write_text(f"name: x\nruns:\n  using: composite\n  steps:\n{listed}")


def test_a_workflow_planning_through_a_composite_action_of_the_repository_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workflow that keeps its steps in an action of the repository (`uses:
    ./.github/actions/reconcile`, whose action.yml runs `reconciler plan`) was not
    recognised as planning: a member file outside its paths: filters was not warned of."""
    repo = _repository(tmp_path, monkeypatch, workflows=())
    actions = repo / ".github/actions"
    _composite(
        actions / "reconcile",
        "{run: pip install reconciler, shell: bash}",
        '{run: "reconciler ${{ inputs.command }} manifests", shell: bash}',
        "{run: reconciler plan manifests, shell: bash}",
    )
    # apply.yml reaches it through a second action (action.yaml, as GitHub also reads).
    _composite(actions / "outer", "{uses: ./.github/actions/reconcile/}", name="action.yaml")
    workflows = repo / ".github/workflows"
    for name, event, action in (
        ("plan.yml", "pull_request", "reconcile"),
        ("apply.yml", "push", "outer"),
    ):
        (workflows / name).write_text(
            f"on:\n  {event}:\n    paths: [manifests/**]\njobs:\n  run:\n"
            "    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v6\n"
            f"      - uses: ./.github/actions/{action}\n"
        )

    code, output = _validate()

    assert code == 0, output
    assert _warnings(output) == [
        "warning: manifests/vip.yaml:8:10: audience 'vip' reads data/members.csv, which the "
        "filters of .github/workflows/apply.yml:3 (push) and .github/workflows/plan.yml:3 "
        "(pull_request) leave out: a pull request that changes only it gets no plan, and its "
        "merge is not applied (a scheduled sync, if any, applies it unreviewed); add "
        '"data/**" at the end of each of those paths:'
    ]


def test_a_local_action_outside_the_repository_is_not_read_and_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repository(tmp_path, monkeypatch, workflows=())
    _composite(tmp_path / "outside", "{run: reconciler plan manifests, shell: bash}")
    (repo / ".github/actions").mkdir()
    link = repo / ".github/actions/linked"
    link.symlink_to(tmp_path / "outside")
    # An action that uses itself is read once, not forever.
    _composite(repo / ".github/actions/loop", "{uses: ./.github/actions/loop}")
    (repo / ".github/workflows/plan.yml").write_text(
        "on:\n  pull_request:\n    paths: [manifests/**]\njobs:\n  run:\n"
        "    runs-on: ubuntu-latest\n    steps:\n      - uses: ./.github/actions/linked\n"
        "      - uses: ./../elsewhere\n      - uses: ./.github/actions/missing\n"
        "      - uses: ./.github/actions/loop\n"
    )

    try:
        code, output = _validate()
    finally:
        # Left in this worker's temporary directory, the link failed every later test there
        # whose manifests have no git repository above them (their repository is then the
        # directory above the manifests, which holds it: DuckDB queries refuse to run).
        link.unlink()

    assert code == 0, output
    notice = "not read to check whether a workflow plans or applies: outside the repository"
    assert f"warning: .github/actions/linked: {notice}" in output.splitlines(), output
    assert f"warning: ../elsewhere: {notice}" in output.splitlines(), output
    # Neither read: plan.yml is not known to plan, and no member file is warned of.
    assert _warnings(output) == [], output


def test_a_workflow_github_refuses_for_both_paths_and_paths_ignore_is_said_never_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GitHub refuses a workflow whose event has both paths: and paths-ignore: ("you may
    only define one of `paths` and `paths-ignore` for a single event"): it never runs.
    Both filters were checked as if it ran, and nothing said it never would."""
    repo = _repository(tmp_path, monkeypatch, workflows=())
    # Line 5: paths-ignore.
    (repo / ".github/workflows/pr.yml").write_text(
        "on:\n  pull_request:\n    paths: [manifests/**, data/**]\n    branches: [main]\n"
        "    paths-ignore: [docs/**]\njobs:\n  plan:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: reconciler plan manifests\n"
    )

    code, output = _validate()

    assert code == 0, output
    assert [line for line in output.splitlines() if line.startswith("warning:")] == [
        "warning: .github/workflows/pr.yml:5: GitHub refuses this workflow, which so never "
        "plans or applies: pull_request has both paths: and paths-ignore:, where it takes "
        "only one; keep paths: (a pattern starting with ! there leaves files out)"
    ]


def test_files_a_duckdb_query_read_are_checked_at_its_sql_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = "\"SELECT * FROM read_csv('data/other.csv')\"\n    database: ':memory:'"
    repo = _repository(tmp_path, monkeypatch, ("sql", query))
    _add_pattern(repo / ".github/workflows/plan.yml", "data/members.csv")
    _add_pattern(repo / ".github/workflows/apply.yml", "data/members.csv")

    code, output = _validate()

    assert code == 0, output
    assert [w.split(", which")[0] for w in _warnings(output)] == [
        "warning: manifests/vip.yaml:8:10: audience 'vip' reads data/other.csv"
    ]


def test_a_member_file_reached_through_a_symbolic_link_counts_its_target_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repository(tmp_path, monkeypatch, ("csv", "../current.csv"))
    (repo / "current.csv").symlink_to("data/members.csv")
    for name in ("plan.yml", "apply.yml"):
        _add_pattern(repo / ".github/workflows" / name, "current.csv")

    code, output = _validate()

    assert code == 0, output
    # The link is watched; its target, whose change alone changes the members, is not.
    assert [w.split(", which")[0] for w in _warnings(output)] == [
        "warning: manifests/vip.yaml:8:10: audience 'vip' reads data/members.csv"
    ]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_workflow_files_that_are_not_safe_to_read_are_named_and_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repository(tmp_path, monkeypatch, workflows=("plan.yml",))
    workflows = repo / ".github/workflows"
    outside = tmp_path / "outside.yml"
    shutil.copy(SHIPPED / "apply.yml", outside)
    (workflows / "apply.yml").symlink_to(outside)
    os.mkfifo(workflows / "fifo.yml")
    huge = "# padding\n" * (workflow_paths.MAX_WORKFLOW_BYTES // 10 + 1)
    (workflows / "huge.yml").write_text(huge)
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefg", "bcdefgh", strict=True)
    )
    (workflows / "bomb.yml").write_text(bomb)

    code, output = _validate()

    assert code == 0, output
    lines = output.splitlines()
    assert (
        "warning: .github/workflows/apply.yml: not read to check which member files its "
        "paths: filters leave out: a symbolic link out of the repository"
    ) in lines
    assert (
        "warning: .github/workflows/fifo.yml: not read to check which member files its "
        "paths: filters leave out: not a regular file"
    ) in lines
    assert (
        "warning: .github/workflows/huge.yml: not read to check which member files its "
        "paths: filters leave out: larger than 1,024 KiB"
    ) in lines
    # The alias bomb is no workflow GitHub would run either: nothing said, nothing hung.
    assert "bomb.yml" not in output
    # plan.yml, read, still finds the file.
    assert any("plan.yml" in w and "data/members.csv" in w for w in _warnings(output))


def test_with_the_plan_workflow_watching_it_the_warning_is_of_the_merge_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repository(tmp_path, monkeypatch)
    _add_pattern(repo / ".github/workflows/plan.yml", "data/**")

    code, output = _validate()

    assert code == 0, output
    warnings = _warnings(output)
    assert len(warnings) == 1 and "plan.yml" not in warnings[0], output
    assert warnings[0].endswith(
        "(push) leave out: a merge that changes only it is not applied (until a scheduled "
        'sync, if any); add "data/**" at the end of each of those paths:'
    )


def test_manifests_moved_out_of_the_filters_are_warned_of_once_at_the_first_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repository(tmp_path, monkeypatch, ("csv", "vip.csv"))
    (repo / "manifests/vip.csv").write_text("email\na@example.com\n")
    (repo / "infra").mkdir()
    (repo / "manifests").rename(repo / "infra/manifests")
    plan_line = _paths_line(repo / ".github/workflows/plan.yml")
    apply_line = _paths_line(repo / ".github/workflows/apply.yml")

    result = CliRunner().invoke(app, ["validate", "infra/manifests"])

    assert result.exit_code == 0, result.output
    assert _warnings(result.stdout + result.stderr) == [
        f"warning: infra/manifests/prod.yaml:1: the filters of .github/workflows/apply.yml:"
        f"{apply_line} (push) and .github/workflows/plan.yml:{plan_line} (pull_request) leave "
        "out manifest files infra/manifests/prod.yaml and 1 more: a pull request that changes "
        "only them gets no plan, and its merge is not applied (a scheduled sync, if any, "
        'applies it unreviewed); add "infra/manifests/**" at the end of each of those paths:'
    ]
