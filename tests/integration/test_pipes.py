"""The CLI as scripts run it: stdout a pipe whose reader left (`| head -1`), a full disk
(`> /dev/full`) or closed (`>&-`), stdin that is not a terminal, and the like. Each runs
the real CLI in a subprocess against the emulator over loopback HTTP: what matters is what
the process does with its file descriptors."""

from __future__ import annotations

import json
import os
import pty
import re
import resource
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Workspace
from tests.integration.reliability import lists_by_name, signal_masks, subprocess_env

MEMBERS = [f"m{i}@example.com" for i in range(3)]


@pytest.fixture
def one_list(workspace: Workspace) -> Workspace:
    workspace.audience("pipes", {"inline": MEMBERS})
    return workspace


def run(
    workspace: Workspace, *args: str, stdout: int | None, stdin: int | None = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    """`python -m reconciler.cli ARGS` with stdout on the descriptor given (None: closed)."""
    close_stdout = stdout is None
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *args],
        cwd=workspace.root,
        env=subprocess_env(workspace),
        stdin=stdin,
        stdout=subprocess.DEVNULL if close_stdout else stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        # `>&-`: the process starts with descriptor 1 closed.
        preexec_fn=(lambda: os.close(1)) if close_stdout else None,
    )


def broken_pipe() -> int:
    """A pipe whose reader has already left, as `| head -1` leaves it after its line."""
    read, write = os.pipe()
    os.close(read)
    return write


def _said_plainly(result: subprocess.CompletedProcess[str], said: str) -> None:
    assert said in result.stderr, result.stderr
    for noise in ("Traceback", "internal error", "Exception ignored", "This is a bug"):
        assert noise not in result.stderr, result.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("output", ["text", "json"])
def test_a_plan_that_cannot_be_written_to_stdout_is_an_error_that_says_so(
    one_list: Workspace, output: str
) -> None:
    """A full disk was "internal error ... a bug in reconciler" (with --format json, a raw
    traceback from writing the error object to the same full stdout); a closed pipe exited
    1 in silence; a closed stdout exited 0 with nothing written, even with
    --detailed-exitcode, which passed for a plan with no changes."""
    args = ("plan", "manifests", "--format", output, "--detailed-exitcode")
    with open("/dev/full", "w") as full:
        result = run(one_list, *args, stdout=full.fileno())
    assert result.returncode == 1, result.stderr
    _said_plainly(result, "could not write the plan to standard output (No space left")

    pipe = broken_pipe()
    try:
        result = run(one_list, *args, stdout=pipe)
    finally:
        os.close(pipe)
    assert result.returncode == 1, result.stderr
    _said_plainly(result, "could not write the plan to standard output (the pipe was closed")

    result = run(one_list, *args, stdout=None)
    assert result.returncode == 1, result.stderr
    _said_plainly(result, "standard output is closed, so the plan was not written")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize(
    ("args", "what"),
    [
        (("status", "manifests"), "the status"),
        (("status", "manifests", "--format", "json"), "the status"),
        (("validate", "manifests"), "the summary"),
        (("schema",), "the schema"),
        (("version",), "the version"),
        # These were "internal error: OSError ... This is a bug in reconciler".
        (("--version",), "the version"),
        (("--help",), "the help"),
        (("plan", "--help"), "the help"),
        (("github", "comment", "--help"), "the help"),
    ],
)
def test_every_command_says_when_stdout_is_full(
    one_list: Workspace, args: tuple[str, ...], what: str
) -> None:
    with open("/dev/full", "w") as full:
        result = run(one_list, *args, stdout=full.fileno())
    assert result.returncode == 1, result.stderr
    _said_plainly(result, f"could not write {what} to standard output (No space left")


@pytest.mark.parametrize(
    ("args", "what"),
    [(("--version",), "the version"), (("--help",), "the help"), (("apply", "--help"), "the help")],
)
def test_help_and_version_to_a_closed_stdout_say_so(
    one_list: Workspace, args: tuple[str, ...], what: str
) -> None:
    """They exited 0 having written nothing, as if a script had read them."""
    result = run(one_list, *args, stdout=None)
    assert result.returncode == 1, result.stderr
    _said_plainly(result, f"standard output is closed, so {what} was not written")


