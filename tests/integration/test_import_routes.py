"""`reconciler import` of a large list by the read routes a plan takes (issue 18, point 5),
under the emulator's `field` profile at a time scale: read speeds, Iterable's limits
(windows divided by the same scale, which the client is told) and injected failures. Each
import completes exactly, or names the list it could not read, exits 1 and writes nothing
for it. Every test runs the real CLI against the emulator over loopback HTTP.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections import Counter

import pytest

from reconciler.emulator import Faults, Limits
from reconciler.members.identity import looks_like_email
from tests.integration.conftest import API_KEY_VAR, FIELD_TIME_SCALE, Workspace

SCALE = FIELD_TIME_SCALE
# Large enough that the route model (state/routes.py) reads it with an export job: at field
# speeds (unscaled) about 1 min 05 s, against 1 min 02 s by one user export and 10 min by
# getUsers. Tests that take another route read a smaller list, to stay fast.
BIG = 120_000
SMALLER = 20_000
GET_USERS = "/api/lists/getUsers"
EXPORT = "/api/export/data.json"


@pytest.fixture
def field_import(tmp_path, monkeypatch, fast_client, make_emulator_server):
    """A hybrid project under Faults.field(SCALE) and Iterable's limits at that scale,
    with list "big" (`big` members, every tenth with a userId) and `small` lists of 30,
    none in a manifest yet. `faults` are set on top of the profile's."""

    def make(small: int = 1, big: int = BIG, scale: float = SCALE, **faults):
        chosen = Faults.field(scale)
        # Files of about 200 KB: a job of several, fetched in parallel.
        chosen.export_file_bytes = 200_000
        for name, value in faults.items():
            setattr(chosen, name, value)
        server = make_emulator_server(
            project_type="hybrid", limits=Limits.iterable().scaled(scale), faults=chosen
        )
        monkeypatch.setenv(API_KEY_VAR, "test-key")
        # The client paces and models routes as against Iterable, at the same scale.
        monkeypatch.setenv("RECONCILER_TIME_SCALE", str(scale))
        monkeypatch.delenv("RECONCILER_LIST_READS_PER_MINUTE")
        monkeypatch.setenv("RECONCILER_READ_LAG", "0")
        monkeypatch.setenv("RECONCILER_PROGRESS_INTERVAL", "0.5")
        monkeypatch.chdir(tmp_path)
        ws = Workspace(tmp_path, server.base_url, "hybrid")
        ws.destination()
        proj = server.emulator.project("default")
        big_id = proj.add_list("big")
        for i in range(big):
            user_id = f"U-{i}" if i % 10 == 0 else None
            proj.subscribe_direct(big_id, email=f"big-{i}@example.com", user_id=user_id)
        for n in range(small):
            small_id = proj.add_list(f"small-{n}")
            for i in range(30):
                proj.subscribe_direct(small_id, email=f"small-{n}-{i}@example.com")
        return ws, server

    return make


def run_import(cli, ws: Workspace):
    out = ws.root / "imported"
    return out, cli("import", ws.manifests, "--destination", "prod", "--out", out)


def list_id(server, name: str) -> int:
    (found,) = [x.id for x in server.emulator.project("default").lists.values() if x.name == name]
    return found


def expected_rows(server, name: str) -> list[list[str]]:
    """The list's members as the CSV holds them: the userId where the profile has one."""
    members = server.emulator.project("default").members(list_id(server, name), True)
    rows = [[m, ""] if looks_like_email(m) else ["", m] for m in members]
    return [["email", "userId"], *sorted(rows)]


