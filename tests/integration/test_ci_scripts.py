"""CI as a fresh machine of either kind runs it: `.ci/run` (the README's test command, with
pinned versions) and `.ci/postgres`, and ci.yml's PostgreSQL service (issue 20, points 1
and 20). The scripts run for real with bash; only what they call that would change the
machine (python3's pip, apt-get, sudo) is replaced by recording stand-ins."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from packaging.requirements import Requirement

from tests.integration.workflow_runner import load_workflow
from tests.postgres import URL_VAR

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534  # the unprivileged user of Debian-like systems


def stand_in(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def recorders(directory: Path, names: list[str], log: Path) -> None:
    """Stand-ins that record that they were called, and fail."""
    for name in names:
        stand_in(directory, name, f'echo "{name} $*" >> "{log}"; exit 97')


# -- ci.yml ----------------------------------------------------------------------------------


def test_ci_runs_once_per_change_with_a_postgres_service_the_tests_use():
    wf = load_workflow(ROOT / ".github" / "workflows" / "ci.yml")
    # Pull requests, and pushes to the default branch only: a push to a pull request's
    # branch would otherwise run the same tests twice.
    assert wf["on"]["push"] == {"branches": ["main"]}
    assert "pull_request" in wf["on"]
    job = wf["jobs"]["test"]
    service = job["services"]["postgres"]
    url = urlsplit(job["env"][URL_VAR])
    assert service["image"].startswith("postgres:")
    assert service["env"]["POSTGRES_USER"] == url.username
    assert service["env"]["POSTGRES_PASSWORD"] == url.password
    assert service["env"]["POSTGRES_DB"] == url.path.lstrip("/")
    assert service["ports"] == [f"{url.port}:5432"]
    assert url.hostname == "127.0.0.1"
    assert "--health-cmd" in service["options"]  # steps start once the server answers


# -- .ci/run ---------------------------------------------------------------------------------


def fake_checkout(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A copy of .ci/run beside a recording .ci/postgres, and a recording python3."""
    repo, tools, log = tmp_path / "repo", tmp_path / "bin", tmp_path / "calls.log"
    (repo / ".ci").mkdir(parents=True)
    tools.mkdir()
    shutil.copy(ROOT / ".ci" / "run", repo / ".ci" / "run")
    shutil.copy(ROOT / "constraints.txt", repo / "constraints.txt")
    (repo / ".ci" / "postgres").write_text(
        f'echo "postgres" >> "{log}"\necho postgresql://started-here/db\n'
    )
    stand_in(
        tools,
        "python3",
        f'echo "python3 $* | url=${URL_VAR} | constraint=$PIP_CONSTRAINT" >> "{log}"',
    )
    return repo, tools, log