def test_apply_whose_plan_cannot_be_shown_applies_nothing_and_says_so(
    one_list: Workspace, emulator_server
) -> None:
    pipe = broken_pipe()
    try:
        result = run(one_list, "apply", "manifests", "--yes", stdout=pipe)
    finally:
        os.close(pipe)
    assert result.returncode == 1, result.stderr
    _said_plainly(result, "could not write the plan to standard output")
    assert "nothing was applied" in result.stderr
    assert lists_by_name(emulator_server) == {}


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_apply_whose_report_cannot_be_written_says_the_apply_is_over(
    one_list: Workspace, emulator_server, tmp_path: Path
) -> None:
    """With --format json nothing is written before applying: the report is what fails,
    after the work is done. That was "internal error ... a bug" and a traceback."""
    record = tmp_path / "run.json"
    with open("/dev/full", "w") as full:
        result = run(
            one_list,
            *("apply", "manifests", "--yes", "--format", "json", "--summary-json", str(record)),
            stdout=full.fileno(),
        )
    assert result.returncode == 1, result.stderr
    _said_plainly(result, "could not write the report to standard output (No space left")
    assert "The apply itself is over (outcome: success)" in result.stderr
    assert (
        sorted(
            emulator_server.emulator.project("default").members(
                lists_by_name(emulator_server)["pipes"][0]
            )
        )
        == MEMBERS
    )
    assert json.loads(record.read_text())["outcome"] == "success"


def test_apply_without_yes_and_with_stdin_closed_refuses_to_prompt(
    one_list: Workspace, emulator_server
) -> None:
    """A supervisor that starts jobs with stdin closed (`<&-`) got "internal error:
    AttributeError" instead of the message a CI job with stdin at EOF gets."""
    read, write = os.pipe()
    os.close(write)  # stdin at EOF, as </dev/null
    try:
        at_eof = run(one_list, "apply", "manifests", stdout=subprocess.DEVNULL, stdin=read)
    finally:
        os.close(read)
    assert at_eof.returncode == 1, at_eof.stderr
    _said_plainly(at_eof, "stdin is not a terminal")

    closed = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "apply", "manifests"],
        cwd=one_list.root,
        env=subprocess_env(one_list),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.close(0),
    )
    assert closed.returncode == 1, closed.stderr
    _said_plainly(closed, "stdin is not a terminal")
    assert lists_by_name(emulator_server) == {}


def test_progress_is_plain_lines_wherever_bars_cannot_be_redrawn(workspace: Workspace) -> None:
    """FORCE_COLOR (many CI jobs set it for coloured logs) made rich draw live bars into the
    log, every redraw a carriage return and escape codes; TERM=dumb on a real terminal (an
    Emacs shell) showed bars only once they ended, so a long read said nothing; a terminal
    of 30 columns cut every name away and each redraw wrapped, leaving lines behind. All
    get the plain lines a log gets. The status table in a file keeps each row on one line."""
    name = "an-audience-with-a-name-long-enough-to-wrap-a-hundred-column-table"
    workspace.audience(name, {"inline": MEMBERS})
    env = subprocess_env(workspace, FORCE_COLOR="1")
    forced = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "status", "manifests"],
        cwd=workspace.root,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert forced.returncode == 0, forced.stderr
    assert f"reading audience '{name}': started\n" in forced.stderr
    assert "\r" not in forced.stderr and "\x1b[?25l" not in forced.stderr  # no live display
    assert any(name in line and "(not created)" in line for line in forced.stdout.splitlines())

    # On a terminal that can redraw them, bars (the control case); on one that cannot
    # (TERM=dumb) or is too narrow for them (a split pane), the lines.
    assert "\x1b[?25l" in _progress_on_a_terminal(workspace, TERM="xterm", COLUMNS="120")
    for env in ({"TERM": "dumb", "COLUMNS": "120"}, {"TERM": "xterm", "COLUMNS": "30"}):
        said = _progress_on_a_terminal(workspace, **env)
        assert f"reading audience '{name}': started" in said, env
        assert "\x1b[?25l" not in said, env


