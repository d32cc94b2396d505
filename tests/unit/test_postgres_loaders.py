"""reconciler/sources/postgres_loaders.py against the test PostgreSQL server: values loaded
as PostgreSQL means them (a char(n) without its padding, arrays of enums and domains as
lists, dates Python cannot hold as PostgreSQL's text), others as psycopg loads them."""

from __future__ import annotations

from typing import Any

from reconciler.sources.postgres_loaders import load_values_as_postgresql_gives_them
from tests.postgres import Postgres


def _select(postgres: Postgres, sql: str) -> tuple[Any, ...]:
    import psycopg

    with psycopg.connect(postgres.url) as connection:
        load_values_as_postgresql_gives_them(connection, None)
        connection.execute(f"SET search_path TO {postgres.schema}")
        row = connection.execute(sql).fetchone()
    assert row is not None
    return tuple(row)


def test_char_values_come_without_their_padding(postgres: Postgres) -> None:
    assert _select(
        postgres, "SELECT 'usr-1'::char(10), ARRAY['ab', 'c']::char(4)[], 'tab\t'::char(6)"
    ) == ("usr-1", ["ab", "c"], "tab\t")  # a tab is kept, as PostgreSQL's cast keeps it


def test_arrays_of_enums_and_domains_are_lists(postgres: Postgres) -> None:
    postgres.execute("CREATE TYPE interest AS ENUM ('sports', 'music')")
    postgres.execute("CREATE DOMAIN score AS integer CHECK (VALUE >= 0)")
    postgres.execute("CREATE DOMAIN high_score AS score CHECK (VALUE >= 10)")
    assert _select(
        postgres,
        "SELECT ARRAY['sports', 'music']::interest[], ARRAY[1, 2]::score[], "
        "ARRAY[10]::high_score[]",
    ) == (["sports", "music"], [1, 2], [10])


def test_dates_python_cannot_hold_come_as_postgresqls_text(postgres: Postgres) -> None:
    import datetime

    assert _select(
        postgres, "SELECT 'infinity'::date, '-infinity'::timestamptz, '2024-05-01'::date"
    ) == ("infinity", "-infinity", datetime.date(2024, 5, 1))


def test_other_values_load_as_psycopg_loads_them(postgres: Postgres) -> None:
    assert _select(postgres, "SELECT 'x'::text, 3::int, ARRAY[1, 2]::int[]") == ("x", 3, [1, 2])
