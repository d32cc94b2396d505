"""Native Windows (not WSL), shown on Linux: the real `python -m reconciler` in a Python
whose POSIX-only modules and functions are removed as Windows' lacks them, and whose
os.kill is Windows' (the `windows` fixture, tests/windows.py)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from reconciler.apply import lock
from reconciler.apply.journal import read_journal
from reconciler.iterable.client import project_identity
from tests.conftest import EMULATOR_API_KEY
from tests.integration.conftest import Workspace
from tests.integration.reliability import (
    build_scenario,
    journals,
    signal_after_writes,
    subprocess_env,
)
from tests.windows import WindowsPython

EXAMPLE = Path(__file__).resolve().parents[2] / "manifests"
SIGBREAK = 21  # as tests/windows.py numbers it


def _last_pid() -> int:
    """The pid of a process that has ended (and been waited for)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_simulation_lacks_what_windows_lacks(windows: WindowsPython, tmp_path):
    # Without these, every test here would pass on Linux's own functions.
    probe = (
        "import os, signal\n"
        "try:\n    import fcntl\nexcept ImportError:\n    print('no fcntl')\n"
        "print(hasattr(os, 'getuid'), hasattr(os, 'fchmod'), hasattr(signal, 'SIGHUP'))\n"
        f"try:\n    os.kill({_last_pid()}, 0)\nexcept OSError as e:\n    print(e.winerror)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=windows.env(), capture_output=True, text=True
    )
    assert done.stdout.split("\n")[:3] == ["no fcntl", "False False False", "87"], done.stderr