@pytest.mark.parametrize("size", ["0", "00"])
def test_a_terminal_size_of_zero_is_no_size(one_list: Workspace, size: str) -> None:
    """COLUMNS=0 (a container's terminal before it is sized, an exported shell variable)
    made rich draw every line 0 columns wide: an error, a warning, each progress line, the
    usage error and --help itself printed nothing, so a failed plan exited 1 in silence;
    LINES=0 showed a terminal's bars as a line of "..." for the whole read. A size of 0 is
    now no size, as rich takes a terminal's own 0: the terminal's, or 80 by 25."""
    broken = one_list.write("broken.yaml", "apiVersion: reconciler/v1\nkind: Nonsense\n")
    env = subprocess_env(one_list, COLUMNS=size)
    failed = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "plan", "manifests"],
        cwd=one_list.root,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 1
    assert "broken.yaml:2:7: kind: unknown kind 'Nonsense'" in failed.stderr, failed.stderr
    assert "2 problems found." in failed.stderr, failed.stderr
    for args in (["--help"], ["plan", "--bogus"]):
        said = subprocess.run(
            [sys.executable, "-m", "reconciler.cli", *args],
            cwd=one_list.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "Usage:" in said.stdout + said.stderr, (args, said)
    broken.unlink()

    drawn = _progress_on_a_terminal(one_list, TERM="xterm", COLUMNS="120", LINES=size)
    assert "\x1b[?25l" in drawn  # bars, as on any terminal that can redraw them
    lines = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn).replace("\r", "\n").split("\n")
    assert "..." not in {line.strip() for line in lines}, drawn