def run_ci(repo: Path, tools: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(repo / ".ci" / "run")],
        env={"PATH": f"{tools}:/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_ci_run_uses_the_server_it_is_given_and_installs_pinned_versions(tmp_path):
    repo, tools, log = fake_checkout(tmp_path)
    given = "postgresql://reconciler:pw@127.0.0.1:5432/reconciler_test"

    done = run_ci(repo, tools, **{URL_VAR: given})

    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert "postgres" not in calls  # the service container is used, nothing started
    constraint = f"constraint={repo}/constraints.txt"
    assert calls == [
        f"python3 -m pip install -q -e .[test] | url={given} | {constraint}",
        f"python3 -m ruff check . | url={given} | {constraint}",
        f"python3 -m mypy | url={given} | {constraint}",
        f"python3 -m pytest | url={given} | {constraint}",
    ]


def test_ci_run_runs_exactly_the_readmes_test_command():
    """The README's test command and .ci/run's last line are one command (with pip quiet)."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("# 2. install what the tests need", 1)[1].split("```", 1)[0]
    readme_command = block.strip().splitlines()[-1].strip()
    ci_command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert "python3 -m mypy" in readme_command
    assert ci_command == readme_command.replace("pip install -e", "pip install -q -e")


def test_ci_run_starts_a_server_when_none_is_given(tmp_path):
    repo, tools, log = fake_checkout(tmp_path)

    done = run_ci(repo, tools)

    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "postgres"
    assert calls[-1].startswith("python3 -m pytest | url=postgresql://started-here/db |")


# -- .ci/postgres ----------------------------------------------------------------------------


def unprivileged() -> dict:
    """subprocess arguments that run a command as an ordinary user, as GitHub's runners do."""
    return {"user": NOBODY, "group": NOBODY, "extra_groups": []} if os.geteuid() == 0 else {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the unprivileged user can reach (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="reconciler-ci-test-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_postgres_script(directory: Path, port: int) -> tuple[subprocess.CompletedProcess, Path]:
    tools, log = directory / "bin", directory / "calls.log"
    tools.mkdir()
    tools.chmod(0o755)
    log.touch()
    log.chmod(0o666)
    # Nothing that needs root may be reached: these record the attempt and fail.
    recorders(tools, ["sudo", "apt-get", "runuser", "install"], log)
    env = {
        "PATH": f"{tools}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(directory),
        "RECONCILER_TEST_POSTGRES_PORT": str(port),
        "RECONCILER_TEST_POSTGRES_DATA": str(directory / "data"),
    }
    # A copy, run from the shared directory: the checkout may sit where only root can read.
    script = directory / "postgres"
    shutil.copy(ROOT / ".ci" / "postgres", script)
    script.chmod(0o755)
    run = {
        "env": env,
        "cwd": directory,
        "capture_output": True,
        "text": True,
        "timeout": 60,
        "check": False,
        **unprivileged(),
    }
    which = subprocess.run(["sh", "-c", "command -v sudo"], **run)
    assert which.stdout.strip() == str(tools / "sudo")  # the stand-ins are what it finds
    return subprocess.run(["bash", str(script)], **run), log


def test_postgres_script_reuses_a_running_server_without_root(shared_dir):
    url = os.environ.get(URL_VAR)
    if not url or shutil.which("psql") is None:
        pytest.skip(f"needs a running test server ({URL_VAR}) and psql")
    parts = urlsplit(url)
    if (parts.username, parts.password, parts.path) != (
        "reconciler",
        "reconciler-test",
        "/reconciler_test",
    ):
        pytest.skip("the test server is not one .ci/postgres would make")

    done, log = run_postgres_script(shared_dir, parts.port or 5432)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(f"@127.0.0.1:{parts.port}/reconciler_test")
    assert log.read_text() == ""  # no sudo, apt-get, runuser or chown


def test_postgres_script_without_root_or_sudo_says_what_to_do(shared_dir):
    done, log = run_postgres_script(shared_dir, free_port())

    assert done.returncode != 0
    assert "needs root or passwordless sudo" in done.stderr
    assert URL_VAR in done.stderr
    # It asked sudo (the stand-in, which refuses) and stopped before anything needing root.
    assert log.read_text().splitlines() == ["sudo -n true"]


# -- constraints.txt -------------------------------------------------------------------------


def test_constraints_pin_every_dependency_within_pyproject_ranges():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[_normal(name)] = version
    wanted = [
        *project["project"]["dependencies"],
        *project["project"]["optional-dependencies"]["test"],
        *project["project"]["optional-dependencies"]["postgres"],
        *project["build-system"]["requires"],
    ]
    for text in wanted:
        requirement = Requirement(text)
        name = _normal(requirement.name)
        assert name in pins, f"{name} is not pinned: run python3 .ci/pin"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside {text!r}: run python3 .ci/pin"
        )


def test_every_install_in_the_workflows_and_ci_is_pinned():
    installs = []
    for path in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        for job in load_workflow(path)["jobs"].values():
            for step in job["steps"]:
                installs += [
                    line for line in step.get("run", "").splitlines() if "pip install" in line
                ]
    assert installs
    for line in installs:
        assert line.strip().startswith('PIP_CONSTRAINT="$PWD/constraints.txt" pip install'), line
    assert 'export PIP_CONSTRAINT="$PWD/constraints.txt"' in (ROOT / ".ci" / "run").read_text()


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")