def written_rows(path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        header, *rows = csv.reader(handle)
    return [header, *sorted(rows)]


def calls(server) -> Counter[str]:
    return Counter(r.path for r in server.emulator.request_log)


def job_calls(server) -> tuple[int, int]:
    """export/start calls, and export files fetched."""
    log = server.emulator.request_log
    return (
        sum(r.path == "/api/export/start" for r in log),
        sum(r.path.startswith("/export-files/") for r in log),
    )


def assert_exact(server, out, names) -> None:
    for name in names:
        assert written_rows(out / f"{name}.csv") == expected_rows(server, name), name
        assert (out / f"{name}.yaml").is_file()


def assert_nothing_written_for(out, name: str) -> None:
    assert not (out / f"{name}.csv").exists() and not (out / f"{name}.yaml").exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no partial files


def test_a_large_list_is_imported_by_an_export_job_exactly_and_says_so(field_import, cli):
    ws, server = field_import()

    out, result = run_import(cli, ws)

    assert result.exit_code == 0, result.output
    assert_exact(server, out, ["big", "small-0"])
    starts, files = job_calls(server)
    assert starts == 1 and files >= 2  # one job, its files fetched
    assert calls(server)[GET_USERS] == 0 and calls(server)[EXPORT] == 0
    # The route, its calls and its time, as a plan says its read; chosen from the sizes.
    (said,) = [line for line in result.stdout.splitlines() if line.startswith("Destination")]
    assert said.startswith(
        "Destination 'prod': members of 2 lists read with 1 asynchronous export job in "
    )
    assert "1 POST /api/export/start" in said and "2 GET /api/lists/{id}/size" in said
    assert "chosen as faster: about " in said
    # Progress with its count, rate and elapsed time, on stderr only.
    finished = "reading members of 2 lists (one asynchronous export job): finished, "
    (line,) = [x for x in result.stderr.splitlines() if x.startswith(finished)]
    assert f"{BIG + 30:,} users, " in line and "/s, " in line and line.endswith(" s")
    assert "reading" not in result.stdout


def test_an_export_job_that_restarts_is_read_to_its_end_exactly(field_import, cli, monkeypatch):
    # The emulator builds a job's export before answering its start, and the job's
    # timeline runs from the start: a list small enough to build at once, produced slowly
    # enough (about a second) for the restart to be seen, read by the job as a large list is.
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "asyncExport")
    ws, server = field_import(
        big=SMALLER // 10,
        export_file_bytes=10_000,
        export_job_members_per_second=2_000,
        export_jobs_to_restart=1,
        # It starts over: files fetched before the restart are not the export's.
        export_restart_resets_files=True,
    )

    out, result = run_import(cli, ws)

    assert result.exit_code == 0, result.output
    assert "export job 1: enqueued again (Iterable restarted it" in result.stderr
    assert job_calls(server)[0] == 1 and calls(server)[GET_USERS] == 0
    assert_exact(server, out, ["big", "small-0"])


def test_an_export_job_truncated_is_not_taken_and_getusers_reads_exactly(field_import, cli):
    ws, server = field_import(export_max_bytes=100_000)

    out, result = run_import(cli, ws)

    assert result.exit_code == 0, result.output
    assert "the user export could not be read (export job" in result.stderr
    assert "was truncated (exportTruncated" in result.stderr
    assert calls(server)[GET_USERS] == 2  # the lists read again, one by one
    assert_exact(server, out, ["big", "small-0"])
    (said,) = [line for line in result.stdout.splitlines() if line.startswith("Destination")]
    assert "read with 2 getUsers calls in parallel" in said
    assert "the user export could not be read (export job" in said


def test_a_getusers_stream_that_dies_midway_after_a_failed_job_is_retried_exactly(
    field_import, cli
):
    ws, server = field_import(export_jobs_to_fail=1, streams_to_cut=1)

    out, result = run_import(cli, ws)

    assert result.exit_code == 0, result.output
    assert "the user export could not be read (export job" in result.stderr
    assert "ended failed" in result.stderr
    assert server.emulator.faults.streams_to_cut == 0  # a body was cut off midway...
    assert calls(server)[GET_USERS] == 2 + 1  # ...and read again
    assert_exact(server, out, ["big", "small-0"])


def test_a_user_export_cut_after_its_duration_is_replaced_by_getusers_exactly(
    field_import, cli, monkeypatch
):
    monkeypatch.setenv("RECONCILER_BULK_READ_RETRIES", "1")
    # More lists than a minute's getUsers budget: sizes are not asked, one user export is
    # chosen, and Iterable closes its connection long before its 50,000 rows are sent.
    ws, server = field_import(small=5, big=SMALLER, export_stream_seconds=0.015)

    out, result = run_import(cli, ws)

    assert result.exit_code == 0, result.output
    assert calls(server)[EXPORT] == 2 and calls(server)["/api/export/start"] == 0
    assert "the user export could not be read (GET /api/export/data.json: gave up" in (
        result.stderr
    )
    assert calls(server)[GET_USERS] == 6
    assert_exact(server, out, ["big", *(f"small-{n}" for n in range(5))])


def test_a_list_cut_off_every_time_is_named_and_nothing_is_written_for_it(
    field_import, cli, monkeypatch
):
    monkeypatch.setenv("RECONCILER_BULK_READ_RETRIES", "1")
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    # Every getUsers connection closes after 50 ms: the small list is sent whole by then,
    # the big one never.
    ws, server = field_import(big=SMALLER, get_users_stream_seconds=0.05)
    big_id = list_id(server, "big")
    # An earlier import's files, re-imported with --force: the unread list's stay whole.
    out = ws.root / "imported"
    out.mkdir()
    earlier = {name: out / name for name in ("big.csv", "big.yaml")}
    for path in earlier.values():
        path.write_text(f"earlier {path.name}\n")

    result = cli("import", ws.manifests, "--destination", "prod", "--out", out, "--force")

    assert result.exit_code == 1, result.output
    assert f"skipped list {big_id} 'big': its members could not be read (GET {GET_USERS}: " in (
        result.stderr
    )
    assert "nothing was written for it: run import again" in result.stderr
    assert {name: path.read_text() for name, path in earlier.items()} == {
        name: f"earlier {name}\n" for name in earlier
    }
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no partial files
    assert_exact(server, out, ["small-0"])
    assert "members of 2 lists read with 2 getUsers calls in parallel in " in result.stdout


