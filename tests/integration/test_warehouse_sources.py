"""Parquet, DuckDB and PostgreSQL member sources through the real CLI, against the emulator."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.integration.conftest import Workspace
from tests.integration.test_plan_apply import list_id, project, writes
from tests.postgres import Postgres
from tests.sources import line_of, write_duckdb, write_parquet


def _plan_sending(cli, workspace: Workspace):
    """`plan --format json` of the workspace, and every SQL statement SQLAlchemy sent the
    warehouse meanwhile (how many times a shared query was run)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        sent.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        result = cli("plan", workspace.manifests, "--format", "json")
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    return result, sent


PASSWORD_VAR = "RECONCILER_TEST_WAREHOUSE_PASSWORD"


@pytest.fixture(autouse=True, params=["python", "duckdb"])
def engine(request, monkeypatch) -> str:
    """Every test twice: as small audiences are planned, and as large ones are (issue 6:
    the query runs in DuckDB or PostgreSQL, its rows are checked and diffed in DuckDB)."""
    monkeypatch.setenv("RECONCILER_ENGINE", request.param)
    return request.param


def members_of(emulator_server, name: str) -> list[str]:
    return sorted(project(emulator_server).members(list_id(emulator_server, name)))


def test_parquet_and_duckdb_audiences_apply_then_plan_nothing(
    workspace: Workspace, cli, emulator_server
) -> None:
    write_parquet(
        workspace.manifests / "data" / "vip.parquet",
        "SELECT 'vip' || i || '@example.com' AS email, 'gold' AS plan FROM range(1500) t(i)",
    )
    workspace.audience("vip", {"parquet": "data/vip.parquet"})
    write_duckdb(
        workspace.manifests / "data" / "crm.duckdb",
        "CREATE TABLE customers (id INTEGER, email VARCHAR, churn DOUBLE)",
        "INSERT INTO customers VALUES (1, 'a@example.com', 0.9), (2, 'b@example.com', 0.1), "
        "(3, 'c@example.com', 0.7)",
    )
    workspace.audience(
        "churn",
        {
            "sql": "SELECT id AS userId, email FROM customers WHERE churn > 0.5",
            "database": "data/crm.duckdb",
        },
    )
    (workspace.manifests / "data" / "trial.csv").write_text(
        "email,days\nt1@example.com,3\nt2@example.com,30\n"
    )
    workspace.audience(
        "trial",
        {
            "sql": "SELECT email FROM read_csv('data/trial.csv') WHERE days < 14",
            "database": ":memory:",
        },
    )

    first = cli("apply", workspace.manifests, "--yes")
    assert first.exit_code == 0, first.output
    assert len(members_of(emulator_server, "vip")) == 1500
    assert members_of(emulator_server, "churn") == ["a@example.com", "c@example.com"]
    assert project(emulator_server).find_user(email="c@example.com").user_id == "3"
    assert members_of(emulator_server, "trial") == ["t1@example.com"]

    emulator_server.emulator.clear_log()
    second = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert second.exit_code == 0, second.output
    assert "No changes" in second.stdout
    assert writes(emulator_server) == []


def test_a_float32_column_is_sent_as_the_number_it_names_not_widened(
    workspace: Workspace, cli, emulator_server
) -> None:
    # A DuckDB REAL or a Parquet float32 (pandas' float32, Spark's FloatType) reached
    # Python widened to a double: 19.99 was sent as 19.989999771118164, which no segment
    # on 19.99 matches; PostgreSQL's driver gives a real as 19.99.
    rows = "SELECT 'pq@example.com' AS email, 19.99::FLOAT AS price"
    write_parquet(workspace.manifests / "data" / "prices.parquet", rows)
    workspace.audience("pq", {"parquet": "data/prices.parquet"}, traits="prices")
    query = "SELECT 'duck@example.com' AS email, 19.99::REAL AS price"
    workspace.audience("duck", {"sql": query, "database": ":memory:"}, traits="prices")
    workspace.write(
        "traits.yaml",
        '{"apiVersion": "reconciler/v1", "kind": "TraitMapping", "metadata": {"name": "prices"}, '
        '"spec": {"fields": {"price": "price", "cents": {"from": "price", "type": "number"}}}}',
    )

    applied = cli("apply", workspace.manifests, "--yes")

    assert applied.exit_code == 0, applied.output
    for email in ("pq@example.com", "duck@example.com"):
        fields = project(emulator_server).find_user(email=email).data_fields
        assert fields == {"price": 19.99, "cents": 19.99}
    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output


def test_invalid_rows_are_reported_with_their_location(
    workspace: Workspace, cli, emulator_server
) -> None:
    parquet = write_parquet(
        workspace.manifests / "p.parquet",
        "SELECT * FROM (VALUES ('ok@example.com'), ('broken@@example.com')) t(email)",
    )
    workspace.audience("p", {"parquet": "p.parquet"})
    workspace.audience(
        "q",
        {
            "sql": "SELECT * FROM (VALUES ('fine@example.com'), ('nope')) t(email)",
            "database": ":memory:",
        },
    )
    sql_line = line_of(workspace.manifests / "aud-q.yaml", '"sql"')

    result = cli("apply", workspace.manifests, "--yes")

    assert result.exit_code == 1, result.output  # valid members applied, invalid reported
    assert f"{parquet.relative_to(workspace.root)}:row 2: invalid email" in result.output
    assert f"aud-q.yaml:{sql_line}:14: query row 2: invalid email" in result.output
    assert "broken@@example.com" not in result.output  # masked by default
    assert members_of(emulator_server, "p") == ["ok@example.com"]
    assert members_of(emulator_server, "q") == ["fine@example.com"]


def test_a_header_row_loaded_as_data_is_no_member_of_a_parquet_file_or_a_query(
    workspace: Workspace, cli, emulator_server
) -> None:
    # A nightly job joined two CSV exports and converted them to Parquet (every column
    # text): the second header row sat among the members. A CSV's repeated header is
    # skipped, but in a Parquet file, a query over it renaming `user_id AS userId`, and a
    # database table loaded from it, the userId `user_id` was planned as a member: a
    # profile nobody has, created and subscribed by apply.
    joined = workspace.manifests / "data" / "joined.csv"
    joined.parent.mkdir(parents=True)
    joined.write_text("user_id,plan\nu1,pro\nuser_id,plan\nu2,free\n")
    write_parquet(
        workspace.manifests / "data" / "nightly.parquet",
        f"SELECT * FROM read_csv('{joined}', all_varchar = true)",
    )
    workspace.audience("nightly", {"parquet": "data/nightly.parquet", "userId": "user_id"})
    workspace.audience(
        "renamed",
        {
            "sql": "SELECT user_id AS userId, plan FROM read_parquet('data/nightly.parquet')",
            "database": ":memory:",
        },
    )
    import sqlite3

    with sqlite3.connect(workspace.manifests / "data" / "crm.db") as connection:
        connection.execute("CREATE TABLE loaded (USER_ID TEXT, plan TEXT)")
        connection.executemany(
            "INSERT INTO loaded VALUES (?, ?)",
            [("u1", "pro"), (" User-Id", "plan"), ("u2", "free")],
        )
    connection.close()
    workspace.audience(
        "loaded",
        {"sql": "SELECT USER_ID AS userId FROM loaded", "url": "sqlite:///manifests/data/crm.db"},
    )

    result = cli("plan", workspace.manifests, "--format", "json")

    assert result.exit_code == 1, result.output  # the skipped rows, named
    (dest,) = result.json()["destinations"]
    added = {
        item["audience"]: [c["count"] for c in item["changes"] if c["type"] == "add_members"]
        for item in dest["lists"]
    }
    assert added == {"nightly": [2], "renamed": [2], "loaded": [2]}
    reason = "this row repeats the header row (were two exports joined into one file?): remove it"
    skipped = sorted(
        (s["audience"], s["where"].rsplit(": ", 1)[-1], s["reason"])
        for s in dest["skipped_members"]
    )
    assert skipped == [
        ("loaded", "query row 2", reason),
        ("nightly", "manifests/data/nightly.parquet:row 2", reason),
        ("renamed", "query row 2", reason),
    ]


