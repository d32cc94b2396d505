"""A manifest's DuckDB query reaches nothing beyond the repository's own files, in both
engines: one SELECT statement, no writes, no extensions, no URLs, no file outside the
repository (nor its .git or .reconciler)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.errors import SourceError
from reconciler.manifest import Audience
from reconciler.members.model import Engine, EngineSettings, estimate_rows, load_desired
from reconciler.sources import read_members
from tests.sources import line_of, load_audience, write_parquet


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git work tree (its own repository) with the manifests at its root, run from it."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "config").write_text("[core]\n\tbare = false\n")
    (root / "data").mkdir()
    (root / "data" / "users.csv").write_text("email\na@example.com\n")
    monkeypatch.chdir(root)
    return root


def read_both(audience: Audience, tmp_path: Path) -> list[str]:
    """The errors each engine gives (the Python reader, then DuckDB's workspace)."""
    errors = []
    with pytest.raises(SourceError) as python:
        read_members(audience, "email")
    errors.append(str(python.value))
    settings = EngineSettings(engine="duckdb", memory_limit="256MB", threads=1, temp_dir=tmp_path)
    with Engine(settings) as engine, pytest.raises(SourceError) as duck:
        load_desired(engine, audience, "email")
    errors.append(str(duck.value))
    return errors


def snapshot(*roots: Path) -> dict[str, bytes]:
    found = {}
    for root in roots:
        for directory, _, files in os.walk(root):
            for name in files:
                path = Path(directory, name)
                found[str(path)] = path.read_bytes()
    return found


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("COPY (SELECT '[core]' AS c) TO '.git/config' (HEADER false)", "COPY"),
        ("ATTACH 'other.duckdb' AS other", "ATTACH"),
        ("INSTALL httpfs", "LOAD"),
        ("LOAD httpfs", "LOAD"),
        ("SET enable_external_access = true", "SET"),
        ("PRAGMA enable_profiling", "PRAGMA"),
        ("CREATE TABLE t AS SELECT 'a@example.com' AS email", "CREATE"),
        ("EXPORT DATABASE 'out'", "EXPORT"),
        ("SELECT 'a@example.com' AS email; COPY (SELECT 1) TO 'x.csv'", "2 statements"),
        ("SELECT 1 AS email; SELECT 2 AS email", "2 statements"),
    ],
)
def test_anything_but_one_select_is_refused_before_it_runs(
    repo: Path, tmp_path: Path, query: str, kind: str
) -> None:
    audience = load_audience(repo, {"sql": query, "database": ":memory:"})
    before = snapshot(repo)
    line = line_of(repo / "aud.yaml", '"sql"')
    for error in read_both(audience, tmp_path):
        assert error.startswith(f"aud.yaml:{line}:"), error
        assert "must be a single SELECT statement" in error and kind in error
    assert snapshot(repo) == before
    assert estimate_rows(audience) is None  # counting the rows runs nothing either


@pytest.mark.parametrize(
    "query",
    [
        "SELECT column0 AS email FROM read_csv('/etc/passwd', header = false)",
        "SELECT content AS email FROM read_text('/proc/self/environ')",
        "SELECT content AS email FROM read_text('.git/config')",
        "SELECT content AS email FROM read_text('data/../../outside.txt')",
        "SELECT * FROM read_csv('https://example.com/members.csv')",
        "SELECT file AS email FROM glob('/etc/*')",
        "WITH t AS (SELECT 1) SELECT content AS email FROM read_text('/etc/hostname')",
    ],
)
def test_files_outside_the_repository_and_urls_cannot_be_read(
    repo: Path, tmp_path: Path, query: str
) -> None:
    (tmp_path / "outside.txt").write_text("secret@example.com\n")
    audience = load_audience(repo, {"sql": query, "database": ":memory:"})
    for error in read_both(audience, tmp_path):
        assert "Permission Error" in error, error
        assert "may read only files inside the repository" in error
        assert "secret" not in error


