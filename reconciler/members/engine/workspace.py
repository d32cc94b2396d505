"""The DuckDB workspace a plan's large member sets live in.

An in-memory DuckDB database under a memory limit, spilling to a private temporary
directory (mode 0700: it holds members' emails) beyond it; files read from Iterable land
there too. Tables outlive the planning
step because a plan's adds and removes are read back, in batches, when it is applied; the
directory is removed when the Engine is closed or the process ends.
"""

from __future__ import annotations

import array
import contextlib
import errno
import functools
import itertools
import os
import re
import shutil
import sys
import threading
import weakref
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from reconciler.duckdb_connect import connect, set_threads
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.leftovers import NO_ROOM, no_room, private_directory, shown_temp
from reconciler.members.engine.settings import TRAITS_THRESHOLD_FIELDS, EngineSettings
from reconciler.members.engine.sql_text import sql_string
from reconciler.render.masking import DUCKDB_CSV_REASONS
from reconciler.sources.snapshot import TEMP_DIR_VARIABLE

# DuckDB's session time zone is the machine's (TZ) unless set: a query's `ts::DATE`,
# `current_date` or TIMESTAMPTZ-to-TIMESTAMP cast, and the offset a TIMESTAMPTZ value is
# given in, would differ between a laptop in Asia/Kolkata and a CI runner in UTC, and the
# two would rewrite each other's date fields on every run. reconciler takes a time without
# an offset as UTC (traits/convert.py), so DuckDB does too: a manifest's query
# (sources/duckdb_query.py) and the workspace see UTC wherever they run.
UTC_SESSION = "SET GLOBAL TimeZone = 'UTC'"  # GLOBAL: cursors too

T = TypeVar("T")

# Python's str.lower() (the Python engine's, and Java's toLowerCase's, Iterable's language)
# and DuckDB's lower() differ in two characters only (every code point checked, DuckDB 2.0):
# 'İ' (U+0130) is 'i' and a combining dot to Python, 'i' to DuckDB; a capital sigma ending a
# word is a final sigma (U+03C2) to Python, U+03C3 to DuckDB, which maps each character
# alone. Text holding either is rewritten in SQL before DuckDB's lower(), the final sigmas by
# a pattern built from this Python's own casing (_final_sigma_pattern). Not by a Python
# function registered in DuckDB: registering one imports numpy (0.08 s and 10 MB, at the
# 10M plan's 700 MB target), and rows go through Python one at a time.
_SIGMA, _FINAL_SIGMA, _SMALL_SIGMA = "\u03a3", "\u03c2", "\u03c3"
_DOTTED_I = "\u0130"


def lower_sql(expression: str) -> str:
    """SQL lower-casing `expression` exactly as Python's str.lower() does."""
    rewritten = (
        f"replace(regexp_replace({expression}, '{_final_sigma_pattern()}', "
        f"'\\1\\2{_FINAL_SIGMA}\\3\\4', 'g'), '{_DOTTED_I}', '{_DOTTED_I.lower()}')"
    )
    return (
        f"(CASE WHEN contains({expression}, '{_SIGMA}') OR contains({expression}, '{_DOTTED_I}') "
        f"THEN lower({rewritten}) ELSE lower({expression}) END)"
    )


@functools.cache
def _final_sigma_pattern() -> str:
    """An RE2 pattern for a capital sigma Python lower-cases to a final sigma: after a
    cased character and before none, case-ignorable characters (an apostrophe, a combining
    accent) skipped on either side. Groups 1-4 are all but the sigma, for the replacement."""
    cased, ignorable = _casing_classes()
    return f"([{cased}])([{ignorable}]*){_SIGMA}([{ignorable}]*)($|[^{cased}{ignorable}])"


@functools.cache
def _casing_classes() -> tuple[str, str]:
    """RE2 class items for the characters that are cased and not case-ignorable, and for
    the case-ignorable ones, as this Python's str.lower() judges them (its Unicode tables,
    not RE2's, which may be of another version). Asked of lower() itself: a sigma after a
    letter and before a character c is small before a cased c, and before an ignorable c
    that a letter follows; final otherwise. Planes 0, 1 and 14 only: no other plane holds
    a cased or case-ignorable character (tests check every code point)."""
    codes = array.array("I", [*range(_PLANES_0_1), *range(_PLANE_14, _PLANE_14 + 0x1000)])
    # Surrogates cannot be encoded, and 'İ' alone lower-cases to two characters, which
    # would shift every later cell: each stands in as a character of its class (neither
    # cased nor ignorable; cased).
    codes[0xD800:0xE000] = array.array("I", [ord(" ")]) * 0x800
    codes[ord(_DOTTED_I)] = ord("A")
    small = str.maketrans({_SMALL_SIGMA: "1", _FINAL_SIGMA: "0"})
    cased = int(_sigma_after_a_letter_before(codes, " ").translate(small), 2)
    cased_or_ignorable = int(_sigma_after_a_letter_before(codes, "A ").translate(small), 2)
    return _class_items(cased, len(codes)), _class_items(cased_or_ignorable & ~cased, len(codes))


_PLANES_0_1, _PLANE_14 = 0x20000, 0xE0000


def _sigma_after_a_letter_before(codes: array.array[int], tail: str) -> str:
    """For each code c, what "AΣ" + chr(c) + tail lower-cases the sigma to."""
    unit = [ord("A"), ord(_SIGMA), 0, *map(ord, tail)]
    cells = array.array("I", unit) * len(codes)
    cells[2 :: len(unit)] = codes
    text = cells.tobytes().decode("utf-32-le" if sys.byteorder == "little" else "utf-32-be")
    return text.lower()[1 :: len(unit)]