def test_numeric_user_ids_are_their_integer_text_in_every_duckdb_source(
    workspace: Workspace, cli, emulator_server
) -> None:
    # A DECIMAL(20,10) 123 was the userId `123.0000000000`, a DOUBLE 1 (pandas writes
    # float64 ids when some are NULL) `1.0`, a DOUBLE 2**53 `9007199254740992.0`: each
    # matched nobody in Iterable, and every apply made the members second profiles.
    write_parquet(
        workspace.manifests / "data" / "ids.parquet",
        "SELECT 'p' || i || '@example.com' AS email, "
        "CASE WHEN i > 0 THEN i::DOUBLE END AS userId FROM range(3) t(i)",
    )
    workspace.audience("pandas", {"parquet": "data/ids.parquet"})
    workspace.audience(
        "numeric",
        {
            "sql": "SELECT * FROM (VALUES ('d@example.com', 123::DECIMAL(20,10)), "
            "('e@example.com', -7::DECIMAL(20,10))) t(email, userId)",
            "database": ":memory:",
        },
    )
    workspace.audience(
        "big",
        {
            "sql": "SELECT 'f@example.com' AS email, 2::DOUBLE ^ 53 AS userId",
            "database": ":memory:",
        },
    )

    first = cli("apply", workspace.manifests, "--yes")

    assert first.exit_code == 0, first.output
    found = {
        email: project(emulator_server).find_user(email=email).user_id
        for email in ("p1@example.com", "p2@example.com", "d@example.com", "e@example.com")
    }
    assert found == {
        "p1@example.com": "1",
        "p2@example.com": "2",
        "d@example.com": "123",
        "e@example.com": "-7",
    }
    # The largest a double holds every whole number up to; past it, digits may be lost.
    assert project(emulator_server).find_user(email="f@example.com").user_id == ("9007199254740992")
    assert members_of(emulator_server, "pandas") == [f"p{i}@example.com" for i in range(3)]
    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output


# Identifier columns of a DuckDB source that make no identifier, and how they are named.
REFUSED_CELLS = {
    "1.5::DOUBLE": "is DOUBLE and holds a value that is not a whole number (or one past 2^53",
    "1e16::DOUBLE": "is DOUBLE and holds a value that is not a whole number (or one past 2^53",
    "'nan'::DOUBLE": "is DOUBLE and holds a value that is not a whole number",
    "123.5::DECIMAL(20,10)": "is DECIMAL(20,10) and holds a value that is not a whole number:",
    "true": "is BOOLEAN, which is no identifier Iterable could match",
    "DATE '2024-01-02'": "is DATE, which is no identifier",
    "TIMESTAMP '2024-01-02 03:04:05'": "is TIMESTAMP, which is no identifier",
    "INTERVAL 2 DAYS": "is INTERVAL, which is no identifier",
    "[1, 2]": "is INTEGER[], which is no identifier",
    "{'id': 1}": "is STRUCT(id INTEGER), which is no identifier",
    "'\\xFF'::BLOB": "is BLOB holding bytes that are not UTF-8, which is no identifier",
}


def test_an_identifier_column_of_no_identifier_type_fails_its_audience_naming_it(
    workspace: Workspace, cli, emulator_server
) -> None:
    # A BOOLEAN userId made every row the member `true` (Python's engine: `True`), a
    # timestamp or a list its text, a DOUBLE 1.5 `1.5`: none is an identifier Iterable
    # has, and each was subscribed as a new profile without a word.
    for n, cell in enumerate(REFUSED_CELLS):
        workspace.audience(
            f"q{n}",
            {
                "sql": f"SELECT email, {cell} AS uid FROM (VALUES ('a@example.com')) t(email)",
                "database": ":memory:",
                "userId": "uid",
            },
        )
        write_parquet(
            workspace.manifests / "data" / f"p{n}.parquet",
            f"SELECT 'b@example.com' AS email, {cell} AS userId",
        )
        workspace.audience(f"p{n}", {"parquet": f"data/p{n}.parquet"})

    result = cli("plan", workspace.manifests)

    assert result.exit_code == 1, result.output
    assert "internal error" not in result.output
    for n, said in enumerate(REFUSED_CELLS.values()):
        sql_line = line_of(workspace.manifests / f"aud-q{n}.yaml", '"sql"')
        query = f"aud-q{n}.yaml:{sql_line}:14: the query: column 'uid' (the userId) {said}"
        assert query in result.stderr, query
        parquet_line = line_of(workspace.manifests / f"aud-p{n}.yaml", '"parquet"')
        assert f"aud-p{n}.yaml:{parquet_line}:18: Parquet file " in result.stderr
        assert f"p{n}.parquet: column 'userId' (the userId) {said}" in result.stderr, said


# How the columns of a query that names none are listed, and what is asked for.
UNNAMED = (
    "(a column the query leaves unnamed gets a name the database makes, such as PostgreSQL's "
    "?column? or DuckDB's text of the expression: name the identifier columns in the query, "
    "`AS email` and `AS userId`)"
)


def test_a_query_column_left_unnamed_is_named_as_such_not_as_a_missing_header_row(
    workspace: Workspace, cli
) -> None:
    # `SELECT 'a@x.com'` has no header row to lack, yet the message asked whether "the
    # source" lacked one.
    workspace.audience(
        "literal",
        {"sql": "SELECT lower(email) FROM (VALUES ('A@x.com')) t(email)", "database": ":memory:"},
    )
    sql_line = line_of(workspace.manifests / "aud-literal.yaml", '"sql"')
    # So does the column a trait mapping reads.
    workspace.audience(
        "mapped",
        {"sql": "SELECT 'a@example.com' AS email, upper('gold')", "database": ":memory:"},
        traits="tiers",
    )
    workspace.write(
        "traits.yaml",
        '{"apiVersion": "reconciler/v1", "kind": "TraitMapping", "metadata": {"name": "tiers"}, '
        '"spec": {"fields": {"plan": "tier"}}}',
    )

    result = cli("plan", workspace.manifests, "--show-members")

    assert result.exit_code == 1, result.output
    assert (
        f"aud-literal.yaml:{sql_line}:14: the query has neither an 'email' nor a 'userId' "
        f"column; columns are: lower(email) {UNNAMED}"
    ) in result.stderr
    assert (
        "upper('gold'), email, userId (a column the query leaves unnamed gets a name the "
        "database makes, such as PostgreSQL's ?column? or DuckDB's text of the expression: "
        "name the columns the mapping reads in the query: `AS tier`)"
    ) in result.stderr
    assert "header row" not in result.stderr


