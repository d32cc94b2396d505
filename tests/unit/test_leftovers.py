"""What a killed run left in the temporary directory is removed by the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from reconciler import leftovers
from reconciler.errors import ConfigError
from reconciler.leftovers import IDLE_SECONDS, private_directory, sweep


def _dead_pid() -> int:
    """The pid of a process that has ended (reaped, so not even a zombie)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _left(parent: Path, kind: str, pid: int, idle: float) -> Path:
    directory = parent / f"reconciler-{kind}-{pid}-abc123"
    directory.mkdir()
    (directory / "members.csv").write_text("email\nsomeone@example.com\n")
    then = time.time() - idle
    for path in (directory / "members.csv", directory):
        os.utime(path, (then, then))
    return directory


def test_a_killed_runs_copies_are_removed_and_nothing_else(tmp_path: Path) -> None:
    dead = _dead_pid()
    gone = [_left(tmp_path, kind, dead, IDLE_SECONDS + 60) for kind in ("source", "workspace")]
    recent = _left(tmp_path, "query", dead, 60)  # maybe a run in another PID namespace
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as alive:
        try:
            running = _left(tmp_path, "source", alive.pid, IDLE_SECONDS + 60)
            other = tmp_path / f"reconciler-traits-{dead}-abc123"  # not a name of ours
            other.mkdir()

            assert sorted(sweep(tmp_path)) == sorted(gone)
        finally:
            alive.kill()
    assert not any(path.exists() for path in gone)
    assert recent.exists() and running.exists() and other.exists()


def test_a_directory_written_in_lately_is_kept_however_old_the_directory(tmp_path: Path) -> None:
    # A run in another PID namespace (its pid looks gone) writing into a file it made long
    # ago changes the file's time, not the directory's.
    kept = _left(tmp_path, "workspace", _dead_pid(), IDLE_SECONDS + 60)
    (kept / "members.csv").write_text("email\nlater@example.com\n")
    assert sweep(tmp_path) == []
    assert kept.exists()


