"""`members: {sql: QUERY, url: URL}`: the query runs where the data lives, via SQLAlchemy.

PostgreSQL, or a warehouse whose SQLAlchemy dialect is installed (BigQuery, Snowflake,
Trino, ...). Rows come back through a server-side cursor in chunks (`stream_results`,
`yield_per`), so an audience of millions is never one result set in memory.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import importlib.util
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError, NoSuchModuleError
from sqlalchemy.pool import NullPool

from reconciler.env_numbers import NumberRule, env_int
from reconciler.errors import ReconcilerError, SourceError, SourceUnreachable
from reconciler.manifest.manifests import Audience
from reconciler.manifest.model import MembersSpec
from reconciler.manifest.repository import is_inside, real_path
from reconciler.members.engine.settings import EngineSettings
from reconciler.members.identity import ProjectType
from reconciler.render.masking import SOURCE_MARKS, source_value, unmarked
from reconciler.sources.base import (
    Consume,
    R,
    RelationReader,
    Source,
    digests_as_read,
    remember_read,
)
from reconciler.sources.database_url import (
    DatabaseUrl,
    check_database_host,
    confine_file_database,
    expand_url,
    parse_url,
    sqlite_file,
)
from reconciler.sources.error_excerpt import in_query, statement_position
from reconciler.sources.identifier_types import refused_column
from reconciler.sources.postgres_loaders import load_values_as_postgresql_gives_them
from reconciler.sources.query_text import (
    orders_its_rows,
    separated_statements,
    statement_text,
)
from reconciler.sources.result import SourceResult
from reconciler.sources.rows import CHUNK_ROWS, find_columns, members_from_rows
from reconciler.sources.shared_runs import Recorded, replayed
from reconciler.sources.snapshot import FileState, file_state
from reconciler.sources.sqlite_memory import heap_limit, keep_temporary_in_memory
from reconciler.sources.time_limit import QueryGuard, query_timeout, timed_out

# Seconds a server may take to accept a connection (libpq's connect_timeout, which counts
# whole seconds).
CONNECT_TIMEOUT_VARIABLE = "RECONCILER_DATABASE_CONNECT_TIMEOUT"
DEFAULT_CONNECT_TIMEOUT = 30
CONNECT_TIMEOUT = NumberRule(whole=True, least=1, unit="seconds")

# Drivers reconciler has an extra for (pyproject.toml's `postgres`), for the hint when one
# is missing: named as the driver's own requirement, never as `reconciler[postgres]`, which
# pip looks up on PyPI, where `reconciler` is another project (a pandas utility): in a new
# environment it installs that, and `pip install -U` replaces this tool with it.
POSTGRES_DRIVER = "psycopg[binary]>=3.1"
_EXTRAS = {
    "postgresql": (
        f"psycopg, PostgreSQL's driver, where reconciler is: pip install '{POSTGRES_DRIVER}'"
    )
}


class Warehouse(Source):
    kind = "warehouse"
    field = "sql"
    traits_at_scale = True  # its values are kept exactly (engine/desired_table.py)
    counted_by_running = True  # estimate_rows: a count(*) over the query
    streams_rows = True

    def __init__(self, audience: Audience) -> None:
        super().__init__(audience)
        # A SQLite file of the repository's (`url: sqlite:///data/x.db`), as each run of
        # the query found it; None when two runs found it different.
        self._read: dict[Path, FileState | None] = {}

    def _sqlite_file(self) -> Path | None:
        """The repository's SQLite file the query reads, if it reads one (one outside the
        repository is not even looked at: the query is refused before it runs)."""
        assert self.spec.url is not None
        url_at = str(self.audience.field_location("members", "url"))
        path = sqlite_file(expand_url(self.spec.url, url_at).url)
        if path is None or not is_inside(path, self.audience.source_root):
            return None
        return real_path(path)

    def named_reads(self) -> list[Path]:
        # The URL as written: a check of re-runs has no database password in its
        # environment, and a SQLite URL needs none. One that does not parse is refused
        # before any query runs.
        assert self.spec.url is not None
        url = parse_url(self.spec.url)
        path = sqlite_file(url) if url is not None else None
        return [] if path is None else [path]

    def _url(self) -> URL:
        """The URL the query runs at, as stream_query makes it (ReconcilerError if not)."""
        assert self.spec.url is not None
        url_at = str(self.audience.field_location("members", "url"))
        database = expand_url(self.spec.url, url_at)
        return confine_file_database(database.url, url_at, self.audience.source_root)

    def run_key(self) -> str | None:
        """The query's text and the URL it runs at, credentials filled in (another user
        may see other rows), as a digest: nothing secret is kept. None when the URL cannot
        be made (the read then says why)."""
        assert self.spec.sql is not None and self.spec.url is not None
        try:
            url = self._url()
        except ReconcilerError:
            return None
        where = url.render_as_string(hide_password=False)
        return hashlib.sha256(f"{where}\0{self.spec.sql}".encode()).hexdigest()

    def stream(self, consume: Consume, sql: str | None = None) -> None:
        # The DuckDB engine writes each chunk out as it arrives: only a chunk is held.
        self._stream(consume, sql, held=None if sql is not None else CHUNK_ROWS)

    def _stream(self, consume: Consume, sql: str | None, held: int | None) -> None:
        """`held`: how many of the rows the reader holds at once (None: all of them)."""
        path = self._sqlite_file()
        state = file_state(path) if path is not None else None
        arrived = self.rows_arrived
        if sql is None and arrived is not None:
            consume = _reporting(consume, arrived)
        if sql is None:
            consume = self._naming(consume)
        shared = self.shared if sql is None else None
        if shared is None:
            self._run_query(consume, sql, held, path, state)
            return
        try:
            recorded = shared.replay(held)
            if recorded is not None:
                self._replay(recorded, consume, path)
            else:
                # This audience's identifier columns are checked as the rows arrive, in
                # the recording, so that a refusal of its own leaves the run to the others.
                types: list[Any] = []
                teeing = shared.recording(held, consume, types, state, self._check_types)
                self._run_query(teeing, sql, held, path, state, types)
        finally:
            shared.read()

    def _naming(self, consume: Consume) -> Consume:
        """`consume`, with the query's column names kept first (Source.columns_read)."""

        def named(names: Sequence[str], chunks: Iterable[Sequence[Sequence[Any]]]) -> None:
            self.columns_read = list(names)
            consume(names, chunks)

        return named

    def _run_query(
        self,
        consume: Consume,
        sql: str | None,
        held: int | None,
        path: Path | None,
        state: FileState | None,
        types: list[Any] | None = None,
    ) -> None:
        budget = None if sql is not None else Budget(EngineSettings.from_env().memory_bytes, held)
        # With `types` asked for, the recording checks the identifier columns' types.
        stream_query(self.audience, consume, sql, budget, types, check_types=types is None)
        if path is not None and state is not None:
            remember_read(self._read, path, state)

    def _check_types(self, names: Sequence[str], types: Sequence[Any]) -> None:
        """The refusal of an identifier column by its type that stream_query makes."""
        if self._url().get_backend_name() == "postgresql":
            _refuse_identifiers_by_type(names, types, self.spec, f"{self.declared_at}: the query")

    def _replay(self, recorded: Recorded, consume: Consume, path: Path | None) -> None:
        """Another audience's run of this very query, read from its file as from the
        database: this audience's identifier columns are checked against the types the
        driver gave, as its own run would check them."""
        names, types, chunks = replayed(recorded)
        self._check_types(names, types)
        consume(names, chunks())
        if path is not None and recorded.state is not None:
            remember_read(self._read, path, recorded.state)

    def digests(self) -> list[tuple[Path, str]]:
        """A SQLite file in the repository is a member file like a CSV: a saved plan
        digests it, as the query read it. A server's data cannot be digested without
        running the query; the live fingerprint still catches changes on Iterable's side."""
        return digests_as_read(self, self._read)

    def estimate_rows(self) -> int | None:
        """A `SELECT count(*)` over the query, where it runs (a second, cheaper run)."""
        assert self.spec.sql is not None
        # The newline ends a `-- comment` left inside the query.
        written = parse_url(self.spec.url) if self.spec.url is not None else None
        query = statement_text(self.spec.sql, written is not None and backslashes(written))
        counts: list[int] = []

        def take(_names: Sequence[str], chunks: Iterable[Sequence[Sequence[Any]]]) -> None:
            counts.extend(int(row[0]) for chunk in chunks for row in chunk)

        self.stream(take, sql=f"SELECT count(*) FROM ({query}\n) AS audience_rows")
        return counts[0] if counts else None

    def rows_in_order(self) -> bool:
        assert self.spec.sql is not None
        return orders_its_rows(self.spec.sql)

    def relation(self, reader: RelationReader[R]) -> R:
        return reader.stream(self)

    def read(self, project_type: ProjectType) -> SourceResult:
        declared_at = self.declared_at
        results: list[SourceResult] = []

        def where(row: int) -> str:
            return f"{declared_at}: query row {row}"

        def consume(names: Sequence[str], chunks: Iterable[Sequence[Sequence[Any]]]) -> None:
            columns = find_columns(list(names), self.spec, f"{declared_at}: the query", query=True)
            results.append(members_from_rows(chunks, columns, project_type, where, self.mapped))

        self._stream(consume, None, held=None)  # the Python engine keeps every row
        return results[0]


