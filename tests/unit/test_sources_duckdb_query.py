"""sources/sql.py (a query run in DuckDB) and sources/parquet.py, used directly (no CLI):
what each answers, and files a query reads that change while it reads them."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from reconciler.errors import SourceChangedError, SourceError
from reconciler.render.masking import mask_emails
from reconciler.sources import duckdb_query, read_members, source_for
from reconciler.sources.parquet import ParquetFile
from reconciler.sources.sql import DuckDbQuery
from tests.sources import RecordingReader, load_audience, write_duckdb, write_parquet


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".git").mkdir()  # the repository the query may read
    monkeypatch.chdir(tmp_path)


def test_parquet_answers_from_its_snapshot(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "data" / "m.parquet",
        "SELECT * FROM (VALUES ('a@example.com', 'gold'), ('b@example.com', 'free')) "
        "AS t(email, plan)",
    )
    source = source_for(load_audience(tmp_path, {"parquet": "data/m.parquet"}))

    assert isinstance(source, ParquetFile)
    assert [(f.field, f.path) for f in source.files()] == [("parquet", Path("data/m.parquet"))]
    assert source.digests() == [
        (Path("data/m.parquet"), hashlib.sha256(path.read_bytes()).hexdigest())
    ]
    # The footer's schema, for a trait mapping's check when the manifests load.
    assert source.columns() == ("the columns of data/m.parquet", ["email", "plan"])
    assert source.estimate_rows() == 2
    shape, relation = source.relation(RecordingReader())
    assert shape == "duckdb"
    assert str(source.snapshot.copy) in relation.query  # the engine reads the snapshot
    assert relation.subject == "Parquet file data/m.parquet"
    assert sorted(source.read("email").members) == ["a@example.com", "b@example.com"]

    path.unlink()  # read once: the run goes on from the snapshot
    assert sorted(source.read("email").members) == ["a@example.com", "b@example.com"]


def test_duckdb_query_answers_and_counts_where_it_runs(tmp_path: Path) -> None:
    write_duckdb(
        tmp_path / "crm.duckdb",
        "CREATE TABLE people AS SELECT * FROM (VALUES ('a@example.com'), ('b@example.com')) "
        "AS t(email)",
    )
    source = source_for(
        load_audience(tmp_path, {"sql": "SELECT email FROM people;", "database": "crm.duckdb"})
    )

    assert isinstance(source, DuckDbQuery)
    assert [(f.field, f.written) for f in source.files()] == [("database", "crm.duckdb")]
    assert source.estimate_rows() == 2
    shape, relation = source.relation(RecordingReader())
    assert (shape, relation.database, relation.subject) == ("duckdb", "crm.duckdb", "the query")
    assert sorted(source.read("email").members) == ["a@example.com", "b@example.com"]
    in_memory = source_for(
        load_audience(tmp_path, {"sql": "SELECT 1 AS email", "database": ":memory:"})
    )
    assert in_memory.files() == [] and in_memory.digests() == []


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT email FROM people; -- the VIP list",
        "SELECT email FROM people ; /* not ';' here */\n",
        "SELECT email FROM people;;\n-- one\n-- two",
    ],
)
def test_a_query_may_end_in_a_semicolon_before_a_comment(tmp_path: Path, sql: str) -> None:
    """One statement and a comment after its semicolon (as SQL files are written) ran inside
    reconciler's own SELECTs semicolon and all: `Parser Error: syntax error at or near ";"`,
    pointing at text the manifest never had."""
    write_duckdb(tmp_path / "crm.duckdb", "CREATE TABLE people AS SELECT 'a@example.com' AS email")
    source = source_for(load_audience(tmp_path, {"sql": sql, "database": "crm.duckdb"}))
    assert source.estimate_rows() == 1
    assert list(source.read("email").members) == ["a@example.com"]


def test_a_file_rewritten_while_a_query_reads_it_is_refused(tmp_path: Path) -> None:
    """Issue 19.3 for files a DuckDB query opens: they are known only once opened, so
    they are judged by their times against the file system's clock when the read began."""
    data = tmp_path / "people.csv"
    data.write_text("email\na@example.com\nb@example.com\n", encoding="utf-8")
    reading = duckdb_query.bounded_connection(
        ":memory:", tmp_path, "aud.yaml:7:3", tmp_path, audience="aud"
    )
    with pytest.raises(SourceChangedError) as refused, reading as connection:
        assert connection.execute("SELECT count(*) FROM read_csv('people.csv')").fetchone() == (2,)
        data.write_text("email\na@example.com\n", encoding="utf-8")
    message = str(refused.value)
    assert message.startswith("aud.yaml:7:3: audience 'aud': guard source_changed: people.csv")
    assert "changed while the query read it" in message