def test_a_list_that_keeps_answering_500_is_named_and_the_large_list_imported(
    field_import, cli, monkeypatch
):
    monkeypatch.setenv("RECONCILER_BULK_READ_RETRIES", "1")
    monkeypatch.setenv("RECONCILER_MAX_RETRIES", "1")
    ws, server = field_import(big=SMALLER)
    small_id = list_id(server, "small-0")
    server.emulator.faults.update({"failing_list_ids": [small_id]})

    out, result = run_import(cli, ws)

    assert result.exit_code == 1, result.output
    assert f"skipped list {small_id} 'small-0': its members could not be read" in result.stderr
    assert "last failure: HTTP 500" in result.stderr
    assert_nothing_written_for(out, "small-0")
    assert_exact(server, out, ["big"])
    # Its size could not be read either: the route is chosen by counting calls.
    assert "members of 2 lists read with 2 getUsers calls in parallel in " in result.stdout


def test_progress_and_limit_waits_go_to_stderr_and_stdout_keeps_to_the_result(field_import):
    """Through a pipe, as in CI: stdout holds the read and the files written, nothing else."""
    ws, server = field_import(big=SMALLER, get_users_first_byte_seconds=0.3)
    # One getUsers a window: the second list waits for the first's answer, and says so.
    env = {
        **os.environ,
        "RECONCILER_MEMBER_READS": "getUsers",
        "RECONCILER_LIST_READS_PER_MINUTE": "1",
    }
    out = ws.root / "imported"
    command = [sys.executable, "-c", "from reconciler.cli import main; main()", "import"]
    command += [str(ws.manifests), "--destination", "prod", "--out", str(out)]

    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    assert run.returncode == 0, run.stderr
    assert_exact(server, out, ["big", "small-0"])
    stdout = run.stdout.splitlines()
    assert stdout[0].startswith(
        "Destination 'prod': members of 2 lists read with 2 getUsers calls in parallel in "
    )
    assert all(line.startswith(str(out)) for line in stdout[1:-1]) and len(stdout) == 4
    assert stdout[-1].startswith("Imported 2 lists from")
    assert "waiting for one of the 1 list member reads (getUsers) in flight" in run.stderr
    assert f"reading list 'big': finished, {SMALLER:,} members, " in run.stderr
    assert "\x1b" not in run.stdout


def size_calls(server) -> int:
    return sum(
        r.path.startswith("/api/lists/") and r.path.endswith("/size")
        for r in server.emulator.request_log
    )


def test_three_small_lists_are_read_without_asking_their_sizes(field_import, cli):
    """Sizes and getUsers share 5 starts a minute: asking 3 sizes first would hold the
    third read back a minute. The reads start first; all end within that minute, so no
    size is asked. At a tenth of the usual time scale: the minute is 3 s, not 0.3 s, which
    three 30-member reads can outlast on a loaded machine (their sizes are then asked)."""
    ws, server = field_import(small=3, big=0, scale=SCALE / 10)
    out = ws.root / "imported"
    names = ["small-0", "small-1", "small-2"]

    result = cli(
        "import",
        ws.manifests,
        "--destination",
        "prod",
        "--out",
        out,
        *[arg for name in names for arg in ("--list", name)],
    )

    assert result.exit_code == 0, result.output
    assert_exact(server, out, names)
    assert size_calls(server) == 0
    assert calls(server)[GET_USERS] == 3
    (said,) = [line for line in result.stdout.splitlines() if line.startswith("Destination")]
    assert said.startswith("Destination 'prod': members of 3 lists read with 3 getUsers calls")
    assert "no list's size asked" in said


def test_a_large_list_among_three_is_sized_once_its_read_outlasts_the_budget_minute(
    field_import, cli
):
    """The reads start first; the large list's is still running after the budget's
    minute, so its size (only its) is asked, and the model moves it to an export job.
    The small lists keep their getUsers reads. At a tenth of the usual time scale: the
    budget minute is 3 s, not 0.3 s, which a 30-member read outlasted on a loaded machine
    (its size was then asked too)."""
    ws, server = field_import(small=2, scale=SCALE / 10)
    out = ws.root / "imported"

    result = cli("import", ws.manifests, "--destination", "prod", "--out", out)

    assert result.exit_code == 0, result.output
    assert_exact(server, out, ["big", "small-0", "small-1"])
    assert size_calls(server) == 1  # the big list's
    (size,) = [r for r in server.emulator.request_log if r.path.endswith("/size")]
    assert size.path == f"/api/lists/{list_id(server, 'big')}/size"
    assert calls(server)[GET_USERS] == 3  # the big one's abandoned for the job
    starts, _files = job_calls(server)
    assert starts == 1
    (said,) = [line for line in result.stdout.splitlines() if line.startswith("Destination")]
    assert said.startswith(
        "Destination 'prod': members of 3 lists read with 1 asynchronous export job in "
    )
    assert "1 of 3 lists still reading by getUsers after a minute were sized: " in said
    assert "chosen as faster: about " in said