def _reporting(consume: Consume, arrived: Callable[[int], None]) -> Consume:
    """`consume`, with each chunk's number of rows told to `arrived` once it is taken."""

    def counted(chunks: Iterable[Sequence[Sequence[Any]]]) -> Iterator[Sequence[Sequence[Any]]]:
        for chunk in chunks:
            yield chunk
            arrived(len(chunk))

    return lambda names, chunks: consume(names, counted(chunks))


@dataclass(frozen=True)
class Budget:
    """The bytes of values (as text) a query's rows may bring into memory: within any
    `rows` consecutive rows, or within all of them when `rows` is None."""

    bytes: int
    rows: int | None = None


# The error a PostgreSQL read over its budget raises (a failed cast), told from others by it.
_OVER_BUDGET = "reconciler: rows over the memory budget"


def stream_query(
    audience: Audience,
    consume: Consume,
    sql: str | None = None,
    budget: Budget | None = None,
    types: list[Any] | None = None,
    check_types: bool = True,
) -> None:
    """Run the audience's query (or `sql`, a query over it) at its URL and hand `consume`
    the column names and the rows in chunks, as they stream back. Errors come out
    scrubbed of the URL's secrets. A PostgreSQL query under a `budget` fails on the
    server once its rows pass it, before they reach memory. `types` is given the driver's
    type of each column before `consume` is called; `check_types` False leaves the refusal
    of an identifier column by its type to the caller."""
    spec = audience.spec.members
    assert spec.sql is not None and spec.url is not None
    declared_at = str(audience.field_location("members", "sql"))
    url_at = str(audience.field_location("members", "url"))
    database = expand_url(spec.url, url_at)
    url = _with_installed_driver(confine_file_database(database.url, url_at, audience.source_root))
    if separated_statements(spec.sql, backslashes(url)):
        # The server refused it, but as a syntax error at reconciler's wrapping (`near
        # ";"`, quoting a cursor's DECLARE) or "cannot insert multiple commands into a
        # prepared statement", neither naming what to change; and no second statement
        # is sent anywhere.
        raise SourceError(
            f"{declared_at}: the query must be a single SELECT statement; found a ';' "
            "followed by more (a member source only reads: write one SELECT, a ';' and "
            "comments may end it)"
        )
    connect_args = _connect_args(url)
    try:
        # hide_parameters: bound values never reach an error message; NullPool: one
        # connection, closed when the read ends.
        engine = create_engine(
            url, hide_parameters=True, poolclass=NullPool, connect_args=connect_args
        )
        if url.get_backend_name() == "sqlite":
            event.listen(engine, "connect", _sqlite_reads_only)
        if url.get_driver_name() == "psycopg":
            event.listen(engine, "connect", load_values_as_postgresql_gives_them)
    except (NoSuchModuleError, ImportError) as exc:
        raise SourceError(_missing_driver(url_at, url, database, exc)) from None
    except Exception as exc:
        # A bad option in the URL's query string: the message may quote its value.
        raise SourceError(
            f"{declared_at}: cannot use the database URL: {database.scrub(str(exc))}"
        ) from None
    # Before connecting: a manifest alone must not choose where credentials go.
    check_database_host(url, url_at)
    backend = url.get_backend_name()
    sql_text = sql or spec.sql
    try:
        try:
            connection = engine.connect()
        except Exception as exc:
            # Whatever the driver raises (connection refused, a bad password, no answer)
            # may quote the URL or password, so nothing leaves unscrubbed.
            raise SourceUnreachable(
                f"{url_at}: cannot connect ({backend}): "
                f"{database.scrub(_one_line(_driver_message(exc)))}"
                f"{_timeout_hint(exc, connect_args)}"
            ) from None
        try:
            with connection, _memory_bound(backend):
                # The audience's own query (not a count over it) has its identifier
                # columns' types checked.
                identifiers = spec if sql is None and check_types else None
                _run(
                    connection, backend, sql_text, consume, declared_at, budget, identifiers, types
                )
        except SourceError:
            raise
        except MemoryError:
            if backend != "sqlite":
                raise
            # SQLITE_NOMEM past sqlite_memory's limit (or Python's own, reading the rows:
            # either way, the query took more memory than it may).
            raise SourceError(
                f"{declared_at}: cannot read the query: it needed more memory than the "
                f"{_sqlite_memory_bytes():,} bytes a manifest's query may use (a share of "
                "RECONCILER_MEMORY_LIMIT, 1GB by default; a SQLite query's sorts and "
                "temporary tables are kept in it); make the query lighter, or raise the limit"
            ) from None
        except Exception as exc:
            if budget is not None and _over_budget(exc):
                raise SourceError(
                    f"{declared_at}: cannot read the query: its rows hold more than "
                    f"{budget.bytes:,} bytes of values{_held(budget)}, more than "
                    "RECONCILER_MEMORY_LIMIT lets a plan hold in memory; make its values "
                    "smaller, or raise the limit"
                ) from None
            # Deliberately broad: whatever the driver raises (a syntax error, a connection
            # dropped midway) may quote the URL or password, so nothing leaves unscrubbed;
            # and what it quotes of the data is marked as such.
            message = _data_marked(database.scrub(_driver_message(exc)), sql_text)
            raise SourceError(f"{declared_at}: query failed ({backend}): {message}") from None
    finally:
        engine.dispose()


