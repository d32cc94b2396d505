"""`reconciler emulator serve`, run as a real process and through typer's runner."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from reconciler.cli.emulator import emulator_app
from reconciler.emulator import Emulator

SECRET = "cli-secret-key-123"
LAUNCH = "from reconciler.cli.emulator import emulator_app; emulator_app()"
LISTENING = re.compile(
    r"^Iterable emulator listening on (http://127\.0\.0\.1:\d+) \(project '(\w+)', type (\w+)\)$"
)


def start_serve(*args: str, env_key: str | None = SECRET) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "RECONCILER_EMULATOR_API_KEY"}
    if env_key is not None:
        env["RECONCILER_EMULATOR_API_KEY"] = env_key
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def stop_serve(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    process.send_signal(signal.SIGINT)
    try:
        out, err = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return process.returncode, out, err


@pytest.mark.parametrize("key_source", ["env", "flag"])
def test_serve_answers_then_exits_cleanly_on_ctrl_c(tmp_path: Path, key_source: str) -> None:
    state = tmp_path / "state.json"
    if key_source == "env":
        process = start_serve("--state", str(state), "--project-type", "email")
    else:
        process = start_serve(
            "--state", str(state), "--project-type", "email", "--api-key", SECRET, env_key=None
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().rstrip("\n")
        match = LISTENING.match(line)
        assert match, line
        base_url, project, project_type = match.groups()
        assert (project, project_type) == ("default", "email")
        with httpx.Client(base_url=base_url, headers={"Api-Key": SECRET}) as client:
            assert client.post("/api/lists", json={"name": "from cli"}).status_code == 200
            assert client.get("/api/lists").json()["lists"][0]["name"] == "from cli"
    finally:
        returncode, out, err = stop_serve(process)
    assert returncode == 0, err
    assert SECRET not in line + out + err
    assert state.exists() and SECRET not in state.read_text()


def test_serve_reuses_a_state_file_without_a_key(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    first = start_serve("--state", str(state), "--unlimited")
    assert first.stdout is not None
    first.stdout.readline()
    assert stop_serve(first)[0] == 0
    second = start_serve("--state", str(state), env_key=None)
    assert second.stdout is not None
    line = second.stdout.readline()
    base_url = LISTENING.match(line.rstrip("\n")).group(1)  # type: ignore[union-attr]
    try:
        with httpx.Client(base_url=base_url, headers={"Api-Key": SECRET}) as client:
            assert client.get("/api/lists").status_code == 200
    finally:
        assert stop_serve(second)[0] == 0


def run_serve(*args: str, env_key: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `serve` expecting it to refuse; the timeout turns a wrong start into a failure."""
    env = {k: v for k, v in os.environ.items() if k != "RECONCILER_EMULATOR_API_KEY"}
    if env_key is not None:
        env["RECONCILER_EMULATOR_API_KEY"] = env_key
    return subprocess.run(
        [sys.executable, "-c", LAUNCH, "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=20,
        check=False,
    )


def test_serve_needs_a_key_for_a_new_project() -> None:
    result = run_serve()
    assert result.returncode == 2
    assert "RECONCILER_EMULATOR_API_KEY" in result.stderr


@pytest.mark.parametrize("key", [" ", " dev-key", "dev key", "dev-key\t"])
def test_serve_refuses_a_key_reconciler_could_never_send(key: str) -> None:
    """RECONCILER_EMULATOR_API_KEY=" dev-key" made a project answering to " dev-key", while
    reconciler sends a key stripped of spaces (and refuses one with spaces inside): every
    plan against it failed with "rejected the API key", the key looking the same on both
    sides."""
    result = run_serve(env_key=key)
    assert result.returncode == 2, result.stdout
    assert "spaces" in result.stderr
    assert "dev-key" not in result.stdout + result.stderr


def test_serve_refuses_to_change_a_project_type(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    Emulator(state_path=state).add_project("default", "hybrid", SECRET)
    result = run_serve("--state", str(state), "--project-type", "userId")
    assert result.returncode == 2
    assert "never changes" in result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_every_option_has_help() -> None:
    result = CliRunner().invoke(emulator_app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--port", "--host", "--state", "--project-type", "--api-key", "--unlimited"):
        assert option in result.output
    assert "RECONCILER_EMULATOR_API_KEY" in result.output


def test_serve_with_the_field_profile_at_a_time_scale() -> None:
    # A scale that leaves the new list seconds of refusing writes: at 600 (50 ms) a loaded
    # machine took longer than that between the create and the subscribe.
    process = start_serve("--unlimited", "--profile", "field", "--time-scale", "6")
    try:
        assert process.stdout is not None
        line = process.stdout.readline().rstrip("\n")
        assert line.endswith(", profile field at time scale 6)"), line
        base_url = re.match(r"^Iterable emulator listening on (\S+) ", line).group(1)  # type: ignore[union-attr]
        with httpx.Client(base_url=base_url, headers={"Api-Key": SECRET}) as client:
            faults = client.get("/_emulator/faults").json()
            assert faults["absent_channel_unsubscribe_is_true"] is True
            assert faults["read_lag_seconds"] == pytest.approx(10)
            assert faults["fresh_list_seconds"] == pytest.approx(5)
            list_id = client.post("/api/lists", json={"name": "new"}).json()["listId"]
            # At once, a new list refuses writes and the list index does not show it yet.
            body = {"listId": list_id, "subscribers": [{"email": "a@example.com"}]}
            assert client.post("/api/lists/subscribe", json=body).status_code == 400
            assert client.get("/api/lists").json()["lists"] == []
    finally:
        assert stop_serve(process)[0] == 0


def test_a_time_scale_needs_a_profile() -> None:
    result = run_serve("--time-scale", "10", env_key=SECRET)
    assert result.returncode == 2
    assert "only with --profile" in result.stderr


def test_lost_replies_need_a_profile_and_the_refusal_names_that_option() -> None:
    """It named --time-scale, an option the command line did not give."""
    result = run_serve("--lost-replies-every", "3", env_key=SECRET)
    assert result.returncode == 2
    assert "Invalid value for --lost-replies-every: only with --profile" in " ".join(
        result.stderr.replace("│", " ").split()
    )


def test_serve_sets_single_fault_knobs() -> None:
    process = start_serve(
        "--unlimited",
        "--profile",
        "field",
        "--time-scale",
        "100",
        "--fault",
        "failing_list_ids=[7, 8]",
        "--fault",
        "get_users_stream_seconds=0.5",
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().rstrip("\n")
        base_url = re.match(r"^Iterable emulator listening on (\S+) ", line).group(1)  # type: ignore[union-attr]
        with httpx.Client(base_url=base_url) as client:
            faults = client.get("/_emulator/faults").json()
        assert faults["failing_list_ids"] == [7, 8]
        assert faults["get_users_stream_seconds"] == 0.5
        # The profile's own figures stay, scaled.
        assert faults["get_users_members_per_second"] == pytest.approx(200 * 100)
    finally:
        assert stop_serve(process)[0] == 0


@pytest.mark.parametrize("setting", ["nonsense=1", "streams_to_cut", "streams_to_cut=x"])
def test_serve_refuses_a_bad_fault_setting(setting: str) -> None:
    result = run_serve("--fault", setting, env_key=SECRET)
    assert result.returncode == 2
    assert "--fault" in result.stderr


def test_unknown_fault_settings_are_named_in_the_singular_or_plural() -> None:
    """One unknown name was "unknown fault setting(s): nonsense"."""
    one = run_serve("--fault", "nonsense=1", env_key=SECRET)
    assert "unknown fault setting: nonsense" in " ".join(one.stderr.split())
    two = run_serve("--fault", "zed=1", "--fault", "nonsense=1", env_key=SECRET)
    assert "unknown fault settings: nonsense, zed" in " ".join(two.stderr.split())


def test_a_time_scale_scales_the_rate_limits_too() -> None:
    process = start_serve("--profile", "field", "--time-scale", "60")
    try:
        assert process.stdout is not None
        line = process.stdout.readline().rstrip("\n")
        base_url = re.match(r"^Iterable emulator listening on (\S+) ", line).group(1)  # type: ignore[union-attr]
        with httpx.Client(base_url=base_url) as client:
            limits = client.get("/_emulator/limits").json()
        assert limits["list_reads"] == [5, pytest.approx(1.0)]
        assert limits["export_concurrent_jobs"] == 4
    finally:
        assert stop_serve(process)[0] == 0


_NO_IDENTIFIER = {
    "version": 1,
    "nextListId": 1,
    "projects": [
        {
            "name": "p",
            "projectType": "hybrid",
            "apiKeySha256": "0" * 64,
            "lists": [],
            "users": [{"signupDate": 0, "profileUpdatedAt": 0}],
        }
    ],
}


@pytest.mark.parametrize(
    ("content", "named"),
    [
        # The wrong shape: TypeError.
        ('{"version": 1, "nextListId": 1, "projects": [7]}', "projects[0] should be an object"),
        # Too deep for Python's JSON parser: RecursionError.
        ("[" * 100_000 + "]" * 100_000, ""),
        # Found by fuzzing: the right shape, a user with neither identifier (an assertion).
        (json.dumps(_NO_IDENTIFIER), "projects[0].users[0] has neither email nor userId"),
    ],
    ids=["wrong-shape", "too-deep", "no-identifier"],
)
def test_serve_refuses_a_damaged_state_file_as_a_usage_error(
    tmp_path: Path, content: str, named: str
) -> None:
    state = tmp_path / "state.json"
    state.write_text(content)
    result = run_serve("--state", str(state), env_key=SECRET)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "cannot read the state file" in result.stderr
    assert named in " ".join(result.stderr.replace("│", " ").split())
