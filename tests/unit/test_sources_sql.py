"""`members: {sql: QUERY, database: PATH}` in DuckDB and `{sql: QUERY, url: URL}` through
SQLAlchemy against a real PostgreSQL (skipped when none is reachable)."""

from __future__ import annotations

import errno
import os
import re
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import duckdb
import pytest

from reconciler.errors import ConfigError, SourceError
from reconciler.members.model import estimate_rows as model_estimate_rows
from reconciler.render.masking import mask_emails, reveal
from reconciler.sources import duckdb_query, query_text, read_members, warehouse
from reconciler.sources.time_limit import QueryTimedOut
from tests.postgres import Postgres
from tests.sources import line_of, load_audience, write_duckdb

PASSWORD_VAR = "RECONCILER_TEST_DB_PASSWORD"


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def chunk_sizes(module: object, monkeypatch: pytest.MonkeyPatch, chunk_rows: int) -> list[int]:
    """Record the size of every chunk of rows `module` hands to members_from_rows."""
    sizes: list[int] = []
    original = module.members_from_rows  # type: ignore[attr-defined]

    def spy(chunks, *args):  # type: ignore[no-untyped-def]
        def counted():  # type: ignore[no-untyped-def]
            for chunk in chunks:
                sizes.append(len(chunk))
                yield chunk

        return original(counted(), *args)

    monkeypatch.setattr(module, "members_from_rows", spy)
    monkeypatch.setattr(module, "CHUNK_ROWS", chunk_rows)
    return sizes


# --- DuckDB ----------------------------------------------------------------------------


