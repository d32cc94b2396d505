"""Other people's text in reconciler's output cannot become a GitHub Actions workflow command.

The runner takes any line of a step's stdout or stderr holding `##[NAME` or starting with
`::NAME ...::` as a command (runner_commands.py applies its rules). Manifests arrive by
pull request and Iterable's names are anyone's, so each test prints such text through a
route a workflow meets, running the CLI as a step runs it (GITHUB_ACTIONS=true, stdout
and stderr pipes), and reads its output as the runner would: the only commands are the
annotations reconciler means. Outside Actions, and in a file, the output is as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.integration.conftest import Workspace
from tests.integration.reliability import subprocess_env
from tests.integration.runner_commands import Command, commands

ROOT = Path(__file__).resolve().parents[2]

# A listName in a pull request: `##[add-mask]Apply` would hide every later "Apply" in the
# job's log; a list made by hand in Iterable, whose name import and status print.
FROM_PULL_REQUEST = "VIP ##[add-mask]Apply"
FROM_ITERABLE = "Winback ##[stop-commands]tok"
SANDBOX = """\
apiVersion: reconciler/v1
kind: Destination
metadata: {name: sandbox}
spec: {region: sandbox, projectType: hybrid}
"""


def step(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None, actions: bool = True
) -> subprocess.CompletedProcess[str]:
    """`reconciler ARGS` as a workflow step runs it: stdout and stderr are pipes the runner
    reads (`actions`: GITHUB_ACTIONS=true)."""
    # Nothing of the machine's own RECONCILER_* settings unless the test gives them.
    base = (
        env
        if env is not None
        else {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    )
    merged = {**base, "PYTHONPATH": str(ROOT), "GITHUB_ACTIONS": "true"}
    if not actions:
        del merged["GITHUB_ACTIONS"]
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *args],
        cwd=cwd,
        env=merged,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def forged(result: subprocess.CompletedProcess[str]) -> list[Command]:
    """The commands in a step's output other than reconciler's own annotations (a `::error`
    or `::warning` with its title, on stderr)."""
    return [
        found
        for stream, text in (("stdout", result.stdout), ("stderr", result.stderr))
        for found in commands(text)
        if not (
            stream == "stderr"
            and found.form == "v2"
            and found.name in ("error", "warning")
            and found.line.startswith(f"::{found.name} file=")
            and ",title=reconciler " in found.properties
        )
    ]


def annotations(result: subprocess.CompletedProcess[str]) -> list[Command]:
    return [found for found in commands(result.stderr) if found not in forged(result)]


@pytest.mark.parametrize(
    ("option", "actions"),
    [((), True), (("--annotations", "github"), False)],
    ids=["on-a-runner", "annotations-asked-for"],
)
def test_a_query_error_cannot_stop_the_commands_before_its_own_annotation(
    tmp_path: Path, option: tuple[str, ...], actions: bool
) -> None:
    # DuckDB quotes the value it could not convert, line breaks and all: a query in a pull
    # request printed `::stop-commands::tok` alone on a line of the validate step's log,
    # and the runner ignored every command after it, the query's annotation first.
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "sandbox.yaml").write_text(SANDBOX)
    (tmp_path / "manifests" / "vip.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: vip}\nspec:\n"
        "  destination: sandbox\n  members:\n"
        "    sql: \"SELECT CAST(chr(10) || '::stop-commands::tok' || chr(10) AS INTEGER)"
        ' AS email"\n'
        "    database: ':memory:'\n"
    )

    # Annotations asked for without GITHUB_ACTIONS (a container the variable is not passed
    # to) are printed for a runner all the same, and so is the rest of the output.
    result = step(tmp_path, "validate", "manifests", *option, actions=actions)

    assert result.returncode == 1, result.stderr
    assert forged(result) == []
    # The log still shows the text, with the line's `::` broken as the runner breaks its
    # own markers; the annotation carries it escaped, as GitHub's toolkit escapes data.
    assert "\n::\\stop-commands::tok\n" in result.stderr
    [annotation] = annotations(result)
    assert annotation.properties.startswith("file=manifests/vip.yaml,line=7,col=10,")
    assert "%0A::stop-commands::tok%0A" in annotation.data


def test_validate_quotes_a_pull_requests_keys_without_a_command(tmp_path: Path) -> None:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "sandbox.yaml").write_text(SANDBOX)
    (tmp_path / "manifests" / "vip.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: 'a##[add-mask]Apply'}\n"
        "spec:\n  destination: sandbox\n  'k ##[set-output name=exitcode;]0': 1\n"
        "  members: {inline: [a@example.com]}\n"
    )

    result = step(tmp_path, "validate", "manifests")

    assert result.returncode == 1, result.stderr
    assert forged(result) == []
    assert "unknown key 'k ##[\\set-output name=exitcode;]0' in spec" in result.stderr
    assert "got 'a##[\\add-mask]Apply'" in result.stderr
    assert len(annotations(result)) == 2  # reconciler's own, unbroken


def test_stderr_in_a_file_is_broken_as_on_a_pipe(tmp_path: Path) -> None:
    # `validate manifests 2> validate.log` then `cat validate.log` in a later step: unlike
    # stdout's plan.md, a stderr in a file is still printed to the runner's log.
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "sandbox.yaml").write_text(SANDBOX)
    (tmp_path / "manifests" / "vip.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: vip}\n"
        "spec:\n  destination: sandbox\n  'k ##[add-mask]Apply': 1\n"
        "  members: {inline: [a@example.com]}\n"
    )
    log = tmp_path / "validate.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}

    with log.open("w") as stderr:
        done = subprocess.run(
            [sys.executable, "-m", "reconciler.cli", "validate", "manifests"],
            cwd=tmp_path,
            env={**environment, "PYTHONPATH": str(ROOT), "GITHUB_ACTIONS": "true"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            timeout=120,
        )

    text = log.read_text()
    assert done.returncode == 1, text
    assert "unknown key 'k ##[\\add-mask]Apply' in spec" in text
    assert [c.name for c in commands(text)] == ["error"]  # reconciler's own annotation


def test_plan_apply_status_and_import_print_names_without_commands(
    workspace: Workspace, emulator_server
) -> None:
    hand_made = emulator_server.emulator.project("default").add_list(FROM_ITERABLE)
    emulator_server.emulator.project("default").subscribe_direct(hand_made, email="w@example.com")
    workspace.audience(
        "vip", {"inline": ["a@example.com", "b@example.com"]}, listName=FROM_PULL_REQUEST
    )
    env = subprocess_env(workspace)
    root = workspace.root

    plan = step(root, "plan", "manifests", env=env)
    plan_json = step(root, "plan", "manifests", "--format", "json", env=env)
    applied = step(root, "apply", "manifests", "--yes", env=env)
    status = step(root, "status", "manifests", env=env)
    status_json = step(root, "status", "manifests", "--format", "json", env=env)
    imported = step(root, "import", "manifests", "-d", "prod", "--out", "imported", env=env)

    for result in (plan, plan_json, applied, status, status_json, imported):
        assert result.returncode == 0, result.stderr
        assert forged(result) == [], result.args
    assert '+ create list "VIP ##[\\add-mask]Apply"' in plan.stdout
    assert "VIP ##[\\add-mask]Apply (list " in applied.stdout
    assert "'Winback ##[\\stop-commands]tok' (1 member in " in imported.stdout
    # JSON spells the `[` as an escape: the same value, wherever it is printed.
    assert "##[" not in plan_json.stdout + status_json.stdout
    [planned] = json.loads(plan_json.stdout)["destinations"][0]["lists"]
    assert planned["list_name"] == FROM_PULL_REQUEST


def test_a_plan_in_a_file_and_a_plan_outside_actions_are_as_before(
    workspace: Workspace, emulator_server
) -> None:
    workspace.audience("vip", {"inline": ["a@example.com"]}, listName=FROM_PULL_REQUEST)
    env = subprocess_env(workspace)
    in_actions, outside = workspace.root / "in-actions.md", workspace.root / "outside.md"

    for path, actions in ((in_actions, True), (outside, False)):
        with path.open("w") as stdout:  # `> plan.md`, as plan.yml writes it
            subprocess.run(
                [sys.executable, "-m", "reconciler.cli", "plan", "manifests", "-f", "markdown"],
                cwd=workspace.root,
                env={**env, "PYTHONPATH": str(ROOT)}
                | ({"GITHUB_ACTIONS": "true"} if actions else {}),
                stdout=stdout,
                stderr=subprocess.DEVNULL,
                check=True,
                timeout=120,
            )
    piped_outside = step(workspace.root, "plan", "manifests", env=env, actions=False)

    assert in_actions.read_bytes() == outside.read_bytes()
    assert "VIP ##[add-mask]Apply" in in_actions.read_text()
    assert '+ create list "VIP ##[add-mask]Apply"' in piped_outside.stdout
