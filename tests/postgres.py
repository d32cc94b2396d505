"""A real PostgreSQL for the SQL-source tests: each test gets a fresh schema, dropped after.

`.ci/run` starts a server (.ci/postgres) and sets RECONCILER_TEST_POSTGRES_URL. Without the
variable the tests try where .ci/postgres puts its server, and skip when nothing answers,
so the README's test command passes on a machine without PostgreSQL. With the variable
set, an unreachable server fails the tests instead: CI promised one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

URL_VAR = "RECONCILER_TEST_POSTGRES_URL"
# Where .ci/postgres starts its server.
DEFAULT_URL = "postgresql://reconciler:reconciler-test@127.0.0.1:54329/reconciler_test"


@dataclass
class Postgres:
    url: str  # with the password in it: tests put it in the environment, never in manifests
    schema: str

    def execute(self, sql: str, rows: Sequence[Sequence[Any]] | None = None) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(f"SET search_path TO {self.schema}")
            if rows is None:
                connection.execute(sql)
            else:
                with connection.cursor() as cursor:
                    cursor.executemany(sql, rows)

    @property
    def password(self) -> str:
        from sqlalchemy.engine import make_url

        password = make_url(self.url).password
        assert password
        return password

    def url_template(self, variable: str) -> str:
        """The URL with `${variable}` where the password was, as a manifest writes it."""
        from sqlalchemy.engine import make_url

        url = make_url(self.url).set(password="PASSWORD")
        text = url.render_as_string(hide_password=False)
        return text.replace(":PASSWORD@", f":${{{variable}}}@")


def server_url() -> str:
    psycopg = pytest.importorskip(
        "psycopg", reason="psycopg is not installed (pip install -e '.[test]')"
    )
    url = os.environ.get(URL_VAR)
    try:
        with psycopg.connect(url or DEFAULT_URL, connect_timeout=3):
            pass
    except psycopg.Error as exc:
        reason = f"no PostgreSQL server reachable (.ci/run starts one; or set {URL_VAR}): {exc}"
        if url:
            pytest.fail(reason)
        pytest.skip(reason)
    return url or DEFAULT_URL


def fresh_schema(url: str) -> Iterator[Postgres]:
    database = Postgres(url, f"test_{uuid.uuid4().hex[:12]}")
    database.execute(f"CREATE SCHEMA {database.schema}")
    try:
        yield database
    finally:
        database.execute(f"DROP SCHEMA {database.schema} CASCADE")
