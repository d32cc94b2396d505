"""`spec.members`: exactly one of inline, csv, parquet, sql; sql with exactly one of database,
url; URLs without literal passwords. The loader and the JSON Schema agree."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from reconciler.errors import ManifestError
from reconciler.manifest import load_manifests, manifest_json_schema

HEADER = """\
apiVersion: reconciler/v1
kind: Destination
metadata: {name: prod}
spec: {region: sandbox, projectType: hybrid}
---
apiVersion: reconciler/v1
kind: Audience
metadata: {name: a}
spec:
  destination: prod
  members:
"""


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def load(members: str):  # type: ignore[no-untyped-def]
    Path("m.yaml").write_text(HEADER + textwrap.indent(textwrap.dedent(members), "    "))
    return load_manifests(Path("m.yaml"))


def problems(members: str) -> list[str]:
    with pytest.raises(ManifestError) as raised:
        load(members)
    return [str(p) for p in raised.value.problems]


@pytest.mark.parametrize(
    "members",
    [
        "parquet: data/a.parquet\nemail: mail\n",
        "sql: SELECT email FROM read_csv('a.csv')\ndatabase: ':memory:'\n",
        "sql: SELECT * FROM users\ndatabase: crm.duckdb\nuserId: id\n",
        "sql: SELECT email FROM users\nurl: postgresql://app:${PGPASSWORD}@db/x\n",
        "sql: SELECT email FROM users\nurl: postgresql://app@db/x\n",
    ],
)
def test_file_and_query_sources_load(members: str) -> None:
    spec = load(members).audiences["a"].spec.members
    assert (spec.parquet or spec.sql) is not None


def test_two_sources_are_refused_at_members() -> None:
    assert problems("csv: a.csv\nparquet: a.parquet\n") == [
        "m.yaml:11:3: spec.members: give exactly one of inline, csv, parquet, sql"
    ]


def test_sql_needs_exactly_one_of_database_and_url() -> None:
    """Without either, the message says where `database:` goes (it named only the keys, and
    a `database:` one indent out, under spec, is reported as an unknown key there)."""
    assert problems("sql: SELECT 1\n") == [
        "m.yaml:12:10: spec.members.sql: needs where the query runs: add `database:` beside "
        "`sql:` under spec.members, a DuckDB file or ':memory:' (a query that only reads "
        "files, read_csv('data/x.csv')), or `url:` there (SQLAlchemy)"
    ]
    assert problems("sql: SELECT 1\ndatabase: x.duckdb\nurl: postgresql://db/x\n") == [
        "m.yaml:12:10: spec.members.sql: needs exactly one of database (DuckDB), url "
        "(SQLAlchemy), not both"
    ]


def test_database_and_url_apply_only_to_sql() -> None:
    assert problems("parquet: a.parquet\ndatabase: x.duckdb\n") == [
        "m.yaml:13:15: spec.members.database: applies only to sql members"
    ]


def test_column_names_apply_to_file_and_query_sources_only() -> None:
    assert problems("inline: [a@example.com]\nemail: mail\n") == [
        "m.yaml:13:12: spec.members.email: column names apply only to csv, parquet and sql members"
    ]


def test_a_literal_password_is_refused_without_being_quoted() -> None:
    found = problems("sql: SELECT 1\nurl: postgresql://app:hunter2@db/x\n")
    assert found == [
        "m.yaml:13:10: spec.members.url: a literal password is refused because passwords never "
        "live in git; write ${VARIABLE} in its place, e.g. postgresql://app:${PGPASSWORD}@host/db"
    ]
    assert "hunter2" not in found[0]


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("password=hunter2", "password"),
        ("user=app&PassWord=hunter2", "password"),
        ("sslmode=require&sslpassword=hunter2", "sslpassword"),
        ("passwd=hunter2", "passwd"),
        ("%70assword=hunter2", "password"),
    ],
)
def test_a_literal_password_in_the_query_is_refused_without_being_quoted(
    query: str, name: str
) -> None:
    """libpq takes `?password=` as it takes the userinfo's: a URL holding one connected,
    its password committed to git."""
    found = problems(f"sql: SELECT 1\nurl: 'postgresql://app@db/x?{query}'\n")
    assert found == [
        f"m.yaml:13:10: spec.members.url: a literal password in the query ({name}=) is "
        "refused because passwords never live in git; write ${VARIABLE} in the URL's "
        "password place instead, e.g. postgresql://app:${PGPASSWORD}@host/db"
    ]
    assert "hunter2" not in found[0]


@pytest.mark.parametrize(
    "query", ["password=", "application_name=password", "sslmode=require", "passwordless=1"]
)
def test_a_query_without_a_password_loads(query: str) -> None:
    assert load(f"sql: SELECT 1\nurl: 'postgresql://app@db/x?{query}'\n") is not None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("db.example.com/x", "expected a SQLAlchemy URL such as"),
        ("postgresql://app:${1PW}@db/x", "${...} must name an environment variable"),
    ],
)
def test_bad_urls_are_located(url: str, message: str) -> None:
    (found,) = problems(f"sql: SELECT 1\nurl: '{url}'\n")
    assert found.startswith("m.yaml:13:10: spec.members.url: " + message)


# --- the JSON Schema says the same ----------------------------------------------------------


def audience(members: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "reconciler/v1",
        "kind": "Audience",
        "metadata": {"name": "a"},
        "spec": {"destination": "prod", "members": members},
    }


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    return Draft202012Validator(manifest_json_schema())


@pytest.mark.parametrize(
    "members",
    [
        {"parquet": "a.parquet", "email": "mail"},
        {"sql": "SELECT 1", "database": ":memory:"},
        {"sql": "SELECT 1", "url": "postgresql://app:${PW}@db/x"},
    ],
)
def test_schema_accepts_file_and_query_sources(
    validator: Draft202012Validator, members: dict[str, Any]
) -> None:
    assert list(validator.iter_errors(audience(members))) == []


@pytest.mark.parametrize(
    "members",
    [
        {"csv": "a.csv", "parquet": "a.parquet"},
        {"parquet": "a.parquet", "sql": "SELECT 1", "database": ":memory:"},
        {"sql": "SELECT 1"},
        {"sql": "SELECT 1", "database": ":memory:", "url": "postgresql://db/x"},
        {"parquet": "a.parquet", "database": "x.duckdb"},
        {"csv": "a.csv", "url": "postgresql://db/x"},
    ],
)
def test_schema_rejects_what_the_loader_rejects(
    validator: Draft202012Validator, members: dict[str, Any], tmp_path: Path
) -> None:
    assert list(validator.iter_errors(audience(members))) != []
    lines = "".join(f"{key}: '{value}'\n" for key, value in members.items())
    assert problems(lines) != []