def test_another_users_directory_is_never_removed(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a directory to another user needs root")
    theirs = _left(tmp_path, "source", _dead_pid(), IDLE_SECONDS + 60)
    os.chown(theirs, 4242, 4242)
    assert sweep(tmp_path) == []
    assert theirs.exists()


def test_a_file_or_a_link_with_such_a_name_is_left_alone(tmp_path: Path) -> None:
    dead = _dead_pid()
    target = _left(tmp_path, "query", dead, IDLE_SECONDS + 60)
    link = tmp_path / f"reconciler-source-{dead}-link12"
    link.symlink_to(target)
    plain = tmp_path / f"reconciler-rows-{dead}-file12"
    plain.write_text("kept\n")
    then = time.time() - IDLE_SECONDS - 60
    for path in (link, plain):
        os.utime(path, (then, then), follow_symlinks=False)
    assert sweep(tmp_path) == [target]
    assert link.is_symlink() and plain.read_text() == "kept\n"


def test_a_killed_runs_shared_query_rows_are_removed(tmp_path: Path) -> None:
    """The rows of a warehouse query several audiences share (sources/shared_runs.py,
    pickled members' identities) go in a `reconciler-rows-...` directory, which the sweep
    did not know: a plan killed while reading left them in the temporary directory for
    good. Every kind a directory is made for is swept, and a kind the sweep does not know
    cannot be made."""
    dead = _dead_pid()
    gone = _left(tmp_path, "rows", dead, IDLE_SECONDS + 60)
    assert sweep(tmp_path) == [gone] and not gone.exists()
    with pytest.raises(ValueError, match="traits"):
        private_directory("traits", tmp_path)


def test_a_killed_runs_copies_under_the_pid_this_run_has_are_removed(tmp_path, monkeypatch):
    """In a container whose command runs as pid 1, every run has the pid the killed one
    had: its copies, named for this pid, were taken for this run's and kept for good (on a
    volume kept across runs, a workspace of gigabytes per killed run). Only the directories
    this process made are its own."""
    monkeypatch.setattr(leftovers, "_swept", set())
    monkeypatch.setattr(leftovers, "_made", set(), raising=False)
    earlier = _left(tmp_path, "workspace", os.getpid(), IDLE_SECONDS + 60)
    own = private_directory("source", tmp_path)  # sweeps `earlier` as it is made
    assert not earlier.exists()
    then = time.time() - IDLE_SECONDS - 60
    os.utime(own, (then, then))
    assert sweep(tmp_path) == [] and own.exists()


def test_the_first_directory_a_process_makes_in_a_place_sweeps_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(leftovers, "_swept", set())
    left = _left(tmp_path, "source", _dead_pid(), IDLE_SECONDS + 60)
    made = private_directory("source", tmp_path)
    assert not left.exists()
    assert made.name.startswith(f"reconciler-source-{os.getpid()}-")
    assert made.stat().st_mode & 0o777 == 0o700


def test_a_run_killed_with_sigkill_leaves_copies_the_next_run_removes(tmp_path: Path) -> None:
    # The real thing: a process that made a source copy and was killed before its cleanup.
    script = (
        "import os, signal, sys; from pathlib import Path\n"
        "from reconciler.leftovers import private_directory\n"
        "d = private_directory('source', sys.argv[1])\n"
        "(d / 'members.csv').write_text('email\\nsomeone@example.com\\n')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=False)
    assert run.returncode == -signal.SIGKILL
    (left,) = tmp_path.iterdir()
    then = time.time() - IDLE_SECONDS - 60
    for path in (left / "members.csv", left):
        os.utime(path, (then, then))
    assert sweep(tmp_path) == [left] and not left.exists()


def test_the_working_directory_is_no_temporary_directory_unless_tmpdir_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python's last resort where /tmp and /var/tmp cannot be written (a read-only root):
    # the working directory, usually the repository, where a killed run's copies of
    # members' data would wait for `git add -A`.
    import errno
    import tempfile

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setattr(tempfile, "_candidate_tempdir_list", lambda: [str(tmp_path)])
    for name in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(OSError) as refused:
        private_directory("source")
    assert refused.value.errno == errno.ENOENT
    assert refused.value.strerror == leftovers.NO_TEMP
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # named on purpose: used
    assert private_directory("source").parent == tmp_path


@pytest.mark.parametrize("system", [Path("/tmp"), Path("/var/tmp")], ids=str)
def test_run_from_the_system_temporary_directory_python_chose_it_is_still_used(
    system: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /tmp, or /var/tmp where /tmp is unusable (full, read-only), chosen by Python because
    # it is writable, is not the last-resort working directory, though a command run from
    # there has it as both.
    import tempfile

    if os.name == "nt" or not (system.is_dir() and os.access(system, os.W_OK)):
        pytest.skip(f"needs a writable {system}")
    monkeypatch.chdir(system)
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setattr(tempfile, "_candidate_tempdir_list", lambda: [str(system)])
    for name in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.delenv(name, raising=False)
    made = private_directory("source")
    try:
        assert made.parent.resolve() == system.resolve()
    finally:
        made.rmdir()


# A temporary directory another user controls: they can rename the 0700 directories made
# there and put their own in place, then read what is written after.

posix_modes = pytest.mark.skipif(os.name == "nt", reason="POSIX modes and owners")


def _dir(path: Path, mode: int) -> Path:
    path.mkdir()
    path.chmod(mode)
    return path


@posix_modes
def test_a_temp_dir_every_user_can_write_to_without_the_sticky_bit_is_refused(
    tmp_path: Path,
) -> None:
    shared = _dir(tmp_path / "shared", 0o777)
    with pytest.raises(ConfigError) as refused:
        private_directory("source", shared)
    message = str(refused.value)
    assert message.startswith(f"RECONCILER_DUCKDB_TEMP_DIR ({shared}) cannot hold copies")
    assert "it is writable by every user and has no sticky bit" in message
    assert list(shared.iterdir()) == []  # nothing made, nothing swept


@posix_modes
def test_a_temp_dir_under_one_every_user_can_write_to_is_refused(tmp_path: Path) -> None:
    """Whoever can write to the directory above can rename the one named, whatever its
    own mode."""
    shared = _dir(tmp_path / "shared", 0o777)
    mine = _dir(shared / "mine", 0o700)
    with pytest.raises(ConfigError) as refused:
        private_directory("workspace", mine)
    assert f"{shared} is writable by every user" in str(refused.value)
    # A link to it is refused too, wherever the link is.
    (tmp_path / "link").symlink_to(mine)
    with pytest.raises(ConfigError):
        private_directory("workspace", tmp_path / "link")


@posix_modes
def test_a_temp_dir_refused_is_refused_before_anything_is_made_in_it(tmp_path: Path) -> None:
    """A RECONCILER_DUCKDB_TEMP_DIR that does not exist yet, below a directory every user
    can write to, was made (each missing directory) and then refused: the refusal left
    directories behind in the shared place, named as the user asked."""
    shared = _dir(tmp_path / "shared", 0o777)
    with pytest.raises(ConfigError) as refused:
        private_directory("source", shared / "runs" / "reconciler")
    assert f"{shared} is writable by every user" in str(refused.value)
    assert list(shared.iterdir()) == []


@posix_modes
def test_a_temp_dir_made_under_a_umask_of_0_is_private_and_used(tmp_path: Path) -> None:
    """The missing directories were made with the process's umask: under `umask 0` (some
    container images) they were writable by every user, so the run refused the directory
    it had just made for itself, and left it behind. They are made 0700 now: only ours."""
    before = os.umask(0)
    try:
        made = private_directory("query", tmp_path / "new" / "dir")
    finally:
        os.umask(before)
    assert made.parent == tmp_path / "new" / "dir"
    for directory in (tmp_path / "new", tmp_path / "new" / "dir", made):
        assert directory.stat().st_mode & 0o777 == 0o700, directory


@posix_modes
def test_sticky_and_private_temp_dirs_are_used(tmp_path: Path) -> None:
    for directory in (_dir(tmp_path / "sticky", 0o1777), _dir(tmp_path / "private", 0o700)):
        made = private_directory("source", directory)
        assert made.parent == directory and (made.stat().st_mode & 0o777) == 0o700
    # Made on demand, as before.
    assert private_directory("query", tmp_path / "new" / "dir").parent == tmp_path / "new" / "dir"


@posix_modes
def test_a_temp_dir_of_another_user_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a directory to another user needs root")
    theirs = _dir(tmp_path / "theirs", 0o755)
    os.chown(theirs, 4242, 4242)
    with pytest.raises(ConfigError) as refused:
        private_directory("source", theirs)
    assert "it belongs to another user (uid 4242)" in str(refused.value)
    # A link of theirs to a directory of ours: they can point it elsewhere.
    mine = _dir(tmp_path / "mine", 0o700)
    sticky = _dir(tmp_path / "sticky", 0o1777)
    (sticky / "link").symlink_to(mine)
    try:
        os.lchown(sticky / "link", 4242, 4242)
        with pytest.raises(ConfigError) as refused:
            private_directory("source", sticky / "link")
        assert "it belongs to another user (uid 4242)" in str(refused.value)
    finally:
        # A link leading out of its directory, left in the worker's temporary directory,
        # stops every later query whose repository holds it (manifest.repository).
        (sticky / "link").unlink()


@posix_modes
def test_a_system_temp_dir_every_user_can_write_to_is_used_with_a_warning_naming_tmpdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The system's own (a Kubernetes pod's emptyDir /tmp under a read-only root is 0777
    without the sticky bit, and holds one user): refusing it would stop every run there,
    so it is said, once, and used; a directory named for reconciler is refused above."""
    import tempfile

    shared = _dir(tmp_path / "shared", 0o777)
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setenv("TMPDIR", str(shared))
    made = private_directory("source")
    assert made.parent == shared
    message = capsys.readouterr().err
    assert message.startswith(
        f"warning: TMPDIR ({shared}) cannot hold copies of members' data: it "
    )
    assert "set TMPDIR to a directory of your own" in message
    assert message.endswith("Used all the same, as the system's temporary directory\n")
    private_directory("query")
    assert capsys.readouterr().err == ""  # once per place


def test_the_export_directory_an_earlier_version_named_for_no_process_is_removed(
    tmp_path: Path,
) -> None:
    # From 0a51f61 to 2e4628e the whole-project export read in date windows went to
    # tempfile.TemporaryDirectory(prefix="reconciler-export-"): every user's email, named
    # for no process, so a run killed in a read of hours left it for good. Made as it did.
    def earlier(idle: float, files: tuple[str, ...]) -> Path:
        directory = Path(tempfile.mkdtemp(prefix="reconciler-export-", dir=tmp_path))
        for name in files:
            (directory / name).write_text('{"email": "someone@example.com"}\n')
        then = time.time() - idle
        for path in [*directory.iterdir(), directory]:
            os.utime(path, (then, then))
        return directory

    gone = earlier(IDLE_SECONDS + 60, ("users.jsonl", "users.window0.jsonl"))
    recent = earlier(60, ("users.jsonl",))  # that version's run may still be reading
    own = earlier(IDLE_SECONDS + 60, ("users.jsonl", "notes.txt"))  # not only its files

    assert sweep(tmp_path) == [gone]
    assert not gone.exists() and recent.exists() and own.exists()


def _earlier(parent: Path, prefix: str, files: tuple[str, ...], idle: float) -> Path:
    """A directory made as an earlier version made it (tempfile.mkdtemp's prefix and 8
    random characters, no pid), holding `files` (a/b: in a directory a), idle that long."""
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    for name in files:
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text("email\nsomeone@example.com\n")
    then = time.time() - idle
    for path in [*sorted(directory.rglob("*"), reverse=True), directory]:
        os.utime(path, (then, then))
    return directory


@pytest.mark.parametrize(
    ("prefix", "written", "not_only_its_own"),
    [
        # The DuckDB workspace, fee2384 to e7545a8: downloaded lists, exports, rows, a
        # query's rows, DuckDB's spill files (1.x and 2.x names) and tempfile scratch.
        (
            "reconciler-",
            (
                "import_1.txt",
                "prefetch_2.jsonl",
                "members_3.csv",
                "query_4/rows.parquet",
                "query_4/duckdb_temp_storage-0.tmp",
                "spill/duckdb_temp_block-7.block",
                "spill/duckdb_temp_23350_0_owner",
                "tmpab_cd123/users.window0.jsonl",
            ),
            ("import_1.txt", ".git/HEAD"),
        ),
        # A source file's copy, 1ba0b88 to e7545a8.
        ("reconciler-source-", ("people.xlsx",), ("people.csv", "notes.csv")),
        # A query's spill files, b01a568 to e7545a8.
        (
            "reconciler-query-",
            ("duckdb_temp_storage_S32K-0.tmp", "duckdb_temp_1_0_owner"),
            ("duckdb_temp_storage-0.tmp", "results.csv"),
        ),
        # Consent's profiles read in date windows, 76847c4 to 0a51f61.
        (
            "reconciler-consent-",
            ("profiles.jsonl", "profiles.window0.jsonl"),
            ("profiles.jsonl", "notes.txt"),
        ),
    ],
    ids=["workspace", "source", "query", "consent"],
)
def test_the_directories_earlier_versions_named_for_no_process_are_removed(
    tmp_path: Path, prefix: str, written: tuple[str, ...], not_only_its_own: tuple[str, ...]
) -> None:
    # Before e7545a8 named them for their process, a run killed (SIGKILL) left these with
    # members' identities in the temporary directory for good: no sweep knew the names.
    gone = _earlier(tmp_path, prefix, written, IDLE_SECONDS + 60)
    recent = _earlier(tmp_path, prefix, written, 60)  # that version may still be running
    own = _earlier(tmp_path, prefix, not_only_its_own, IDLE_SECONDS + 60)
    assert sweep(tmp_path) == [gone]
    assert not gone.exists() and recent.exists() and own.exists()


def test_an_earlier_workspace_holding_a_link_is_kept(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    linked = _earlier(tmp_path, "reconciler-", ("import_1.txt",), IDLE_SECONDS + 60)
    link = linked / "spill"
    link.symlink_to(elsewhere)
    then = time.time() - IDLE_SECONDS - 60
    os.utime(linked, (then, then))
    try:
        assert sweep(tmp_path) == []
        assert linked.exists() and elsewhere.exists()
    finally:
        # Tests without a .git take pytest's whole temporary directory for the repository,
        # where a link to a directory not below its own stops every query (conftest.py).
        link.unlink()