@pytest.mark.parametrize("width", ["0", "wide", "-3"])
def test_typers_terminal_width_that_is_no_width_is_ignored(one_list: Workspace, width: str) -> None:
    """typer reads TERMINAL_WIDTH with int() as it first formats help: 'wide' failed every
    --help and usage error as "internal error: ValueError ... This is a bug in reconciler",
    and 0 printed an empty help."""
    for args, shown in ((["plan", "--help"], "--detailed-exitcode"), (["plan", "-x"], "-x")):
        said = subprocess.run(
            [sys.executable, "-m", "reconciler.cli", *args],
            cwd=one_list.root,
            env=subprocess_env(one_list, TERMINAL_WIDTH=width),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "internal error" not in said.stderr, (args, said.stderr)
        assert "Usage: " in said.stdout + said.stderr, (args, said)
        assert shown in said.stdout + said.stderr, (args, said)


def _progress_on_a_terminal(workspace: Workspace, **env: str) -> str:
    """What `plan` writes to stderr when stderr is a terminal (a pseudo-terminal here)."""
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli", "plan", "manifests"],
            cwd=workspace.root,
            env=subprocess_env(workspace, **env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=terminal,
        )
        os.close(terminal)  # read until the child, its last holder, closes it
        said = _drain(controller)
        proc.wait(timeout=120)
    finally:
        os.close(controller)
    assert proc.returncode == 0, said
    return said


def _drain(controller: int, answer: tuple[bytes, bytes] | None = None) -> str:
    """All a pseudo-terminal's program wrote until it closed the terminal (or 30 s passed:
    a program waiting for an answer nobody was asked for); `answer` is a prompt to wait
    for and what to type there."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not select.select([controller], [], [], 1)[0]:
            continue
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the terminal's last holder closed it
            break
        if not chunk:
            break
        chunks.append(chunk)
        if answer is not None and answer[0] in b"".join(chunks):
            os.write(controller, answer[1])
            answer = None
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("stderr", ["closed pipe", "full disk"])
def test_apply_goes_on_when_its_messages_cannot_be_written(
    workspace: Workspace, emulator_server, tmp_path: Path, stderr: str
) -> None:
    """`apply --yes 2>&1 | tee -a log` whose tee is killed, `2>>log` on a full disk: the first
    progress line that could not be written ended the apply where it stood (between its
    adds and its removes, had it been that line), exit 1 without a word or a run record.
    Messages are for people; the work and its exit code do not depend on them."""
    proj = emulator_server.emulator.project("default")
    list_id = proj.add_list("pipes")
    for email in ("m0@example.com", "gone@example.com"):
        proj.subscribe_direct(list_id, email=email)
    workspace.audience("pipes", {"inline": MEMBERS}, policy={"maxRemovalPercent": 100})
    record = tmp_path / "run.json"
    descriptor = broken_pipe() if stderr == "closed pipe" else os.open("/dev/full", os.O_WRONLY)
    try:
        result = subprocess.run(
            [
                *(sys.executable, "-m", "reconciler.cli", "apply", "manifests", "--yes"),
                *("--format", "json", "--summary-json", str(record)),
            ],
            cwd=workspace.root,
            env=subprocess_env(workspace),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=descriptor,
            text=True,
            timeout=120,
        )
    finally:
        os.close(descriptor)
    assert result.returncode == 0, result.stdout
    assert sorted(proj.members(list_id)) == MEMBERS
    report = json.loads(result.stdout)
    assert report["destinations"][0]["lists"][0]["removed"] == 1
    assert json.loads(record.read_text())["outcome"] == "success"


def test_apply_json_at_a_terminal_shows_the_plan_before_asking(
    one_list: Workspace, emulator_server
) -> None:
    """`apply --format json` keeps stdout to its one JSON object, so it printed no plan, and
    at a terminal it asked "Apply these changes to Iterable?" about a plan nobody was shown.
    Answered no, stdout had no JSON object at all."""
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli", "apply", "manifests", "--format", "json"],
            cwd=one_list.root,
            env=subprocess_env(one_list),
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=terminal,
        )
        os.close(terminal)
        said = _drain(controller, answer=(b"[y/N]", b"n\n"))
        out, _ = proc.communicate(timeout=120)
    finally:
        os.close(controller)
    before_question = said.split("Apply these changes to Iterable?")[0]
    assert 'create list "pipes"' in before_question and "add 3 members" in before_question
    assert proc.returncode == 1, said
    assert json.loads(out) == {"error": "apply cancelled; nothing was changed", "exit_code": 1}
    assert lists_by_name(emulator_server) == {}


def test_apply_asks_where_it_is_seen_or_refuses_to_ask(
    one_list: Workspace, emulator_server, tmp_path: Path
) -> None:
    """`apply 2>apply.log` at a terminal put its question in the log and waited, unseen,
    for an answer. It asks on stdout then; with stdout redirected too there is nowhere to
    ask, and it refuses as it does without a terminal."""
    log = tmp_path / "apply.log"
    controller, terminal = pty.openpty()
    try:
        with open(log, "w") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "reconciler.cli", "apply", "manifests"],
                cwd=one_list.root,
                env=subprocess_env(one_list),
                stdin=terminal,
                stdout=terminal,
                stderr=stderr,
            )
        os.close(terminal)
        seen = _drain(controller, answer=(b"[y/N]", b"n\n"))
        proc.kill()  # if it still waits for an answer to a question nobody saw
        proc.wait(timeout=120)
    finally:
        os.close(controller)
    assert "Apply these changes to Iterable? [y/N]" in seen, seen
    assert proc.returncode == 1
    assert "Apply cancelled; nothing was changed." in log.read_text()

    controller, terminal = pty.openpty()
    try:
        with open(log, "w") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "reconciler.cli", "apply", "manifests"],
                cwd=one_list.root,
                env=subprocess_env(one_list),
                stdin=terminal,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        os.close(terminal)
        _drain(controller)
        proc.kill()  # if it still waits for an answer
        proc.wait(timeout=120)
    finally:
        os.close(controller)
    assert proc.returncode == 1, log.read_text()
    assert "apply needs confirmation but its question would go to a file" in log.read_text()
    assert lists_by_name(emulator_server) == {}


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_summary_file_on_a_full_disk_is_an_error_that_says_so(
    one_list: Workspace, emulator_server
) -> None:
    """--summary-file "$GITHUB_STEP_SUMMARY" on a runner whose disk is full was "internal
    error ... a bug in reconciler" from plan and from apply (and apply's report of it tried
    the same file again)."""
    plan = run(
        one_list,
        *("plan", "manifests", "--format", "json", "--summary-file", "/dev/full"),
        stdout=subprocess.PIPE,
    )
    assert plan.returncode == 1, plan.stderr
    _said_plainly(plan, "could not add to --summary-file /dev/full: No space left on device")
    assert json.loads(plan.stdout)["summary"]["lists_to_create"] == 1  # still one object

    apply = run(
        one_list,
        *("apply", "manifests", "--yes", "--summary-file", "/dev/full"),
        stdout=subprocess.DEVNULL,
    )
    assert apply.returncode == 1, apply.stderr
    _said_plainly(apply, "could not add to --summary-file /dev/full: No space left on device")
    assert "nothing was applied" in apply.stderr
    assert lists_by_name(emulator_server) == {}


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_with_format_json_a_summary_file_that_cannot_be_written_is_said_in_the_json_object(
    one_list: Workspace, emulator_server
) -> None:
    """`--format json` promises one object on stdout whatever the outcome, with `error` and
    `exit_code` on an error. A --summary-file on a full disk is no failure of stdout, yet
    apply left stdout empty (jq read nothing) and plan's object did not say why it exits 1."""
    apply = run(
        one_list,
        *("apply", "manifests", "--yes", "--format", "json", "--summary-file", "/dev/full"),
        stdout=subprocess.PIPE,
    )
    assert apply.returncode == 1, apply.stderr
    assert apply.stdout.strip(), apply.stderr
    error = json.loads(apply.stdout)
    assert error["exit_code"] == 1
    assert error["error"].startswith("could not add to --summary-file /dev/full")
    assert "nothing was applied" in error["error"]
    assert lists_by_name(emulator_server) == {}

    plan = run(
        one_list,
        *("plan", "manifests", "--format", "json", "--summary-file", "/dev/full"),
        stdout=subprocess.PIPE,
    )
    assert plan.returncode == 1, plan.stderr
    planned = json.loads(plan.stdout)
    assert planned["summary"]["lists_to_create"] == 1  # the plan, as it is
    assert planned["exit_code"] == 1
    assert planned["error"].startswith("could not add to --summary-file /dev/full")