# --- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture
def crm(postgres: Postgres, monkeypatch: pytest.MonkeyPatch) -> Postgres:
    postgres.execute("CREATE TABLE users (user_id TEXT, email TEXT, active BOOLEAN)")
    postgres.execute(
        "INSERT INTO users VALUES (%s, %s, %s)",
        [(f"usr-{i}", f"pg{i}@example.com", i % 3 != 0) for i in range(1200)],
    )
    monkeypatch.setenv(PASSWORD_VAR, postgres.password)
    return postgres


def pg_audience(workspace: Workspace, db: Postgres) -> None:
    workspace.audience(
        "active",
        {
            "sql": f"SELECT user_id AS userId, email FROM {db.schema}.users WHERE active",
            "url": db.url_template(PASSWORD_VAR),
        },
    )


def test_postgres_audience_applies_then_plans_nothing_and_never_shows_the_password(
    workspace: Workspace, cli, emulator_server, crm: Postgres
) -> None:
    pg_audience(workspace, crm)

    first = cli("apply", workspace.manifests, "--yes")
    assert first.exit_code == 0, first.output
    expected = sorted(f"usr-{i}" for i in range(1200) if i % 3 != 0)
    proj = project(emulator_server)
    assert members_of(emulator_server, "active") == sorted(
        proj.find_user(user_id=u).email for u in expected
    )

    second = cli("plan", workspace.manifests, "--detailed-exitcode", "--format", "json")
    assert second.exit_code == 0, second.output
    assert second.json()["summary"]["members_to_add"] == 0
    for result in (first, second):
        assert crm.password not in result.output