def backslashes(url: URL) -> bool:
    """Whether the server reads a backslash in a string as an escape (`'a\\';b'` is one
    string): MySQL's and MariaDB's default (NO_BACKSLASH_ESCAPES off)."""
    return url.get_backend_name() in ("mysql", "mariadb")


def _sqlite_memory_bytes() -> int:
    """What a SQLite query may allocate: what a manifest's DuckDB query may use."""
    return EngineSettings.from_env().duckdb_memory_bytes


def _memory_bound(backend: str) -> contextlib.AbstractContextManager[None]:
    if backend != "sqlite":
        return contextlib.nullcontext()
    return heap_limit(_sqlite_memory_bytes())


def _over_budget(exc: Exception) -> bool:
    """Whether the query failed at `_within_postgresql`'s cast (the rest of the message
    quotes the query, the wrapping included), or at `_within_sqlite`'s function (the only
    function of Python's a query can call)."""
    first = _driver_message(exc).partition("\n")[0]
    return f'"{_OVER_BUDGET}: ' in first or _SQLITE_FUNCTION_FAILED in first


def _held(budget: Budget) -> str:
    return f" in {budget.rows:,} rows" if budget.rows is not None else ""


def _run(
    connection: Connection,
    backend: str,
    sql: str,
    consume: Consume,
    declared_at: str,
    budget: Budget | None = None,
    identifiers: MembersSpec | None = None,
    types: list[Any] | None = None,
) -> None:
    # The query goes to the driver as written: no_parameters keeps '%' and ':name' in it
    # from being read as placeholders. stream_results asks for a server-side cursor;
    # yield_per makes it fetch CHUNK_ROWS rows per round trip. PostgreSQL runs it in a
    # read-only transaction: a member source only reads.
    options: dict[str, Any] = {"stream_results": True, "no_parameters": True}
    if backend == "postgresql":
        connection = connection.execution_options(postgresql_readonly=True)
        _bounded_on_the_server(connection)
    connection = connection.execution_options(**options)
    with _time_limit(connection, declared_at):
        names: list[str] | None = None
        if budget is not None and backend == "postgresql":
            names, sql = _within_postgresql(connection, sql, budget)
        elif budget is not None and backend == "sqlite":
            names, sql = _within_sqlite(connection, sql, budget)
        result = connection.exec_driver_sql(sql).yield_per(CHUNK_ROWS)
        names = names if names is not None else list(result.keys())
        described = [column[1] for column in result.cursor.description or ()]
        if identifiers is not None and backend == "postgresql":
            _refuse_identifiers_by_type(names, described, identifiers, f"{declared_at}: the query")
        if types is not None:
            types.extend(described)
        consume(names, result.partitions())