def test_in_memory_query_reads_files_relative_to_the_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "users.csv").write_text(
        "email,plan\nA@example.com,gold\nb@example.com,free\nc@example.com,gold\n"
    )
    audience = load_audience(
        tmp_path,
        {
            "sql": "SELECT email, plan FROM read_csv('data/users.csv') WHERE plan = 'gold'",
            "database": ":memory:",
        },
        mapped=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # paths follow the manifest, not the working directory

    result = read_members(audience, "email")

    assert sorted(result.members) == ["a@example.com", "c@example.com"]
    assert result.members["a@example.com"].traits == {"plan": "gold"}


def test_database_file_query_with_typed_columns(tmp_path: Path) -> None:
    write_duckdb(
        tmp_path / "db" / "crm.duckdb",
        "CREATE TABLE customers (id BIGINT, mail VARCHAR, score DOUBLE, joined DATE)",
        "INSERT INTO customers VALUES (7, 'x@example.com', 0.5, DATE '2023-01-02'), "
        "(8, NULL, 1.0, NULL)",
    )
    audience = load_audience(
        tmp_path,
        {
            "sql": "SELECT id AS user_id, mail, score, joined FROM customers ORDER BY id",
            "database": "db/crm.duckdb",
            "email": "mail",
            "userId": "user_id",
        },
        mapped=True,
    )

    result = read_members(audience, "hybrid")

    assert sorted(result.members) == ["7", "8"]
    seven = result.members["7"]
    assert (seven.email, seven.traits) == ("x@example.com", {"score": 0.5, "joined": "2023-01-02"})


def test_invalid_rows_are_named_by_manifest_line_and_query_row(tmp_path: Path) -> None:
    audience = load_audience(
        tmp_path,
        {
            "sql": "SELECT * FROM (VALUES ('ok@example.com'), ('bad'), (NULL)) t(email)",
            "database": ":memory:",
        },
    )
    line = line_of(tmp_path / "aud.yaml", '"sql"')

    result = read_members(audience, "email")

    assert list(result.members) == ["ok@example.com"]
    assert [issue.describe(str) for issue in result.issues] == [
        f"aud.yaml:{line}:14: query row 2: invalid email bad",
        f"aud.yaml:{line}:14: query row 3: no email: email-based projects identify users by email",
    ]


def test_database_file_is_opened_read_only(tmp_path: Path) -> None:
    write_duckdb(tmp_path / "crm.duckdb", "CREATE TABLE t AS SELECT 'a@example.com' AS email")
    audience = load_audience(
        tmp_path,
        {"sql": "DROP TABLE t; SELECT 'b@example.com' AS email", "database": "crm.duckdb"},
    )
    with pytest.raises(SourceError, match=r"^aud.yaml:\d+:\d+: the query must be a single SELECT"):
        read_members(audience, "email")
    # Below the statement check, the file itself is open read-only.
    connection = duckdb_query.open_connection(
        str(tmp_path / "crm.duckdb"), tmp_path, "m.yaml:1:1", tmp_path
    )
    try:
        with pytest.raises(duckdb.Error, match="read-only"):
            connection.execute("DROP TABLE t")
    finally:
        connection.close()
    ok = load_audience(tmp_path, {"sql": "SELECT email FROM t", "database": "crm.duckdb"})
    assert list(read_members(ok, "email").members) == ["a@example.com"]


def test_missing_database_file_and_bad_sql_are_source_errors(tmp_path: Path) -> None:
    missing = load_audience(tmp_path, {"sql": "SELECT 1", "database": "nope.duckdb"})
    with pytest.raises(SourceError, match=r"cannot open DuckDB database .*nope\.duckdb"):
        read_members(missing, "email")
    bad = load_audience(tmp_path, {"sql": "SELEC email", "database": ":memory:"})
    with pytest.raises(SourceError, match=r"^aud.yaml:\d+:\d+: cannot read the query: .*syntax"):
        read_members(bad, "email")


def test_a_duckdb_query_error_quotes_the_query_and_no_catalog_view(tmp_path: Path) -> None:
    """DuckDB's excerpt quoted `DESCRIBE SELECT ...`, reconciler's statement, with its caret
    under it, and a table it did not find came with DuckDB's guess of its own catalog view
    ('Did you mean "pg_tables"?'), which no query should read; the excerpt is now the
    manifest's query, and database: ':memory:', which has no tables, says what to read."""
    column = load_audience(
        tmp_path, {"sql": "SELECT mail FROM (SELECT 1 AS email)", "database": ":memory:"}
    )
    with pytest.raises(SourceError) as caught:
        read_members(column, "email")
    assert str(caught.value).endswith(
        "\n\nLINE 1: SELECT mail FROM (SELECT 1 AS email)\n               ^^^^"
    )
    table = load_audience(tmp_path, {"sql": "SELECT email FROM members", "database": ":memory:"})
    with pytest.raises(SourceError) as caught:
        read_members(table, "email")
    assert "Did you mean" not in str(caught.value)
    assert str(caught.value).split(": ", 1)[1] == (
        "cannot read the query: Catalog Error: Table with name members does not exist! "
        "(database: ':memory:' holds no tables: a query there reads files, FROM "
        "read_csv('data/members.csv') or read_parquet('data/members.parquet'), or give "
        "database: the DuckDB file that has the table)\n\n"
        "LINE 1: SELECT email FROM members\n                          ^^^^^^^"
    )
    # A database file: a near name of its own is DuckDB's to suggest, a catalog view not.
    write_duckdb(tmp_path / "crm.duckdb", "CREATE TABLE member_list AS SELECT 'a@x.com' AS email")
    for name, said in (("member_lists", 'Did you mean "member_list"?'), ("users", None)):
        spec = {"sql": f"SELECT email FROM {name}", "database": "crm.duckdb"}
        near = load_audience(tmp_path, spec)
        with pytest.raises(SourceError) as caught:
            read_members(near, "email")
        first = str(caught.value).split("\n\nLINE ")[0]
        guess = f"\n{said}" if said else ""
        assert first.endswith(f"Table with name {name} does not exist!{guess}")


@pytest.mark.parametrize("ending", ["; -- the customers", ";\n-- the customers\n", ";;"])
def test_a_duckdb_query_ending_in_a_semicolon_and_a_comment_is_read_and_counted(
    tmp_path: Path, ending: str
) -> None:
    # DuckDB takes it as one SELECT, but reconciler runs it inside another, where the `;`
    # was a syntax error: the audience could not be read at all.
    sql = "SELECT * FROM (VALUES ('a@example.com', ';--'), ('b@example.com', 'x')) t(email, n)"
    audience = load_audience(tmp_path, {"sql": sql + ending, "database": ":memory:"})
    assert sorted(read_members(audience, "email").members) == ["a@example.com", "b@example.com"]
    assert model_estimate_rows(audience) == 2


def test_duckdb_rows_are_fetched_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = chunk_sizes(duckdb_query, monkeypatch, 100)
    audience = load_audience(
        tmp_path,
        {
            "sql": "SELECT 'u' || i || '@example.com' AS email FROM range(950) t(i)",
            "database": ":memory:",
        },
    )
    assert len(read_members(audience, "email").members) == 950
    assert sizes == [100] * 9 + [50]


# --- PostgreSQL through SQLAlchemy ---------------------------------------------------------


@pytest.fixture
def customers(postgres: Postgres, monkeypatch: pytest.MonkeyPatch) -> Postgres:
    postgres.execute(
        "CREATE TABLE customers (user_id INTEGER, email TEXT, note TEXT, ltv NUMERIC(8, 2))"
    )
    postgres.execute(
        "INSERT INTO customers VALUES (%s, %s, %s, %s)",
        [
            (1, "Ada@Example.com", "vip: 100%", 10.5),
            (2, "b@example.com", None, 3),
            (3, "not-an-email", None, 0),
        ],
    )
    monkeypatch.setenv(PASSWORD_VAR, postgres.password)
    return postgres


def postgres_audience(tmp_path: Path, db: Postgres, sql: str, mapped: bool = False, **extra: str):  # type: ignore[no-untyped-def]
    members = {"sql": sql, "url": db.url_template(PASSWORD_VAR), **extra}
    return load_audience(tmp_path, members, mapped=mapped)


def test_postgres_query_streams_members_with_traits(
    tmp_path: Path, customers: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = chunk_sizes(warehouse, monkeypatch, 2)
    # Unquoted `AS userId` comes back as `userid`; '%' and ':' reach PostgreSQL as written.
    sql = (
        f"SELECT user_id AS userId, email, note, ltv FROM {customers.schema}.customers "
        "WHERE note IS NULL OR note LIKE 'vip:%' ORDER BY user_id"
    )
    result = read_members(postgres_audience(tmp_path, customers, sql, mapped=True), "hybrid")
    line = line_of(tmp_path / "aud.yaml", '"sql"')

    assert sorted(result.members) == ["1", "2"]
    assert result.members["1"].email == "ada@example.com"
    assert result.members["1"].traits == {"note": "vip: 100%", "ltv": 10.5}
    assert result.members["2"].traits == {"note": None, "ltv": 3}
    assert [str(issue) for issue in result.issues] == [
        f"aud.yaml:{line}:14: query row 3: invalid email 'not-an-email'"
    ]
    assert sizes == [2, 1]  # a server-side cursor, two rows at a time


def test_postgres_values_inside_arrays_and_network_addresses_are_plain_values(
    tmp_path: Path, customers: Postgres
) -> None:
    # numeric[] came as a list of Decimals and inet as an IPv4Address: no mapping could
    # send them ("is a Decimal, which Iterable cannot store"), `type: list` included.
    sql = (
        "SELECT email, ARRAY[ltv, 2]::numeric[] AS amounts, '10.0.0.1'::inet AS ip, "
        "ARRAY['::1'::inet] AS ips, jsonb_build_object('n', 1.5) AS doc "
        f"FROM {customers.schema}.customers WHERE user_id = 1"
    )
    result = read_members(postgres_audience(tmp_path, customers, sql, mapped=True), "email")
    assert result.members["ada@example.com"].traits == {
        "amounts": [10.5, 2],
        "ip": "10.0.0.1",
        "ips": ["::1"],
        "doc": {"n": 1.5},
    }


def test_postgres_sql_error_is_located_and_scrubbed(tmp_path: Path, customers: Postgres) -> None:
    audience = postgres_audience(tmp_path, customers, "SELECT email FROM no_such_table")
    with pytest.raises(SourceError) as raised:
        read_members(audience, "email")
    assert 'relation "no_such_table" does not exist' in str(raised.value)
    assert str(raised.value).startswith("aud.yaml:")
    assert customers.password not in str(raised.value)


def test_a_wrong_password_never_appears_in_the_error(
    tmp_path: Path, customers: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "Wr0ng-p@ss:word/42"  # '@', ':' and '/' need no escaping in the variable
    monkeypatch.setenv(PASSWORD_VAR, wrong)
    audience = postgres_audience(tmp_path, customers, "SELECT email FROM customers")
    with pytest.raises(SourceError) as raised:
        read_members(audience, "email")
    message = str(raised.value)
    assert "password authentication failed" in message
    assert "127.0.0.1" in message  # the host survived the '@' in the password
    for form in (wrong, "Wr0ng-p%40ss%3Aword%2F42", "Wr0ng"):
        assert form not in message


def test_driver_errors_that_quote_a_secret_are_scrubbed(
    tmp_path: Path, customers: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server quotes the user name back when it refuses the login; a user name taken
    # from the environment is a secret too.
    from sqlalchemy.engine import make_url

    monkeypatch.setenv("RECONCILER_TEST_DB_USER", "user-from-env-4711")
    template = customers.url_template(PASSWORD_VAR)
    user = make_url(customers.url).username
    template = template.replace(f"//{user}:", "//${RECONCILER_TEST_DB_USER}:", 1)
    audience = load_audience(tmp_path, {"sql": "SELECT 1 AS email", "url": template})
    with pytest.raises(SourceError) as raised:
        read_members(audience, "email")
    assert "***" in str(raised.value)
    assert "user-from-env-4711" not in str(raised.value)
    assert customers.password not in str(raised.value)


def test_a_missing_variable_is_a_config_error_naming_it(
    tmp_path: Path, customers: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSWORD_VAR)
    audience = postgres_audience(tmp_path, customers, "SELECT email FROM customers")
    with pytest.raises(ConfigError, match=f"environment variable {PASSWORD_VAR} is not set"):
        read_members(audience, "email")


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_variable_is_a_config_error_naming_it(
    tmp_path: Path, customers: Postgres, monkeypatch: pytest.MonkeyPatch, blank: str
) -> None:
    # With an empty password libpq sends its own (PGPASSWORD here): the run connected as
    # whoever the machine's credentials name, not as the manifest says.
    monkeypatch.setenv("PGPASSWORD", customers.password)
    monkeypatch.setenv(PASSWORD_VAR, blank)
    audience = postgres_audience(tmp_path, customers, "SELECT email FROM customers")
    line = line_of(tmp_path / "aud.yaml", '"url"')
    with pytest.raises(ConfigError) as raised:
        read_members(audience, "email")
    assert str(raised.value).startswith(f"aud.yaml:{line}:")
    assert f"environment variable {PASSWORD_VAR} is empty" in str(raised.value)


def test_a_missing_driver_names_what_to_install(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(PASSWORD_VAR, "s3cret-value")
    audience = load_audience(
        tmp_path, {"sql": "SELECT 1", "url": f"nosuchdb://app:${{{PASSWORD_VAR}}}@host/db"}
    )
    with pytest.raises(SourceError, match="install the SQLAlchemy dialect and driver for nosuchdb"):
        read_members(audience, "email")


@pytest.mark.parametrize(
    ("scheme", "said"),
    [
        (
            "postgres",
            "the URL's scheme postgres:// is libpq's short name, which SQLAlchemy does not "
            "take: write postgresql:// (or postgresql+psycopg://)",
        ),
        (
            "postgress",
            "no SQLAlchemy dialect or driver installed is named 'postgress' (did you mean "
            "'postgresql'?): correct the URL's scheme",
        ),
    ],
)
def test_a_url_scheme_no_package_provides_is_said_at_the_url_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scheme: str, said: str
) -> None:
    """postgres:// (libpq's and Heroku's DATABASE_URL spelling) and a misspelt scheme were
    told, at the sql: line, to 'install the SQLAlchemy dialect and driver for postgres',
    which no package provides: the URL's scheme is what to change."""
    monkeypatch.setenv(PASSWORD_VAR, "s3cret-value")
    url = f"{scheme}://app:${{{PASSWORD_VAR}}}@127.0.0.1:1/db"
    audience = load_audience(tmp_path, {"sql": "SELECT 1", "url": url})
    line = line_of(tmp_path / "aud.yaml", '"url"')
    with pytest.raises(SourceError) as raised:
        read_members(audience, "email")
    assert str(raised.value) == f"aud.yaml:{line}:14: {said}"


def test_a_missing_driver_under_pre_commit_names_the_hooks_dependencies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pre-commit hook runs reconciler from pre-commit's own environment, where the
    advice to pip install the driver 'where reconciler is' reaches nothing: the hook
    failed on every commit until the user found additional_dependencies."""
    monkeypatch.setenv(PASSWORD_VAR, "s3cret-value")
    monkeypatch.setenv("PRE_COMMIT", "1")  # as pre-commit sets it for every hook
    audience = load_audience(
        tmp_path, {"sql": "SELECT 1", "url": f"nosuchdb://app:${{{PASSWORD_VAR}}}@host/db"}
    )
    with pytest.raises(SourceError) as raised:
        read_members(audience, "email")
    assert (
        "install the SQLAlchemy dialect and driver for nosuchdb; the pre-commit hook runs "
        "from an environment of pre-commit's own: give the hook additional_dependencies: "
        "[its package] in .pre-commit-config.yaml ("
    ) in str(raised.value)


@pytest.mark.parametrize(
    "ending",
    ["; -- every customer", ";\n-- every customer\n", " /* all; of /* them */ */ ;", ";;  \n"],
)
def test_a_query_ending_in_a_semicolon_and_a_comment_is_counted(
    tmp_path: Path, customers: Postgres, ending: str
) -> None:
    # The count wraps the query in a subquery, where a `;` is a syntax error; a failed
    # count leaves the size unknown, and a query of millions was planned in Python.
    sql = f"SELECT email, ';--' AS note FROM {customers.schema}.customers WHERE note IS NULL"
    audience = postgres_audience(tmp_path, customers, sql + ending)
    assert model_estimate_rows(audience) == 2
    assert len(read_members(audience, "email").members) == 1  # the other email is invalid


def test_statement_text_keeps_what_is_quoted_and_drops_what_follows_the_last_token() -> None:
    text = query_text.statement_text
    assert text("SELECT 1; -- x") == "SELECT 1"
    assert text("SELECT 1 /* a /* b */ ; */ ;\n-- c\n") == "SELECT 1"
    assert text("SELECT ';--' AS x -- y") == "SELECT ';--' AS x"
    assert text("SELECT $$ ; -- $$ ; ") == "SELECT $$ ; -- $$"
    assert text("SELECT $q$ a $$ ; $q$;") == "SELECT $q$ a $$ ; $q$"
    assert text("SELECT E'it\\'s;' ;") == "SELECT E'it\\'s;'"
    assert text("SELECT 'it''s;' ;") == "SELECT 'it''s;'"
    assert text('SELECT "a;--" FROM t;;') == 'SELECT "a;--" FROM t'
    assert text("SELECT 1; SELECT 2; -- z") == "SELECT 1; SELECT 2"  # refused by the server
    assert text("SELECT 'unterminated; --") == "SELECT 'unterminated; --"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT email FROM {schema}.customers; DROP TABLE {schema}.customers",
        "SELECT email FROM {schema}.customers; COMMIT; DROP TABLE {schema}.customers; -- x",
        # Closes the wrapping query's parenthesis, so that the rest runs on its own.
        "SELECT email FROM {schema}.customers) AS q LIMIT 0; COMMIT; "
        "DROP TABLE {schema}.customers; SELECT * FROM (SELECT 1",
    ],
    ids=["second", "commit", "out-of-the-wrapping"],
)
def test_a_postgres_query_of_two_statements_is_refused_as_such_at_its_line(
    tmp_path: Path, customers: Postgres, sql: str
) -> None:
    """The server refused them, as `syntax error at or near ";"` quoting the DECLARE of
    reconciler's cursor, or `cannot insert multiple commands into a prepared statement`;
    neither said the query must be one SELECT. Nothing is now sent."""
    audience = postgres_audience(tmp_path, customers, sql.format(schema=customers.schema))
    with pytest.raises(SourceError) as refused:
        read_members(audience, "email")
    line = line_of(tmp_path / "aud.yaml", '"sql"')
    assert str(refused.value) == (
        f"aud.yaml:{line}:14: the query must be a single SELECT statement; found a ';' "
        "followed by more (a member source only reads: write one SELECT, a ';' and "
        "comments may end it)"
    )
    kept = f"SELECT email FROM {customers.schema}.customers"
    assert len(read_members(postgres_audience(tmp_path, customers, kept), "email").members) == 2


def test_separated_statements_are_told_from_semicolons_in_quotes_comments_and_at_the_end() -> None:
    separated = query_text.separated_statements
    assert separated("SELECT 1; SELECT 2")
    assert separated("SELECT 1 ;; SELECT 2 ;")
    assert separated("SELECT ';' AS a; DELETE FROM t")
    for one in (
        "SELECT 1; -- x; y",
        "SELECT 1 /* ; */ ;\n/* ; */",
        "SELECT ';' AS a, $$;$$ AS b, $q$ ; $q$ AS c, \"x;y\" AS d ;",
        "SELECT E'it\\';s' AS a;",
        "SELECT 1 -- a; comment\n FROM t",
    ):
        assert not separated(one), one


def test_a_postgres_query_runs_read_only(tmp_path: Path, customers: Postgres) -> None:
    # A SELECT can still write (nextval, functions); the transaction refuses it.
    customers.execute(f"CREATE SEQUENCE {customers.schema}.counter")
    schema = customers.schema
    sql = f"SELECT email, nextval('{schema}.counter') AS n FROM {schema}.customers"
    with pytest.raises(SourceError, match=r"query failed \(postgresql\): .*read-only"):
        read_members(postgres_audience(tmp_path, customers, sql), "email")
    kept = f"SELECT email FROM {customers.schema}.customers"
    assert len(read_members(postgres_audience(tmp_path, customers, kept), "email").members) == 2


def test_a_postgres_query_is_stopped_at_the_time_limit(
    tmp_path: Path, customers: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RECONCILER_QUERY_TIMEOUT bounded DuckDB queries only: `pg_sleep` (or a lock held by
    someone else) in a manifest's query hung `validate` in CI until the job's own limit."""
    monkeypatch.setenv("RECONCILER_QUERY_TIMEOUT", "0.5")
    schema = customers.schema
    sql = f"SELECT email FROM {schema}.customers WHERE pg_sleep(600) IS NOT NULL"
    with pytest.raises(QueryTimedOut) as stopped:
        read_members(postgres_audience(tmp_path, customers, sql), "email")
    line = line_of(tmp_path / "aud.yaml", '"sql"')
    assert str(stopped.value).startswith(f"aud.yaml:{line}:"), stopped.value
    assert "ran longer than 0.5 s" in str(stopped.value)
    assert customers.password not in str(stopped.value)
    kept = f"SELECT email FROM {schema}.customers"
    assert len(read_members(postgres_audience(tmp_path, customers, kept), "email").members) == 2


def test_a_postgres_query_is_limited_on_the_server_too(
    tmp_path: Path, customers: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client's cancel is the limit that counts; the server's statement_timeout (the
    client's limit and a margin) and its look for the client bound a query whose client
    was killed outright."""
    monkeypatch.setenv("RECONCILER_QUERY_TIMEOUT", "12.5")
    sql = (
        "SELECT current_setting('statement_timeout') || '-' || "
        "current_setting('client_connection_check_interval') || '@example.com' AS email"
    )
    result = read_members(postgres_audience(tmp_path, customers, sql), "email")
    assert list(result.members) == ["42s-5s@example.com"]


def test_a_postgres_query_of_a_killed_run_does_not_go_on_running_on_the_server(
    tmp_path: Path, customers: Postgres
) -> None:
    """A run killed outright (SIGKILL: a CI job past its grace period, the OOM killer)
    cancels nothing: PostgreSQL went on with `pg_sleep(3600)`, or a join of hours, until it
    had a row to send. The server now looks for its client every 5 s and ends the query."""
    name = f"killed_run_{customers.schema}"
    url = f"{customers.url_template(PASSWORD_VAR)}?application_name={name}"
    load_audience(tmp_path, {"sql": "SELECT pg_sleep(3600)::text AS email", "url": url})
    run = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "validate", str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert _running_as(customers, name, wanted=1), "the query never started"
        run.kill()
        run.wait()
        assert _running_as(customers, name, wanted=0), "the query ran on without its client"
    finally:
        run.kill()
        run.wait()
        customers.execute(  # whatever happened, no pg_sleep(3600) is left to the server
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE application_name = '{name}'"
        )


def _running_as(db: Postgres, name: str, wanted: int) -> bool:
    """Whether `wanted` statements run under application_name `name`, within a minute (a
    start under load; the server's next look for its client)."""
    import psycopg

    watch = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND application_name = %s"
    deadline = time.monotonic() + 60
    with psycopg.connect(db.url, autocommit=True) as connection:
        while True:
            row = connection.execute(watch, (name,)).fetchone()
            if (row is not None and row[0] == wanted) or time.monotonic() > deadline:
                return row is not None and row[0] == wanted
            time.sleep(0.2)


@pytest.mark.parametrize(
    "value",
    [
        "(SELECT translate(email, '@.', '--') FROM {schema}.customers WHERE user_id = 1)"
        "::regnamespace::text",
        "xmlparse(document (SELECT translate(email, '@.', '--') FROM {schema}.customers "
        "WHERE user_id = 1))::text",
    ],
    ids=["quoted", "line-of-its-own"],
)
def test_a_postgres_error_quoting_what_the_query_read_is_masked(
    tmp_path: Path, customers: Postgres, value: str
) -> None:
    """The query's data is not in the repository, yet a pull request's query could make a
    member's identifier a schema, relation, role or setting name, or an XML document, and
    PostgreSQL's error printed it in CI (`schema "ada-example-com" does not exist`):
    with no '@' nor a known pattern to mask it by, in full."""
    sql = f"SELECT {value.format(schema=customers.schema)} AS email"
    with pytest.raises(SourceError) as raised:
        read_members(postgres_audience(tmp_path, customers, sql), "email")
    assert "query failed (postgresql)" in str(raised.value)
    assert "ada-example" not in mask_emails(str(raised.value)).lower()
    shown = reveal(str(raised.value), True).lower()  # with --show-members
    assert "ada-example-com" in shown


def test_what_a_postgres_error_says_after_a_masked_value_stays_readable(
    tmp_path: Path, customers: Postgres
) -> None:
    """Since a quoted word a line opens and does not close was masked as a value over
    lines, the quote closing a masked value read as one such: `schema "a***" ***`, what
    went wrong masked with the value."""
    sql = (
        f"SELECT (SELECT translate(email, '@.', '--') FROM {customers.schema}.customers "
        "WHERE user_id = 1)::regnamespace::text AS email"
    )
    with pytest.raises(SourceError) as raised:
        read_members(postgres_audience(tmp_path, customers, sql), "email")
    assert 'schema "a***" does not exist' in mask_emails(str(raised.value))


@pytest.mark.parametrize(
    "value",
    [
        # A quote inside the quoted word: PostgreSQL does not escape it.
        "convert_to('a', (SELECT replace(translate(email, '@.', '--'), '-', '\"') "
        "FROM {schema}.customers WHERE user_id = 1))::text",
        # Said bare, first on the line or after the words.
        "to_ascii('a', (SELECT translate(email, '@.', '--') FROM {schema}.customers "
        "WHERE user_id = 1))",
        "is_normalized('a', (SELECT translate(email, '@.', '--') FROM {schema}.customers "
        "WHERE user_id = 1))::text",
        # A line end inside the quoted word (an address, a note): its first line was shown.
        "(SELECT translate(email, '@.', '-' || chr(10)) FROM {schema}.customers "
        "WHERE user_id = 1)::int::text",
        # A quote and a space inside, last on the line (an address, JSON): the word was
        # taken to end there, and the rest shown ('"a***" example.com"').
        "(SELECT replace(email, '@', '\" ') FROM {schema}.customers WHERE user_id = 1)::int",
    ],
    ids=[
        "quote-inside",
        "encoding-name",
        "normalization-form",
        "line-end-inside",
        "quote-and-space-inside",
    ],
)
def test_a_postgres_error_quoting_a_value_with_quotes_or_none_is_masked(
    tmp_path: Path, customers: Postgres, value: str
) -> None:
    """`invalid destination encoding name "ada"example"com"` went out whole: a quoted word
    was taken to end at its first inner quote, which a letter follows, so it was no word
    at all; and to_ascii and is_normalized say the name they refuse without quotes."""
    sql = f"SELECT {value.format(schema=customers.schema)} AS email"
    with pytest.raises(SourceError) as raised:
        read_members(postgres_audience(tmp_path, customers, sql), "email")
    assert "query failed (postgresql)" in str(raised.value)
    assert "example" not in mask_emails(str(raised.value)).lower()
    assert "example" in reveal(str(raised.value), True).lower()  # with --show-members


def test_a_postgres_error_of_quotes_no_end_follows_is_read_once(monkeypatch) -> None:
    """A member's value of thousands of ` 'a` (a quote no end follows) cast by a query: each
    quote was read from to the line's end looking for its end, 60 kB in 40 s. A quote's
    end is now looked for again only past the one found, and not at all once none is."""
    searches: list[int] = []

    class Counting:
        def __init__(self, pattern: re.Pattern[str]) -> None:
            self.pattern = pattern

        def search(self, text: str, pos: int) -> re.Match[str] | None:
            searches.append(pos)
            return self.pattern.search(text, pos)

    for q, pattern in dict(warehouse._CLOSING).items():
        monkeypatch.setitem(warehouse._CLOSING, q, Counting(pattern))
    message = 'DETAIL:  token "secret" near' + " 'a" * 5000 + " ended"

    marked = warehouse._data_marked(message, "SELECT CAST(note AS int) FROM t")

    assert mask_emails(marked).startswith("DETAIL:  token \"s***\" near 'a 'a")
    assert len(searches) <= 3  # the end of "secret", then none after the first ' or "


@pytest.mark.parametrize(
    ("call", "said"),
    [
        ("to_ascii(email, 'latin9x')", "latin9x is not a valid encoding name"),
        ("is_normalized(email, 'NFKX')::text", "invalid normalization form: NFKX"),
    ],
)
def test_a_postgres_error_saying_the_querys_own_name_bare_stays_readable(
    tmp_path: Path, customers: Postgres, call: str, said: str
) -> None:
    """validate over `to_ascii(email, 'latin9x')` printed only "l*** is not a valid
    encoding name": the pattern took the whole line for the value, the manifest's place
    and "query failed (postgresql)" with it, and the author's own typo was masked."""
    sql = f"SELECT {call} AS email FROM {customers.schema}.customers"
    with pytest.raises(SourceError) as raised:
        read_members(postgres_audience(tmp_path, customers, sql), "email")
    shown = mask_emails(str(raised.value))
    line = line_of(tmp_path / "aud.yaml", '"sql"')
    assert shown.startswith(f"aud.yaml:{line}:")
    assert f"query failed (postgresql): {said}" in shown


def test_a_postgres_excerpt_of_a_string_the_query_goes_on_with_stays_readable(
    tmp_path: Path, customers: Postgres
) -> None:
    """PostgreSQL's excerpt of the query cuts a long line with "...": a string the query
    opened there and closed on its next line read as a value over lines and was masked
    ("LINE 1: SELECT emial, 's***"), the author's own SQL."""
    sql = (
        "SELECT emial, 'a note that runs on and on and on and on and on and on and on\n"
        f"and ends here' AS note FROM {customers.schema}.customers"
    )
    with pytest.raises(SourceError) as raised:
        read_members(postgres_audience(tmp_path, customers, sql), "email")
    shown = mask_emails(str(raised.value))
    assert "LINE 1: SELECT emial, 'a note that runs on and on" in shown


_BY_USER_1 = "FROM {schema}.customers WHERE user_id = 1"


@pytest.mark.parametrize(
    "value",
    [
        # ts_stat and ts_rewrite run their text as SQL, quoted on the QUERY and LINE lines.
        "(SELECT word FROM ts_stat((SELECT 'SELECT ' || translate(email, '@.', '--') "
        + _BY_USER_1
        + ")) LIMIT 1)",
        "ts_rewrite('a'::tsquery, (SELECT 'SELECT ' || translate(email, '@.', '--') "
        + _BY_USER_1
        + "))::text",
        # The value in the middle of SQL that is the query's own words around it.
        "(SELECT word FROM ts_stat((SELECT 'SELECT x FROM nowhere WHERE y = ' || "
        "translate(email, '@.', '--') " + _BY_USER_1 + ")) LIMIT 1)",
        # regoper's input, named bare: "operator does not exist: ada-example-com".
        "(SELECT translate(email, '@.', '--') " + _BY_USER_1 + ")::regoper::text",
    ],
    ids=["ts_stat", "ts_rewrite", "inside-sql", "regoper"],
)
def test_a_postgres_error_quoting_sql_made_of_a_value_is_masked(
    tmp_path: Path, customers: Postgres, value: str
) -> None:
    """A value made into SQL that ts_stat or ts_rewrite ran was printed on the error's
    QUERY and LINE lines (`QUERY:  SELECT Ada-Example-com`), and regoper's input in
    "operator does not exist: Ada-Example-com": neither quoted, so neither masked."""
    sql = f"SELECT {value.format(schema=customers.schema)} AS email"
    with pytest.raises(SourceError) as raised:
        read_members(postgres_audience(tmp_path, customers, sql), "email")
    assert "query failed (postgresql)" in str(raised.value)
    masked = mask_emails(str(raised.value))
    assert "example" not in masked.lower(), masked
    assert "***" in masked
    # What went wrong is still said: the error, and which line quoted SQL.
    assert "does not exist" in masked
    assert "QUERY:" in masked or "operator does not exist: A***" in masked
    assert "ada-example-com" in reveal(str(raised.value), True).lower()  # --show-members


def test_a_postgres_error_keeps_the_operator_a_query_got_wrong(
    tmp_path: Path, customers: Postgres
) -> None:
    """An operator the query's own types lack is said with them, and stays readable."""
    sql = f"SELECT (user_id + 'x'::text)::text AS email FROM {customers.schema}.customers"
    with pytest.raises(SourceError) as raised:
        read_members(postgres_audience(tmp_path, customers, sql), "email")
    masked = mask_emails(str(raised.value))
    assert "operator does not exist: integer + text" in masked
    assert "LINE 1: SELECT (user_id + 'x'::text)::text AS email" in masked


def test_a_postgres_error_keeps_the_names_the_query_wrote(
    tmp_path: Path, customers: Postgres
) -> None:
    sql = f"SELECT emial FROM {customers.schema}.customers"
    with pytest.raises(SourceError) as raised:
        read_members(postgres_audience(tmp_path, customers, sql), "email")
    shown = mask_emails(str(raised.value))
    assert 'column "emial" does not exist' in shown
    assert 'Perhaps you meant to reference the column "customers.email"' in shown


class SilentServer:
    """A server that accepts connections and never says a word, as one behind a firewall
    that drops its packets, or stalled in its start-up, looks to a client. It lets them go
    after `patience` seconds, so a client without a timeout fails (slowly) rather than
    hanging the test run."""

    def __init__(self, patience: float = 20.0) -> None:
        import threading

        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.patience = patience
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import threading

        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Timer(self.patience, client.close).start()

    def close(self) -> None:
        self.server.close()


def test_a_server_that_never_answers_fails_at_the_url_line_within_the_connect_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libpq waits for ever by default: `validate` in CI would hang without a word.
    pytest.importorskip("psycopg")
    server = SilentServer()
    monkeypatch.setenv(PASSWORD_VAR, "s3cret-value")
    monkeypatch.setenv("RECONCILER_DATABASE_CONNECT_TIMEOUT", "2")
    url = f"postgresql://app:${{{PASSWORD_VAR}}}@127.0.0.1:{server.port}/crm"
    audience = load_audience(tmp_path, {"sql": "SELECT email FROM customers", "url": url})
    line = line_of(tmp_path / "aud.yaml", '"url"')
    try:
        with pytest.raises(SourceError) as raised:
            read_members(audience, "email")
    finally:
        server.close()
    message = str(raised.value)
    assert message.startswith(f"aud.yaml:{line}:"), message
    assert "cannot connect (postgresql)" in message
    assert "no answer within 2 s; RECONCILER_DATABASE_CONNECT_TIMEOUT" in message
    assert "s3cret-value" not in message


def test_a_server_refusing_connections_is_one_line_at_the_url_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused_port: int
) -> None:
    """libpq's hint came on a line of its own, indented, under `FILE:LINE: cannot connect`
    (and a line each for localhost's two addresses), breaking validate's one line."""
    pytest.importorskip("psycopg")
    port = refused_port
    monkeypatch.setenv(PASSWORD_VAR, "s3cret-value")
    url = f"postgresql://app:${{{PASSWORD_VAR}}}@localhost:{port}/crm"
    audience = load_audience(tmp_path, {"sql": "SELECT email FROM customers", "url": url})
    line = line_of(tmp_path / "aud.yaml", '"url"')
    with pytest.raises(SourceError) as raised:
        read_members(audience, "email")
    message = str(raised.value)
    assert "\n" not in message, message
    assert message.startswith(f"aud.yaml:{line}:14: cannot connect (postgresql): "), message
    assert "Connection refused; Is the server running on that host" in message, message
    assert "s3cret-value" not in message


def test_the_refused_port_is_held_on_every_address_localhost_has(refused_port: int) -> None:
    """The test above connects to localhost, which libpq tries at each of its addresses:
    the port was held on 127.0.0.1 alone, and a server on ::1 could take it meanwhile."""
    for family, _, _, _, address in socket.getaddrinfo("localhost", refused_port):
        with socket.socket(family) as other:
            try:
                other.bind(address)
            except OSError as exc:
                assert exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL), (address, exc)
            else:
                raise AssertionError(f"port {refused_port} free on {address[0]}")


def test_a_bad_connect_timeout_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("psycopg")
    monkeypatch.setenv(PASSWORD_VAR, "s3cret-value")
    monkeypatch.setenv("RECONCILER_DATABASE_CONNECT_TIMEOUT", "0")
    url = f"postgresql://app:${{{PASSWORD_VAR}}}@127.0.0.1:1/crm"
    audience = load_audience(tmp_path, {"sql": "SELECT email FROM customers", "url": url})
    with pytest.raises(ConfigError, match="RECONCILER_DATABASE_CONNECT_TIMEOUT must be a whole"):
        read_members(audience, "email")


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_postgres_rows_larger_than_the_memory_limit_fail_on_the_server(
    tmp_path: Path, customers: Postgres, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    """A row's width is unbounded and a chunk of rows arrives whole: 100 rows of
    `repeat('x', 100000000)` were one chunk of 10 GB. The server now fails the query once
    its rows pass RECONCILER_MEMORY_LIMIT: all of them for the Python engine, which keeps
    them, any chunk's worth for DuckDB's, which writes each out as it arrives."""
    from reconciler.sources import source_for

    monkeypatch.setenv("RECONCILER_MEMORY_LIMIT", "64MB")
    wide = (
        "SELECT 'u' || g || '@example.com' AS email, repeat('x', 1000000) AS note "
        "FROM generate_series(1, {rows}) AS g"
    )
    audience = postgres_audience(tmp_path, customers, wide.format(rows=100), mapped=True)
    held: list[int] = []

    def hold(_names: object, chunks: object) -> None:
        held.extend(len(row[1]) for chunk in chunks for row in chunk)  # type: ignore[attr-defined]

    with pytest.raises(SourceError) as refused:
        if engine == "python":
            read_members(audience, "email")
        else:
            source_for(audience).stream(hold)  # type: ignore[attr-defined]
    error = str(refused.value)
    line = line_of(tmp_path / "aud.yaml", '"sql"')
    assert error.startswith(f"aud.yaml:{line}:"), error
    assert "its rows hold more than 64,000,000 bytes of values" in error
    assert "RECONCILER_MEMORY_LIMIT" in error and customers.password not in error
    assert sum(held) <= 64_000_000
    # Under the limit the same rows are read, their values kept for the mapping.
    audience = postgres_audience(tmp_path, customers, wide.format(rows=30), mapped=True)
    result = read_members(audience, "email")
    assert len(result.members) == 30
    assert result.members["u1@example.com"].traits == {"note": "x" * 1000000}


@pytest.mark.parametrize(
    ("sql", "ordered"),
    [
        ("SELECT email FROM t ORDER BY email", True),
        ("select 1 AS email union all select 2 order by 1; -- members", True),
        ("WITH x AS (SELECT email FROM t) SELECT * FROM x ORDER BY email LIMIT 5", True),
        ("SELECT email FROM (SELECT email FROM t ORDER BY email) s", False),
        ("SELECT email, row_number() OVER (ORDER BY seen) FROM t", False),
        ("SELECT email FROM t WHERE note = 'order by'", False),
        # Not DuckDB's dialect: taken at its word, outside strings and comments.
        ("SELECT TOP 5 email FROM t ORDER BY email", True),
        ("SELECT TOP 5 email FROM t -- order by email", False),
    ],
)
def test_only_an_order_by_on_the_outermost_select_orders_a_querys_rows(
    sql: str, ordered: bool
) -> None:
    # Of rows sharing an identifier that disagree, the first is used: only an ordered
    # query's first row is the same on every run (state/desired.py).
    assert query_text.orders_its_rows(sql) is ordered


def test_a_missing_postgresql_driver_names_the_driver_not_a_package_called_reconciler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without psycopg, a postgresql:// source said `install reconciler[postgres]`. On PyPI,
    `reconciler` is another project (a pandas utility): `pip install 'reconciler[postgres]'`
    in a fresh environment installs it instead of this tool, and `pip install -U` replaces
    this tool with it. The hint names the driver itself, which installs where reconciler
    is, and the extra only as a checkout's `.[postgres]`."""
    for driver in ("psycopg", "psycopg2"):
        monkeypatch.setitem(sys.modules, driver, None)  # not installed
    monkeypatch.setenv(PASSWORD_VAR, "s3cret-value")
    url = f"postgresql://app:${{{PASSWORD_VAR}}}@127.0.0.1:1/db"
    audience = load_audience(tmp_path, {"sql": "SELECT 1", "url": url})
    line = line_of(tmp_path / "aud.yaml", '"url"')
    with pytest.raises(SourceError) as raised:
        read_members(audience, "email")
    message = str(raised.value)
    assert message.startswith(f"aud.yaml:{line}:"), message
    assert "cannot connect to postgresql: install psycopg," in message, message
    assert f"pip install '{warehouse.POSTGRES_DRIVER}'" in message, message
    assert "reconciler[" not in message and "s3cret" not in message, message
    # The requirement is the extra's own, so the two cannot drift apart.
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["optional-dependencies"]["postgres"] == [warehouse.POSTGRES_DRIVER]


def test_a_mysql_string_with_a_backslash_escaped_quote_is_one_statement() -> None:
    """MySQL reads `'a\\';b'` as one string (a backslash escapes the quote), and the query
    was refused as two statements; PostgreSQL's standard strings keep reading it as two."""
    mysql = "SELECT email FROM t WHERE note <> 'a\\';b' AND tag <> \"c\\\";d\";"
    assert not query_text.separated_statements(mysql, backslashes=True)
    assert query_text.statement_text(mysql, backslashes=True) == mysql[:-1]
    assert query_text.separated_statements("SELECT 'a\\'; DROP TABLE t; '", backslashes=False)
    assert query_text.separated_statements("SELECT 'a\\\\'; DROP TABLE t", backslashes=True)


@pytest.mark.parametrize(
    ("url", "mysql"),
    [
        ("mysql+pymysql://u@db.example.com/crm", True),
        ("mariadb://u@db.example.com/crm", True),
        ("postgresql://u@db.example.com/crm", False),
    ],
)
def test_only_mysql_urls_read_backslash_escapes(url: str, mysql: bool) -> None:
    from sqlalchemy.engine import make_url

    from reconciler.sources.warehouse import backslashes

    assert backslashes(make_url(url)) is mysql


def test_a_mysql_query_with_an_escaped_quote_before_a_semicolon_is_not_refused(
    tmp_path: Path,
) -> None:
    """`'a\\';b'` was refused at a MySQL URL ("must be a single SELECT statement"), where
    it is one string; at a PostgreSQL URL it is still two statements."""
    sql = "SELECT email FROM t WHERE note <> 'a\\';b'"
    mysql = load_audience(tmp_path, {"sql": sql, "url": "mysql+pymysql://u@127.0.0.1/crm"})
    with pytest.raises(SourceError) as read:
        read_members(mysql, "email")
    assert "single SELECT" not in str(read.value), read.value
    postgres = load_audience(tmp_path, {"sql": sql, "url": "postgresql://u@127.0.0.1:1/crm"})
    with pytest.raises(SourceError, match="single SELECT"):
        read_members(postgres, "email")