def test_apply_json_whose_report_cannot_be_added_to_the_summary_file_says_so_in_its_object(
    one_list: Workspace, emulator_server, tmp_path: Path
) -> None:
    """A --summary-file that takes apply's plan but then fills (a runner's disk filling
    during the run) made apply exit 1 after its work with a report saying "ok": true and
    nothing else: the reason went to stderr alone. The file here may grow by a little more
    than the plan's markdown (a file size limit, which Python meets as EFBIG, as it meets
    ENOSPC on a full disk); the report's object now carries `error` and `exit_code`."""
    plan_markdown = run(one_list, "plan", "manifests", "-f", "markdown", stdout=subprocess.PIPE)
    limit = 1 << 20  # far beyond every other file the apply writes
    summary = tmp_path / "summary.md"
    summary.write_bytes(b"x" * (limit - len(plan_markdown.stdout.encode()) - 100))
    args = ("apply", "manifests", "--yes", "-f", "json", "--summary-file", str(summary))
    result = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *args],
        cwd=one_list.root,
        env=subprocess_env(one_list),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["destinations"][0]["lists"][0]["added"] == len(MEMBERS)  # applied
    assert report["exit_code"] == 1
    assert report["error"] == (
        f"could not add to --summary-file {summary}: File too large; the apply itself is "
        "over (outcome: success)"
    )
    assert f"error: {report['error']}" in result.stderr
    assert summary.stat().st_size == limit  # what fitted of the report, after the plan


@pytest.mark.parametrize("answer", ["Ctrl-D", "Ctrl-C"])
def test_apply_json_left_at_its_question_still_says_so_in_one_object(
    one_list: Workspace, emulator_server, tmp_path: Path, answer: str
) -> None:
    """Ctrl-D (end of input) or Ctrl-C at "Apply these changes to Iterable?" left stdout
    empty under --format json, said only click's "Aborted." and exited 1 (Ctrl-C too,
    which is 130 everywhere else), and the --summary-json record said "internal error:
    Abort". Ctrl-D is now an answer of no, Ctrl-C an interrupt, each with its object."""
    record = tmp_path / "run.json"
    args = ("apply", "manifests", "--format", "json", "--summary-json", str(record))
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli", *args],
            cwd=one_list.root,
            env=subprocess_env(one_list),
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=terminal,
        )
        os.close(terminal)
        said = b""
        while b"[y/N]" not in said:
            chunk = os.read(controller, 65536)
            assert chunk, said
            said += chunk
        if answer == "Ctrl-D":
            os.write(controller, b"\x04")
        else:
            proc.send_signal(signal.SIGINT)  # what the terminal's Ctrl-C sends
        said += _drain(controller).encode()
        try:
            out, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            masks = signal_masks(proc.pid)
            proc.kill()
            proc.wait()
            text = said.decode("utf-8", "replace")
            raise AssertionError(f"apply still running after {answer}: {text}\n{masks}") from None
    finally:
        os.close(controller)
    text = said.decode("utf-8", "replace")
    assert "Aborted" not in text
    assert lists_by_name(emulator_server) == {}
    run = json.loads(record.read_text())
    assert "internal error" not in (run["message"] or "")
    if answer == "Ctrl-D":
        assert proc.returncode == 1, text
        assert json.loads(out) == {"error": "apply cancelled; nothing was changed", "exit_code": 1}
        assert "Apply cancelled; nothing was changed." in text
        assert run["outcome"] == "error"
    else:
        assert proc.returncode == 130, text
        assert json.loads(out)["exit_code"] == 130
        assert run["outcome"] == "interrupted"


