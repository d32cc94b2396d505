"""The CLI's one map from an exception to a message and an exit code (reconciler.cli.exits):
what people read on stderr, the JSON object on stdout with --format json, and emails masked
unless the command's parsed --show-members said otherwise."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli import exits
from reconciler.cli.options import OutputFormat
from reconciler.errors import (
    ConfigError,
    ManifestError,
    Problem,
    ReconcilerError,
    StalePlanError,
    UnsafePlanError,
)

EMAIL = "jane.doe@example.com"


@pytest.fixture(autouse=True)
def _fresh_invocation():
    yield
    exits.started()


@pytest.mark.parametrize(
    ("exc", "code", "said"),
    [
        (ReconcilerError("plain"), 1, "error: plain"),
        (ConfigError("no key"), 1, "error: no key"),
        (UnsafePlanError("blocked"), 3, "error: blocked"),
        (StalePlanError("stale plan"), 4, "error: stale plan"),
        (ManifestError([Problem("a.yaml", 3, 5, "bad")]), 1, "a.yaml:3:5: bad\n1 problem found."),
        (KeyboardInterrupt(), 130, "Interrupted."),
        (MemoryError(), 1, "error: out of memory."),
        # A lookup's key may be a member's identifier: masked (shown with --show-members).
        (KeyError("boom"), 1, "internal error: KeyError: 'b***'"),
    ],
)
def test_each_kind_of_error_has_one_exit_code_and_message(exc, code, said, capsys) -> None:
    exits.started()
    assert exits.fail(exc).exit_code == code
    out = capsys.readouterr()
    assert said in out.err
    assert out.out == ""  # no JSON object unless --format json was parsed


def test_a_read_only_command_says_nothing_was_changed_on_ctrl_c(capsys) -> None:
    exits.started(output=OutputFormat.json, read_only="plan")
    assert exits.fail(KeyboardInterrupt()).exit_code == 130
    out = capsys.readouterr()
    assert out.err == "Interrupted: nothing was changed (plan only reads).\n"
    assert json.loads(out.out) == {"error": "interrupted: nothing was changed", "exit_code": 130}


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (StalePlanError(f"stale for {EMAIL}"), "stale for j***@***"),
        (MemoryError(), "out of memory"),
        (KeyError(EMAIL), "internal error: KeyError"),
    ],
)
def test_with_format_json_the_error_is_also_the_one_object_on_stdout(exc, error, capsys) -> None:
    exits.started(output=OutputFormat.json)
    code = exits.fail(exc).exit_code
    payload = json.loads(capsys.readouterr().out)
    assert payload["exit_code"] == code
    assert payload["error"].startswith(error)
    assert EMAIL not in json.dumps(payload)


def test_a_command_that_printed_its_object_gets_no_second_one(capsys) -> None:
    exits.started(output=OutputFormat.json)
    assert exits.fail(UnsafePlanError("blocked"), json_object=False).exit_code == 3
    out = capsys.readouterr()
    assert out.out == "" and "error: blocked" in out.err


def test_emails_are_shown_only_when_the_parsed_option_says_so(capsys) -> None:
    for show, debug in ((False, False), (False, True), (True, False)):
        exits.started(show_members=show, debug=debug)
        exits.fail(ReconcilerError(f"user {EMAIL} refused"))
        try:
            raise KeyError(EMAIL)
        except KeyError as bug:
            exits.fail(bug)
        err = capsys.readouterr().err
        assert (EMAIL in err) == show, (show, debug)
        assert ("Traceback" in err) == debug


def test_an_error_names_its_destination() -> None:
    exc = ConfigError("no API key").in_destination("prod")
    assert exits.safe_message(exc) == "destination 'prod': no API key"


def _raised_in(filename: str) -> BaseException:
    """An exception whose last frame is line 2 of `filename` (a library's module)."""
    namespace: dict[str, object] = {}
    exec(compile("def read():\n    raise ValueError('x')\n", filename, "exec"), namespace)
    try:
        namespace["read"]()  # type: ignore[operator]
    except ValueError as exc:
        return exc
    raise AssertionError("read() returned")


@pytest.mark.parametrize(
    "library",
    [
        "/home/jane/venv/lib/python3.11/site-packages",
        # Debian's and Ubuntu's Python: apt's packages, and pip's outside a venv (`sudo pip`,
        # `--break-system-packages`, a Docker image's system Python) go to dist-packages
        "/usr/lib/python3/dist-packages",
        "/usr/local/lib/python3.11/dist-packages",
        # A virtual environment inside a directory that itself holds such a name: the
        # innermost one is where the library's package starts.
        "/srv/site-packages/jane/venv/lib/python3.11/site-packages",
    ],
)
def test_an_internal_error_names_the_library_module_it_came_from(library: str) -> None:
    """An internal error's place is for a bug report: a library's frame is shown from its
    package on (httpx/_models.py), never with the directories above it. Under Debian's
    dist-packages it was the file's name alone (`_models.py`), which names no library."""
    where = exits.raised_at(_raised_in(f"{library}/httpx/_models.py"))
    assert where == "at httpx/_models.py:2 in read", where


# A process that ends at once (exits.exit_now) with a Ctrl-C arriving as it cleans up: the
# first Ctrl-C let an apply's requests in flight finish, the second came as the members'
# copies were being removed.
_ENDING = """
import os, shutil, signal, sys
from pathlib import Path

signal.signal(signal.SIGINT, signal.default_int_handler)  # as a terminal starts it
from reconciler.apply.lock import project_locks
from reconciler.cli import exits
from reconciler.sources import snapshot

copies, state = Path(sys.argv[1]), Path(sys.argv[2])
for name in ("a", "b"):
    (copies / name).mkdir(parents=True)
    (copies / name / "members.csv").write_text("jane.doe@example.com\\n")
    snapshot._OPEN.add(copies / name)
project_locks(state, {"prod": "project"}).__enter__()
remove = shutil.rmtree

def removing(path, *args, **kwargs):
    os.kill(os.getpid(), signal.SIGINT)
    remove(path, *args, **kwargs)

shutil.rmtree = removing
exits.exit_now(130)
"""


def test_a_ctrl_c_while_the_process_ends_at_once_does_not_stop_its_cleanup(tmp_path) -> None:
    copies, state = tmp_path / "copies", tmp_path / "state"
    ended = subprocess.run(
        [sys.executable, "-c", _ENDING, str(copies), str(state)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ended.returncode == 130, ended.stderr
    assert "Traceback" not in ended.stderr
    assert list(copies.iterdir()) == []  # every copy of the members removed
    assert list((state / "locks").iterdir()) == []  # and the lock


def test_an_internal_error_in_the_standard_library_or_a_script_names_only_its_file() -> None:
    # Python's own modules and scripts: the directories above them say where Python or the
    # user's home is, nothing a bug report needs.
    where = exits.raised_at(_raised_in("/home/jane/.pyenv/versions/3.11.7/lib/python3.11/x.py"))
    assert where == "at x.py:2 in read", where


def test_an_internal_error_in_reconciler_names_its_module_from_the_package_on() -> None:
    package = Path(exits.__file__).resolve().parents[1]
    where = exits.raised_at(_raised_in(str(package / "sources" / "csv_file.py")))
    assert where == "at reconciler/sources/csv_file.py:2 in read", where
