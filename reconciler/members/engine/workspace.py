"""The DuckDB workspace a plan's large member sets live in.

An in-memory DuckDB database under a memory limit, spilling to a private temporary
directory (mode 0700: it holds members' emails) beyond it; files read from Iterable land
there too. Tables outlive the planning
step because a plan's adds and removes are read back, in batches, when it is applied; the
directory is removed when the Engine is closed or the process ends.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import threading
import weakref
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from reconciler.leftovers import private_directory
from reconciler.members.engine.settings import TRAITS_THRESHOLD_FIELDS, EngineSettings

T = TypeVar("T")

# Python's str.lower() (the Python engine's, and Java's toLowerCase's, Iterable's language)
# and DuckDB's lower() differ in two characters only (every code point checked, DuckDB 2.0):
# 'İ' (U+0130) is 'i' and a combining dot to Python, 'i' to DuckDB; a capital sigma ending a
# word is a final sigma (U+03C2) to Python, U+03C3 to DuckDB, which maps each character
# alone. Text holding either is lower-cased by Python itself (a function registered in the
# workspace), the rest by DuckDB: so an email is one member whichever engine plans it.
_PYTHON_LOWER = "reconciler_lower"
_LOWER_DIFFERS = ("\u0130", "\u03a3")


def lower_sql(engine: Engine, expression: str) -> str:
    """SQL lower-casing `expression` exactly as Python's str.lower() does, for `engine`'s
    connection (see _PYTHON_LOWER), whose Python function is registered on first use."""
    engine.register_python_lower()
    differs = " OR ".join(f"contains({expression}, '{ch}')" for ch in _LOWER_DIFFERS)
    return f"(CASE WHEN {differs} THEN {_PYTHON_LOWER}({expression}) ELSE lower({expression}) END)"


def _python_lower(text: str) -> str:
    return text.lower()


class Engine:
    """Chooses the engine per audience and owns the DuckDB workspace, opened on first use."""

    def __init__(self, settings: EngineSettings | None = None):
        self.settings = settings or EngineSettings.from_env()
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._directory: Path | None = None
        self._names = itertools.count(1)
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize[..., Engine] | None = None
        self._memo: dict[Hashable, Any] = {}
        self._python_lower = False

    @classmethod
    def from_env(cls) -> Engine:
        return cls(EngineSettings.from_env())

    def use_duckdb(
        self, rows: int | None, traits: bool = False, fields: int = TRAITS_THRESHOLD_FIELDS
    ) -> bool:
        return self.settings.use_duckdb(rows, traits, fields)

    def remember(self, key: Hashable, compute: Callable[[], T]) -> T:
        """`compute()` once per key for this engine's life (a source's size, say)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]  # type: ignore[no-any-return]

    @property
    def directory(self) -> Path:
        self.connection  # noqa: B018  (opens the workspace)
        assert self._directory is not None
        return self._directory

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._connection is None:
                self._open()
            assert self._connection is not None
            return self._connection

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of its own: DuckDB connections are not shared between threads."""
        return self.connection.cursor()

    @contextlib.contextmanager
    def ordered(self) -> Iterator[None]:
        """Tables created inside keep their input's order (a global setting in DuckDB;
        planning runs on one thread)."""
        self.connection.execute("SET preserve_insertion_order = true")
        try:
            yield
        finally:
            self.connection.execute("SET preserve_insertion_order = false")

    def register_python_lower(self) -> None:
        """Registers lower_sql's Python function, once. Not when the workspace opens:
        DuckDB imports numpy to register any Python function (0.08 s and 10 MB of every
        process), which a workspace opened for no lower-casing (a prefetched export's
        directory, a Python-engine plan) need not pay."""
        connection = self.connection
        with self._lock:
            if not self._python_lower:
                connection.create_function(_PYTHON_LOWER, _python_lower, ["VARCHAR"], "VARCHAR")
                self._python_lower = True

    def name(self, prefix: str) -> str:
        return f"{prefix}_{next(self._names)}"

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> None:
        settings = self.settings
        directory = private_directory("workspace", settings.temp_dir)
        # In memory, spilling to `directory` beyond the limit: an on-disk database would
        # write every table out (measured: 2.3 s more for a 10M plan) for nothing, since
        # the workspace never outlives the command.
        connection = duckdb.connect(":memory:")
        try:
            # stdout carries the plan (--format json): DuckDB's own progress bar must not.
            connection.execute("SET enable_progress_bar = false")
            connection.execute(f"SET memory_limit = '{settings.duckdb_memory_bytes}B'")
            connection.execute(f"SET temp_directory = '{directory / 'spill'}'")
            # Order is kept only where rowids must number a source's rows (`ordered`);
            # elsewhere ORDER BY imposes it, and unordered joins need less memory.
            connection.execute("SET preserve_insertion_order = false")
            if settings.threads:
                connection.execute(f"SET threads = {int(settings.threads)}")
        except BaseException:
            connection.close()
            shutil.rmtree(directory, ignore_errors=True)
            raise
        self._connection, self._directory = connection, directory
        _OPEN.add(directory)
        self._finalizer = weakref.finalize(self, _cleanup, connection, directory)


# Every workspace directory this process made and has not removed yet, for
# `remove_directories` (os._exit skips finalizers).
_OPEN: set[Path] = set()


def remove_directories() -> None:
    """Remove the workspace directories now, without closing DuckDB: for a process about
    to end with os._exit (a second Ctrl-C), which would leave members' data behind."""
    for directory in list(_OPEN):
        shutil.rmtree(directory, ignore_errors=True)
        _OPEN.discard(directory)


def _cleanup(connection: duckdb.DuckDBPyConnection, directory: Path) -> None:
    try:
        connection.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        _OPEN.discard(directory)