def test_files_inside_the_repository_are_read_from_wherever_in_it_reconciler_runs(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = repo / "manifests"
    (manifests / "data").mkdir(parents=True)
    (manifests / "data" / "m.csv").write_text("email\nb@example.com\n")
    audience = load_audience(
        manifests,
        {
            "sql": "SELECT email FROM read_csv('data/m.csv') UNION ALL "
            f"SELECT email FROM read_csv('{repo}/data/users.csv')",
            "database": ":memory:",
        },
    )
    for cwd in (repo, manifests, repo / "data"):
        monkeypatch.chdir(cwd)
        assert sorted(read_members(audience, "email").members) == [
            "a@example.com",
            "b@example.com",
        ]
        settings = EngineSettings(engine="duckdb", memory_limit="256MB", temp_dir=tmp_path)
        with Engine(settings) as engine:
            assert load_desired(engine, audience, "email").count == 2


def test_a_symbolic_link_out_of_the_repository_stops_every_query(
    repo: Path, tmp_path: Path
) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret.csv").write_text("email\nsecret@example.com\n")
    (repo / "data" / "link").symlink_to(tmp_path / "elsewhere")
    audience = load_audience(
        repo,
        {"sql": "SELECT email FROM read_csv('data/link/secret.csv')", "database": ":memory:"},
    )
    try:
        for error in read_both(audience, tmp_path):
            assert "has a symbolic link" in error and str(repo / "data" / "link") in error
            assert "secret@" not in error
    finally:
        # Tests without a .git take pytest's whole temporary directory for the repository.
        (repo / "data" / "link").unlink()


def test_the_database_file_is_read_only_and_other_databases_stay_out(
    repo: Path, tmp_path: Path
) -> None:
    import duckdb

    with duckdb.connect(str(repo / "crm.duckdb")) as connection:
        connection.execute("CREATE TABLE t AS SELECT 'a@example.com' AS email")
    with duckdb.connect(str(tmp_path / "other.duckdb")) as connection:
        connection.execute("CREATE TABLE secret AS SELECT 'secret@example.com' AS email")
    audience = load_audience(
        repo,
        {
            "sql": f"SELECT email FROM read_duckdb('{tmp_path / 'other.duckdb'}', "
            "table_name = 'secret')",
            "database": "crm.duckdb",
        },
    )
    for error in read_both(audience, tmp_path):
        assert "Permission Error" in error or "read_duckdb" in error, error
        assert "secret@" not in error


def test_a_committed_link_out_of_a_git_repository_is_found_by_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    root = tmp_path / "gitrepo"
    (root / "data").mkdir(parents=True)
    (tmp_path / "secret.csv").write_text("email\nsecret@example.com\n")
    (root / "data" / "members.csv").symlink_to(tmp_path / "secret.csv")
    run = {"cwd": root, "check": True, "capture_output": True}
    subprocess.run(["git", "init", "-q"], **run)  # type: ignore[call-overload]
    subprocess.run(["git", "add", "data/members.csv"], **run)  # type: ignore[call-overload]
    monkeypatch.chdir(root)
    audience = load_audience(
        root, {"sql": "SELECT email FROM read_csv('data/members.csv')", "database": ":memory:"}
    )
    with pytest.raises(SourceError, match=r"has a symbolic link .*members\.csv"):
        read_members(audience, "email")


def test_a_git_hook_of_an_outer_repository_does_not_hide_a_link_the_inner_one_tracks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hook of the repository holding the manifests' one (a pre-commit hook running
    `reconciler validate`) has git's GIT_DIR, GIT_INDEX_FILE and GIT_WORK_TREE set for its
    own repository: `git ls-files` then listed the outer index, so a link leading out that
    the inner repository tracks went unchecked, and what it tracks unreadable."""
    import subprocess

    outer = tmp_path / "outer"
    root = outer / "gitrepo"
    (root / "data").mkdir(parents=True)
    (tmp_path / "secret.csv").write_text("email\nsecret@example.com\n")
    (root / "data" / "members.csv").symlink_to(tmp_path / "secret.csv")
    (outer / "README").write_text("outer\n")
    for repository, added in ((outer, "README"), (root, "data/members.csv")):
        run = {"cwd": repository, "check": True, "capture_output": True}
        subprocess.run(["git", "init", "-q"], **run)  # type: ignore[call-overload]
        subprocess.run(["git", "add", added], **run)  # type: ignore[call-overload]
    monkeypatch.setenv("GIT_DIR", str(outer / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(outer / ".git" / "index"))
    monkeypatch.setenv("GIT_WORK_TREE", str(outer))
    monkeypatch.chdir(root)
    audience = load_audience(
        root, {"sql": "SELECT email FROM read_csv('data/members.csv')", "database": ":memory:"}
    )
    with pytest.raises(SourceError, match=r"has a symbolic link .*members\.csv"):
        read_members(audience, "email")


@pytest.mark.parametrize(
    "path", ["gha-creds-1a2b3c.json", ".venv/iterable.key", "manifests/../gha-creds-1a2b3c.json"]
)
def test_a_query_cannot_read_what_a_ci_job_left_untracked_at_the_top_of_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """A CI checkout holds files no pull request brought: google-github-actions/auth writes
    a service account's key to the top of it (gha-creds-*.json), a step may write a key
    file or a `.venv`. Every file in the work tree was readable, and `error(content)`
    printed one in the log of `validate` on a pull request."""
    import subprocess

    root = tmp_path / "gitrepo"
    (root / "data").mkdir(parents=True)
    (root / ".venv").mkdir()
    (root / "data" / "m.csv").write_text("email\na@example.com\n")
    for secret in ("gha-creds-1a2b3c.json", ".venv/iterable.key"):
        (root / secret).write_text("-----BEGIN PRIVATE KEY-----MIIEvQIBADANBgkq\n")
    run = {"cwd": root, "check": True, "capture_output": True}
    subprocess.run(["git", "init", "-q"], **run)  # type: ignore[call-overload]
    subprocess.run(["git", "add", "data/m.csv"], **run)  # type: ignore[call-overload]
    monkeypatch.chdir(root)
    (root / "manifests").mkdir()
    stolen = f"SELECT error(content) AS email FROM read_text('{root / path}')"
    audience = load_audience(root / "manifests", {"sql": stolen, "database": ":memory:"})
    with pytest.raises(SourceError) as refused:
        read_members(audience, "email")
    assert "Permission Error" in str(refused.value), refused.value
    assert "git tracks" in str(refused.value) and "PRIVATE KEY" not in str(refused.value)
    # What git tracks is read, and so is a file made later in a directory it tracks.
    (root / "data" / "made-by-ci.csv").write_text("email\nb@example.com\n")
    both = (
        "SELECT email FROM read_csv('data/m.csv') UNION ALL "
        "SELECT email FROM read_csv('data/made-by-ci.csv')"
    )
    audience = load_audience(root / "manifests", {"sql": both, "database": ":memory:"})
    assert sorted(read_members(audience, "email").members) == ["a@example.com", "b@example.com"]


def test_a_directory_without_git_too_large_to_check_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.manifest import repository

    root = tmp_path / "big" / "manifests"
    root.mkdir(parents=True)
    for n in range(5):
        (root.parent / f"f{n}.csv").write_text("email\n")
    monkeypatch.setattr(repository, "MAX_WALKED_ENTRIES", 3)
    monkeypatch.chdir(root.parent)
    audience = load_audience(
        root, {"sql": "SELECT 'a@example.com' AS email", "database": ":memory:"}
    )
    with pytest.raises(SourceError, match=r"taken as the repository because no \.git"):
        read_members(audience, "email")


def test_a_query_that_would_run_for_hours_is_stopped_at_the_time_limit(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`validate` runs a manifest's query in full: without a bound, a query over
    range(10^13) hangs a pre-commit hook or a CI job (the check that counts its rows too)."""
    monkeypatch.setenv("RECONCILER_QUERY_TIMEOUT", "0.5")
    forever = "SELECT 'a' || range::VARCHAR || '@x.com' AS email FROM range(10000000000000)"
    audience = load_audience(repo, {"sql": forever, "database": ":memory:"})
    with pytest.raises(SourceError) as counted:
        estimate_rows(audience)
    where = f"aud.yaml:{line_of(repo / 'aud.yaml', 'sql')}:"
    for error in [*read_both(audience, tmp_path), str(counted.value)]:
        assert where in error, error
        assert "ran longer than 0.5 s" in error
        assert "RECONCILER_QUERY_TIMEOUT" in error