def test_the_quickstart_validates_plans_and_applies_on_windows(windows: WindowsPython, tmp_path):
    # Every command ended in 'internal error: AttributeError: module os has no attribute
    # geteuid' (the check of the temporary directory's owner), validate included.
    shutil.copytree(EXAMPLE, tmp_path / "manifests")
    state = tmp_path / "state"
    done = windows.run("validate", "manifests", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = windows.run("plan", "manifests", "--state-dir", state, "--out", "plan.gz", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = windows.run("apply", "--plan", "plan.gz", "--yes", "--state-dir", state, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Apply complete: 2 lists created" in done.stdout
    done = windows.run("status", "manifests", "--state-dir", state, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "churn-risk" in done.stdout
    done = windows.run(
        "plan", "manifests", "--detailed-exitcode", "--state-dir", state, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No changes" in done.stdout


def _lock_left_by(pid: int, workspace: Workspace, state: Path) -> Path:
    """A lock as an apply of process `pid` on this machine left it, without flock (Windows
    has none)."""
    path = lock.lock_path(state, project_identity(workspace.base_url, EMULATOR_API_KEY))
    path.parent.mkdir(parents=True)
    holder = {"pid": pid, "host": socket.gethostname(), "since": "earlier", "flock": False}
    path.write_text(json.dumps(holder), encoding="utf-8")
    return path


def test_a_lock_left_by_an_apply_that_ended_is_taken_over_on_windows(
    windows: WindowsPython, workspace: Workspace, tmp_path
):
    # os.kill(pid, 0) is Ctrl-C on Windows; for a pid no process has, WinError 87, which
    # the lock said as 'cannot take the apply lock ... The parameter is incorrect; the
    # state directory must be writable': every apply after a crash, until removed by hand.
    workspace.audience("vip", {"inline": ["a@example.com"]})
    state = tmp_path / "state"
    path = _lock_left_by(_last_pid(), workspace, state)
    done = windows.run("apply", "manifests", "--yes", "--state-dir", state, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Apply complete" in done.stdout
    assert not path.exists()


def test_a_running_apply_s_lock_refuses_without_interrupting_on_windows(
    windows: WindowsPython, workspace: Workspace, tmp_path
):
    # The Ctrl-C that os.kill(pid, 0) sends on Windows reached the apply itself, which
    # stopped as interrupted by the user (and every other program in that console).
    workspace.audience("vip", {"inline": ["a@example.com"]})
    state = tmp_path / "state"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock_left_by(other.pid, workspace, state)
        done = windows.run("apply", "manifests", "--yes", "--state-dir", state, cwd=tmp_path)
    finally:
        other.kill()
        other.wait()
    assert "another apply is running" in done.stderr, done.stderr
    assert "nterrupt" not in done.stderr
    assert done.returncode != 0


def test_an_apply_killed_on_this_machine_is_noted_by_the_next_on_windows(
    windows: WindowsPython, workspace: Workspace, tmp_path
):
    # Whether the killed run's process still runs was asked with os.kill(pid, 0): WinError
    # 87 for its ended pid, an internal error before anything was sent.
    workspace.audience("vip", {"inline": ["a@example.com"]})
    state = tmp_path / "state"
    runs = state / "runs"
    runs.mkdir(parents=True)
    started = {"at": "2026-12-06T12:33:31.648+00:00", "event": "run_started"}
    holder = {"pid": _last_pid(), "host": socket.gethostname(), "lists": [], "deletions": []}
    journal = runs / "apply-20261206T123331.647000Z-1234.jsonl"
    journal.write_text(json.dumps({**started, **holder}) + "\n", encoding="utf-8")
    done = windows.run("apply", "manifests", "--yes", "--state-dir", state, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "stopped without finishing: 0 requests done" in done.stderr


def test_a_killed_run_s_temporary_copies_are_swept_and_a_running_one_s_kept_on_windows(
    windows: WindowsPython, tmp_path
):
    # The sweep compared each directory's owner with os.getuid(), which Windows lacks, and
    # asked whether its process ran with os.kill(pid, 0).
    shutil.copytree(EXAMPLE, tmp_path / "manifests")
    temp = tmp_path / "temp"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        ended = _last_pid()
        left = {pid: temp / f"reconciler-source-{pid}-abc123" for pid in (ended, other.pid)}
        for directory in left.values():
            directory.mkdir(parents=True)
            (directory / "members.csv").write_text("email\na@example.com\n", encoding="utf-8")
            for path in (directory / "members.csv", directory):
                os.utime(path, (1_700_000_000, 1_700_000_000))  # idle for long
        done = windows.run(
            "plan", "manifests", "--state-dir", tmp_path / "state", cwd=tmp_path, TMPDIR=str(temp)
        )
        assert done.returncode == 0, done.stderr
        assert not left[ended].exists()
        assert left[other.pid].exists()
    finally:
        other.kill()
        other.wait()


def test_an_api_key_file_is_read_on_windows(windows: WindowsPython, workspace: Workspace, tmp_path):
    # Opened with os.O_NONBLOCK (so a FIFO cannot hang it), which Windows lacks: every
    # destination with apiKey: {file: ...} was 'internal error: AttributeError'. PowerShell's
    # `"key" > file` writes UTF-16, whose bytes a text-mode read could change: read as bytes.
    (tmp_path / "key.txt").write_bytes(f"{EMULATOR_API_KEY}\r\n".encode("utf-16"))
    workspace.destination(apiKey={"file": "../key.txt"})
    workspace.audience("vip", {"inline": ["a@example.com"]})
    done = windows.run("plan", "manifests", "--state-dir", tmp_path / "state", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "1 member to add" in done.stdout
    assert [p for p in windows.text_mode_opens() if Path(p).name == "key.txt"] == []


def test_an_apply_writes_over_its_last_summary_json_on_windows(
    windows: WindowsPython, workspace: Workspace, tmp_path
):
    # The record kept the mode of the one it replaces with os.chmod(fd, ...), and Windows'
    # os.chmod takes no descriptor: the second apply ended, its work done, in 'internal
    # error: TypeError' and no record.
    workspace.audience("vip", {"inline": ["a@example.com"]})
    state, record = tmp_path / "state", tmp_path / "summary.json"
    for added in ([1], []):  # the second has nothing to do
        done = windows.run(
            "apply", "manifests", "--yes", "--state-dir", state, "--summary-json", record,
            cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        lists = json.loads(record.read_text(encoding="utf-8"))["lists"]
        assert [made["added"] for made in lists] == added


def test_import_writes_its_member_csvs_on_windows(
    windows: WindowsPython, workspace: Workspace, emulator_server, tmp_path
):
    # Each member CSV was made owner-only with os.fchmod, which Windows' Python lacks
    # before 3.13: 'internal error: AttributeError' once the lists had been read.
    project = emulator_server.emulator.project("default")
    list_id = project.add_list("handmade")
    for email in ("a@example.com", "b@example.com"):
        project.subscribe_direct(list_id, email=email)
    done = windows.run(
        "import", "-d", "prod", "manifests", "--out", "manifests/imported", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    csv = (tmp_path / "manifests" / "imported" / "handmade.csv").read_text(encoding="utf-8")
    assert sorted(csv.splitlines()[1:]) == ["a@example.com,", "b@example.com,"]
    # A mode keeps no one out on Windows: the CSVs are as private as their folder.
    assert "owner-only" not in done.stdout
    assert "on Windows whoever can read manifests/imported can read them" in done.stdout


def test_the_files_apply_and_import_write_are_opened_as_bytes_on_windows(
    windows: WindowsPython, workspace: Workspace, emulator_server, tmp_path
):
    # os.open without O_BINARY is a text-mode file on Windows: each line a TextIOWrapper
    # ended with "\r\n" got a second "\r" ("\r\r\n"), so the job summary of a Windows
    # runner ($GITHUB_STEP_SUMMARY) had a blank line after every row, which ends a markdown
    # table, the journal a blank line between events, and import's CSVs CRLF line ends.
    workspace.audience("vip", {"inline": ["a@example.com"]})
    emulator_server.emulator.project("default").add_list("handmade")
    state = tmp_path / "state"
    for _ in range(2):
        done = windows.run(
            "apply", "manifests", "--yes", "--state-dir", state,
            "--summary-json", "summary.json", "--summary-file", "summary.md", cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    done = windows.run("import", "-d", "prod", "manifests", "--out", "imported", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "imported" / "handmade.csv").exists()
    assert windows.text_mode_opens() == []


def test_a_temporary_directory_with_a_quote_in_its_path_plans_with_duckdb(
    windows: WindowsPython, workspace: Workspace, tmp_path
):
    # Windows puts the temporary directory in the user's profile, C:\Users\O'Brien\...,
    # and DuckDB was told its spill directory as '...O'Brien...': 'internal error: Parser
    # Error' for every plan the DuckDB engine made (large audiences).
    workspace.csv("vip.csv", "email", ["a@example.com", "b@example.com"])
    workspace.audience("vip", {"csv": "vip.csv", "email": "email"})
    temp = tmp_path / "O'Brien" / "AppData" / "Local" / "Temp"
    temp.mkdir(parents=True)
    done = windows.run(
        "apply", "manifests", "--yes", "--state-dir", tmp_path / "state", cwd=tmp_path,
        TMPDIR=str(temp), RECONCILER_ENGINE="duckdb",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2 members added" in done.stdout


def test_ctrl_break_stops_an_apply_as_sigterm_does_on_windows(
    windows: WindowsPython, workspace: Workspace, emulator_server, tmp_path
):
    # Ctrl-Break (SIGBREAK: also a closed console window, and what a Windows runner sends
    # 7.5 s after its Ctrl-C when a job is cancelled) kept its default, which ends the
    # process on the spot: no run record, no journal end, members' copies left behind.
    build_scenario(workspace, emulator_server, adds=1500, creates=1500)
    emulator_server.emulator.faults.latency_seconds = 0.05
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {
        **subprocess_env(workspace, RECONCILER_BATCH_SIZE="50", TMPDIR=str(temp)),
        "PYTHONPATH": windows.env()["PYTHONPATH"],
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "manifests", "--yes"],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    code, _, err = signal_after_writes(emulator_server, proc, 8, SIGBREAK)
    assert code == 130, err
    assert "Interrupted by Ctrl-Break: finishing the requests in flight" in err
    [journal] = journals(tmp_path / ".reconciler")
    assert read_journal(journal).outcome == "interrupted"
    assert list(temp.iterdir()) == []


def test_emulator_serve_saves_its_state_on_ctrl_break_on_windows(windows: WindowsPython, tmp_path):
    # Ctrl-Break (or the console window closed) ended serve at once: its state unsaved.
    state = tmp_path / "state.json"
    serve = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "emulator", "serve", "--port", "0",
         "--state", str(state), "--project-type", "email"],
        env={**windows.env(), "RECONCILER_EMULATOR_API_KEY": EMULATOR_API_KEY},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert serve.stdout is not None
        line = serve.stdout.readline()
        base_url = line.split(" listening on ")[1].split()[0]
        with httpx.Client(base_url=base_url, headers={"Api-Key": EMULATOR_API_KEY}) as client:
            assert client.post("/api/lists", json={"name": "kept"}).status_code == 200
        serve.send_signal(SIGBREAK)
        assert serve.wait(timeout=10) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
    assert "kept" in state.read_text(encoding="utf-8")