def _class_items(flags: int, width: int) -> str:
    """RE2 class items (`\\x{..}-\\x{..}`) for the codes whose bit is set in `flags`, the
    first of `width` codes (planes 0 and 1, then plane 14) its highest bit."""
    items: list[str] = []
    for run in re.finditer("1+", format(flags, f"0{width}b")):
        # a run must not reach from plane 1 into plane 14, which follows it in the bits
        first, last = run.start(), run.end() - 1
        for low, high in ((first, min(last, _PLANES_0_1 - 1)), (max(first, _PLANES_0_1), last)):
            if low <= high:
                items.append(_range_item(_code(low), _code(high)))
    return "".join(items)


def _range_item(low: int, high: int) -> str:
    return rf"\x{{{low:x}}}" if low == high else rf"\x{{{low:x}}}-\x{{{high:x}}}"


def _code(index: int) -> int:
    return index if index < _PLANES_0_1 else _PLANE_14 + index - _PLANES_0_1


# How DuckDB says its spill files met their bound (by default, the disk's free space).
_SPILL_BOUND = "max_temp_directory_size"


def duckdb_no_room(exc: BaseException) -> OSError | None:
    """The kernel's error when `exc` is DuckDB's IO error for a write that found no room
    (a full disk, a quota, a file over its size limit), else None. DuckDB quotes the
    kernel's words (`Could not write file "...": File too large`), and the file."""
    if not isinstance(exc, duckdb.IOException):
        return None
    code = next((c for c in sorted(NO_ROOM) if os.strerror(c) in str(exc)), None)
    return None if code is None else OSError(code, os.strerror(code))


def unquoted_reason(exc: duckdb.Error) -> str:
    """DuckDB's reason a file reconciler wrote or Iterable sent could not be read, without
    what it quotes. The files hold members: a CSV reader error's first line names only the
    line (`CSV Error on Line: 2`), the next quotes it whole (`Original Line: ann@x.io...`,
    over several lines when a quoted cell holds line ends, or from the next line), and the
    reason follows, so the reason is taken by its known words and never by its place; a
    cast quotes the value it could not cast (`Failed to cast value to numerical:
    "ann@x.io"`), which is cut; and the file is the workspace's, a temporary path of no use
    to anyone."""
    lines = str(exc).splitlines() or [type(exc).__name__]
    reason = _FILE.sub("", lines[0]).rstrip()
    if len(lines) > 1 and lines[1].startswith(_ORIGINAL_LINE):
        said = [line for line in lines[2:] if line.startswith(DUCKDB_CSV_REASONS)]
        if said:  # the last: a member's value could read like one, DuckDB's comes after
            reason += f": {said[-1].strip()}"
    value = reason.find('"')
    return reason if value < 0 else reason[:value].rstrip(" :") + " (the value is not shown)"


_FILE = re.compile(r' in file "[^"]*"')
_ORIGINAL_LINE = "Original Line:"


def interrupted_by_signal(exc: BaseException) -> bool:
    """Whether `exc` is how DuckDB says a Ctrl-C (or SIGTERM) came while it ran one of the
    workspace's statements: the KeyboardInterrupt the signal raised is taken into its own
    error ("RuntimeError: Query interrupted", or InterruptException), which reached people
    as "internal error: ... This is a bug in reconciler" and exit code 1, not 130. Nothing
    else interrupts the workspace (a manifest's query has a guard of its own)."""
    if isinstance(exc, duckdb.InterruptException):
        return True
    return type(exc) is RuntimeError and str(exc) == "Query interrupted"


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

    def no_room(self, exc: BaseException) -> ReconcilerError | None:
        """What to say for `exc` when it is a write that found no room in the temporary
        directory: reconciler's own (an OSError) or DuckDB's, whose spill files may take
        90% of the disk's free space (no bound of its own is set on the workspace), and
        which says so as an Out of Memory error naming that setting, or an IO error quoting
        the kernel. None for any other error."""
        if isinstance(exc, duckdb.OutOfMemoryException) and _SPILL_BOUND in str(exc):
            exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        else:
            exc = duckdb_no_room(exc) or exc
        return no_room(exc, self.settings.temp_dir)

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
        try:
            directory = private_directory("workspace", settings.temp_dir)
        except OSError as exc:
            # RECONCILER_DUCKDB_TEMP_DIR=/proc (or a read-only directory) was an internal
            # FileNotFoundError naming a directory that was never there.
            where = shown_temp(settings.temp_dir)
            raise ConfigError(
                f"cannot make DuckDB's working directory in {where}: "
                f"{exc.strerror or type(exc).__name__}; {TEMP_DIR_VARIABLE} chooses another "
                "directory"
            ) from None
        # In memory, spilling to `directory` beyond the limit: an on-disk database would
        # write every table out (measured: 2.3 s more for a 10M plan) for nothing, since
        # the workspace never outlives the command.
        connection = connect()
        try:
            # stdout carries the plan (--format json): DuckDB's own progress bar must not.
            connection.execute("SET enable_progress_bar = false")
            # TIMESTAMPTZ values read back from a query's transfer file come out in UTC, as
            # the query's own connection gives them to the Python engine.
            connection.execute(UTC_SESSION)
            connection.execute(f"SET memory_limit = '{settings.duckdb_memory_bytes}B'")
            connection.execute(f"SET temp_directory = {sql_string(directory / 'spill')}")
            # Order is kept only where rowids must number a source's rows (`ordered`);
            # elsewhere ORDER BY imposes it, and unordered joins need less memory.
            connection.execute("SET preserve_insertion_order = false")
            if settings.threads:
                set_threads(connection, settings.threads)
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