def test_postgres_wrong_password_and_missing_variable_are_clear_errors(
    workspace: Workspace, cli, crm: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg_audience(workspace, crm)
    wrong = "not-the-Password-9f8e7d"
    monkeypatch.setenv(PASSWORD_VAR, wrong)
    result = cli("plan", workspace.manifests)
    assert result.exit_code == 1
    assert "password authentication failed" in result.stderr
    assert wrong not in result.output

    monkeypatch.delenv(PASSWORD_VAR)
    result = cli("validate", workspace.manifests)
    assert result.exit_code == 1
    assert f"environment variable {PASSWORD_VAR} is not set" in result.stderr


def test_dates_python_cannot_hold_fail_only_their_own_field_values(
    workspace: Workspace, cli, emulator_server, postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `infinity` ("valid until further notice"), a year past 9999 and a year BC are
    # PostgreSQL dates that Python's are not; psycopg's error on one of them ended the
    # whole query, so the audience failed, mapped or not.
    postgres.execute("CREATE TABLE plans (email TEXT, renews DATE, seen TIMESTAMPTZ)")
    postgres.execute(
        "INSERT INTO plans VALUES (%s, %s::date, %s::timestamptz)",
        [
            ("a@example.com", "2025-07-01", "2025-01-02 03:04:05+00"),
            ("b@example.com", "infinity", "-infinity"),
            ("c@example.com", "10000-01-01", "2025-01-02 03:04:05+00"),
            ("d@example.com", "0044-03-15 BC", None),
        ],
    )
    monkeypatch.setenv(PASSWORD_VAR, postgres.password)
    url = postgres.url_template(PASSWORD_VAR)
    workspace.audience("everyone", {"sql": f"SELECT * FROM {postgres.schema}.plans", "url": url})
    workspace.audience(
        "renewals",
        {"sql": f"SELECT email, renews, seen FROM {postgres.schema}.plans", "url": url},
        traits="dates",
    )
    mapping = {
        "renewsOn": {"from": "renews", "type": "date"},
        "seenAt": {"from": "seen", "type": "date"},
    }
    workspace.write(
        "traits.yaml",
        '{"apiVersion": "reconciler/v1", "kind": "TraitMapping", "metadata": {"name": "dates"}, '
        f'"spec": {{"fields": {json.dumps(mapping)}}}}}',
    )
    sql_line = line_of(workspace.manifests / "aud-renewals.yaml", '"sql"')

    result = cli("apply", workspace.manifests, "--yes", "--show-members")

    assert result.exit_code == 1, result.output  # the values it could not make
    emails = ["a@example.com", "b@example.com", "c@example.com", "d@example.com"]
    assert members_of(emulator_server, "everyone") == emails
    assert members_of(emulator_server, "renewals") == emails
    for row, column, value in [
        (2, "renews", "infinity"),
        (2, "seen", "-infinity"),
        (3, "renews", "10000-01-01"),
        (4, "renews", "0044-03-15 BC"),
    ]:
        field = "renewsOn" if column == "renews" else "seenAt"
        assert (
            f"aud-renewals.yaml:{sql_line}:14: query row {row}: field {field!r} "
            f"(column {column!r}): {value!r} is not a date"
        ) in result.output
    fields = project(emulator_server).find_user(email="a@example.com").data_fields
    assert fields == {
        "renewsOn": "2025-07-01",
        "seenAt": "2025-01-02 03:04:05 +00:00",
    }
    assert project(emulator_server).find_user(email="b@example.com").data_fields == {}


def test_a_forced_engine_runs_a_postgres_query_once(
    workspace: Workspace,
    cli,
    crm: Postgres,
    monkeypatch: pytest.MonkeyPatch,
    engine: str,
) -> None:
    """The README: set RECONCILER_ENGINE to skip the count(*), a second run of a query
    the warehouse may take minutes over; only choosing the engine by size needs it."""
    from reconciler.sources.warehouse import Warehouse

    counts: list[str] = []
    count_rows = Warehouse.estimate_rows

    def counted(source: Warehouse) -> int | None:
        counts.append(source.audience.name)
        return count_rows(source)

    monkeypatch.setattr(Warehouse, "estimate_rows", counted)
    pg_audience(workspace, crm)

    assert cli("plan", workspace.manifests).exit_code == 0
    assert counts == []

    monkeypatch.setenv("RECONCILER_ENGINE", "auto")
    assert cli("plan", workspace.manifests).exit_code == 0
    assert counts == ["active"]  # once, for the engine and the read route both


def test_a_saved_plan_holds_the_values_it_sends_not_the_source_rows(
    workspace: Workspace, cli, emulator_server, postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Python engine wrote each added member's whole source row into the plan file:
    # an interval, bytea or numeric[] column (which JSON cannot hold) made `plan --out`
    # an internal error, and columns no mapping names went to the file too.
    postgres.execute(
        "CREATE TABLE people (email TEXT, nick TEXT, waited INTERVAL, photo BYTEA, "
        "scores NUMERIC[], notes TEXT)"
    )
    postgres.execute(
        "INSERT INTO people VALUES (%s, %s, %s::interval, %s, %s::numeric[], %s)",
        [
            ("a@example.com", "ann", "2 days", b"\x89PNG", "{1.5,2}", "unmapped-note-71"),
            ("b@example.com", "bob", None, None, None, None),
        ],
    )
    monkeypatch.setenv(PASSWORD_VAR, postgres.password)
    url = postgres.url_template(PASSWORD_VAR)
    workspace.audience(
        "people", {"sql": f"SELECT * FROM {postgres.schema}.people", "url": url}, traits="crm"
    )
    workspace.write(
        "traits.yaml",
        '{"apiVersion": "reconciler/v1", "kind": "TraitMapping", "metadata": {"name": "crm"}, '
        '"spec": {"fields": {"nickname": "nick"}}}',
    )
    saved = workspace.root / "plan.json.gz"

    planned = cli("plan", workspace.manifests, "--out", saved)
    assert planned.exit_code == 0, planned.output
    assert b"unmapped-note-71" not in gzip.decompress(saved.read_bytes())
    applied = cli("apply", "--plan", saved, "--yes")
    assert applied.exit_code == 0, applied.output

    assert members_of(emulator_server, "people") == ["a@example.com", "b@example.com"]
    user = project(emulator_server).find_user(email="a@example.com")
    assert user.data_fields == {"nickname": "ann"}


def test_a_postgres_read_shows_its_rows_as_they_arrive(
    workspace: Workspace, cli, crm: Postgres, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    # A warehouse query streams for minutes or hours; its progress line said "started"
    # and then nothing until the last row, as if the plan hung.
    from reconciler.sources import warehouse

    monkeypatch.setattr(warehouse, "CHUNK_ROWS", 300)
    monkeypatch.setenv("RECONCILER_PROGRESS_INTERVAL", "0")  # a line at every advance
    pg_audience(workspace, crm)

    result = cli("plan", workspace.manifests)

    assert result.exit_code == 0, result.output
    reading = "reading audience 'active'" + (" into DuckDB" if engine == "duckdb" else "")
    lines = [line for line in result.stderr.splitlines() if line.startswith(reading)]
    assert any(line.startswith(f"{reading}: 300 rows") for line in lines), lines
    assert any(line.startswith(f"{reading}: 600 rows") for line in lines), lines
    assert lines[-1].startswith(f"{reading}: finished, 800 rows"), lines


def test_postgres_numeric_user_ids_are_integer_text_and_other_types_are_refused(
    workspace: Workspace, cli, emulator_server, postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    # numeric(20,10) 123 was the userId `123.0000000000` and a double 1 `1.0` in both
    # engines (Python's str()); a boolean `True`, a bytea `<memory at 0x7f...>` or `b'..'`.
    postgres.execute(
        "CREATE TABLE ids (email TEXT, n NUMERIC(20,10), d DOUBLE PRECISION, raw BYTEA, "
        "flag BOOLEAN, seen TIMESTAMPTZ, half NUMERIC, tags TEXT[], big DOUBLE PRECISION)"
    )
    postgres.execute(
        "INSERT INTO ids VALUES (%s, %s, %s, %s, %s, now(), %s, %s, %s)",
        [
            ("a@example.com", 123, 1.0, b"raw-1", True, 1.5, ["x"], 1e16),
            ("b@example.com", None, None, None, None, None, None, None),
        ],
    )
    monkeypatch.setenv(PASSWORD_VAR, postgres.password)
    url = postgres.url_template(PASSWORD_VAR)
    table = f"{postgres.schema}.ids"
    for name, column in [("numeric", "n"), ("double", "d"), ("bytes", "raw")]:
        # One profile per audience: the same email with three userIds would be a conflict.
        query = f"SELECT '{name}-' || email AS email, {column} AS userid FROM {table}"
        workspace.audience(name, {"sql": query, "url": url})
    applied = cli("apply", workspace.manifests, "--yes")

    assert applied.exit_code == 0, applied.output
    proj = project(emulator_server)
    for name, user_id in [("numeric", "123"), ("double", "1"), ("bytes", "raw-1")]:
        emails = [f"{name}-a@example.com", f"{name}-b@example.com"]
        assert members_of(emulator_server, name) == emails
        assert proj.find_user(user_id=user_id).email == emails[0]

    refused = {
        "flag": "is boolean, which is no identifier Iterable could match",
        "seen": "is a timestamp, which is no identifier",
        "half": "is numeric (decimal) and holds a value that is not a whole number: a whole",
        "tags": "is an array, which is no identifier",
        "big": "is floating point and holds a value that is not a whole number (or one past",
    }
    for column in refused:
        query = f"SELECT email, {column} AS userid FROM {table} ORDER BY email"
        workspace.audience(f"bad-{column}", {"sql": query, "url": url})

    result = cli("plan", workspace.manifests)

    assert result.exit_code == 1, result.output
    for column, said in refused.items():
        sql_line = line_of(workspace.manifests / f"aud-bad-{column}.yaml", '"sql"')
        assert (
            f"aud-bad-{column}.yaml:{sql_line}:14: the query: column 'userid' (the userId) {said}"
        ) in result.stderr


def test_postgres_char_columns_are_their_values_without_the_padding(
    workspace: Workspace, cli, emulator_server, postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A char(n) value arrived padded to n characters, which PostgreSQL itself ignores
    # ('usr-1'::char(10) = 'usr-1'): every userId of a CHAR(10) column was skipped as
    # ending in a space, and a char(6) tier was sent as 'gold  ', which no segment on
    # 'gold' matches.
    postgres.execute(
        "CREATE TABLE legacy (email TEXT, user_id CHAR(10), tier CHAR(6), codes CHAR(4)[])"
    )
    postgres.execute(
        "INSERT INTO legacy VALUES (%s, %s, %s, %s)",
        [("a@example.com", "usr-1", "gold", ["ab", "c"]), ("b@example.com", "usr-2", None, None)],
    )
    monkeypatch.setenv(PASSWORD_VAR, postgres.password)
    url = postgres.url_template(PASSWORD_VAR)
    query = f"SELECT email, user_id AS userId, tier, codes FROM {postgres.schema}.legacy"
    workspace.audience("legacy", {"sql": query, "url": url}, traits="tiers")
    workspace.write(
        "traits.yaml",
        '{"apiVersion": "reconciler/v1", "kind": "TraitMapping", "metadata": {"name": "tiers"}, '
        '"spec": {"fields": {"tier": "tier", "codes": "codes"}}}',
    )

    applied = cli("apply", workspace.manifests, "--yes")

    assert applied.exit_code == 0, applied.output
    proj = project(emulator_server)
    assert members_of(emulator_server, "legacy") == ["a@example.com", "b@example.com"]
    assert proj.find_user(user_id="usr-1").email == "a@example.com"
    assert proj.find_user(user_id="usr-1").data_fields == {"tier": "gold", "codes": ["ab", "c"]}
    assert proj.find_user(user_id="usr-2").email == "b@example.com"
    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output


def test_postgres_arrays_of_enums_and_domains_are_lists(
    workspace: Workspace, cli, emulator_server, postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    # psycopg knows only PostgreSQL's own array types: an enum[] or a domain's array came
    # as the text '{sports,music}', sent as one string (typing a new field as text for
    # good), refused by `type: list` as no JSON, and taken as an id by an identifier column.
    postgres.execute("CREATE TYPE interest AS ENUM ('sports', 'music', 'travel')")
    postgres.execute("CREATE DOMAIN score AS integer CHECK (VALUE >= 0)")
    postgres.execute("CREATE TABLE fans (email TEXT, interests interest[], scores score[])")
    postgres.execute(
        "INSERT INTO fans VALUES (%s, %s::interest[], %s::score[])",
        [("a@example.com", "{sports,music}", "{3,5}"), ("b@example.com", None, None)],
    )
    monkeypatch.setenv(PASSWORD_VAR, postgres.password)
    url = postgres.url_template(PASSWORD_VAR)
    table = f"{postgres.schema}.fans"
    workspace.audience("fans", {"sql": f"SELECT * FROM {table}", "url": url}, traits="likes")
    workspace.write(
        "traits.yaml",
        '{"apiVersion": "reconciler/v1", "kind": "TraitMapping", "metadata": {"name": "likes"}, '
        '"spec": {"fields": {"interests": "interests", "scores": "scores", '
        '"tags": {"from": "interests", "type": "list"}}}}',
    )

    applied = cli("apply", workspace.manifests, "--yes")

    assert applied.exit_code == 0, applied.output
    assert members_of(emulator_server, "fans") == ["a@example.com", "b@example.com"]
    assert project(emulator_server).find_user(email="a@example.com").data_fields == {
        "interests": ["sports", "music"],
        "scores": [3, 5],
        "tags": ["sports", "music"],
    }
    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output

    workspace.audience(
        "ids", {"sql": f"SELECT email, interests AS userId FROM {table}", "url": url}
    )
    refused = cli("plan", workspace.manifests)
    assert refused.exit_code == 1, refused.output
    assert "column 'userid' (the userId) is an array, which is no identifier" in refused.stderr


def test_a_mapped_column_a_query_names_twice_fails_its_audience_in_postgres_and_duckdb(
    workspace: Workspace, cli, emulator_server, postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `SELECT u.*, s.*` or two `plan` columns: the row was read by name, and the last
    # column's values were sent without a word (the other's plan lost), as a CSV header
    # naming a column twice no longer is.
    monkeypatch.setenv(PASSWORD_VAR, postgres.password)
    url = postgres.url_template(PASSWORD_VAR)
    twice = "'x' AS plan, 'y' AS plan, 'a' AS note, 'b' AS note"
    workspace.audience(
        "pg", {"sql": f"SELECT 'pg@example.com' AS email, {twice}", "url": url}, traits="tiers"
    )
    workspace.audience(
        "duck",
        {"sql": f"SELECT 'duck@example.com' AS email, {twice}", "database": ":memory:"},
        traits="tiers",
    )
    # A column named twice that the mapping does not read is no matter.
    workspace.audience(
        "fine",
        {"sql": f"SELECT 'fine@example.com' AS email, 'z' AS tier, {twice}", "url": url},
        traits="tiers",
    )
    workspace.write(
        "traits.yaml",
        '{"apiVersion": "reconciler/v1", "kind": "TraitMapping", "metadata": {"name": "tiers"}, '
        '"spec": {"fields": {"plan": "plan"}}}',
    )
    workspace.write(
        "traits-fine.yaml",
        '{"apiVersion": "reconciler/v1", "kind": "TraitMapping", "metadata": {"name": "tier"}, '
        '"spec": {"fields": {"tier": "tier"}}}',
    )
    fine = (workspace.manifests / "aud-fine.yaml").read_text().replace('"tiers"', '"tier"')
    (workspace.manifests / "aud-fine.yaml").write_text(fine)

    result = cli("plan", workspace.manifests)

    assert result.exit_code == 1, result.output
    for audience in ("pg", "duck"):
        traits_line = line_of(workspace.manifests / f"aud-{audience}.yaml", '"traits"')
        assert (
            f"aud-{audience}.yaml:{traits_line}:15: trait mapping 'tiers' field 'plan' reads "
            f"'plan', which the source of audience '{audience}' names 2 times: reconciler will "
            "not guess which one holds the values; name them apart in the query (`AS ...`)"
        ) in result.stderr
    assert "2 sources cannot be read" in result.stderr
    assert "aud-fine.yaml" not in result.stderr
    assert "'note'" not in result.stderr


def test_a_mapped_column_postgres_folded_to_lower_case_is_said_so(
    workspace: Workspace, cli, postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `AS firstName` gives `firstname` in PostgreSQL: the mapping's `from: firstName` was
    # told the source does not have it, listing `firstname` without saying why.
    monkeypatch.setenv(PASSWORD_VAR, postgres.password)
    url = postgres.url_template(PASSWORD_VAR)
    query = "SELECT 'a@example.com' AS email, 'Ann' AS firstName"
    workspace.audience("pg", {"sql": query, "url": url}, traits="names")
    workspace.write(
        "traits.yaml",
        '{"apiVersion": "reconciler/v1", "kind": "TraitMapping", "metadata": {"name": "names"}, '
        '"spec": {"fields": {"firstName": "firstName"}}}',
    )
    traits_line = line_of(workspace.manifests / "aud-pg.yaml", '"traits"')

    result = cli("plan", workspace.manifests)

    assert result.exit_code == 1, result.output
    assert (
        f"aud-pg.yaml:{traits_line}:15: trait mapping 'names' field 'firstName' reads "
        "'firstName', which the source of audience 'pg' does not have (the query gives "
        "'firstname': the database changed the case of an unquoted name; quote it in the "
        "query, `AS \"firstName\"`, or read 'firstname'); columns are: firstname"
    ) in result.stderr


def test_a_postgres_column_left_unnamed_is_named_as_such(
    workspace: Workspace, cli, postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL names every unnamed column `?column?`: it was masked (`?***`) as member
    # data, with a question about a header row a query cannot lack.
    monkeypatch.setenv(PASSWORD_VAR, postgres.password)
    url = postgres.url_template(PASSWORD_VAR)
    workspace.audience("unnamed", {"sql": "SELECT 'a@example.com', 7", "url": url})
    sql_line = line_of(workspace.manifests / "aud-unnamed.yaml", '"sql"')

    result = cli("plan", workspace.manifests)

    assert result.exit_code == 1, result.output
    assert (
        f"aud-unnamed.yaml:{sql_line}:14: the query has neither an 'email' nor a 'userId' "
        f"column; columns are: ?column?, ?column? {UNNAMED}"
    ) in result.stderr
    assert "header row" not in result.stderr


def test_a_json_identifier_column_is_refused_alike_by_postgresql_and_duckdb(
    workspace: Workspace, cli, postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DuckDB refused a JSON-typed identifier column, while PostgreSQL's driver parsed a
    # json or jsonb column and a JSON string in it passed as the id: one column type, two
    # rules, and in PostgreSQL a row holding `{"id": 1}` failed the audience mid-read.
    postgres.execute("CREATE TABLE docs (email TEXT, uid_json JSON, uid_jsonb JSONB)")
    postgres.execute(
        "INSERT INTO docs VALUES (%s, %s::json, %s::jsonb)",
        [("a@example.com", '"usr-1"', '"usr-1"'), ("b@example.com", None, None)],
    )
    monkeypatch.setenv(PASSWORD_VAR, postgres.password)
    url = postgres.url_template(PASSWORD_VAR)
    for column in ("uid_json", "uid_jsonb"):
        workspace.audience(
            f"pg-{column}",
            {
                "sql": f"SELECT email, {column} FROM {postgres.schema}.docs",
                "url": url,
                "userId": column,
            },
        )
    workspace.audience(
        "duck",
        {
            "sql": """SELECT 'a@example.com' AS email, '"usr-1"'::JSON AS uid_json""",
            "database": ":memory:",
            "userId": "uid_json",
        },
    )

    result = cli("plan", workspace.manifests)

    assert result.exit_code == 1, result.output
    assert "internal error" not in result.output
    for audience, column, kind in (
        ("pg-uid_json", "uid_json", "JSON"),
        ("pg-uid_jsonb", "uid_jsonb", "JSONB"),
        ("duck", "uid_json", "JSON"),
    ):
        sql_line = line_of(workspace.manifests / f"aud-{audience}.yaml", '"sql"')
        said = (
            f"aud-{audience}.yaml:{sql_line}:14: the query: column {column!r} (the userId) is "
            f"{kind}, which is no identifier Iterable could match"
        )
        assert said in result.stderr, said
    assert "usr-1" not in result.output


def test_a_money_identifier_column_is_refused_by_its_type(
    workspace: Workspace, cli, postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    # psycopg gives money as the server's currency text: '$1.00' was taken as a userId,
    # matching no profile, so each run would subscribe a new one.
    monkeypatch.setenv(PASSWORD_VAR, postgres.password)
    url = postgres.url_template(PASSWORD_VAR)
    query = "SELECT 'a@example.com' AS email, 1.00::money AS userId"
    workspace.audience("cash", {"sql": query, "url": url})
    sql_line = line_of(workspace.manifests / "aud-cash.yaml", '"sql"')

    result = cli("plan", workspace.manifests)

    assert result.exit_code == 1, result.output
    assert (
        f"aud-cash.yaml:{sql_line}:14: the query: column 'userid' (the userId) is money, which "
        "is no identifier Iterable could match"
    ) in result.stderr
    assert "$1.00" not in result.output


def test_audiences_of_one_query_at_one_database_run_it_once_per_plan(
    workspace: Workspace,
    cli,
    emulator_server,
    engine: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Two audiences over the same query at the same database ran it once each: a
    warehouse query that takes minutes took them twice. They read it differently (one
    keyed by userId, the other by email with a trait mapping over its other columns),
    which the shared run must not change; a query of other text runs on its own. Counted
    on SQLAlchemy's own hook, as each statement goes to the database."""
    import sqlite3

    database = workspace.manifests / "data" / "crm.db"
    database.parent.mkdir(parents=True)
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE people (email TEXT, user_id TEXT, tier TEXT)")
        connection.executemany(
            "INSERT INTO people VALUES (?, ?, ?)",
            [(f"p{i}@example.com", f"u{i}", "gold" if i % 2 else "free") for i in range(300)]
            + [("not-an-email", None, "free")],
        )
    connection.close()
    url = "sqlite:///manifests/data/crm.db"
    query = "SELECT email, user_id, tier FROM people"
    workspace.audience("by-user", {"sql": query, "url": url, "userId": "user_id"})
    workspace.audience("tiered", {"sql": query, "url": url}, traits="crm")
    workspace.audience("gold", {"sql": query + " WHERE tier = 'gold'", "url": url})
    workspace.write(
        "traits.yaml",
        json.dumps(
            {
                "apiVersion": "reconciler/v1",
                "kind": "TraitMapping",
                "metadata": {"name": "crm"},
                "spec": {"fields": {"tier": "tier"}},
            }
        ),
    )
    scratch = tmp_path_factory.mktemp("scratch")
    monkeypatch.setenv("RECONCILER_DUCKDB_TEMP_DIR", str(scratch))
    result, sent = _plan_sending(cli, workspace)

    assert result.exit_code == 1, result.output  # the invalid row, in the two full reads
    assert not list(scratch.glob("reconciler-rows-*"))  # the shared rows' file is gone
    # Not the columns' names, asked with LIMIT 0 before a read (no row is read for it).
    runs = [s for s in sent if "FROM people" in s and not s.endswith("LIMIT 0")]
    assert len([s for s in runs if "WHERE tier" not in s]) == 1
    assert len([s for s in runs if "WHERE tier" in s]) == 1
    (dest,) = result.json()["destinations"]
    lists = {item["audience"]: item for item in dest["lists"]}
    assert {name: item["desired_members"] for name, item in lists.items()} == {
        "by-user": 300,
        "tiered": 300,
        "gold": 150,
    }
    # Each audience read the rows its own way (by-user ran the query, tiered read its
    # rows after it): by-user's members are keyed by userId, tiered's carry the mapped
    # field, and each names the row without a valid email at its own manifest line.
    skipped = {(s["audience"], s["where"].split(":")[0]) for s in dest["skipped_members"]}
    assert skipped == {
        ("by-user", "manifests/aud-by-user.yaml"),
        ("tiered", "manifests/aud-tiered.yaml"),
    }
    assert list(dest["new_fields"]) == ["tier"]  # written on tiered's subscribes
    (tiered,) = [item for item in dest["lists"] if item["audience"] == "tiered"]
    (add,) = [c for c in tiered["changes"] if c["type"] == "add_members"]
    assert add["count"] == 300
    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 1, applied.output  # the row skipped again
    people = project(emulator_server)
    assert people.find_user(email="p1@example.com").data_fields == {"tier": "gold"}
    assert people.find_user(email="p2@example.com").data_fields == {"tier": "free"}


def test_a_postgres_query_two_audiences_share_runs_once_and_checks_each_ones_columns(
    workspace: Workspace, cli, postgres: Postgres, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    """One PostgreSQL query, three audiences: one keyed by email, one by a userId column
    of text, and one that names the jsonb column as its userId, which is refused by its
    type as when it ran the query itself. Counted on SQLAlchemy's hook, as each statement
    goes to the server (pg_stat_statements is not there to ask)."""

    postgres.execute("CREATE TABLE shared_people (email TEXT, uid TEXT, doc JSONB)")
    postgres.execute(
        "INSERT INTO shared_people VALUES (%s, %s, %s::jsonb)",
        [(f"s{i}@example.com", f"usr-{i}", f'"usr-{i}"') for i in range(40)],
    )
    monkeypatch.setenv(PASSWORD_VAR, postgres.password)
    url = postgres.url_template(PASSWORD_VAR)
    query = f"SELECT email, uid, doc FROM {postgres.schema}.shared_people"
    workspace.audience("by-email", {"sql": query, "url": url})
    workspace.audience("by-uid", {"sql": query, "url": url, "userId": "uid"})
    workspace.audience("by-doc", {"sql": query, "url": url, "userId": "doc"})
    result, sent = _plan_sending(cli, workspace)

    assert result.exit_code == 1, result.output
    # Not the columns' names, asked with LIMIT 0 before a read (no row is read for it).
    runs = [s for s in sent if "shared_people" in s and not s.endswith("LIMIT 0")]
    assert len(runs) == 1
    sql_line = line_of(workspace.manifests / "aud-by-doc.yaml", '"sql"')
    said = (
        f"aud-by-doc.yaml:{sql_line}:14: the query: column 'doc' (the userId) is JSONB, "
        "which is no identifier Iterable could match"
    )
    assert said in result.stderr
    assert "usr-" not in result.stderr
    assert "aud-by-email" not in result.stderr and "aud-by-uid" not in result.stderr

    (workspace.manifests / "aud-by-doc.yaml").unlink()
    result, sent = _plan_sending(cli, workspace)

    assert result.exit_code == 0, result.output
    assert len([s for s in sent if "shared_people" in s and not s.endswith("LIMIT 0")]) == 1
    (dest,) = result.json()["destinations"]
    assert {item["audience"]: item["desired_members"] for item in dest["lists"]} == {
        "by-email": 40,
        "by-uid": 40,
    }


def test_audiences_of_one_query_count_its_rows_once_when_the_engine_is_chosen_by_size(
    workspace: Workspace, cli, emulator_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Choosing each audience's engine by size runs a count(*) over its query: that second
    run is made once for the audiences of one query too, and their read once."""
    import sqlite3

    monkeypatch.setenv("RECONCILER_ENGINE", "auto")
    database = workspace.manifests / "data" / "crm.db"
    database.parent.mkdir(parents=True)
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE people (email TEXT, user_id TEXT)")
        connection.executemany(
            "INSERT INTO people VALUES (?, ?)",
            [(f"p{i}@example.com", f"u{i}") for i in range(50)],
        )
    connection.close()
    url = "sqlite:///manifests/data/crm.db"
    query = "SELECT email, user_id FROM people"
    workspace.audience("by-user", {"sql": query, "url": url, "userId": "user_id"})
    workspace.audience("by-email", {"sql": query, "url": url})
    result, sent = _plan_sending(cli, workspace)

    assert result.exit_code == 0, result.output
    counts = [s for s in sent if "count(*)" in s]
    runs = [s for s in sent if "FROM people" in s and "count(*)" not in s]
    assert len(counts) == 1
    assert len([s for s in runs if not s.endswith("LIMIT 0")]) == 1
    (dest,) = result.json()["destinations"]
    assert [item["desired_members"] for item in dest["lists"]] == [50, 50]


def test_a_long_mapped_value_from_a_database_url_is_planned_not_a_crash_quoting_members(
    workspace: Workspace,
    cli,
    engine: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A query at a database URL whose mapped text value was over 2 MB (a notes or JSON
    column) failed the DuckDB engine's plan with an internal error: its rows go through a
    file reconciler writes and DuckDB reads back, under DuckDB's 2 MB default line size,
    and DuckDB's text quoted the whole row (the member's userId and value) and the
    workspace's temporary path. The file is now read as the workspace's other files are
    (lines up to 16 MiB), and a row longer still is refused naming the query, not
    quoting it."""
    import sqlite3

    scratch = tmp_path_factory.mktemp("scratch")
    monkeypatch.setenv("RECONCILER_DUCKDB_TEMP_DIR", str(scratch))
    database = workspace.manifests / "data" / "crm.db"
    database.parent.mkdir(parents=True)
    long_note = "u-secret-note " * 200_000  # 2.8 MB
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE people (user_id TEXT, note TEXT)")
        connection.executemany(
            "INSERT INTO people VALUES (?, ?)", [("u-1", "short"), ("u-secret-42", long_note)]
        )
    connection.close()
    url = "sqlite:///manifests/data/crm.db"
    query = "SELECT user_id, note FROM people"
    workspace.audience("noted", {"sql": query, "url": url, "userId": "user_id"}, traits="crm")
    workspace.write(
        "traits.yaml",
        json.dumps(
            {
                "apiVersion": "reconciler/v1",
                "kind": "TraitMapping",
                "metadata": {"name": "crm"},
                "spec": {"fields": {"note": "note"}},
            }
        ),
    )

    result = cli("plan", workspace.manifests)

    assert "internal error" not in result.output, result.output[:2000]
    # Planned in either engine, the value refused as Iterable would refuse it.
    assert result.exit_code == 1, result.output[:2000]
    assert "holds text of 2,800,000 characters" in result.output
    assert "u-secret" not in result.output and str(scratch) not in result.output

    # A row over 16 MiB is refused by name, in the DuckDB engine, as the Python engine
    # refuses what Iterable cannot take; neither quotes it.
    with sqlite3.connect(database) as connection:
        connection.execute(
            "UPDATE people SET note = ? WHERE user_id = 'u-secret-42'",
            ("u-secret-note " * 1_300_000,),
        )
    connection.close()
    result = cli("plan", workspace.manifests)
    assert "internal error" not in result.output, result.output[:2000]
    assert result.exit_code == 1, result.output[:2000]
    assert "aud-noted.yaml" in result.output
    if engine == "duckdb":
        assert "query row 2: Maximum line size of 16777216 bytes exceeded" in result.output
    assert "u-secret" not in result.output and str(scratch) not in result.output
    assert len(result.output) < 10_000


def test_a_bad_line_of_a_windows_csv_a_query_reads_is_not_quoted(workspace: Workspace, cli) -> None:
    """DuckDB quotes the CSV line it cannot read after 'Original Line: ', which output
    masks; in a file with \\r\\n line ends (Excel's, Windows') the line is quoted from the
    next line of its text, and a quoted cell holding a line end spreads it over several:
    the member's userId and values were printed. The quoted line now ends at DuckDB's
    reason, which is still said, with the file and line."""
    (workspace.manifests / "data").mkdir()
    (workspace.manifests / "data" / "people.csv").write_bytes(
        b"user_id,tier\r\nu-1,gold\r\nu-secret-42,gold,extra\r\n"
        b'"u-secret-43\r\nsecond",gold,extra\r\n'
    )
    query = (
        "SELECT user_id FROM read_csv('data/people.csv', header = true, auto_detect = false, "
        "columns = {'user_id': 'VARCHAR', 'tier': 'VARCHAR'})"
    )
    workspace.audience("tiers", {"sql": query, "database": ":memory:", "userId": "user_id"})

    result = cli("plan", workspace.manifests)

    assert result.exit_code == 1, result.output
    said = result.output
    assert "CSV Error on Line: 3" in said and "Expected Number of Columns: 2 Found: 3" in said
    assert "aud-tiers.yaml" in said
    assert "u-secret" not in said and "second" not in said, said

    with_members = cli("plan", workspace.manifests, "--show-members")
    assert "u-secret-42,gold,extra" in with_members.output  # asked for


@pytest.mark.parametrize("newline", ["", "\n"])
def test_a_postgres_syntax_error_quotes_the_users_query_not_reconcilers_wrapper(
    workspace: Workspace, cli, crm: Postgres, newline: str
) -> None:
    """A one-line query with a syntax error showed the server's `LINE 1:` excerpt of
    reconciler's own wrapper (`DECLARE "c_..." CURSOR FOR SELECT * FROM (SELEC ...`), its
    caret under text the user never wrote; a multi-line one showed their line."""
    workspace.audience(
        "active",
        {
            "sql": f"{newline}SELEC email FROM {crm.schema}.users",
            "url": crm.url_template(PASSWORD_VAR),
        },
    )
    result = cli("plan", workspace.manifests)
    assert result.exit_code == 1, result.output
    assert 'syntax error at or near "SELEC"' in result.stderr
    for ours in ("CURSOR FOR", "SELECT * FROM (", "AS q LIMIT", "DECLARE"):
        assert ours not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    (excerpt,) = [n for n, line in enumerate(lines) if line.lstrip().startswith("LINE ")]
    assert lines[excerpt].split(": ", 1)[1].startswith("SELEC email FROM"), result.stderr
    caret = lines[excerpt + 1]
    assert caret.index("^") == lines[excerpt].index("SELEC"), result.stderr


def _validate_connecting(cli, workspace: Workspace):
    """`validate` of the workspace, the connections SQLAlchemy opened meanwhile and every
    statement it sent."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    connects: list[object] = []
    sent: list[str] = []

    def connected(connection, *_args) -> None:
        connects.append(connection)

    def record(_conn, _cursor, statement, *_args) -> None:
        sent.append(statement)

    event.listen(Engine, "engine_connect", connected)
    event.listen(Engine, "before_cursor_execute", record)
    try:
        result = cli("validate", workspace.manifests)
    finally:
        event.remove(Engine, "engine_connect", connected)
        event.remove(Engine, "before_cursor_execute", record)
    return result, connects, sent


def test_validate_runs_a_postgres_query_once_on_one_connection(
    workspace: Workspace, cli, crm: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """validate sized each query for an engine by a count(*) over it: a second run of a
    query the warehouse may take minutes over, on a second connection, in every
    pre-commit hook. It plans nothing, so it now reads the rows once, in DuckDB (the
    same checks, a chunk held at a time), whatever RECONCILER_ENGINE says."""
    pg_audience(workspace, crm)
    results = {}
    for engine in ("auto", "python", "duckdb"):
        monkeypatch.setenv("RECONCILER_ENGINE", engine)
        result, connects, sent = _validate_connecting(cli, workspace)
        assert result.exit_code == 0, result.output
        results[engine] = result.stdout
        if engine != "python":
            assert len(connects) == 1, engine
            assert not [s for s in sent if "count(*)" in s], engine
    assert "800 members" in results["auto"]
    assert results["auto"] == results["python"] == results["duckdb"]


def test_validate_runs_a_sqlite_query_once_and_reports_as_both_engines_do(
    workspace: Workspace, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As above, for a SQLite file of the repository's; its rows' problems are said as
    either engine says them."""
    import sqlite3

    database = workspace.manifests / "data" / "crm.db"
    database.parent.mkdir(parents=True)
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE people (email TEXT)")
        connection.executemany(
            "INSERT INTO people VALUES (?)",
            [(f"p{i}@example.com",) for i in range(30)] + [("not-an-email",), ("p1@example.com",)],
        )
    connection.close()
    workspace.audience(
        "people", {"sql": "SELECT email FROM people", "url": "sqlite:///manifests/data/crm.db"}
    )
    outputs = {}
    for engine in ("auto", "python", "duckdb"):
        monkeypatch.setenv("RECONCILER_ENGINE", engine)
        result, connects, sent = _validate_connecting(cli, workspace)
        outputs[engine] = (result.exit_code, result.stdout, result.stderr)
        if engine != "python":
            assert len(connects) == 1, engine
            assert not [s for s in sent if "count(*)" in s], engine
    assert outputs["auto"][0] == 1
    assert "not-an-email" not in outputs["auto"][1] + outputs["auto"][2]
    assert outputs["auto"] == outputs["python"] == outputs["duckdb"]


def test_plan_target_runs_a_query_it_shares_with_an_audience_read_beside_it_once(
    workspace: Workspace, cli, engine: str
) -> None:
    """plan --target of an audience whose query another mapping the same field runs too
    (read beside the target, state/alongside.py) ran it once for the target and once
    more for each audience beside it (40 audiences: 40 runs of a query a full plan runs
    once). Counted on SQLAlchemy's own hook, as each statement goes to the database."""
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    database = workspace.manifests / "data" / "crm.db"
    database.parent.mkdir(parents=True)
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE people (email TEXT, user_id TEXT, tier TEXT)")
        connection.executemany(
            "INSERT INTO people VALUES (?, ?, ?)",
            [(f"p{i}@example.com", f"u{i}", "gold" if i % 2 else "free") for i in range(50)],
        )
    connection.close()
    source = {
        "sql": "SELECT email, user_id, tier FROM people",
        "url": "sqlite:///manifests/data/crm.db",
    }
    workspace.audience("tiered", source, traits="crm")
    for n in range(3):
        workspace.audience(f"beside{n}", {**source, "userId": "user_id"}, traits="crm")
    workspace.write(
        "traits.yaml",
        json.dumps(
            {
                "apiVersion": "reconciler/v1",
                "kind": "TraitMapping",
                "metadata": {"name": "crm"},
                "spec": {"fields": {"tier": "tier"}},
            }
        ),
    )
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        sent.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        result = cli("plan", workspace.manifests, "--target", "tiered", "--format", "json")
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert result.exit_code == 0, result.stderr
    assert "also reads the source of audiences 'beside0'" in result.stderr
    runs = [s for s in sent if "FROM people" in s and not s.endswith("LIMIT 0")]
    assert len(runs) == 1, runs
    (dest,) = result.json()["destinations"]
    assert [item["audience"] for item in dest["lists"]] == ["tiered"]
    (add,) = [c for c in dest["lists"][0]["changes"] if c["type"] == "add_members"]
    assert add["count"] == 50