def test_a_query_that_ends_as_its_time_limit_runs_out_is_an_error_at_its_line_not_a_bug(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limit's interrupt can arrive just as the query finishes, while reconciler reads
    DuckDB's log of the files the query opened: that raised DuckDB's InterruptException
    itself, and `plan` ended as "internal error: InterruptException". Either the query
    finished in time or it is the manifest line's time-limit error, run after run."""
    monkeypatch.setenv("RECONCILER_QUERY_TIMEOUT", "0.000001")
    audience = load_audience(
        repo, {"sql": "SELECT 'a@example.com' AS email", "database": ":memory:"}
    )
    for _ in range(40):
        try:
            read_members(audience, "email")
        except SourceError as error:
            assert "ran longer than 1e-06 s" in str(error), error


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf", "nan"])
def test_the_query_time_limit_must_be_a_positive_number(value: str) -> None:
    from reconciler.errors import ConfigError
    from reconciler.sources.time_limit import query_timeout

    with pytest.raises(ConfigError, match="RECONCILER_QUERY_TIMEOUT"):
        query_timeout({"RECONCILER_QUERY_TIMEOUT": value})
    assert query_timeout({}) == 300.0


@pytest.mark.parametrize("target", [".", "..", "../../..", "../../sibling"])
def test_a_link_to_a_directory_that_dot_dot_could_climb_out_of_stops_every_query(
    repo: Path, tmp_path: Path, target: str
) -> None:
    """A link inside the repository to its own directory, or one above or beside it:
    DuckDB judges `link/../x` by its text, where `..` only undoes `link`, while the file
    system follows the link first and so climbs from where the link leads: out of the
    repository, or into its .git."""
    (tmp_path / "outside.txt").write_text("secret@example.com\n")
    deep = repo / "data" / "a" / "b" / "c" / "d" / "e" / "f" / "g" / "h"
    deep.mkdir(parents=True)
    (deep.parent.parent / "sibling").mkdir()
    link = deep / "l"
    link.symlink_to(target, target_is_directory=True)
    climb = len(link.resolve().relative_to(tmp_path).parts)
    path = f"{link}/{'../' * climb}outside.txt"  # from where the link leads up to tmp_path
    if not Path(os.path.normpath(path)).is_relative_to(repo / "data"):
        path = f"{link}/{'../' * (climb - 1)}.git/config"  # the text leaves data/: use .git
    assert Path(os.path.normpath(path)).is_relative_to(repo / "data")  # what DuckDB checks
    assert Path(path).resolve() in (tmp_path / "outside.txt", repo / ".git" / "config")
    audience = load_audience(
        repo, {"sql": f"SELECT content AS email FROM read_text('{path}')", "database": ":memory:"}
    )
    try:
        for error in read_both(audience, tmp_path):
            assert "has a symbolic link" in error and f"{link} to" in error, error
            assert "not below the link's own directory" in error
            assert "secret@" not in error and "[core]" not in error
    finally:
        # Tests without a .git take pytest's whole temporary directory for the repository.
        link.unlink()


def test_a_link_to_a_directory_below_its_own_is_followed(repo: Path, tmp_path: Path) -> None:
    (repo / "data" / "2024").mkdir()
    (repo / "data" / "2024" / "m.csv").write_text("email\nb@example.com\n")
    (repo / "data" / "current").symlink_to("2024", target_is_directory=True)
    audience = load_audience(
        repo, {"sql": "SELECT email FROM read_csv('data/current/m.csv')", "database": ":memory:"}
    )
    assert sorted(read_members(audience, "email").members) == ["b@example.com"]


def test_a_query_gets_no_more_memory_than_a_plans_workspace(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not DuckDB's default of 80% of the machine: a manifest's query in `validate` (or a
    small audience's, planned in Python) must not take gigabytes of a CI runner before its
    time limit."""
    import duckdb

    from reconciler.sources import source_for

    monkeypatch.setenv("RECONCILER_MEMORY_LIMIT", "200MB")
    sql = "SELECT email FROM read_csv('data/users.csv')"
    audience = load_audience(repo, {"sql": sql, "database": ":memory:"})
    share = EngineSettings.from_env().duckdb_memory_bytes
    with duckdb.connect() as fresh:
        fresh.execute(f"SET memory_limit = '{share}B'")
        expected = fresh.execute("SELECT current_setting('memory_limit')").fetchone()
    with source_for(audience).duckdb_relation().connection() as connection:
        limit = connection.execute("SELECT current_setting('memory_limit')").fetchone()
    assert limit == expected
    assert read_members(audience, "email").members  # and the query still runs under it


def test_a_query_past_its_memory_spills_outside_the_repository_or_fails_clearly(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILER_MEMORY_LIMIT", "200MB")
    spills = tmp_path / "spills"
    monkeypatch.setenv("RECONCILER_DUCKDB_TEMP_DIR", str(spills))
    # Three million distinct strings: more than the 110 MB share holds, so DuckDB spills.
    heavy = (
        "SELECT min(s) AS email FROM (SELECT DISTINCT s FROM (SELECT 'u' || range::VARCHAR "
        "|| repeat('x', 40) || '@example.com' AS s FROM range(3000000)))"
    )
    audience = load_audience(repo, {"sql": heavy, "database": ":memory:"})
    assert len(read_members(audience, "email").members) == 1
    # DuckDB's own default would have spilled to .tmp in the working directory: the repo.
    assert not (repo / ".tmp").exists()
    assert spills.is_dir() and not list(spills.iterdir())  # its own directory, removed
    # One value of 200 MB cannot be spilled: the query fails, saying what bounds it.
    huge = "SELECT string_agg(repeat('x', 100), ',') AS email FROM range(2000000)"
    audience = load_audience(repo, {"sql": huge, "database": ":memory:"})
    with pytest.raises(SourceError) as refused:
        read_members(audience, "email")
    error = str(refused.value)
    assert error.startswith(f"aud.yaml:{line_of(repo / 'aud.yaml', 'sql')}:"), error
    assert "Out of Memory" in error and "RECONCILER_MEMORY_LIMIT" in error


@pytest.mark.parametrize("kind", ["sql", "parquet"])
def test_rows_larger_than_the_memory_limit_are_refused_before_they_reach_python(
    repo: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """DuckDB streams a query within its memory limit, but the Python engine's chunks of
    rows become Python objects: 30 rows of `repeat('x', 100000000)` (or a Parquet file of
    kilobytes holding one long value many times) took 6 GB under the default 1 GB limit,
    in `validate` on a pull request. A read stops once its values pass the limit."""
    monkeypatch.setenv("RECONCILER_MEMORY_LIMIT", "64MB")
    rows = "SELECT 'u' || range || '@example.com' AS email, repeat('x', 1000000) AS note"
    wide = f"{rows} FROM range(100)"  # 100 MB of values, in a file of a few kilobytes
    if kind == "parquet":
        write_parquet(repo / "data" / "wide.parquet", wide)
        members = {"parquet": "data/wide.parquet"}
        subject = "Parquet file data/wide.parquet"
    else:
        members, subject = {"sql": wide, "database": ":memory:"}, "the query"
    audience = load_audience(repo, members, mapped=True)
    with pytest.raises(SourceError) as refused:
        read_members(audience, "email")
    error = str(refused.value)
    line = line_of(repo / "aud.yaml", f'"{kind}"')
    assert error.startswith(f"aud.yaml:{line}:"), error
    assert f"cannot read {subject}: its rows hold more than 64,000,000 bytes" in error
    assert "RECONCILER_MEMORY_LIMIT" in error
    # Under the limit the same rows are read, their values kept for the mapping.
    narrow = f"{rows} FROM range(30)"
    audience = load_audience(repo, {"sql": narrow, "database": ":memory:"}, mapped=True)
    assert len(read_members(audience, "email").members) == 30


def test_a_query_spilling_past_its_disk_share_fails_at_its_line(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB's spill files could take 90% of the free disk (its default): a DISTINCT over
    range() wrote 130 MB/s into reconciler's spill directory, 40 GB within the time limit,
    in `validate` on a laptop. A query may spill 10 times RECONCILER_MEMORY_LIMIT."""
    monkeypatch.setenv("RECONCILER_MEMORY_LIMIT", "64MB")
    spills = tmp_path / "spills"
    monkeypatch.setenv("RECONCILER_DUCKDB_TEMP_DIR", str(spills))
    hostile = (
        "SELECT min(s) AS email FROM (SELECT DISTINCT s FROM (SELECT range::VARCHAR "
        "|| repeat('x', 1000) AS s FROM range(10000000)))"
    )
    audience = load_audience(repo, {"sql": hostile, "database": ":memory:"})
    with pytest.raises(SourceError) as refused:
        read_members(audience, "email")
    error = str(refused.value)
    assert error.startswith(f"aud.yaml:{line_of(repo / 'aud.yaml', 'sql')}:"), error
    assert "its spill files reached the 640,000,000 bytes of disk a query may use" in error
    assert "10 times RECONCILER_MEMORY_LIMIT" in error
    assert spills.is_dir() and not list(spills.iterdir())  # and they are gone


def test_a_query_result_past_its_disk_share_fails_at_its_line(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DuckDB engine has a query write its rows to a Parquet file (a transfer file),
    which DuckDB's bound on spill files does not cover: a query of endless rows could
    write until the disk was full. What a query writes is bounded as its spill files are."""
    from reconciler.members.engine import settings

    monkeypatch.setenv("RECONCILER_MEMORY_LIMIT", "64MB")
    monkeypatch.setattr(settings, "QUERY_SPILL_FACTOR", 1)  # 64 MB: a quicker test
    monkeypatch.setenv("RECONCILER_DUCKDB_TEMP_DIR", str(tmp_path))
    noise = " || ".join(["gen_random_uuid()::VARCHAR"] * 4)  # Parquet cannot compress it
    endless = f"SELECT {noise} || '@example.com' AS email FROM range(1000000000)"
    audience = load_audience(repo, {"sql": endless, "database": ":memory:"})
    with (
        Engine(EngineSettings("duckdb", memory_limit="256MB", temp_dir=tmp_path)) as engine,
        pytest.raises(SourceError) as refused,
    ):
        load_desired(engine, audience, "email")
    error = str(refused.value)
    assert error.startswith(f"aud.yaml:{line_of(repo / 'aud.yaml', 'sql')}:"), error
    assert "passed 64,000,000 bytes, 1 times RECONCILER_MEMORY_LIMIT" in error
    assert not list(tmp_path.glob("reconciler-*"))  # nothing of it left behind


def test_a_path_beside_the_manifest_reads_from_the_top_of_a_git_work_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: relative paths in a query start at the manifest's directory, and work
    wherever in the repository reconciler runs. In a git work tree, run from its top (as
    CI runs), `read_csv('data/m.csv')` in manifests/ was refused ("file system operations
    are disabled"): DuckDB looks in the working directory first, where `data` is no
    top-level name git tracks, and refuses the read there before looking beside the
    manifest. A name that is not there is let through, so it is looked for beside the
    manifest; one that is there and untracked stays unreadable."""
    import subprocess

    root = tmp_path / "gitrepo"
    (root / "manifests" / "data").mkdir(parents=True)
    (root / "manifests" / "data" / "m.csv").write_text("email\na@example.com\n")
    run = {"cwd": root, "check": True, "capture_output": True}
    subprocess.run(["git", "init", "-q"], **run)  # type: ignore[call-overload]
    subprocess.run(["git", "add", "manifests/data/m.csv"], **run)  # type: ignore[call-overload]
    monkeypatch.chdir(root)
    query = "SELECT email FROM read_csv('data/m.csv')"
    audience = load_audience(root / "manifests", {"sql": query, "database": ":memory:"})
    assert sorted(read_members(audience, "email").members) == ["a@example.com"]

    # Untracked and there at the top (what a CI step left): still refused.
    (root / "data").mkdir()
    (root / "data" / "m.csv").write_text("email\nleft@example.com\n")
    audience = load_audience(root / "manifests", {"sql": query, "database": ":memory:"})
    with pytest.raises(SourceError, match="git tracks"):
        read_members(audience, "email")


def test_the_names_beside_a_manifest_are_allowed_from_one_listing_of_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every query allows the names in its manifest's directory at the working directory
    (the test above). Each name was a path made, compared with the repository's and
    looked up on disk: 20 ms a query in a directory of 1,000 audiences' files, and 20 s of
    a validate whose audiences are queries. One listing of the working directory now
    tells which names are there; what is allowed is the same."""
    import subprocess

    from reconciler.manifest.repository import readable_paths

    root = tmp_path / "gitrepo"
    (root / "manifests" / "data").mkdir(parents=True)
    names = [f"aud-{i:03d}.yaml" for i in range(300)]
    for name in names:
        (root / "manifests" / name).write_text("kind: Audience\n")
    (root / "aud-007.yaml").write_text("left by a CI step\n")  # there, untracked
    run = {"cwd": root, "check": True, "capture_output": True}
    subprocess.run(["git", "init", "-q"], **run)  # type: ignore[call-overload]
    subprocess.run(["git", "add", "manifests"], **run)  # type: ignore[call-overload]
    monkeypatch.chdir(root)
    looked_up = []
    real_lexists = os.path.lexists

    def lexists(path: str | os.PathLike[str]) -> bool:
        looked_up.append(path)
        return real_lexists(path)

    monkeypatch.setattr(os.path, "lexists", lexists)
    directories, files = readable_paths(root, root / "manifests")
    assert looked_up == []
    real = os.path.realpath(root)
    assert set(files) == {os.path.join(real, n) for n in names if n != "aud-007.yaml"}
    assert f"{os.path.join(real, 'data')}/" in directories  # absent at the top: allowed
    assert f"{os.path.join(real, 'manifests')}/" in directories  # tracked


@pytest.mark.parametrize(
    ("query", "extension"),
    [
        ("SELECT email FROM read_xlsx('data/users.xlsx')", "excel"),
        ("SELECT 'a@example.com' AS email WHERE '10.0.0.1'::INET IS NOT NULL", "inet"),
        ("SELECT email FROM sqlite_scan('data/crm.db', 'users')", "sqlite_scanner"),
    ],
)
def test_a_query_needing_an_extension_fails_at_its_line_without_advice_it_cannot_take(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, query: str, extension: str
) -> None:
    """A query calling a function or type of an extension DuckDB's Python package does not
    build in (Excel, INET, SQLite) is not fetched from the network (an air-gapped runner
    has none). DuckDB's error told the user to run `INSTALL excel; LOAD excel;` or
    `SET autoinstall_known_extensions=1`, each of which reconciler refuses in a query: the
    message now says that queries load no extension and which ones are built in."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # where DuckDB would install an extension
    audience = load_audience(repo, {"sql": query, "database": ":memory:"})
    line = line_of(repo / "aud.yaml", '"sql"')
    for error in read_both(audience, tmp_path):
        assert error.startswith(f"aud.yaml:{line}:"), error
        # Said in place of DuckDB's advice, its sentence's full stop included.
        assert f"in the {extension} extension (a manifest's query loads no DuckDB" in error
        # Only those built in are named: one DuckDB knows of but lacks here cannot be used.
        assert "parquet" in error and "httpfs" not in error and "spatial" not in error, error
        assert "INSTALL" not in error and "SET " not in error and "LOAD" not in error, error
    assert list(home.iterdir()) == []