def test_files_a_query_read_and_nobody_changed_pass(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("email\na@example.com\n", encoding="utf-8")
    audience = load_audience(
        tmp_path, {"sql": "SELECT email FROM read_csv('people.csv')", "database": ":memory:"}
    )
    assert list(source_for(audience).read("email").members) == ["a@example.com"]


def test_a_file_stamped_in_the_future_that_nobody_changed_passes(tmp_path: Path) -> None:
    """A file's modification time can be anything (`unzip` of an archive made where the
    clock reads later, `touch -d`, `cp -p` from a share whose clock runs ahead): one an hour
    ahead was refused as "changed while the query read it" on every run until the clock
    caught up, with no override. Any write sets the change time to now, so that alone
    tells a file written during the read."""
    people = tmp_path / "people.csv"
    people.write_text("email\na@example.com\n", encoding="utf-8")
    ahead = time.time_ns() + 3600 * 10**9
    os.utime(people, ns=(ahead, ahead))
    audience = load_audience(
        tmp_path, {"sql": "SELECT email FROM read_csv('people.csv')", "database": ":memory:"}
    )
    source = source_for(audience)
    assert list(source.read("email").members) == ["a@example.com"]
    assert source.digests() == [(people, hashlib.sha256(people.read_bytes()).hexdigest())]


def test_the_files_a_query_read_are_digested_as_it_read_them(tmp_path: Path) -> None:
    """A saved plan digests what the query opened (read_csv('people.csv')), not only its
    `database:`; a file written after the query read it gives no digest at all: it would
    lend the plan a content the plan was not made from."""
    people = tmp_path / "data" / "people.csv"
    people.parent.mkdir()
    people.write_text("email\na@example.com\n", encoding="utf-8")
    spec = {"sql": "SELECT email FROM read_csv('data/people.csv')", "database": ":memory:"}
    source = source_for(load_audience(tmp_path, spec))
    assert source.digests() == []  # not read yet: nothing opened
    assert list(source.read("email").members) == ["a@example.com"]
    sha = hashlib.sha256(people.read_bytes()).hexdigest()
    assert source.digests() == [(people, sha)]

    people.write_text("email\nb@example.com\n", encoding="utf-8")
    with pytest.raises(SourceChangedError, match=r"data/people\.csv, read by the query, changed"):
        source.digests()
    again = source_for(load_audience(tmp_path, spec))
    assert list(again.read("email").members) == ["b@example.com"]
    assert again.digests() == [(people, hashlib.sha256(people.read_bytes()).hexdigest())]


def test_a_database_file_written_while_the_query_runs_is_refused(tmp_path: Path) -> None:
    database = write_duckdb(tmp_path / "crm.duckdb", "CREATE TABLE t AS SELECT 1 AS x")
    reading = duckdb_query.bounded_connection(
        str(database), tmp_path, "aud.yaml:7:3", tmp_path, audience="aud"
    )
    changed = r"crm\.duckdb changed while the query read it"
    with pytest.raises(SourceChangedError, match=changed), reading as connection:
        connection.execute("SELECT * FROM t").fetchall()
        with database.open("ab") as handle:
            handle.write(b"\0")


@pytest.mark.parametrize("members", [{}, {"userId": "userId"}])
def test_columns_that_differ_from_the_identifier_only_in_case_are_named_as_ambiguous(
    tmp_path: Path, members: dict[str, str]
) -> None:
    # A case-insensitive match is taken only when it is the one: the error says why two
    # were not, rather than only that no such column is there.
    sql = "SELECT 'u1' AS userid, 'u2' AS USERID"
    audience = load_audience(tmp_path, {"sql": sql, "database": ":memory:", **members})
    with pytest.raises(SourceError, match="userid, USERID differ from 'userId' only in case"):
        read_members(audience, "hybrid")


def test_a_query_climbing_out_of_the_working_directory_is_told_how_to_name_its_file(
    tmp_path: Path,
) -> None:
    """A repository of teams' manifests in nested directories sharing one data directory:
    `read_csv('../../data/x.csv')` in manifests/teams/growth/ is in the repository, but
    DuckDB looks for a relative path from the working directory first (the repository's
    top, in CI), where `../../` leaves it, and refuses the read before looking beside the
    manifest. The message said only that it works "when reconciler runs inside the
    repository", which it was doing; it now names the spelling that works from there."""
    data = tmp_path / "manifests" / "data"
    data.mkdir(parents=True)
    (data / "x.csv").write_text("email\na@example.com\n", encoding="utf-8")
    team = tmp_path / "manifests" / "teams" / "growth"
    team.mkdir(parents=True)
    query = "SELECT email FROM read_csv('../../data/x.csv')"
    source = source_for(load_audience(team, {"sql": query, "database": ":memory:"}))

    with pytest.raises(SourceError) as refused:
        source.read("email")

    message = str(refused.value)
    assert "Permission Error" in message
    assert (
        "'../../data/x.csv' is looked for from the working directory first, where it leads "
        "out of the repository" in message
    )
    assert "write it as 'manifests/data/x.csv'" in message

    # Written so, it reads the file.
    fixed = "SELECT email FROM read_csv('manifests/data/x.csv')"
    source = source_for(load_audience(team, {"sql": fixed, "database": ":memory:"}))
    assert sorted(source.read("email").members) == ["a@example.com"]


def test_a_query_run_from_below_the_repositorys_top_is_told_where_its_path_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spelling the message above gives (`manifests/data/x.csv`, from the repository's
    top, where CI and pre-commit run) found nothing when validate ran where the manifests
    are (`cd manifests && reconciler validate .`): DuckDB's 'No files found that match the
    pattern' alone, for a file that is there."""
    data = tmp_path / "manifests" / "data"
    data.mkdir(parents=True)
    (data / "x.csv").write_text("email\na@example.com\n", encoding="utf-8")
    team = tmp_path / "manifests" / "teams" / "growth"
    team.mkdir(parents=True)
    query = "SELECT email FROM read_csv('manifests/data/x.csv')"
    monkeypatch.chdir(tmp_path / "manifests")
    source = source_for(load_audience(team, {"sql": query, "database": ":memory:"}))

    with pytest.raises(SourceError) as refused:
        source.read("email")

    first = str(refused.value).split("\n")[0]
    assert "No files found that match the pattern" in first
    assert first.endswith(
        " ('manifests/data/x.csv' is looked for from the working directory and beside the "
        f"manifest; from the repository's top {tmp_path.resolve()} it names a file: run "
        "reconciler there, as CI and pre-commit do)"
    ), first

    monkeypatch.chdir(tmp_path)  # from there, it reads the file
    source = source_for(load_audience(team, {"sql": query, "database": ":memory:"}))
    assert sorted(source.read("email").members) == ["a@example.com"]


@pytest.mark.parametrize(
    ("pattern", "run_in"),
    [
        ("../../data/*.csv", "."),
        ("manifests/data/*.csv", "."),
        ("manifests/data/*.csv", "manifests"),  # validate . where the manifests are
        ("data/*.csv", "manifests"),
    ],
)
def test_a_pattern_out_of_the_manifests_directory_is_told_what_reaches_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pattern: str, run_in: str
) -> None:
    """A pattern (a Spark job's part files, a folder of daily exports) shared by teams'
    manifests in nested directories: refused as `../../data/*.csv`, the advice was to
    write it 'manifests/data/*.csv', from the working directory, which found nothing
    ('No files found'), since DuckDB matches a pattern beside the manifest only; no
    spelling of a pattern reaches above the manifest's directory from the top, so the
    advice now says so and names the files to list instead."""
    data = tmp_path / "manifests" / "data"
    data.mkdir(parents=True)
    for name in ("a", "b", "c"):
        (data / f"{name}.csv").write_text(f"email\n{name}@example.com\n", encoding="utf-8")
    team = tmp_path / "manifests" / "teams" / "growth"
    team.mkdir(parents=True)
    query = f"SELECT email FROM read_csv('{pattern}')"
    monkeypatch.chdir(tmp_path / run_in)
    source = source_for(load_audience(team, {"sql": query, "database": ":memory:"}))

    with pytest.raises(SourceError) as refused:
        source.read("email")

    first = str(refused.value).split("\n")[0]
    assert "write it as" not in first
    assert first.endswith(
        "DuckDB matches a pattern (*, ?, [) only from the manifest's directory "
        f"{os.path.relpath(team)}, never from the working directory, so it reaches only "
        "files below that directory: keep the files there, or name them one by one from "
        "the repository's top, in a list: ['manifests/data/a.csv', 'manifests/data/b.csv', "
        "...])"
    ), first

    # As it says: the files named one by one are read, from the top.
    monkeypatch.chdir(tmp_path)
    listed = "SELECT email FROM read_csv(['manifests/data/a.csv', 'manifests/data/b.csv'])"
    source = source_for(load_audience(team, {"sql": listed, "database": ":memory:"}))
    assert sorted(source.read("email").members) == ["a@example.com", "b@example.com"]