def _apply_answered_late(
    workspace: Workspace, meanwhile, *extra: str
) -> tuple[subprocess.Popen[bytes], str]:
    """`apply` at a terminal, its question answered yes after `meanwhile()` ran: what
    another writer (or a person's unsubscribe) did while nobody answered. The wait itself is
    RECONCILER_CONFIRM_WAIT=0's (any wait is over it), not minutes slept here."""
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli", "apply", "manifests", *extra],
            cwd=workspace.root,
            env=subprocess_env(workspace, RECONCILER_CONFIRM_WAIT="0"),
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
        )
        os.close(terminal)
        said = b""
        while b"[y/N]" not in said:
            chunk = os.read(controller, 65536)
            assert chunk, said
            said += chunk
        meanwhile()
        os.write(controller, b"y\n")
        text = said.decode("utf-8", "replace") + _drain(controller)
        proc.wait(timeout=120)
    finally:
        os.close(controller)
    return proc, text


def _list_with_m0(workspace: Workspace, emulator_server) -> tuple[object, int]:
    proj = emulator_server.emulator.project("default")
    list_id = proj.add_list("pipes")
    proj.subscribe_direct(list_id, email=MEMBERS[0])
    for email in MEMBERS[1:]:
        proj.add_user(email=email)
    workspace.audience("pipes", {"inline": MEMBERS})
    return proj, list_id


def test_an_apply_confirmed_late_holds_back_who_opted_out_while_it_waited(
    workspace: Workspace, emulator_server
) -> None:
    """apply asked, and an hour later applied the plan it had shown: a member of its adds
    who unsubscribed from the channel meanwhile (the list unchanged) was subscribed again.
    A confirmation that waited over RECONCILER_CONFIRM_WAIT reads Iterable again, as
    `apply --plan` does, and holds them back."""
    proj, list_id = _list_with_m0(workspace, emulator_server)
    control = f"{emulator_server.base_url}/_emulator/self-unsubscribe"

    def meanwhile() -> None:
        httpx.post(control, json={"email": MEMBERS[1], "channel": True}).raise_for_status()

    proc, said = _apply_answered_late(workspace, meanwhile)
    assert sorted(proj.members(list_id)) == [MEMBERS[0], MEMBERS[2]]
    assert proc.returncode == 0, said
    assert "add 2 members" in said.split("[y/N]")[0]
    assert "The confirmation waited" in said and "reading Iterable again" in said, said
    assert "1 of them opted out after the plan was made" in said, said


def test_an_apply_confirmed_late_after_another_writer_changed_its_list_is_refused(
    workspace: Workspace, emulator_server, tmp_path: Path
) -> None:
    """apply applied the plan it had shown however long its question waited, over what
    another writer (a scheduled apply, another team) did to the list meanwhile. After
    RECONCILER_CONFIRM_WAIT it reads again and refuses the plan as stale (exit 4), as
    `apply --plan` refuses one, with nothing written."""
    proj, list_id = _list_with_m0(workspace, emulator_server)
    record = tmp_path / "run.json"

    def meanwhile() -> None:
        proj.subscribe_direct(list_id, email="other@example.com")

    proc, said = _apply_answered_late(workspace, meanwhile, "--summary-json", str(record))
    assert sorted(proj.members(list_id)) == [MEMBERS[0], "other@example.com"]
    assert proc.returncode == 4, said
    assert "stale plan: list 'pipes'" in said and "while the confirmation waited" in said, said
    assert "nothing was applied: run apply again" in said, said
    assert json.loads(record.read_text())["outcome"] == "stale"
