"""Every DuckDB connection reconciler opens, with DuckDB's automatic extension install
and load turned off.

By default DuckDB installs a known extension from its repository over the network, and
loads it, the first time a statement needs one (read_json, read_parquet, ICU time zones).
The duckdb wheels on PyPI build in the ones reconciler uses (core_functions, icu, json,
parquet), but another build (a distribution's package, a source build) may not: its plan
would then reach out to the network mid-run, from a CI runner that may have none, or run
code fetched at that moment. With both off, such a build fails where the extension is
needed, naming it, and nothing is fetched. A manifest's query sets these too, with more
(sources/duckdb_query.py open_connection)."""

from __future__ import annotations

import duckdb

from reconciler.threads import stop_signals_blocked

Config = dict[str, str | bool | int | float | list[str]]

# DuckDB's settings for extensions, off in every connection.
NO_EXTENSION_FETCH: Config = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}


def connect(
    database: str = ":memory:", *, read_only: bool = False, config: Config | None = None
) -> duckdb.DuckDBPyConnection:
    """duckdb.connect, `config` with NO_EXTENSION_FETCH over it. DuckDB's worker threads,
    started here, leave Ctrl-C to the main thread (threads.start_thread)."""
    with stop_signals_blocked():
        return duckdb.connect(
            database, read_only=read_only, config={**(config or {}), **NO_EXTENSION_FETCH}
        )


def set_threads(connection: duckdb.DuckDBPyConnection, threads: int) -> None:
    """SET threads, whose new workers leave Ctrl-C to the main thread as connect's do."""
    with stop_signals_blocked():
        connection.execute(f"SET threads = {int(threads)}")