def test_a_path_found_nowhere_gets_no_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    monkeypatch.chdir(manifests)
    for path in ("manifests/data/gone.csv", "manifests/data/*.csv", "../../etc/*"):
        query = f"SELECT email FROM read_csv('{path}')"
        source = source_for(load_audience(manifests, {"sql": query, "database": ":memory:"}))
        with pytest.raises(SourceError) as refused:
            source.read("email")
        first = str(refused.value).split("\n")[0]
        assert "DuckDB matches a pattern" not in first and "names a file" not in first, first


@pytest.mark.parametrize(
    ("options", "guessed"), [("", True), (", types={'age': 'INTEGER'}", False)]
)
def test_a_csv_type_error_says_its_reason_without_duckdbs_advice(
    tmp_path: Path, options: str, guessed: bool
) -> None:
    """A read_csv value that does not fit its column's type printed about 25 lines: DuckDB's
    "Possible solutions" (a COPY statement, which a manifest's query cannot run) and a dump
    of the reader's options. Now the CSV line and file, the quoted line (masked in output),
    the reason, and what the query can change."""
    # Past DuckDB's sample (20,480 rows), where its guess of the type is made.
    rows = [f"m{i}@example.com,{i}" for i in range(30_000)]
    (tmp_path / "people.csv").write_text(
        "\n".join(["email,age", *rows, "z@example.com,notanumber"]) + "\n", encoding="utf-8"
    )
    query = f"SELECT email FROM read_csv('people.csv'{options}) WHERE age > 0"
    source = source_for(load_audience(tmp_path, {"sql": query, "database": ":memory:"}))

    with pytest.raises(SourceError) as refused:
        source.read("email")

    message = str(refused.value)
    first, quoted, reason = message.split("\n")
    assert first.endswith("CSV Error on Line: 30002 of people.csv"), first
    assert quoted.startswith("Original Line: ")  # masked in output, shown with --show-members
    assert reason.startswith('Error when converting column "age"')
    assert "types={'age': 'VARCHAR'}" in message
    assert ("sample_size=-1" in message) is guessed
    for advice in ("Possible", "COPY", "ignore_errors", "delimiter ="):
        assert advice not in message
    masked = mask_emails(message)
    assert "notanumber" not in masked and "z@example.com" not in masked, masked