# Seconds the server's own limit on a statement gives beyond RECONCILER_QUERY_TIMEOUT, so
# that the client's cancel, which says why, always comes first; and how often the server
# looks whether the client is still there while a statement runs (PostgreSQL 14 and later).
_SERVER_TIMEOUT_MARGIN = 30
_CLIENT_CHECK = "5s"
_LONGEST_STATEMENT_TIMEOUT_MS = 2**31 - 1  # statement_timeout is an int of milliseconds


def _bounded_on_the_server(connection: Connection) -> None:
    """Limits the query's transaction on the server itself, for when the client is gone:
    a run killed outright (SIGKILL after a CI job's grace period, the OOM killer, a runner
    shut down) cancels nothing, and PostgreSQL went on running its statement (pg_sleep(3600),
    a join of hours) until it had a row to send. The client's cancel (_time_limit) stays
    the limit that counts; these only follow it. SET LOCAL ends with the transaction, so a
    pooler's server connection (PgBouncer's transaction mode) is left as it was; a query
    may turn them off (set_config), as it may any setting: they bound a query whose
    client died, not a hostile one. A server of another lineage that reports a version
    before 9.6 (Redshift's 8.0) is left alone."""
    version = connection.dialect.server_version_info or ()
    if tuple(version[:2]) < (9, 6):
        return
    seconds = int(query_timeout()) + _SERVER_TIMEOUT_MARGIN
    seconds = min(seconds, _LONGEST_STATEMENT_TIMEOUT_MS // 1000)
    connection.exec_driver_sql(f"SET LOCAL statement_timeout = '{seconds}s'")
    if tuple(version[:1]) >= (14,):
        connection.exec_driver_sql(
            f"SET LOCAL client_connection_check_interval = '{_CLIENT_CHECK}'"
        )


# PostgreSQL types refused as identifiers by the type OID a driver's cursor describes a
# column with, though psycopg loads them as text or parsed JSON: json and jsonb, and money,
# whose text is the server's currency format ('$1.00', '1,00 €' under another lc_monetary).
_REFUSED_TYPES = {114: "JSON", 3802: "JSONB", 790: "money"}


def _refuse_identifiers_by_type(
    names: Sequence[str], types: Sequence[Any], spec: MembersSpec, source: str
) -> None:
    """A json, jsonb or money identifier column is refused by its type, as a DuckDB
    query's JSON column is (identifier_types.identifier_sql): the driver parses JSON, so
    a JSON string passed for text, a number for an integer, and an object failed the
    audience only at the row holding one, after the rows before it had been read; money
    came as '$1.00', an id that matched no profile, so each run subscribed new ones."""
    columns = find_columns(names, spec, source, query=True)
    for role, index in (("email", columns.email), ("userId", columns.user_id)):
        if index is not None and index < len(types) and types[index] in _REFUSED_TYPES:
            kind = _REFUSED_TYPES[types[index]]
            raise SourceError(refused_column(source, names[index], role, kind))


# PostgreSQL types whose values' text is short whatever they hold (numbers, times, UUIDs):
# counted at this many bytes each, without converting them to text on the server.
_FIXED_WIDTH = 40
_FIXED_TYPES = frozenset({16, 20, 21, 23, 26, 700, 701, 1082, 1083, 1114, 1184, 1186, 1266, 2950})
# Types whose octet_length is their text's, with no conversion: text, varchar, char, name.
_TEXT_TYPES = frozenset({19, 25, 1042, 1043})
_BYTEA = 17  # sent as hex: two characters a byte


def _within_postgresql(connection: Connection, sql: str, budget: Budget) -> tuple[list[str], str]:
    """The query's column names, and the query failing on the server once its rows'
    values pass `budget`: a row's width is unbounded (`SELECT repeat('x', 100000000) FROM
    generate_series(1, 100)`) and a chunk of CHUNK_ROWS rows arrives whole, so one chunk
    could take any memory. A running sum is a window the server computes as rows stream
    (the rows themselves kept only for a sliding frame, on the server, within work_mem);
    the failure is a cast, since plain SQL cannot raise an error of its own."""
    sql = statement_text(sql)  # a trailing `; -- comment` would end the wrapping query
    described = _described(connection, sql)
    columns = [(column[0], column[1]) for column in described.cursor.description or ()]
    described.close()
    if not columns:  # `SELECT FROM t`: rows of nothing, no member either
        return [], sql
    cells = [f"c{i}" for i in range(len(columns))]
    fixed = sum(1 for _, kind in columns if kind in _FIXED_TYPES)
    sizes = [f"{_FIXED_WIDTH * fixed}::bigint"]
    for cell, (_, kind) in zip(cells, columns, strict=True):
        if kind in _TEXT_TYPES:
            sizes.append(f"coalesce(octet_length({cell})::bigint, 0)")
        elif kind == _BYTEA:
            sizes.append(f"2 * coalesce(octet_length({cell})::bigint, 0)")
        elif kind not in _FIXED_TYPES:
            sizes.append(f"coalesce(octet_length({cell}::text)::bigint, 0)")
    preceding = "UNBOUNDED" if budget.rows is None else str(max(budget.rows - 1, 0))
    listed = ", ".join(cells)
    wrapped = (
        f"SELECT {listed} FROM (SELECT {listed}, sum({' + '.join(sizes)}) OVER (ROWS "
        f"BETWEEN {preceding} PRECEDING AND CURRENT ROW) AS read_bytes FROM ({sql}\n) AS "
        f"q({listed})) AS sized WHERE CASE WHEN read_bytes > {int(budget.bytes)} THEN "
        f"('{_OVER_BUDGET}: ' || read_bytes)::int = 0 ELSE true END"
    )
    return [name for name, _ in columns], wrapped


# A CTE, not a subquery in FROM: `FROM (SELEC email ...` is read as a join in parentheses,
# so a misspelt SELECT was reported "at or near FROM"; a CTE holds only a statement, and
# the server names what the query alone would.
_DESCRIBE = "WITH q AS ("


class _QueryFailed(Exception):
    """The driver's message of a failed query, its excerpt from the manifest's query."""


def _described(connection: Connection, sql: str) -> Any:
    """The query's columns, described by a statement that returns no rows. Sent as it is
    (no server-side cursor's DECLARE before it), so the server's error position counts
    from _DESCRIBE and the `LINE n:` excerpt is drawn from the manifest's query."""
    try:
        return connection.execution_options(stream_results=False).exec_driver_sql(
            f"{_DESCRIBE}{sql}\n) SELECT * FROM q LIMIT 0"
        )
    except DBAPIError as exc:
        message = _driver_message(exc)
        position = statement_position(exc.orig)
        raise _QueryFailed(in_query(message, position, len(_DESCRIBE), sql)) from None


# How sqlite3 reports an exception raised in a Python function the query called.
_SQLITE_FUNCTION_FAILED = "user-defined function raised exception"
_SQLITE_BUDGET_FUNCTION = "reconciler_read_bytes"


class _RowBytes:
    """The bytes of the rows a SQLite query has returned (within the last `budget.rows`
    rows, or all of them): called by the query for each row, it raises once they pass
    `budget.bytes`, and SQLite fails the query there."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.total = 0
        self.recent: collections.deque[int] = collections.deque()

    def __call__(self, size: int | None) -> int:
        # Never below 0: a size the query itself passed could otherwise take bytes off.
        size = max(size or 0, 0)
        self.total += size
        if self.budget.rows is not None:
            self.recent.append(size)
            if len(self.recent) > self.budget.rows:
                self.total -= self.recent.popleft()
        if self.total > self.budget.bytes:
            raise ValueError(_OVER_BUDGET)
        return 1


def _within_sqlite(connection: Connection, sql: str, budget: Budget) -> tuple[list[str], str]:
    """The query's column names, and the query failing in SQLite once its rows' values
    pass `budget`, as `_within_postgresql` does on the server: SQLite's heap limit bounds
    one value (sqlite_memory), not how many such rows reach Python, where the Python engine
    keeps them all. A function of reconciler's counts each row as SQLite returns it; SQL
    alone has no way to fail a query."""
    sql = statement_text(sql)
    described = connection.exec_driver_sql(f"SELECT * FROM ({sql}\n) LIMIT 0")
    names = [column[0] for column in described.cursor.description or ()]
    described.close()
    if not names:
        return [], sql
    dbapi = connection.connection.dbapi_connection
    assert isinstance(dbapi, sqlite3.Connection)
    dbapi.create_function(_SQLITE_BUDGET_FUNCTION, 1, _RowBytes(budget))
    cells = [f"c{i}" for i in range(len(names))]
    listed = ", ".join(cells)
    # A value's bytes as text (a number's digits, a blob's bytes), as PostgreSQL's count.
    size = " + ".join(f"coalesce(length(CAST({cell} AS BLOB)), 0)" for cell in cells)
    wrapped = (
        f"WITH q({listed}) AS ({sql}\n) SELECT {listed} FROM q "
        f"WHERE {_SQLITE_BUDGET_FUNCTION}({size})"
    )
    return names, wrapped


# A quoted word in a database's message: `relation "x" does not exist`, `'x'`. PostgreSQL
# does not escape a quote inside the word (`"a"b"`): the word ends at a quote no letter
# follows, not at the first (_quoted_words). Where no letter comes before.
_OPENING = re.compile(r"(?<![A-Za-z])[\"']")
_CLOSING = {q: re.compile(f"{q}(?![A-Za-z])") for q in "\"'"}
# A quoted word a line opens and does not close: a value holding a line end (an
# address, a note, JSON over lines), whose rest is on the lines after (each marked, as
# unlabelled). Not into a word already marked (its quotes are the data's), nor from the
# quote that closes one (`schema "<marked>" does not exist`: what went wrong).
_OPENED = re.compile(f"(?<![A-Za-z{SOURCE_MARKS}])[\"'](?P<word>[^\"'{SOURCE_MARKS}]*)$")
# What PostgreSQL says bare, unquoted, on its first line: to_ascii's encoding name and
# is_normalized's form, which a query can take from a member's column.
_BARE = (
    re.compile(r"\A(?P<value>.+) is not a valid encoding name\Z"),
    re.compile(r"\Ainvalid normalization form: (?P<value>.+)\Z"),
)
# How PostgreSQL (and psycopg) label the lines of an error after its first.
_LABELLED = re.compile(r"^(?:DETAIL|HINT|CONTEXT|QUERY|WHERE|LINE \d+):|^\s*\^\s*$")
# SQLAlchemy's name for the server-side cursor (`DECLARE "c_7f..._1" CURSOR FOR ...`).
_CURSOR = re.compile(r"c_[0-9a-f]+_\w+")
# The lines that quote SQL: the statement a function ran (`QUERY:`) and libpq's excerpt
# (`LINE n:`, cut to about 60 characters, "..." at a cut end), where a string the query
# opens on one line may close on another. ts_stat and ts_rewrite run text as SQL, and a
# query can build that text of a member's values.
_SQL_LINE = re.compile(r"^(?P<label>QUERY:\s+|LINE \d+: )(?P<sql>.+)$")
# "operator does not exist: X": a query's mistake names the operator among its operands'
# types (`integer + text`, `- text`); regoper's input is named bare, and may be a value.
_NO_OPERATOR = re.compile(r"(?<=operator does not exist: )(?P<name>.+)$")
_OPERATOR = re.compile(r"(?:^|\s)(?:\w+\.)?[-+*/<>=~!@#%^&|`?]+(?:\s|$)")


def _data_marked(message: str, query: str) -> str:
    """A failed query's message with what it quotes from the data marked as source data
    (masked in output unless --show-members): every quoted word the query's own text does
    not contain, and every unlabelled line (XML's DETAIL repeats the text it read). The
    data is not in the repository, yet a query can make any value a relation, type, role,
    setting or unit name (`(SELECT user_id FROM users)::regclass`: `relation "usr_12" does
    not exist`) and print it in the CI log of a pull request. The names the query wrote
    (`column "emial" does not exist`) stay readable."""
    message = unmarked(message)

    def quoted(text: str) -> str:
        word = text[1:-1]
        # Punctuation (`'<' not found`) is the message's own; a word the query wrote is
        # the author's.
        if not any(c.isalnum() for c in word) or word in query or _CURSOR.fullmatch(word):
            return text
        return f"{text[0]}{source_value(word)}{text[0]}"

    def opened(match: re.Match[str]) -> str:
        word = match["word"]
        return match[0] if not word.strip() or word in query else match[0][0] + source_value(word)

    def operator(match: re.Match[str]) -> str:
        name = match["name"]
        return name if _OPERATOR.search(name) or name in query else source_value(name)

    lines = message.split("\n")
    for n, line in enumerate(lines):
        sql = _SQL_LINE.match(line)
        if sql and not _in_query(sql["sql"], query):
            lines[n] = sql["label"] + source_value(sql["sql"])
        elif n and line.strip() and not _LABELLED.match(line) and line.strip() not in query:
            lines[n] = source_value(line)
        elif not line.startswith("HINT:"):  # a hint names columns and settings, not values
            lines[n] = _NO_OPERATOR.sub(operator, _quoted_words(line, quoted))
            if not sql:
                lines[n] = _OPENED.sub(opened, lines[n])
    lines[0] = _bare_marked(lines[0], query)
    return "\n".join(lines)


def _quoted_words(line: str, mark: Callable[[str], str]) -> str:
    """`line` with each quoted word (its quotes included) given to `mark`. A word ends at
    its quote that no letter follows; one the line's last character closes, opened after
    ": ", runs to it: PostgreSQL ends `invalid input syntax for type integer: "VALUE"`
    with the value, which may hold `" ` itself (`Flat 2 "Rose Cottage", High St`, JSON),
    and its rest was shown. Linear: a quote with no end after it is not looked for again
    (a line of thousands of ` 'a` was read to its end from each, 60 kB in 40 s)."""
    out: list[str] = []
    done = at = 0
    found: dict[str, int | None] = {}  # per quote, the next end looked for, or none left
    while (opening := _OPENING.search(line, at)) is not None:
        start = opening.start()
        q = line[start]
        if line.endswith(q) and start < len(line) - 1 and line[:start].endswith(": "):
            end: int | None = len(line) - 1
        else:
            end = found.get(q, -1)
            if end is not None and end <= start:
                closing = _CLOSING[q].search(line, start + 1)
                end = found[q] = None if closing is None else closing.start()
        if end is None:
            at = start + 1
            continue
        out += (line[done:start], mark(line[start : end + 1]))
        done = at = end + 1
    out.append(line[done:])
    return "".join(out)


def _bare_marked(line: str, query: str) -> str:
    """`line` with the value PostgreSQL said bare marked as source data, unless the query
    wrote it (`to_ascii(name, 'latin9x')`: the author's typo stays readable)."""
    for pattern in _BARE:
        found = pattern.match(line)
        if found is not None and found["value"] not in query:
            start, end = found.span("value")
            return f"{line[:start]}{source_value(found['value'])}{line[end:]}"
    return line


def _in_query(sql: str, query: str) -> bool:
    """Whether SQL an error quotes (an excerpt, its cut ends marked "...") is the query's."""
    sql = sql.strip().removeprefix("...").removesuffix("...")
    return sql in query or sql in query.replace("\t", " ")


@contextmanager
def _time_limit(connection: Connection, declared_at: str) -> Iterator[None]:
    """Stops the query at RECONCILER_QUERY_TIMEOUT (QueryTimedOut) or on Ctrl-C, SIGTERM
    or SIGHUP (KeyboardInterrupt), with the driver's own interrupt: a recursive CTE in
    SQLite or pg_sleep() in PostgreSQL otherwise hung `validate` in CI for good, and SQLite,
    running in C, let no signal stop it either. A server-side statement_timeout would not
    do: the query itself can turn it off (set_config) before its next fetch. Drivers
    without an interrupt this knows run unbounded, as before."""
    interrupt = _interrupter(connection.connection.dbapi_connection)
    if interrupt is None:
        yield
        return
    guard = QueryGuard(query_timeout(), interrupt)
    try:
        yield
    except BaseException:
        guard.stop()
        if guard.signalled:
            raise KeyboardInterrupt from None
        if guard.expired:
            raise timed_out(declared_at, "the query") from None
        raise
    finally:
        guard.stop()  # before the rollback and close: no interrupt may land on them


def _interrupter(dbapi_connection: Any) -> Callable[[], None] | None:
    """What stops a running query of this DB-API connection from another thread: SQLite's
    interrupt(), psycopg's cancel (a request on a connection of its own); None for others."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        return dbapi_connection.interrupt
    cancel = getattr(dbapi_connection, "cancel_safe", None)  # psycopg 3.2+
    if cancel is None and type(dbapi_connection).__module__.startswith("psycopg"):
        cancel = getattr(dbapi_connection, "cancel", None)  # psycopg2, older psycopg 3
    if cancel is None:
        return None

    def interrupt() -> None:
        # A cancel that cannot reach the server changes nothing: the guard tries again.
        with contextlib.suppress(Exception):
            cancel()

    return interrupt


# What a SQLite query may do: read. ATTACH would create a database file anywhere, even
# from a read-only connection; PRAGMA can write.
_SQLITE_READS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)


def _sqlite_reads_only(connection: Any, _record: Any) -> None:
    keep_temporary_in_memory(connection)  # before the authorizer, which refuses PRAGMA
    connection.set_authorizer(
        lambda action, *_: sqlite3.SQLITE_OK if action in _SQLITE_READS else sqlite3.SQLITE_DENY
    )


def connect_timeout(environ: Mapping[str, str] | None = None) -> int:
    """Seconds a database server may take to accept a connection, from
    RECONCILER_DATABASE_CONNECT_TIMEOUT: whole seconds, as libpq takes them."""
    env = os.environ if environ is None else environ
    return env_int(env, CONNECT_TIMEOUT_VARIABLE, DEFAULT_CONNECT_TIMEOUT, CONNECT_TIMEOUT)


def _connect_args(url: URL) -> dict[str, Any]:
    # libpq waits for a server that never answers (a firewall that drops packets, a server
    # stalled in its start-up) for ever by default: `validate` in CI would hang with no
    # word. A connect_timeout the URL sets itself wins.
    if url.get_backend_name() != "postgresql" or "connect_timeout" in url.query:
        return {}
    return {"connect_timeout": connect_timeout()}


def _timeout_hint(exc: Exception, connect_args: Mapping[str, Any]) -> str:
    seconds = connect_args.get("connect_timeout")
    if seconds is None or "timeout" not in _driver_message(exc).lower():
        return ""
    return f" (no answer within {seconds} s; {CONNECT_TIMEOUT_VARIABLE} sets how long to wait)"


def _with_installed_driver(url: URL) -> URL:
    # `postgresql://` means psycopg2 to SQLAlchemy; the postgres extra installs psycopg 3.
    if (
        url.drivername == "postgresql"
        and importlib.util.find_spec("psycopg2") is None
        and importlib.util.find_spec("psycopg") is not None
    ):
        return url.set(drivername="postgresql+psycopg")
    return url


# URL schemes SQLAlchemy or a dialect package commonly installed knows, for a near miss of
# one: a scheme no package provides was told to install "the dialect for postgress".
_KNOWN_SCHEMES = (
    "postgresql",
    "postgresql+psycopg",
    "postgresql+psycopg2",
    "postgresql+pg8000",
    "sqlite",
    "mysql",
    "mysql+pymysql",
    "mysql+mysqldb",
    "mariadb",
    "mssql",
    "mssql+pyodbc",
    "oracle",
    "oracle+oracledb",
    "snowflake",
    "bigquery",
    "redshift+psycopg2",
    "databricks",
    "trino",
)


def _missing_driver(url_at: str, url: URL, database: DatabaseUrl, exc: Exception) -> str:
    backend = url.get_backend_name()
    if isinstance(exc, NoSuchModuleError) and backend == "postgres":
        # libpq's and Heroku's DATABASE_URL spelling, which SQLAlchemy 1.4 dropped: no
        # package to install provides it.
        return (
            f"{url_at}: the URL's scheme {url.drivername}:// is libpq's short name, which "
            "SQLAlchemy does not take: write postgresql:// (or postgresql+psycopg://)"
        )
    hint = _EXTRAS.get(backend, f"the SQLAlchemy dialect and driver for {backend}")
    if os.environ.get("PRE_COMMIT") == "1":
        # pre-commit (which sets PRE_COMMIT=1 for its hooks) runs the hook from an
        # environment of its own, which no `pip install` elsewhere reaches.
        package = f"['{POSTGRES_DRIVER}']" if backend == "postgresql" else "[its package]"
        hint += (
            "; the pre-commit hook runs from an environment of pre-commit's own: give the "
            f"hook additional_dependencies: {package} in .pre-commit-config.yaml"
        )
    detail = database.scrub(str(exc))
    if isinstance(exc, NoSuchModuleError):
        # No package provides the scheme (SQLAlchemy's "Can't load plugin"): a misspelt
        # one was told only to install "the dialect for postgress".
        from reconciler.manifest.validation import did_you_mean

        unknown = f"{url_at}: no SQLAlchemy dialect or driver installed is named {url.drivername!r}"
        meant = did_you_mean(url.drivername, _KNOWN_SCHEMES)
        if meant:
            return f"{unknown}{meant}: correct the URL's scheme"
        return f"{unknown}: correct the URL's scheme, or install {hint} ({detail})"
    return f"{url_at}: cannot connect to {backend}: install {hint} ({detail})"


def _one_line(message: str) -> str:
    """libpq's message on one line: it puts its hint on a line of its own, indented (`Is the
    server running on that host and accepting TCP/IP connections?`), and a line for each
    address of a host name, which broke the `FILE:LINE: message` line of validate and of a
    CI annotation. A connection's failure quotes no data, only the server's words."""
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())


def _driver_message(exc: Exception) -> str:
    # The DBAPI's own message is the useful part; SQLAlchemy's wrapper adds the statement
    # and a link.
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return str(exc.orig).strip()
    return str(exc).strip() or type(exc).__name__