def test_the_advice_names_no_file_a_query_may_not_read(tmp_path: Path) -> None:
    """The files a pattern's advice lists are only those a query may read: in a git work
    tree not one at the top that git does not track (a CI step's gha-creds-*.json)."""
    shutil.rmtree(tmp_path / ".git")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "gha-creds-1234.json").write_text("{}", encoding="utf-8")
    (tmp_path / "manifests" / "teams").mkdir(parents=True)
    (tmp_path / "manifests" / "teams" / "x.yaml").write_text("", encoding="utf-8")
    subprocess.run(["git", "-C", str(tmp_path), "add", "manifests"], check=True)
    team = tmp_path / "manifests" / "teams"
    for pattern in ("gha-creds-*.json", "../../gha-creds-*.json"):
        query = f"SELECT * FROM read_json('{pattern}')"
        source = source_for(load_audience(team, {"sql": query, "database": ":memory:"}))
        with pytest.raises(SourceError) as refused:
            source.read("email")
        assert "gha-creds-1234" not in str(refused.value), str(refused.value)


def test_a_snapshot_names_its_file_in_a_message_whose_values_stay_marked(tmp_path: Path) -> None:
    """A query's error over a file it read is put back in the file's name from its
    snapshot's (Snapshot.shown) after query_error marked the values it quotes: taking the
    marks out there, as text from outside has them taken out, would show the value whole."""
    from reconciler.render.masking import source_value
    from reconciler.sources.snapshot import Snapshot

    copy = tmp_path / "copy-of-people.csv"
    copy.write_text("email\n", encoding="utf-8")
    snapshot = Snapshot(tmp_path / "people.csv", copy, copy.stat().st_size)
    said = f"{copy}: Invalid Input Error: {source_value('SECRETTIER99')}"
    shown = mask_emails(snapshot.shown(said))
    assert "SECRETTIER99" not in shown and "S***" in shown, shown
    assert str(tmp_path / "people.csv") in shown and "copy-of" not in shown
